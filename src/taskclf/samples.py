"""Realistic sample bundles, for the demo, the examples, the tests and the benchmarks.

One builder writes a bundle the way a training run would: a
``metadata.json`` for a known schema, a ``metrics.json`` whose F1 scores
are computed from a real confusion matrix, a CSV copy of the matrix and
a small model artifact.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from taskclf.core.schema import get_feature_schema
from taskclf.core.types import CoreLabel

LABELS: tuple[str, ...] = tuple(label.value for label in CoreLabel)


def confusion_matrix(
    rng: random.Random, accuracy: float, labels: Sequence[str] = LABELS, support: int = 400
) -> list[list[int]]:
    """A plausible confusion matrix: about ``accuracy`` of each row on the diagonal.

    Rows are true labels, columns predictions; supports vary by class.
    """
    n = len(labels)
    matrix: list[list[int]] = []
    for i in range(n):
        total = max(n, int(support * rng.uniform(0.5, 1.5)))
        correct = min(total, max(0, round(total * min(1.0, max(0.0, rng.gauss(accuracy, 0.04))))))
        row = [0] * n
        row[i] = correct
        for _ in range(total - correct):
            j = rng.randrange(n - 1)
            row[j if j < i else j + 1] += 1
        matrix.append(row)
    return matrix


def f1_scores(matrix: Sequence[Sequence[int]]) -> tuple[float, float]:
    """``(macro_f1, weighted_f1)`` of a confusion matrix (rows true, columns predicted)."""
    n = len(matrix)
    supports = [sum(row) for row in matrix]
    predicted = [sum(matrix[i][j] for i in range(n)) for j in range(n)]
    f1s = []
    for k in range(n):
        tp = matrix[k][k]
        denominator = supports[k] + predicted[k]
        f1s.append(2 * tp / denominator if denominator else 0.0)
    total = sum(supports)
    macro = sum(f1s) / n if n else 0.0
    weighted = sum(f * s for f, s in zip(f1s, supports, strict=True)) / total if total else 0.0
    return round(macro, 6), round(weighted, 6)


def write_bundle(
    bundle_dir: Path,
    *,
    accuracy: float = 0.8,
    seed: int = 0,
    schema_version: str = "v1",
    schema_hash: str | None = None,
    label_set: Sequence[str] = LABELS,
    created_at: str | datetime | None = None,
    macro_f1: float | None = None,
    weighted_f1: float | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a complete, valid bundle directory and return its path.

    Args:
        bundle_dir: Directory to create (its name becomes the model id).
        accuracy: Rough per-class recall of the generated confusion matrix.
        seed: Makes the matrix and metadata reproducible.
        schema_version: Declared schema version; its known hash is used
            unless ``schema_hash`` overrides it (to build incompatible bundles).
        label_set: Labels in metadata and metrics.
        created_at: Creation time (ISO string or datetime); default derived from ``seed``.
        macro_f1: Override the F1 computed from the matrix (to force rankings).
        weighted_f1: Same, for weighted F1.
        extra_metadata: Keys merged into ``metadata.json`` last.
    """
    rng = random.Random(seed)
    labels = list(label_set)
    matrix = confusion_matrix(rng, accuracy, labels)
    computed_macro, computed_weighted = f1_scores(matrix)
    if created_at is None:
        created_at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=seed)
    if isinstance(created_at, datetime):
        created_at = created_at.isoformat()
    if schema_hash is None:
        schema_hash = get_feature_schema(schema_version).SCHEMA_HASH
    metadata: dict[str, Any] = {
        "schema_version": schema_version,
        "schema_hash": schema_hash,
        "label_set": labels,
        "train_date_from": "2025-10-01",
        "train_date_to": "2025-12-31",
        "params": {
            "objective": "multiclass",
            "num_leaves": rng.choice([15, 31, 63]),
            "learning_rate": rng.choice([0.03, 0.05, 0.1]),
            "num_boost_round": rng.choice([200, 400, 800]),
            "seed": seed,
        },
        "git_commit": f"{rng.getrandbits(160):040x}",
        "dataset_hash": f"{rng.getrandbits(48):012x}",
        "reject_threshold": 0.35,
        "data_provenance": "real",
        "created_at": created_at,
    }
    metadata.update(extra_metadata or {})
    metrics = {
        "macro_f1": computed_macro if macro_f1 is None else macro_f1,
        "weighted_f1": computed_weighted if weighted_f1 is None else weighted_f1,
        "confusion_matrix": matrix,
        "label_names": labels,
    }
    bundle_dir.mkdir(parents=True, exist_ok=True)
    (bundle_dir / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n", "utf-8")
    (bundle_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", "utf-8")
    csv_rows = [",".join(["true\\pred", *labels])]
    csv_rows += [
        ",".join([label, *map(str, row)]) for label, row in zip(labels, matrix, strict=True)
    ]
    (bundle_dir / "confusion_matrix.csv").write_text("\n".join(csv_rows) + "\n", "utf-8")
    (bundle_dir / "model.txt").write_text(f"tree-ensemble seed={seed}\n", "utf-8")
    return bundle_dir
