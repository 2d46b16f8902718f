"""REGISTRY.md §6 under hard crashes: a pointer writer killed with SIGKILL at random moments.

What must survive every kill: ``active.json`` parses as a whole pointer,
the history is readable, the pointer is the ``new`` (or, if the kill fell
between the history append and the replace, the ``old``) of the last
history entry, and the next append lands on a line of its own.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskclf.model_registry import (
    ActiveHistoryEntry,
    ActivePointer,
    list_bundles,
    read_active,
    read_active_history,
    read_bundle,
    write_active_atomic,
)
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from taskclf.samples import write_bundle

KILLS = 6
BUNDLES = ["run-a", "run-b", "run-c"]

LOOPING_WRITER = """
import sys
from pathlib import Path
from taskclf.model_registry import read_bundle, write_active_atomic

root = Path(sys.argv[1])
bundles = [read_bundle(root / name) for name in sys.argv[2:]]
i = 0
while True:
    write_active_atomic(root, bundles[i % len(bundles)], reason=f"loop-{i}")
    if i == 0:
        print("writing", flush=True)
    i += 1
"""


def _kill_writer_at_random(root: Path, rng: random.Random) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", LOOPING_WRITER, str(root), *BUNDLES],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        # Blocks until the writer has completed one write and is looping.
        assert writer.stdout.readline().strip() == "writing"
        # The random moment of the crash: this is the point of the test, not a wait.
        time.sleep(rng.uniform(0.0, 0.15))
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.communicate(timeout=30)
    assert writer.returncode == -signal.SIGKILL


def _check_survivors(root: Path) -> list[ActiveHistoryEntry]:
    raw = (root / ACTIVE_FILE).read_bytes()
    pointer = ActivePointer.model_validate_json(raw)  # whole, never torn
    assert read_active(root) == pointer
    history = read_active_history(root)
    assert history, "the history survives"
    last = history[-1]
    # History first, then pointer: a kill in between leaves the pointer at `old`.
    assert pointer in (last.new, last.old)
    for previous, entry in itertools.pairwise(history):
        # The chain holds, except right after an entry whose pointer replace was
        # killed: the next writer's `old` is then the pointer that stayed in force.
        assert entry.old in (previous.new, previous.old)
    # Every line but possibly the last (a torn append) parses.
    lines = (root / HISTORY_FILE).read_bytes().split(b"\n")
    complete = lines[:-1]
    for line in complete[:-1]:
        ActiveHistoryEntry.model_validate_json(line)
    return history


@pytest.mark.slow
def test_sigkilled_writer_leaves_a_whole_pointer_and_a_usable_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    root = tmp_path / "models"
    for seed, name in enumerate(BUNDLES):
        write_bundle(root / name, seed=seed)
    bundle = read_bundle(root / BUNDLES[0])
    assert bundle is not None
    write_active_atomic(root, bundle, reason="initial")
    rng = random.Random(20260227)

    for kill in range(KILLS):
        size_before = (root / HISTORY_FILE).stat().st_size
        _kill_writer_at_random(root, rng)
        assert (root / HISTORY_FILE).stat().st_size > size_before
        history = _check_survivors(root)

        # A later write by a healthy process: its entry is on its own line, and
        # every line after any torn one parses.
        new = write_active_atomic(root, bundle, reason=f"after-kill-{kill}")
        lines = (root / HISTORY_FILE).read_bytes().split(b"\n")
        assert lines[-1] == b""
        assert ActiveHistoryEntry.model_validate_json(lines[-2]).new == new
        after = read_active_history(root)
        assert after[-1].new == new
        assert len(after) == len(history) + 1
        assert read_active(root) == new

    # Bundles are untouched by all this, and the scan ignores any temp file a kill left.
    assert [b.model_id for b in list_bundles(root)] == BUNDLES
    assert all(b.valid for b in list_bundles(root))


@pytest.mark.slow
def test_torn_history_tail_from_a_killed_append(tmp_path: Path) -> None:
    """A kill mid-append (simulated by cutting the file inside its last line) is recoverable."""
    root = tmp_path / "models"
    for seed, name in enumerate(BUNDLES):
        write_bundle(root / name, seed=seed)
    bundles = [read_bundle(root / name) for name in BUNDLES]
    written = []
    for b in bundles:
        assert b is not None
        written.append(write_active_atomic(root, b))
    path = root / HISTORY_FILE
    data = path.read_bytes()
    for cut in (1, 7, len(data.split(b"\n")[-2]) // 2):
        path.write_bytes(data[: len(data) - 1 - cut])  # inside the last line
        history = read_active_history(root)
        assert [e.new for e in history] == written[:-1]
    assert bundles[0] is not None
    new = write_active_atomic(root, bundles[0])
    history = read_active_history(root)
    assert [e.new for e in history] == [*written[:-1], new]
    # The new entry's `old` is the pointer in force (the last whole write), not the torn line.
    assert history[-1].old == written[-1]
