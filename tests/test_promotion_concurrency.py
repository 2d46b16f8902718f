"""Concurrent promotions from several real processes into one registry (§10, §6)."""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import random
import threading
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from taskclf.model_registry import (
    PromotionError,
    list_bundles,
    promote_bundle,
    read_active,
    read_active_history,
    read_index_cache,
)
from taskclf.model_registry.promotion import STAGING_PREFIX
from taskclf.samples import write_bundle

PROCESSES = 4
BUNDLES_PER_PROCESS = 4

pytestmark = pytest.mark.slow


def _promote_all(candidates: list[str], models_dir: str, barrier: Barrier) -> None:
    barrier.wait()
    for candidate in candidates:
        promote_bundle(candidate, models_dir)


def _promote_same_name(candidate: str, models_dir: str, barrier: Barrier) -> None:
    barrier.wait()
    # Losing the name is expected (exit code 0); any other error fails the process.
    with contextlib.suppress(PromotionError):
        promote_bundle(candidate, models_dir, move=True, name="contested")


def _run(target: object, argument_lists: list[tuple[object, ...]]) -> list[int | None]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(argument_lists))
    processes = [
        context.Process(target=target, args=(*args, barrier))  # type: ignore[arg-type]
        for args in argument_lists
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    return [process.exitcode for process in processes]


def test_concurrent_promotions_land_every_bundle(tmp_path: Path) -> None:
    rng = random.Random(1234)
    total = PROCESSES * BUNDLES_PER_PROCESS
    # Distinct scores in a shuffled order, so the pointer moves several times.
    scores = [round(0.5 + 0.02 * i, 4) for i in range(total)]
    rng.shuffle(scores)
    candidates: list[list[str]] = []
    expected: dict[str, float] = {}
    for p in range(PROCESSES):
        mine = []
        for b in range(BUNDLES_PER_PROCESS):
            score = scores[p * BUNDLES_PER_PROCESS + b]
            name = f"run-p{p}-b{b}"
            path = write_bundle(
                tmp_path / "candidates" / name, seed=p * 10 + b, macro_f1=score, weighted_f1=score
            )
            mine.append(str(path))
            expected[name] = score
        candidates.append(mine)
    root = tmp_path / "models"

    exit_codes = _run(_promote_all, [(mine, str(root)) for mine in candidates])

    assert exit_codes == [0] * PROCESSES
    bundles = list_bundles(root)
    assert {b.model_id for b in bundles} == set(expected)
    assert all(b.valid for b in bundles)
    assert [n for n in os.listdir(root) if n.startswith(STAGING_PREFIX)] == []
    best = max(expected, key=expected.__getitem__)
    pointer = read_active(root)
    assert pointer is not None
    assert pointer.model_id == best
    history = read_active_history(root)
    assert history
    assert history[0].old is None
    for previous, entry in itertools.pairwise(history):
        assert entry.old == previous.new
    assert history[-1].new == pointer
    # Without hysteresis each move goes to a strictly better bundle.
    moved_to = [expected[e.new.model_id or ""] for e in history]
    assert moved_to == sorted(set(moved_to))
    index = read_index_cache(root)
    assert index is not None
    assert index.best_model_id == best
    assert len(index.ranked) == total


def test_concurrent_moves_to_one_name(tmp_path: Path) -> None:
    sources = [
        write_bundle(tmp_path / "candidates" / f"src-{i}", seed=i, accuracy=0.7 + 0.05 * i)
        for i in range(PROCESSES)
    ]
    contents = {str(s): (s / "metrics.json").read_bytes() for s in sources}
    root = tmp_path / "models"

    exit_codes = _run(_promote_same_name, [(str(s), str(root)) for s in sources])

    assert exit_codes == [0] * PROCESSES
    # Exactly one source moved in; every loser's source is back where it was.
    remaining = [s for s in sources if s.is_dir()]
    assert len(remaining) == PROCESSES - 1
    (winner,) = [s for s in sources if not s.exists()]
    assert (root / "contested" / "metrics.json").read_bytes() == contents[str(winner)]
    for source in remaining:
        assert (source / "metrics.json").read_bytes() == contents[str(source)]
    assert [n for n in os.listdir(root) if n.startswith(STAGING_PREFIX)] == []
    pointer = read_active(root)
    assert pointer is not None
    assert pointer.model_id == "contested"


def test_concurrent_promotions_from_threads(tmp_path: Path) -> None:
    # The registry lock is re-entrant per thread only: threads of one process must
    # still exclude each other, and a lock holder's nested writes must not deadlock.
    root = tmp_path / "models"
    scores = {f"run-t{i}": round(0.6 + 0.03 * ((i * 7) % 12), 4) for i in range(12)}
    for name, score in scores.items():
        write_bundle(tmp_path / "candidates" / name, seed=1, macro_f1=score, weighted_f1=score)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker(names: list[str]) -> None:
        barrier.wait()
        try:
            for name in names:
                promote_bundle(tmp_path / "candidates" / name, root)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    names = sorted(scores)
    threads = [threading.Thread(target=worker, args=(names[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert {b.model_id for b in list_bundles(root)} == set(scores)
    pointer = read_active(root)
    assert pointer is not None
    assert pointer.model_id == max(scores, key=scores.__getitem__)
    history = read_active_history(root)
    for previous, entry in itertools.pairwise(history):
        assert entry.old == previous.new
    assert history[-1].new == pointer
