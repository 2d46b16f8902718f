"""Benchmark of a registry on S3-compatible storage, against the loopback server.

    python -m bench.s3 [--n 10000] [--rounds 5]

The server (moto, ``bench/loopback_s3.py``) runs in its own process so it
does not compete with the measured client for the GIL; both share this
machine's cores. moto handles one request at a time (that is what makes
its conditional writes atomic), so without a round trip concurrency could
not show: each request first waits ``--latency-ms`` (default 10 ms, a
same-region S3 GET's first byte), in parallel with the others. Figures, each the
median of ``--rounds`` rounds, the two sides of a ratio interleaved:

- **first scan** (``list_bundles`` with an empty scan cache) against a
  sequential loop that LISTs and then GETs each bundle's two files one
  after the other with the same client (obstore): what the bounded
  concurrency buys;
- **repeat scan** (the ETag-keyed scan cache warm, nothing changed)
  against the first scan: what the cache buys;
- **requests per resolve**: HTTP requests the server saw for one
  ``resolve_active_model`` on a healthy pointer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.loopback_s3 import REQUESTS_PATH


def _populate(url: str, n: int, work: Path) -> None:
    from taskclf.model_registry.manifest import build_manifest, manifest_bytes
    from taskclf.model_registry.storage import open_storage
    from taskclf.samples import write_bundle

    storage = open_storage(url)

    def one(index: int) -> None:
        bundle = write_bundle(work / f"run_{index:06d}", seed=index, macro_f1=0.5 + index / (4 * n))
        (bundle / "manifest.json").write_bytes(manifest_bytes(build_manifest(bundle)))
        storage.upload_tree(bundle, bundle.name)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        for done, _ in enumerate(pool.map(one, range(n)), start=1):
            if done % 1000 == 0:
                print(f"  uploaded {done:,} bundles", file=sys.stderr, flush=True)


def _sequential_loop(url: str) -> int:
    """The baseline: LIST, then GET both files of every bundle, one request at a time."""
    import obstore

    from taskclf.model_registry.storage import open_storage
    from taskclf.model_registry.storage.s3 import bundle_names_from

    storage = open_storage(url)
    names = bundle_names_from(storage.list_files())
    store = storage._store  # type: ignore[attr-defined]
    total = 0
    for name in names:
        for file in ("metadata.json", "metrics.json"):
            total += len(bytes(obstore.get(store, f"{name}/{file}").bytes()))
    return total


def _requests(endpoint: str) -> int:
    with urllib.request.urlopen(endpoint + REQUESTS_PATH) as response:
        return int(response.read())


def _timed(function: object) -> float:
    start = time.perf_counter()
    function()  # type: ignore[operator]
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description="taskclf object-storage benchmark")
    parser.add_argument("--n", type=int, default=10_000, help="bundles in the registry")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per figure")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=10.0,
        help="round trip added to each request by the server (a real store's latency)",
    )
    args = parser.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, "-m", "bench.loopback_s3", str(args.latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    endpoint = server.stdout.readline().strip()
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
        }
    )
    try:
        import boto3

        from taskclf.model_registry import activate, list_bundles, resolve_active_model

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench")
        url = "s3://bench/models"
        with tempfile.TemporaryDirectory(prefix="taskclf-bench-s3-") as scratch:
            print(f"Uploading {args.n:,} bundles ...", file=sys.stderr, flush=True)
            _populate(url, args.n, Path(scratch) / "bundles")
            activate(url, f"run_{args.n - 1:06d}")
            first: list[float] = []
            loop: list[float] = []
            repeat: list[float] = []
            for round_number in range(args.rounds):
                # A fresh cache directory: the first scan of this round fetches everything.
                os.environ["TASKCLF_CACHE_DIR"] = str(Path(scratch) / f"cache-{round_number}")
                first.append(_timed(lambda: list_bundles(url)))
                loop.append(_timed(lambda: _sequential_loop(url)))
                repeat.append(_timed(lambda: list_bundles(url)))
            before = _requests(endpoint)
            bundle, _ = resolve_active_model(url)
            # The count requests themselves are not counted by the server.
            per_resolve = _requests(endpoint) - before
            assert bundle is not None
    finally:
        server.stdin.close()
        server.wait(timeout=60)

    first_s, loop_s, repeat_s = (statistics.median(v) for v in (first, loop, repeat))
    ratios_loop = statistics.median(f / b for f, b in zip(first, loop, strict=True))
    ratios_repeat = statistics.median(r / f for r, f in zip(repeat, first, strict=True))
    print(
        f"\nObject-storage registry, {args.n:,} bundles, loopback moto with "
        f"{args.latency_ms:g} ms per request, {args.rounds} rounds"
    )
    print("| figure | median | baseline | ratio |")
    print("|---|---|---|---|")
    print(
        f"| first scan vs sequential GET loop | {first_s:.2f} s | {loop_s:.2f} s "
        f"| {ratios_loop:.2f} |"
    )
    print(
        f"| repeat scan (ETag cache) vs first scan | {repeat_s:.2f} s | {first_s:.2f} s "
        f"| {ratios_repeat:.3f} |"
    )
    print(f"| requests per resolve (healthy pointer) | {per_resolve} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
