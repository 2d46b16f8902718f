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

from taskclf.core.metrics import f1_summary
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


_SCALE = 1_000_000
_TOLERANCE = 1e-6


def matrix_for_scores(
    labels: Sequence[str], macro_f1: float, weighted_f1: float | None = None
) -> list[list[int]] | None:
    """A confusion matrix whose F1 scores are within 1e-6 of the requested ones, if one is easy.

    Lets tests and benchmarks force a ranking with exact scores while the
    bundle stays consistent (``verify`` checks the declared scores against
    the matrix). Classes form two groups, each a cycle in which every class
    sends its errors to the next one, so every class of a group has F1 ==
    its accuracy; the groups' supports set the weighted F1.

    Returns:
        The matrix, or ``None`` when the scores cannot be reached this way
        (fewer than 4 labels with different macro and weighted scores...).
    """
    n = len(labels)
    weighted = macro_f1 if weighted_f1 is None else weighted_f1
    if n == 0:
        return None
    half = n // 2
    spread = abs(weighted - macro_f1)
    if spread <= _TOLERANCE / 2:
        groups = [(list(range(n)), macro_f1, _SCALE)]
    else:
        if half < 2 or n - half < 2:
            return None
        # Group A at a = M - d, group B at b = M + d (equal sizes, so the macro is M);
        # the weighted score W lies between them when d >= |W - M|.
        d = min(macro_f1, 1.0 - macro_f1, 2 * spread)
        if d < spread or n != 2 * half:
            return None
        a, b = macro_f1 - d, macro_f1 + d
        share_b = (weighted - a) / (b - a)
        total = 100 * _SCALE
        groups = [
            (list(range(half)), a, max(1, round(total * (1 - share_b)))),
            (list(range(half, n)), b, max(1, round(total * share_b))),
        ]
    matrix = [[0] * n for _ in range(n)]
    for members, f1, support in groups:
        if len(members) < 2 and f1 < 1.0:
            return None
        correct = round(f1 * support)
        for position, k in enumerate(members):
            matrix[k][k] = correct
            if support > correct:
                matrix[k][members[(position + 1) % len(members)]] = support - correct
    got_macro, got_weighted = f1_scores(matrix, digits=None)
    if abs(got_macro - macro_f1) > _TOLERANCE / 2 or abs(got_weighted - weighted) > _TOLERANCE / 2:
        return None
    return matrix


def f1_scores(matrix: Sequence[Sequence[int]], digits: int | None = 6) -> tuple[float, float]:
    """``(macro_f1, weighted_f1)`` of a confusion matrix, rounded to ``digits`` (None: exact)."""
    macro, weighted = f1_summary(matrix)
    if digits is None:
        return macro, weighted
    return round(macro, digits), round(weighted, digits)


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
        macro_f1: Force the macro F1 (to force rankings); the matrix is then
            built to agree with it (and ``weighted_f1``) within 1e-6 when
            :func:`matrix_for_scores` can, else the scores are simply overridden.
        weighted_f1: Same, for weighted F1 (alone: just overridden).
        extra_metadata: Keys merged into ``metadata.json`` last.
    """
    rng = random.Random(seed)
    labels = list(label_set)
    matrix = confusion_matrix(rng, accuracy, labels)
    if macro_f1 is not None:
        # Forced scores get a matrix that agrees with them when one is easy to build,
        # so the bundle passes verify's consistency check.
        matrix = matrix_for_scores(labels, macro_f1, weighted_f1) or matrix
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
