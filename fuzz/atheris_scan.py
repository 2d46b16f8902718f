"""Coverage-guided fuzzing of every registry reader with atheris (run by hand).

Each input is split on ``SEPARATOR`` into the five files a registry
reader parses (a bundle's ``metadata.json`` and ``metrics.json``,
``active.json``, ``active_history.jsonl`` and ``index.json``; the first
byte also decides whether to promote), written into a scratch
registry next to a known-good bundle, and read back through
``list_bundles``, ``find_best_model``, ``read_active``,
``read_active_history``, ``read_index_cache``, ``resolve_active_model`` and
(for one input in sixteen) ``promote_bundle``. Any exception other than
the documented ``PromotionError`` is a finding, as is a bundle without a
reason or a reader left without an answer while the good bundle exists.

Usage (see fuzz/README.md)::

    pip install atheris
    python fuzz/atheris_scan.py --seed-corpus fuzz/corpus   # valid files to mutate
    python fuzz/atheris_scan.py -max_total_time=90 -max_len=16384 fuzz/corpus
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from taskclf.model_registry import (
        PromotionError,
        find_best_model,
        list_bundles,
        promote_bundle,
        read_active,
        read_active_history,
        read_index_cache,
        resolve_active_model,
    )
    from taskclf.samples import write_bundle

# tmpfs when available: auto-repair fsyncs the pointer on most inputs.
SCRATCH = Path(
    tempfile.mkdtemp(
        prefix="taskclf-atheris-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
    )
)
ROOT = SCRATCH / "models"
CANDIDATE = SCRATCH / "cand"
FILES = ("metadata.json", "metrics.json", "active.json", "active_history.jsonl", "index.json")
SEPARATOR = b"\n--8<--\n"


def _setup() -> None:
    write_bundle(ROOT / "good", accuracy=0.7)
    write_bundle(ROOT / "fuzzed", accuracy=0.9)
    write_bundle(CANDIDATE, accuracy=0.95)


def _write(path: Path, data: bytes) -> None:
    # Plain writes: the harness is not under test, and fsync would slow every run.
    path.write_bytes(data)


def test_one_input(data: bytes) -> None:
    """Write the fuzzed files, then check every reader's contract."""
    promote = bool(data) and data[0] % 16 == 0
    parts = data[1:].split(SEPARATOR, len(FILES) - 1)
    parts += [b""] * (len(FILES) - len(parts))
    metadata, metrics, pointer, history, index = parts
    _write(ROOT / "fuzzed" / "metadata.json", metadata)
    _write(ROOT / "fuzzed" / "metrics.json", metrics)
    _write(ROOT / "active.json", pointer)
    _write(ROOT / "active_history.jsonl", history)
    _write(ROOT / "index.json", index)

    bundles = list_bundles(ROOT)
    assert {b.model_id for b in bundles} >= {"good", "fuzzed"}, bundles
    assert all(b.valid or b.invalid_reason for b in bundles)
    report = find_best_model(ROOT)
    accounted = sorted([b.model_id for b in report.ranked] + [e.model_id for e in report.excluded])
    assert accounted == sorted(b.model_id for b in bundles)
    assert all(e.reason for e in report.excluded)
    read_active(ROOT)
    read_active_history(ROOT)
    read_index_cache(ROOT)
    bundle, _ = resolve_active_model(ROOT)
    assert bundle is not None and bundle.valid

    if promote:
        _write(CANDIDATE / "metadata.json", metadata)
        _write(CANDIDATE / "metrics.json", metrics)
        try:
            promote_bundle(CANDIDATE, ROOT)
        except PromotionError as exc:
            assert exc.reason
        else:
            shutil.rmtree(ROOT / "cand")


def write_seed_corpus(directory: Path) -> None:
    """Seed inputs: the registry files of a healthy registry, whole and partly emptied."""
    from taskclf.model_registry import write_active_atomic, write_index_cache

    _setup()
    write_active_atomic(ROOT, next(b for b in list_bundles(ROOT) if b.model_id == "good"))
    write_index_cache(ROOT, find_best_model(ROOT))
    files = [
        (ROOT / "fuzzed" / FILES[0]).read_bytes(),
        (ROOT / "fuzzed" / FILES[1]).read_bytes(),
        *((ROOT / name).read_bytes() for name in FILES[2:]),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    for flag in (1, 16):
        (directory / f"seed-{flag}").write_bytes(bytes([flag]) + SEPARATOR.join(files))
    for i in range(len(files)):
        emptied = [b"" if j == i else f for j, f in enumerate(files)]
        (directory / f"seed-without-{i}").write_bytes(b"\x01" + SEPARATOR.join(emptied))


def main() -> None:
    logging.getLogger("taskclf").setLevel(logging.CRITICAL)
    if sys.argv[1:2] == ["--seed-corpus"]:
        write_seed_corpus(Path(sys.argv[2]))
        shutil.rmtree(SCRATCH, ignore_errors=True)
        return
    _setup()
    atheris.Setup(sys.argv, test_one_input)
    try:
        atheris.Fuzz()
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
