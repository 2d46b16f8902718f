"""One measured operation, run by :mod:`bench.run` in a fresh process per round.

Usage::

    python -m bench.probe OPERATION DIR [--repeat K] [--cache MODE]

Prints one JSON object: ``seconds`` (mean wall time of one call, timed
inside this process, so interpreter start-up and imports are excluded;
a scan operation is also primed first, see below),
``cpu_seconds`` (the same in CPU time of this process), ``calls``,
``rss_kb`` (this process's peak RSS) and ``check`` (a few facts about
the result, which the runner uses to make sure the operation did what
it should).

Operations:

- ``floor``: a plain loop over the bundle directories that reads both
  JSON files and ``json.loads`` them, without any validation.
- ``find_best``: ``find_best_model(DIR)`` without an explicit hash.
- ``list_bundles``: ``list_bundles(DIR)``.
- ``resolve``: ``resolve_active_model(DIR)``; the pointer must be valid.
- ``write_active``: ``write_active_atomic`` of the bundle the pointer
  names (history append and pointer replace, both fsynced).
- ``atomic_floor``: the bare durable replace of a file of the size of
  ``active.json`` (temp file, write, fsync, rename, directory fsync),
  without lock or history: the floor of ``write_active``.

Priming (``floor``, ``find_best``, ``list_bundles``): before the timed call
the same operation runs three times on a scratch registry holding copies of
two of DIR's bundles (with a scratch scan cache, so the second run writes a
cache and the third reads it). What a process does once whatever the
registry's size (imports done on first use, pydantic building the
validators it defers to first use, the scan constructor's self-check) is
then behind it, as it was when those costs fell at import, before start-up
was made lazy; the per-bundle cost is what is timed. Whole-process figures
(``bench.run``'s CLI rows) include every one-time cost.

Scan cache (``--cache``, set up before the timed call):

- ``off``: no scan cache (``TASKCLF_CACHE_DIR=""``).
- ``empty`` (default): an empty cache directory of this process's own: a
  first scan, which reads every bundle and writes the cache.
- ``warm:DIR``: the cache directory ``DIR``, kept between processes: a
  repeat scan once an earlier process (the warm-up) has written it.
- ``copy:FILE``: an empty cache directory holding a copy of the cache file
  ``FILE``: a scan that starts from that state (``bench.run`` prepares one
  that misses 1% of the bundles).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

OPERATIONS = (
    "floor",
    "find_best",
    "list_bundles",
    "resolve",
    "write_active",
    "atomic_floor",
)


def floor(root: str) -> dict[str, Any]:
    """Read and ``json.loads`` both files of every bundle directory; no validation."""
    bundles = parsed = 0
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            bundles += 1
            for name in ("metadata.json", "metrics.json"):
                try:
                    with open(os.path.join(entry.path, name), "rb") as handle:
                        json.loads(handle.read())
                    parsed += 1
                except (OSError, ValueError):
                    pass
    return {"bundles": bundles, "parsed": parsed}


def _find_best(root: str) -> Callable[[], dict[str, Any]]:
    from taskclf.model_registry import find_best_model

    def run() -> dict[str, Any]:
        report = find_best_model(root)
        return {
            "bundles": len(report.ranked) + len(report.excluded),
            "ranked": len(report.ranked),
            "schema_hash": report.required_schema_hash,
        }

    return run


def _list_bundles(root: str) -> Callable[[], dict[str, Any]]:
    from taskclf.model_registry import list_bundles

    def run() -> dict[str, Any]:
        bundles = list_bundles(root)
        return {"bundles": len(bundles), "valid": sum(b.valid for b in bundles)}

    return run


def _resolve(root: str) -> Callable[[], dict[str, Any]]:
    from taskclf.model_registry import resolve_active_model

    def run() -> dict[str, Any]:
        bundle, report = resolve_active_model(root)
        return {
            "model_id": bundle.model_id if bundle else None,
            "from_pointer": report is None,
        }

    return run


def _write_active(root: str) -> Callable[[], dict[str, Any]]:
    from taskclf.model_registry import (
        locate_pointed_bundle,
        read_active,
        read_bundle,
        write_active_atomic,
    )

    pointer = read_active(root)
    assert pointer is not None, "write_active needs a registry with a valid active.json"
    path = locate_pointed_bundle(root, pointer.model_dir)
    assert path is not None
    bundle = read_bundle(path)
    assert bundle is not None and bundle.valid

    def run() -> dict[str, Any]:
        written = write_active_atomic(root, bundle, reason="bench")
        return {"model_id": written.model_id}

    return run


def _atomic_floor(root: str) -> Callable[[], dict[str, Any]]:
    target = os.path.join(root, "bench-floor.json")
    data = Path(root, "active.json").read_bytes()

    def run() -> dict[str, Any]:
        tmp = f"{target}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
        dir_fd = os.open(root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return {"bytes": len(data)}

    return run


def operation(name: str, root: str) -> Callable[[], dict[str, Any]]:
    """The callable that performs ``name`` on the registry ``root`` (imports done here)."""
    if name == "floor":
        return lambda: floor(root)
    factories = {
        "find_best": _find_best,
        "list_bundles": _list_bundles,
        "resolve": _resolve,
        "write_active": _write_active,
        "atomic_floor": _atomic_floor,
    }
    return factories[name](root)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: run the operation and print the JSON result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("operation", choices=OPERATIONS)
    parser.add_argument("dir")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cache", default="empty")
    args = parser.parse_args(argv)
    root = os.path.abspath(args.dir)
    with tempfile.TemporaryDirectory(prefix="taskclf-probe-cache-") as scratch:
        set_up_cache(args.cache, root, scratch)
        if args.operation in PRIMED:
            prime(args.operation, root, scratch)
        run_and_report(args.operation, root, args.repeat)


def set_up_cache(mode: str, root: str, scratch: str) -> None:
    """Point ``TASKCLF_CACHE_DIR`` where ``mode`` says (see the module docstring)."""
    if mode == "off":
        os.environ["TASKCLF_CACHE_DIR"] = ""
        return
    if mode.startswith("warm:"):
        os.environ["TASKCLF_CACHE_DIR"] = mode.removeprefix("warm:")
        return
    os.environ["TASKCLF_CACHE_DIR"] = scratch
    if mode.startswith("copy:"):
        from taskclf.model_registry.scan_cache import cache_file

        target = cache_file(root)
        assert target is not None
        target.parent.mkdir(parents=True)
        shutil.copyfile(mode.removeprefix("copy:"), target)
    else:
        assert mode == "empty", f"unknown cache mode {mode!r}"


PRIMED = ("floor", "find_best", "list_bundles")
"""Operations whose one-time costs are paid on a scratch registry before timing."""


def prime(name: str, root: str, scratch: str) -> None:
    """Run ``name`` on a two-bundle copy of ``root`` three times (see the module docstring)."""
    target = os.path.join(scratch, "prime", "models")
    os.makedirs(target)
    with os.scandir(root) as entries:
        names = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    for bundle in names[:2]:
        shutil.copytree(os.path.join(root, bundle), os.path.join(target, bundle))
    saved = os.environ.get("TASKCLF_CACHE_DIR")
    os.environ["TASKCLF_CACHE_DIR"] = os.path.join(scratch, "prime-cache")
    try:
        run = operation(name, target)
        for _ in range(3):
            run()
    finally:
        if saved is None:
            del os.environ["TASKCLF_CACHE_DIR"]
        else:
            os.environ["TASKCLF_CACHE_DIR"] = saved


def run_and_report(name: str, root: str, repeat: int) -> None:
    """Run ``name`` ``repeat`` times and print the JSON result."""
    run = operation(name, root)
    check: dict[str, Any] = {}
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(repeat):
        check = run()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    result = {
        "seconds": elapsed / repeat,
        "cpu_seconds": cpu / repeat,
        "calls": repeat,
        "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "check": check,
    }
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
