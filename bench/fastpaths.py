"""Weigh the scan's hand-tuned fast paths (issue 13, target 5), each switched off in turn.

Usage::

    python -m bench.fastpaths DIR [--rounds 5]

For each variant (all fast paths; without the GC pause; without the
constructor bypass; without shared fields-sets; none of them) and each of
a *first scan* (empty scan cache: every bundle read from its files) and a
*repeat scan* (scan cache warm, nothing changed), runs ``find_best_model``
on the registry ``DIR`` in a fresh process per round, variants interleaved
within a round, and prints the median time (in-process, imports excluded)
(and CPU time) and peak RSS. The switches are applied by monkeypatching in the child
process; the library has no such knobs. Not part of ``bench.run``: run by
hand, on a quiet machine, to decide which fast paths stay (bench/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

VARIANTS = ("all", "no-gc-pause", "no-bypass", "no-shared-sets", "none")


def _switch_off(variant: str) -> None:
    """Monkeypatch the fast paths ``variant`` leaves out (in this child process)."""
    from taskclf.model_registry import resolution, scan, selection

    if variant in ("no-gc-pause", "none"):

        @contextlib.contextmanager
        def running() -> Iterator[None]:
            yield

        scan.gc_paused = running
        resolution.gc_paused = running  # type: ignore[attr-defined]
    if variant in ("no-bypass", "none"):
        for constructor in (scan._construct, selection._exclusion_record):
            constructor._chosen = constructor.pydantic_way
    if variant in ("no-shared-sets", "none"):
        scan._share_fields_set = lambda model: None


def child(variant: str, root: str, cache: str) -> None:
    """One measured ``find_best_model`` with ``variant``'s fast paths (prints JSON)."""
    os.environ["TASKCLF_CACHE_DIR"] = cache
    from taskclf.model_registry import find_best_model

    _switch_off(variant)
    start, start_cpu = time.perf_counter(), time.process_time()
    report = find_best_model(root)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu": cpu, "rss_kb": rss, "ranked": len(report.ranked)}))


def _run(variant: str, root: str, cache: str) -> dict[str, Any]:
    argv = [sys.executable, "-m", "bench.fastpaths", root, "--child", variant, cache]
    out = subprocess.run(argv, check=True, capture_output=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "CACHE"))
    args = parser.parse_args(argv)
    root = os.path.abspath(args.dir)
    if args.child:
        child(args.child[0], root, args.child[1])
        return
    with tempfile.TemporaryDirectory(prefix="taskclf-fastpaths-") as scratch:
        warm = os.path.join(scratch, "warm")
        for _ in range(3):  # marker, cache written, one unrecorded repeat (page cache warm)
            _run("all", root, warm)
        times: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        rss: dict[tuple[str, str], int] = {}
        for index in range(args.rounds):
            for variant in VARIANTS:
                empty = os.path.join(scratch, f"empty-{variant}-{index}")
                for mode, cache in (("first", empty), ("repeat", warm)):
                    result = _run(variant, root, cache)
                    times.setdefault((variant, mode), []).append(result["seconds"])
                    cpus.setdefault((variant, mode), []).append(result["cpu"])
                    rss[variant, mode] = max(rss.get((variant, mode), 0), result["rss_kb"])
    load = os.getloadavg()[0]
    print(
        f"find_best_model, {args.rounds} rounds, median wall (CPU) time; "
        f"load average now {load:.1f}"
    )
    print("| variant | first scan | repeat scan |")
    print("|---|---|---|")
    for variant in VARIANTS:
        cells = [
            f"{statistics.median(times[variant, mode]):.3f} s "
            f"({statistics.median(cpus[variant, mode]):.3f} s), {rss[variant, mode] // 1024} MiB"
            for mode in ("first", "repeat")
        ]
        print(f"| {variant} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
