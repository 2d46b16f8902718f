"""What integrity manifests cost: `verify --deep` on many sealed bundles, activating a big one.

Usage::

    python -m bench.integrity [--bundles 1000] [--size-mb 5] [--big-mb 200] [--dir DIR]

Builds, in a fresh temporary directory (``--dir`` for its parent;
default the system's temp directory), a registry of ``--bundles``
sealed bundles whose model file is ``--size-mb`` MB of distinct bytes,
then times, once each, whole ``taskclf`` processes:

- ``taskclf model verify --json`` (default mode: the active bundle hashed,
  the others checked by size) and ``taskclf model verify --deep --json``
  (every bundle hashed), page cache warm (the files were just written and
  hashed to seal them; on a cold cache the disk's read speed adds).

Then, in a second registry with two bundles holding a ``--big-mb`` MB
model, one sealed and one not, the wall time of
``activate_bundle`` (``taskclf model set-active``'s library call) inside
this process, for each, plus the bare SHA-256 of the file for reference.

Everything generated is deleted at the end (it is several GB). Run it
once, by hand; it is not part of the test suite.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskclf.model_registry import activate_bundle, build_manifest, write_manifest
from taskclf.model_registry._fs import sha256_file
from taskclf.samples import write_bundle

MB = 1024 * 1024


def _model_bytes(size: int, seed: int, block: bytes) -> bytes:
    # Distinct content per bundle (a unique header) without generating GBs of randomness.
    header = f"model {seed}\n".encode()
    return header + block[: size - len(header)]


def _write_registry(root: Path, bundles: int, size: int) -> None:
    block = os.urandom(size)
    for i in range(bundles):
        path = write_bundle(root / f"run-{i:05d}", seed=i)
        (path / "model.txt").write_bytes(_model_bytes(size, i, block))
        write_manifest(path, build_manifest(path))


def _taskclf(*args: str) -> tuple[float, dict[str, object]]:
    command = [str(Path(sys.executable).with_name("taskclf")), *args]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    return elapsed, json.loads(done.stdout)


def _timed_activation(root: Path, model_id: str) -> float:
    start = time.perf_counter()
    activate_bundle(root, model_id)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    """Generate, measure once, print a summary, delete everything."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", type=int, default=1000)
    parser.add_argument("--size-mb", type=float, default=5.0)
    parser.add_argument("--big-mb", type=float, default=200.0)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="taskclf-integrity-", dir=args.dir))
    try:
        many = work / "many" / "models"
        start = time.perf_counter()
        _write_registry(many, args.bundles, int(args.size_mb * MB))
        generated = time.perf_counter() - start
        activate_bundle(many, f"run-{args.bundles - 1:05d}")
        default_s, default_report = _taskclf("model", "verify", "--json", "--models-dir", str(many))
        deep_s, deep_report = _taskclf(
            "model", "verify", "--deep", "--json", "--models-dir", str(many)
        )
        assert default_report["healthy"] is not None and deep_report["healthy"] is not None

        big = work / "big" / "models"
        size = int(args.big_mb * MB)
        block = os.urandom(size)
        for name in ("sealed", "unsealed"):
            path = write_bundle(big / name, seed=1)
            (path / "model.txt").write_bytes(_model_bytes(size, 1, block))
        write_manifest(big / "sealed", build_manifest(big / "sealed"))
        # Each activated twice in turn (unsealed first) so neither gets a colder cache.
        unsealed_s = [_timed_activation(big, "unsealed")]
        sealed_s = [_timed_activation(big, "sealed")]
        unsealed_s.append(_timed_activation(big, "unsealed"))
        sealed_s.append(_timed_activation(big, "sealed"))
        start = time.perf_counter()
        sha256_file(big / "sealed" / "model.txt")
        hash_s = time.perf_counter() - start
        start = time.perf_counter()
        hashlib.sha256(block).hexdigest()
        memory_hash_s = time.perf_counter() - start

        total_gb = args.bundles * args.size_mb / 1024
        print(f"registry: {args.bundles} sealed bundles x {args.size_mb:g} MB model "
              f"({total_gb:.2f} GB), generated and sealed in {generated:.1f} s")  # fmt: skip
        print(f"taskclf model verify        : {default_s:6.2f} s (active hashed, others sized)")
        print(f"taskclf model verify --deep : {deep_s:6.2f} s "
              f"({total_gb * 1024 / deep_s:.0f} MB/s)")  # fmt: skip
        print(f"activate, {args.big_mb:g} MB model, unsealed: "
              f"{', '.join(f'{s * 1000:.1f} ms' for s in unsealed_s)}")  # fmt: skip
        print(f"activate, {args.big_mb:g} MB model, sealed  : "
              f"{', '.join(f'{s * 1000:.1f} ms' for s in sealed_s)}")  # fmt: skip
        print(f"sha256 of the {args.big_mb:g} MB file (sha256_file): {hash_s * 1000:.1f} ms; "
              f"of the same bytes in memory: {memory_hash_s * 1000:.1f} ms")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
