"""Compatibility, constraints, scoring and ranking (§4-5). Pure: models in, models out."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from taskclf.core.schema import FeatureSchemaV1, known_schema_hash
from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry.models import (
    ExclusionRecord,
    ModelBundle,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.scan import parse_timestamp

REASON_INVALID = "invalid: "
REASON_SCHEMA = "incompatible: schema_hash mismatch"
REASON_LABELS = "incompatible: label_set mismatch"
REASON_CONSTRAINT = "constraint: failed policy constraints"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def is_compatible(
    bundle: ModelBundle,
    required_schema_hash: str = FeatureSchemaV1.SCHEMA_HASH,
    required_label_set: Collection[str] = LABEL_SET_V1,
) -> bool:
    """True when ``bundle`` is valid and matches the schema hash and label set exactly."""
    return incompatibility(bundle, required_schema_hash, required_label_set) is None


def incompatibility(
    bundle: ModelBundle, required_schema_hash: str, required_label_set: Collection[str]
) -> str | None:
    """The exclusion reason that makes ``bundle`` incompatible, or ``None`` if it is compatible."""
    metadata = bundle.metadata
    if not bundle.valid:
        return f"{REASON_INVALID}{bundle.invalid_reason}"
    if metadata is None or metadata.schema_hash != required_schema_hash:
        return REASON_SCHEMA
    if sorted(metadata.label_set) != sorted(required_label_set):
        return REASON_LABELS
    return None


def declared_schema_hash(bundle: ModelBundle) -> str | None:
    """The known hash of the schema version the bundle declares, or ``None`` if unknown."""
    if bundle.metadata is None:
        return None
    return known_schema_hash(bundle.metadata.schema_version)


def declared_incompatibility(
    bundle: ModelBundle, required_label_set: Collection[str] = LABEL_SET_V1
) -> str | None:
    """Why ``bundle`` is not compatible with the schema it declares and the label set.

    This is the compatibility used when no schema hash is requested: the
    bundle's ``schema_hash`` must equal the known hash of its own declared
    ``schema_version`` (an unknown version is incompatible).

    Returns:
        An exclusion-style reason, or ``None`` when compatible.
    """
    if not bundle.valid:
        return f"{REASON_INVALID}{bundle.invalid_reason}"
    expected = declared_schema_hash(bundle)
    if expected is None:
        version = bundle.metadata.schema_version if bundle.metadata else None
        return f"incompatible: unknown schema_version {version!r}"
    return incompatibility(bundle, expected, required_label_set)


def compatibility_problem(
    bundle: ModelBundle, required_schema_hash: str | None, required_label_set: Collection[str]
) -> str | None:
    """Why ``bundle`` is not compatible, or ``None``: the one place that reads a ``None`` hash.

    Args:
        bundle: The bundle.
        required_schema_hash: The hash it must carry (:func:`incompatibility`);
            ``None`` checks it against its own declared schema version
            instead (:func:`declared_incompatibility`), as commands do
            without ``--schema-hash``.
        required_label_set: The labels it must predict, in any order.

    Returns:
        An exclusion-style reason, or ``None`` when compatible.
    """
    if required_schema_hash is None:
        return declared_incompatibility(bundle, required_label_set)
    return incompatibility(bundle, required_schema_hash, required_label_set)


def passes_constraints(bundle: ModelBundle, policy: SelectionPolicy) -> bool:
    """Policy v1 has no gates beyond a valid bundle with metrics."""
    return bundle.valid and bundle.metrics is not None


def score(bundle: ModelBundle, policy: SelectionPolicy) -> tuple[float, float, str]:
    """``(macro_f1, weighted_f1, metadata.created_at)`` for a valid bundle.

    Raises:
        ValueError: The bundle is invalid or lacks metrics or metadata.
    """
    if not bundle.valid or bundle.metrics is None or bundle.metadata is None:
        raise ValueError(f"Cannot score invalid bundle '{bundle.model_id}'")
    return (bundle.metrics.macro_f1, bundle.metrics.weighted_f1, bundle.metadata.created_at)


def created_instant(bundle: ModelBundle) -> datetime | None:
    """``created_at`` as an instant, also for a bundle invalid for another reason (bad metrics).

    ``None`` when there is no metadata or its ``created_at`` is not ISO-8601.
    """
    if bundle.created_at is not None:
        return bundle.created_at
    if bundle.metadata is None:
        return None
    try:
        return parse_timestamp(bundle.metadata.created_at)
    except ValueError:
        return None


def _instant_us(bundle: ModelBundle) -> int:
    """``created_at`` as integer microseconds since the epoch (exact, offset-aware)."""
    # Every ranked bundle is valid and has created_at: skip the call on the sort's path.
    created = bundle.created_at if bundle.created_at is not None else created_instant(bundle)
    if created is None:
        return -(2**62)
    return (created - _EPOCH) // _MICROSECOND


def _finite_or_lowest(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def rank_key(bundle: ModelBundle) -> tuple[float, float, int, str]:
    """Sort key, ascending = best first: macro F1, weighted F1, newer, then model_id."""
    metrics = bundle.metrics
    macro = _finite_or_lowest(metrics.macro_f1) if metrics else -math.inf
    weighted = _finite_or_lowest(metrics.weighted_f1) if metrics else -math.inf
    return (-macro, -weighted, -_instant_us(bundle), bundle.model_id)


def rank_bundles(bundles: Iterable[ModelBundle]) -> list[ModelBundle]:
    """Order bundles best first; total and independent of input order."""
    return sorted(bundles, key=rank_key)


def exclusion_reason(
    bundle: ModelBundle,
    policy: SelectionPolicy,
    required_schema_hash: str | None,
    required_label_set: Collection[str],
) -> str | None:
    """The first exclusion reason that applies to ``bundle``, or ``None`` if it is eligible.

    ``required_schema_hash`` is as for :func:`compatibility_problem`.
    """
    reason = compatibility_problem(bundle, required_schema_hash, required_label_set)
    if reason is None and not passes_constraints(bundle, policy):
        reason = REASON_CONSTRAINT
    return reason


def select_best(
    bundles: Sequence[ModelBundle],
    policy: SelectionPolicy,
    required_schema_hash: str,
    required_label_set: Collection[str],
) -> SelectionReport:
    """One selection pass: every bundle is either ranked or excluded with a reason."""
    eligible: list[ModelBundle] = []
    excluded: list[ExclusionRecord] = []
    for bundle in bundles:
        reason = exclusion_reason(bundle, policy, required_schema_hash, required_label_set)
        if reason is None:
            eligible.append(bundle)
        else:
            excluded.append(
                ExclusionRecord.model_construct(
                    model_id=bundle.model_id, path=bundle.path, reason=reason
                )
            )
    ranked = rank_bundles(eligible)
    return SelectionReport.model_construct(
        best=ranked[0] if ranked else None,
        ranked=ranked,
        excluded=excluded,
        policy=policy,
        required_schema_hash=required_schema_hash,
    )


def has_eligible(
    bundles: Iterable[ModelBundle],
    policy: SelectionPolicy,
    required_schema_hash: str,
    required_label_set: Collection[str],
) -> bool:
    """True if any bundle would be ranked by :func:`select_best` (without building a report)."""
    return any(
        exclusion_reason(b, policy, required_schema_hash, required_label_set) is None
        for b in bundles
    )
