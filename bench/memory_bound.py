"""Peak memory of a scan over pathological bundles, per MiB it reads (issue 10, item 6).

Usage::

    python -m bench.memory_bound [DIR] [--bundles 8] [--shape empty-objects|at-limit]
        [--as-limit-mib 1024]

Writes ``--bundles`` bundles into DIR (default: a temporary directory),
each valid except that ``metadata.json`` carries a ``params`` value of
millions of empty JSON objects (``[{},{},...]``), just under the 16 MiB
read cap: the densest way to turn bytes into Python objects
(``--shape at-limit``: one-key objects, as dense as a scan still parses). Then, each in
a fresh process:

1. ``find_best_model(DIR)``, reporting the process's peak RSS (``VmHWM``
   in ``/proc/self/status``; Linux) against a baseline process that only
   imports the registry, and the bytes a scan reads (both JSON files
   of every bundle);
2. the same call under an address-space limit (``RLIMIT_AS``): does it
   finish, and with which reasons?

Prints one JSON object. The numbers before and after the memory bound are
in bench/README.md ("Scan memory bound").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from taskclf.model_registry._fs import MAX_FILE_BYTES
from taskclf.model_registry.scan import _BYTES_PER_CONTAINER
from taskclf.samples import write_bundle

SHAPES = {
    # The densest bytes-to-objects ratio: refused since the memory bound.
    "empty-objects": b"{},",
    # One-key objects one byte longer than the bound allows per object: parsed and
    # kept, the worst case a scan still accepts.
    "at-limit": b'{"' + b"k" * (_BYTES_PER_CONTAINER - 6) + b'":1},',
}

# Peak RSS is read from VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the
# parent across fork and exec, and this parent has just written 128 MiB of files.
_CHILD = """
import json, resource, sys
from taskclf.model_registry import find_best_model
def peak_kb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
if len(sys.argv) > 2:
    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
result = {}
if sys.argv[1] != "-":
    try:
        report = find_best_model(sys.argv[1])
        result["ranked"] = len(report.ranked)
        result["reasons"] = sorted({e.reason[:120] for e in report.excluded})
    except BaseException as exc:
        result["raised"] = f"{type(exc).__name__}: {str(exc)[:200]}"
result["rss_kb"] = peak_kb()
print(json.dumps(result))
"""


def write_pathological_bundle(bundle_dir: Path, seed: int = 0, shape: str = "empty-objects") -> int:
    """Write a valid bundle whose ``params`` holds as many ``shape`` items as fit under the cap.

    Returns:
        The bytes of both JSON files (what a scan reads).
    """
    write_bundle(bundle_dir, seed=seed)
    metadata_path = bundle_dir / "metadata.json"
    metadata = json.loads(metadata_path.read_bytes())
    metadata["params"] = {"blob": []}
    prefix, suffix = json.dumps(metadata).encode().split(b'"blob": []')
    head = prefix + b'"blob": ['
    item = SHAPES[shape]
    tail = item[:-1] + b"]" + suffix
    count = (MAX_FILE_BYTES - len(head) - len(tail) - 16) // len(item)
    metadata_path.write_bytes(head + item * count + tail)
    return metadata_path.stat().st_size + (bundle_dir / "metrics.json").stat().st_size


def _child(root: str, as_limit: int | None, timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-c", _CHILD, root]
    if as_limit is not None:
        command.append(str(as_limit))
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"outcome": f"did not finish within {timeout_s:g} s (killed)"}
    seconds = round(time.perf_counter() - started, 2)
    if done.returncode != 0 or not done.stdout.strip():
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        return {"outcome": f"exit status {done.returncode}", "stderr": tail, "seconds": seconds}
    result: dict[str, Any] = json.loads(done.stdout)
    result["seconds"] = seconds
    return result


def main(argv: list[str] | None = None) -> int:
    """Build the registry, run the probes, print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", nargs="?", help="registry to create (default: a temp directory)")
    parser.add_argument("--bundles", type=int, default=8)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="empty-objects")
    parser.add_argument("--as-limit-mib", type=int, default=1024)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="taskclf-membound-") as scratch:
        root = Path(args.dir) if args.dir else Path(scratch) / "models"
        root.mkdir(parents=True, exist_ok=True)
        read = sum(
            write_pathological_bundle(root / f"b{i}", seed=i, shape=args.shape)
            for i in range(args.bundles)
        )
        baseline = _child("-", None, args.timeout)
        scan = _child(str(root), None, args.timeout)
        limited = _child(str(root), args.as_limit_mib << 20, args.timeout)
    mib_read = read / (1 << 20)
    figures: dict[str, Any] = {
        "bundles": args.bundles,
        "shape": args.shape,
        "mib_read": round(mib_read, 1),
        "baseline_rss_mib": round(baseline["rss_kb"] / 1024, 1),
        "scan": scan,
    }
    if "rss_kb" in scan:
        figures["scan_peak_rss_mib"] = round(scan["rss_kb"] / 1024, 1)
        figures["rss_mib_per_mib_read"] = round(
            (scan["rss_kb"] - baseline["rss_kb"]) / 1024 / mib_read, 2
        )
    figures[f"under_rlimit_as_{args.as_limit_mib}_mib"] = limited
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
