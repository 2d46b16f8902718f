"""Generate realistic registries for the benchmarks.

A registry looks like what a nightly retrain with hyper-parameter sweeps
leaves behind: bundles named ``<timestamp>_run-<n>``, a few per night,
each written by :func:`taskclf.samples.write_bundle` (real-looking
metadata, an 8x8 confusion matrix and F1 scores computed from it), a
configurable share of broken bundles (every invalid reason of the spec
in turn) and of incompatible ones (wrong schema hash, wrong label set,
unknown schema version), and optionally an ``active.json``.

Usage::

    python -m bench.generate DIR --n 10000 [--invalid 0.05] [--incompatible 0.05]
                                 [--versions v1] [--active] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from taskclf.model_registry import read_bundle, write_active_atomic
from taskclf.samples import LABELS, write_bundle

MARKER = ".bench-complete.json"
"""Written last (dot-prefixed: the registry ignores it); a registry without it is regenerated."""

_INVALID_KINDS = (
    "missing_metrics",
    "corrupt_metadata",
    "bad_metadata",
    "bad_metrics",
    "bad_created_at",
    "missing_metadata",
)
_INCOMPATIBLE_KINDS = ("schema_hash", "label_set", "unknown_version")
_OFFSETS = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5)))


@dataclass(frozen=True)
class RegistrySpec:
    """What to generate; two equal specs generate identical registries."""

    n: int
    invalid: float = 0.05
    incompatible: float = 0.05
    versions: tuple[str, ...] = ("v1",)
    active: bool = False
    seed: int = 0

    def key(self) -> str:
        """A directory-name-safe identifier of this spec."""
        versions = "-".join(self.versions)
        active = "-active" if self.active else ""
        return (
            f"n{self.n}-inv{self.invalid:g}-inc{self.incompatible:g}-{versions}"
            f"-s{self.seed}{active}"
        )


def _bundle_plan(spec: RegistrySpec, index: int) -> tuple[str, str, datetime]:
    """``(kind, name, created_at)`` of bundle ``index``; kind is ``ok``, invalid or incompatible."""
    rng = random.Random(spec.seed * 1_000_003 + index)
    # About six sweep runs per night, starting at 01:00 in the trainer's local offset.
    night, run = divmod(index, 6)
    offset = _OFFSETS[index % len(_OFFSETS)] if index % 7 == 0 else UTC
    created = datetime(2024, 1, 1, 1, 0, tzinfo=UTC) + timedelta(days=night, minutes=run * 37)
    created = created.astimezone(offset)
    name = f"{created.astimezone(UTC):%Y-%m-%d_%H%M%S}_run-{index:05d}"
    draw = rng.random()
    if draw < spec.invalid:
        kind = _INVALID_KINDS[index % len(_INVALID_KINDS)]
    elif draw < spec.invalid + spec.incompatible:
        kind = _INCOMPATIBLE_KINDS[index % len(_INCOMPATIBLE_KINDS)]
    else:
        kind = "ok"
    return kind, name, created


def write_one(root: Path, spec: RegistrySpec, index: int) -> str:
    """Write bundle ``index`` of ``spec`` under ``root``; return its kind."""
    kind, name, created = _bundle_plan(spec, index)
    rng = random.Random(spec.seed * 7_919 + index)
    version = spec.versions[index % len(spec.versions)]
    kwargs: dict[str, Any] = {
        "accuracy": rng.uniform(0.6, 0.93),
        "seed": spec.seed * 1_000_003 + index,
        "schema_version": version,
        "created_at": created,
    }
    if kind == "schema_hash":
        kwargs["schema_hash"] = f"{rng.getrandbits(48):012x}"
    elif kind == "label_set":
        kwargs["label_set"] = [label for label in LABELS if label != "Meet"]
    elif kind == "unknown_version":
        kwargs["schema_hash"] = "000000000000"
        kwargs["extra_metadata"] = {"schema_version": "v9"}
    elif kind == "bad_created_at":
        kwargs["created_at"] = "last tuesday"
    bundle = write_bundle(root / name, **kwargs)
    _break(bundle, kind)
    return kind


def _break(bundle: Path, kind: str) -> None:
    """Damage a freshly written bundle the way ``kind`` says (no-op for the other kinds)."""
    metadata = bundle / "metadata.json"
    metrics = bundle / "metrics.json"
    if kind == "missing_metrics":
        metrics.unlink()
    elif kind == "missing_metadata":
        metadata.unlink()
    elif kind == "corrupt_metadata":
        # A writer killed mid-write: the file stops half-way.
        data = metadata.read_bytes()
        metadata.write_bytes(data[: len(data) // 2])
    elif kind == "bad_metadata":
        content = json.loads(metadata.read_bytes())
        del content["dataset_hash"]
        metadata.write_text(json.dumps(content, indent=2) + "\n", "utf-8")
    elif kind == "bad_metrics":
        content = json.loads(metrics.read_bytes())
        content["macro_f1"] = 1.7
        metrics.write_text(json.dumps(content, indent=2) + "\n", "utf-8")


def _write_range(root: str, spec: RegistrySpec, start: int, stop: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for index in range(start, stop):
        kind = write_one(Path(root), spec, index)
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def generate(root: Path, spec: RegistrySpec, *, workers: int | None = None) -> dict[str, int]:
    """Create the registry ``root`` (which must not exist) for ``spec``.

    Args:
        root: Registry directory to create.
        spec: What to put in it.
        workers: Writer processes (default: one per CPU).

    Returns:
        How many bundles of each kind were written.
    """
    root.mkdir(parents=True)
    workers = workers or os.cpu_count() or 1
    step = max(1, -(-spec.n // (workers * 8)))
    counts: dict[str, int] = {}
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_write_range, str(root), spec, start, min(spec.n, start + step))
            for start in range(0, spec.n, step)
        ]
        for future in futures:
            for kind, count in future.result().items():
                counts[kind] = counts.get(kind, 0) + count
    if spec.active:
        target = pointer_target(spec)
        if target is not None:
            bundle = read_bundle(root / target)
            assert bundle is not None and bundle.valid
            write_active_atomic(root, bundle, reason="bench")
    (root / MARKER).write_text(json.dumps({**asdict(spec), "counts": counts}) + "\n", "utf-8")
    return counts


def pointer_target(spec: RegistrySpec) -> str | None:
    """Name of the bundle ``active.json`` points at: the newest valid, compatible one."""
    for index in reversed(range(spec.n)):
        kind, name, _ = _bundle_plan(spec, index)
        if kind == "ok" and spec.versions[index % len(spec.versions)] in ("v1", "v2", "v3"):
            return name
    return None


def ensure_registry(parent: Path, spec: RegistrySpec) -> Path:
    """The registry for ``spec`` under ``parent``, generated unless a complete one exists."""
    root = parent / spec.key() / "models"
    if (root / MARKER).is_file():
        return root
    if root.parent.exists():
        shutil.rmtree(root.parent)
    generate(root, spec)
    return root


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dir", type=Path, help="registry directory to create (must not exist)")
    parser.add_argument("--n", type=int, default=1000, help="number of bundles")
    parser.add_argument("--invalid", type=float, default=0.05, help="share of invalid bundles")
    parser.add_argument(
        "--incompatible", type=float, default=0.05, help="share of incompatible bundles"
    )
    parser.add_argument(
        "--versions", default="v1", help="comma-separated schema versions of the valid bundles"
    )
    parser.add_argument("--active", action="store_true", help="write an active.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    spec = RegistrySpec(
        n=args.n,
        invalid=args.invalid,
        incompatible=args.incompatible,
        versions=tuple(args.versions.split(",")),
        active=args.active,
        seed=args.seed,
    )
    counts = generate(args.dir, spec)
    print(json.dumps({"dir": str(args.dir), "counts": counts}))


if __name__ == "__main__":
    main()
