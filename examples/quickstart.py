"""Library quick start: build a small registry, rank it, resolve and promote.

Run with ``python examples/quickstart.py``; everything happens in a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from taskclf.model_registry import (
    SelectionPolicy,
    find_best_model,
    promote_bundle,
    read_active_history,
    resolve_active_model,
)
from taskclf.samples import write_bundle


def main() -> None:
    """Walk through scanning, ranking, resolving and promoting on sample bundles."""
    root = Path(tempfile.mkdtemp(prefix="taskclf-quickstart-"))
    models = root / "models"
    for seed, accuracy in enumerate([0.72, 0.81, 0.77]):
        write_bundle(models / f"2026-01-0{seed + 1}_run-{seed:04d}", accuracy=accuracy, seed=seed)
    write_bundle(models / "old-schema-run", accuracy=0.95, seed=7, schema_hash="deadbeef0000")

    report = find_best_model(models)
    print(f"schema {report.required_schema_hash}: best = {report.best and report.best.model_id}")
    for bundle in report.ranked:
        assert bundle.metrics is not None
        print(f"  ranked   {bundle.model_id}  macro_f1={bundle.metrics.macro_f1:.4f}")
    for exclusion in report.excluded:
        print(f"  excluded {exclusion.model_id}: {exclusion.reason}")

    active, scan = resolve_active_model(models)
    print(f"active: {active and active.model_id} ({'repaired by scan' if scan else 'pointer'})")

    candidate = write_bundle(root / "candidate-run", accuracy=0.9, seed=42)
    result = promote_bundle(candidate, models, policy=SelectionPolicy(min_improvement=0.01))
    print(f"promoted {result.bundle.model_id}; pointer moved: {result.active_updated}")
    for entry in read_active_history(models):
        old = entry.old.model_id if entry.old else None
        print(f"  {entry.at}  {old} -> {entry.new.model_id}")


if __name__ == "__main__":
    main()
