"""The object-store pointer protocol as a property: any interleaving of writers keeps one chain.

``storage/chain.py`` is written against the storage verbs only, so the protocol
runs here on a local directory (``LocalStorage``: the same create-if-absent
and compare-and-swap contract, no server), fast enough for Hypothesis to
try many interleavings of readers holding stale state.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from taskclf.model_registry import RegistryConflictError
from taskclf.model_registry.models import ActiveHistoryEntry, ActivePointer
from taskclf.model_registry.pointer import history_entry, utc_now_iso
from taskclf.model_registry.storage import LocalStorage
from taskclf.model_registry.storage.base import PointerRead
from taskclf.model_registry.storage.chain import (
    HISTORY_PREFIX,
    commit_pointer,
    read_history_chain,
)
from taskclf.model_registry.storage.chain import read_pointer as read_pointer_state

WRITERS = 3


def _change(state: PointerRead, name: str, note: str) -> ActiveHistoryEntry:
    new = ActivePointer(
        model_dir=f"models/{name}",
        selected_at=utc_now_iso(),
        policy_version=1,
        model_id=name,
        reason={"note": note},
    )
    return history_entry(state.pointer, new)


operations = st.lists(
    st.tuples(st.sampled_from(["read", "commit"]), st.integers(0, WRITERS - 1)), max_size=30
)


@settings(max_examples=60, deadline=None)
@given(operations)
def test_any_interleaving_keeps_exactly_one_entry_per_committed_change(
    ops: list[tuple[str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        storage = LocalStorage(Path(scratch) / "models")
        states: dict[int, PointerRead] = {}
        committed = []
        for number, (operation, writer) in enumerate(ops):
            if operation == "read" or writer not in states:
                states[writer] = read_pointer_state(storage)
                continue
            change = _change(states[writer], f"run_{number}", f"writer {writer}")
            new = change.new
            try:
                commit_pointer(storage, states[writer], change)
            except RegistryConflictError:
                pass
            else:
                committed.append(new)
            # A writer's state is used once, as a real caller re-reads before retrying.
            del states[writer]
        chain = read_history_chain(storage)
        assert [entry.new for _, entry in chain.committed] == committed
        for (_, before), (_, after) in itertools.pairwise(chain.committed):
            assert after.old == before.new
        # Losers removed their entries: nothing off the chain.
        assert chain.uncommitted == [] and chain.unreadable == []
        assert len(storage.list_files(HISTORY_PREFIX)) == len(committed)
        assert read_pointer_state(storage).pointer == (committed[-1] if committed else None)
