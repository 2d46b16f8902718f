"""REGISTRY.md §6 under real concurrency: several processes write the pointer, others read it.

Every reader must see a whole pointer at every instant, and the history
must stay a chain (``entry[i].old == entry[i-1].new``) because writers are
serialised by the registry lock from reading the old pointer to appending.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskclf.model_registry import (
    ActivePointer,
    read_active,
    read_active_history,
    read_bundle,
    write_active_atomic,
)
from taskclf.model_registry._fs import LOCK_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from taskclf.samples import write_bundle

WRITERS = 3
WRITES_EACH = 12
READERS = 2
BUNDLES = ["run-a", "run-b", "run-c", "run-d"]

WRITER = """
import sys
from pathlib import Path
from taskclf.model_registry import read_bundle, write_active_atomic

root, worker, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
names = sys.argv[4:]
bundles = [read_bundle(root / name) for name in names]
for i in range(count):
    bundle = bundles[(worker + i) % len(bundles)]
    write_active_atomic(root, bundle, reason=f"writer-{worker}-{i}")
print("done", flush=True)
"""

READER = """
import json, sys
from pathlib import Path
from taskclf.model_registry import ActivePointer, read_active

root, stop = Path(sys.argv[1]), Path(sys.argv[2])
reads = failures = 0
seen = set()
examples = []
# Read until the parent says the writers are done (then once more).
while True:
    finished = stop.exists()
    raw = (root / "active.json").read_bytes()
    try:
        pointer = ActivePointer.model_validate_json(raw)
        seen.add(pointer.selected_at)
    except Exception as exc:
        failures += 1
        examples.append(repr(raw[:80]))
    if read_active(root) is None:
        failures += 1
    reads += 1
    if finished:
        break
print(json.dumps({"reads": reads, "failures": failures, "distinct": len(seen),
                  "examples": examples[:3]}), flush=True)
"""


@pytest.mark.slow
def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for seed, name in enumerate(BUNDLES):
        write_bundle(root / name, seed=seed)
    first_bundle = read_bundle(root / BUNDLES[0])
    assert first_bundle is not None
    first = write_active_atomic(root, first_bundle, reason="initial")
    stop = tmp_path / "writers-done"

    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(root), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(READERS)
    ]
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(w), str(WRITES_EACH), *BUNDLES],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    try:
        for writer in writers:
            out, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err
            assert out.strip() == "done"
    finally:
        stop.touch()
        reader_results = []
        for reader in readers:
            out, err = reader.communicate(timeout=60)
            assert reader.returncode == 0, err
            reader_results.append(json.loads(out))

    for result in reader_results:
        assert result["failures"] == 0, result["examples"]
        assert result["reads"] > 0

    history = read_active_history(root)
    assert len(history) == 1 + WRITERS * WRITES_EACH
    assert history[0].old is None
    assert history[0].new == first
    for previous, entry in itertools.pairwise(history):
        assert entry.old == previous.new
        assert entry.at == entry.new.selected_at
    notes = [str(e.new.reason["note"]) for e in history[1:] if e.new.reason is not None]
    assert sorted(notes) == sorted(
        f"writer-{w}-{i}" for w in range(WRITERS) for i in range(WRITES_EACH)
    )
    # Each writer's own writes are in its program order.
    for w in range(WRITERS):
        mine = [n for n in notes if n.startswith(f"writer-{w}-")]
        assert mine == [f"writer-{w}-{i}" for i in range(WRITES_EACH)]

    final = read_active(root)
    assert final == history[-1].new
    raw_lines = (root / HISTORY_FILE).read_bytes().split(b"\n")
    assert raw_lines[-1] == b""
    assert len(raw_lines) - 1 == len(history)
    leftovers = {p.name for p in root.iterdir() if not p.is_dir()}
    assert leftovers == {ACTIVE_FILE, HISTORY_FILE, LOCK_FILE}


@pytest.mark.slow
def test_concurrent_writers_in_threads_share_the_chain(tmp_path: Path) -> None:
    """The lock serialises threads of one process too (it is re-entrant only per thread)."""
    from concurrent.futures import ThreadPoolExecutor

    root = tmp_path / "models"
    for seed, name in enumerate(BUNDLES):
        write_bundle(root / name, seed=seed)
    bundles = [read_bundle(root / name) for name in BUNDLES]

    def work(worker: int) -> list[ActivePointer]:
        written = []
        for i in range(8):
            bundle = bundles[(worker + i) % len(bundles)]
            assert bundle is not None
            written.append(write_active_atomic(root, bundle, reason=f"t{worker}-{i}"))
        return written

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(work, range(4)))
    history = read_active_history(root)
    assert len(history) == 32
    assert history[0].old is None
    for previous, entry in itertools.pairwise(history):
        assert entry.old == previous.new
    assert {p.selected_at for r in results for p in r} == {e.new.selected_at for e in history}
