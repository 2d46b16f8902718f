"""The object-store pointer protocol as a property: any interleaving of writers keeps one chain.

``remote.py`` is written against the storage seam only, so the protocol
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
from taskclf.model_registry.models import BundleMetrics, ModelBundle
from taskclf.model_registry.remote import (
    HISTORY_PREFIX,
    PointerState,
    commit_pointer,
    new_pointer,
    read_history_chain,
    read_pointer_state,
)
from taskclf.model_registry.storage import LocalStorage

WRITERS = 3
_metrics = BundleMetrics(
    macro_f1=0.5, weighted_f1=0.5, confusion_matrix=[[1]], label_names=["Build"]
)


def _bundle(name: str) -> ModelBundle:
    return ModelBundle(model_id=name, path=Path("/x") / name, valid=True, metrics=_metrics)


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
        states: dict[int, PointerState] = {}
        committed = []
        for number, (operation, writer) in enumerate(ops):
            if operation == "read" or writer not in states:
                states[writer] = read_pointer_state(storage)
                continue
            new = new_pointer(storage, _bundle(f"run_{number}"), None, f"writer {writer}")
            try:
                commit_pointer(storage, states[writer], new)
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
