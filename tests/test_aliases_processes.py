"""Issue 14 with real processes: concurrent writers per alias and across aliases, SIGKILL
during alias writes, and a full disk. The same guarantees as ``active.json`` must hold
for every alias: a whole pointer at every instant, each history a chain, no temp file.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from taskclf.model_registry import (
    ActiveHistoryEntry,
    ActivePointer,
    read_active,
    read_active_history,
    read_bundle,
    verify_registry,
    write_active_atomic,
)
from taskclf.model_registry._fs import is_temp_name
from taskclf.model_registry.aliases import ALIAS_DIR
from taskclf.samples import write_bundle

BUNDLES = ["run-a", "run-b", "run-c"]
ALIASES = ["active", "canary", "staging"]
WRITES_EACH = 10

WRITER = """
import sys
from pathlib import Path
from taskclf.model_registry import read_bundle, write_active_atomic

root, alias, worker, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bundles = [read_bundle(root / name) for name in sys.argv[5:]]
for i in range(count):
    write_active_atomic(root, bundles[(worker + i) % len(bundles)], alias=alias,
                        reason=f"{alias}-{worker}-{i}", actor=f"w{worker}")
print("done", flush=True)
"""


def _registry(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    for seed, name in enumerate(BUNDLES):
        write_bundle(root / name, seed=seed)
    return root


def _assert_chain(history: list[ActiveHistoryEntry]) -> None:
    assert history[0].old is None
    for previous, entry in itertools.pairwise(history):
        assert entry.old == previous.new
        assert entry.at == entry.new.selected_at


@pytest.mark.slow
def test_concurrent_writers_per_alias_and_across_aliases(tmp_path: Path) -> None:
    root = _registry(tmp_path)
    # Two writers on each of three aliases, all at once, under the one registry lock.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), alias, str(w), str(WRITES_EACH), *BUNDLES],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for alias in ALIASES
        for w in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert out.strip() == "done"

    for alias in ALIASES:
        history = read_active_history(root, alias=alias)
        assert len(history) == 2 * WRITES_EACH
        _assert_chain(history)
        notes = [str((e.new.reason or {})["note"]) for e in history]
        # Every entry belongs to this alias: no write landed in another alias's files.
        assert all(note.startswith(f"{alias}-") for note in notes)
        for w in range(2):
            mine = [n for n in notes if n.startswith(f"{alias}-{w}-")]
            assert mine == [f"{alias}-{w}-{i}" for i in range(WRITES_EACH)]
        assert read_active(root, alias=alias) == history[-1].new
    assert not [n for n in os.listdir(root) if is_temp_name(n)]
    assert not [n for n in os.listdir(root / ALIAS_DIR) if is_temp_name(n)]
    assert verify_registry(root).healthy


LOOPING_WRITER = """
import sys
from pathlib import Path
from taskclf.model_registry import read_bundle, write_active_atomic

root, alias = Path(sys.argv[1]), sys.argv[2]
bundles = [read_bundle(root / name) for name in sys.argv[3:]]
i = 0
while True:
    write_active_atomic(root, bundles[i % len(bundles)], alias=alias, reason=f"loop-{i}")
    if i == 0:
        print("writing", flush=True)
    i += 1
"""


@pytest.mark.slow
def test_sigkill_during_alias_writes_leaves_a_whole_pointer_and_a_chain(tmp_path: Path) -> None:
    root = _registry(tmp_path)
    first = read_bundle(root / BUNDLES[0])
    assert first is not None
    write_active_atomic(root, first)
    active_bytes = (root / "active.json").read_bytes()
    rng = random.Random(14)
    for _ in range(5):
        writer = subprocess.Popen(
            [sys.executable, "-c", LOOPING_WRITER, str(root), "canary", *BUNDLES],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        # Let it run a random number of further writes by reading its progress marker:
        # the kill lands at an arbitrary point of some write, with no sleep.
        for _ in range(rng.randrange(0, 40)):
            os.sched_yield()
        writer.send_signal(signal.SIGKILL)
        writer.communicate(timeout=60)

        pointer_path = root / ALIAS_DIR / "canary.json"
        pointer = ActivePointer.model_validate_json(pointer_path.read_bytes())
        history = read_active_history(root, alias="canary")
        _assert_chain_allowing_one_uncommitted(history)
        assert pointer in (history[-1].new, history[-1].old)
        # Other aliases are untouched by a crash in this one.
        assert (root / "active.json").read_bytes() == active_bytes
        # A stale temp file may be left (verify reports it); remove it for the next round.
        for name in os.listdir(root / ALIAS_DIR):
            if is_temp_name(name):
                (root / ALIAS_DIR / name).unlink()

    # The next write still lands on its own line and continues the chain.
    bundle = read_bundle(root / BUNDLES[1])
    assert bundle is not None
    new = write_active_atomic(root, bundle, alias="canary")
    history = read_active_history(root, alias="canary")
    assert history[-1].new == new


def _assert_chain_allowing_one_uncommitted(history: list[ActiveHistoryEntry]) -> None:
    """A chain, except where a kill fell between the history append and the replace."""
    assert history[0].old is None
    for previous, entry in itertools.pairwise(history):
        assert entry.old in (previous.new, previous.old)


def test_disk_full_on_an_alias_write_changes_nothing(tmp_path: Path) -> None:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        root = mount_point / "models"
        for seed, name in enumerate(BUNDLES[:2]):
            write_bundle(root / name, seed=seed)
        first = read_bundle(root / BUNDLES[0])
        assert first is not None
        write_active_atomic(root, first, alias="canary")
        aliases = root / ALIAS_DIR
        before = {p.name: p.read_bytes() for p in aliases.iterdir()}
        filler = os.open(mount_point / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(filler, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(filler)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, json\n"
                "from pathlib import Path\n"
                "from taskclf.model_registry import read_bundle, write_active_atomic\n"
                "root = Path(sys.argv[1])\n"
                "try:\n"
                "    write_active_atomic(root, read_bundle(root / 'run-b'), alias='canary')\n"
                "except OSError as exc:\n"
                "    print(json.dumps({'errno': exc.errno}))\n"
                "else:\n"
                "    print(json.dumps({'errno': None}))\n",
                str(root),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert child.returncode == 0, child.stderr
        assert json.loads(child.stdout)["errno"] is not None
        assert {p.name: p.read_bytes() for p in aliases.iterdir()} == before
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
