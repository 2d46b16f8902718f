"""Compatibility, constraints, scoring and ranking (§4-5). Pure: models in, models out."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from itertools import compress, count, repeat
from operator import attrgetter, eq, itemgetter, methodcaller, not_
from pathlib import Path
from typing import Any, NamedTuple

from taskclf.core.model_io import ModelMetadata
from taskclf.core.schema import FeatureSchemaV1, known_schema_hash
from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry.lazy_bundle import (
    NO_INSTANT_US,
    SOURCE_KEY,
    BundleFacts,
    CachedBundle,
    cached_facts,
    finite_or_lowest,
    instance_dict,
)
from taskclf.model_registry.models import (
    BundleMetrics,
    ExclusionRecord,
    ModelBundle,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.scan import FastConstructor, parse_timestamp

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
    return _incompatibility(bundle_facts(bundle), required_schema_hash, _sorted(required_label_set))


def _sorted(labels: Collection[str]) -> tuple[str, ...]:
    return tuple(sorted(labels))


def _incompatibility(
    facts: BundleFacts, required_schema_hash: str, required_sorted: tuple[str, ...]
) -> str | None:
    if not facts.valid:
        return f"{REASON_INVALID}{facts.invalid_reason}"
    if not facts.has_metadata or facts.schema_hash != required_schema_hash:
        return REASON_SCHEMA
    if facts.sorted_labels != required_sorted:
        return REASON_LABELS
    return None


# Registries hold a handful of label sets: each sorted once, and shared by every bundle.
_SORTED_LABELS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _sorted_labels(labels: Sequence[str]) -> tuple[str, ...]:
    key = tuple(labels)
    known = _SORTED_LABELS.get(key)
    if known is None:
        known = tuple(sorted(key))
        if len(_SORTED_LABELS) < 256:
            _SORTED_LABELS[key] = known
    return known


def bundle_facts(bundle: ModelBundle) -> BundleFacts:
    """Everything selection reads of ``bundle``: the one place it looks at a bundle's contents.

    A bundle served by the scan cache carries these facts from its cached
    line, so ranking it does not build its ``metadata`` and ``metrics``;
    any other bundle's are read off its models. Both give the same facts
    (the cache stores what this function computed when the bundle was read).
    """
    known = cached_facts(bundle)
    if known is not None:
        return known
    metadata, metrics = bundle.metadata, bundle.metrics
    return BundleFacts(
        valid=bundle.valid,
        invalid_reason=bundle.invalid_reason,
        has_metadata=metadata is not None,
        schema_version=None if metadata is None else metadata.schema_version,
        schema_hash=None if metadata is None else metadata.schema_hash,
        sorted_labels=None if metadata is None else _sorted_labels(metadata.label_set),
        has_metrics=metrics is not None,
        macro_f1=-math.inf if metrics is None else finite_or_lowest(metrics.macro_f1),
        weighted_f1=-math.inf if metrics is None else finite_or_lowest(metrics.weighted_f1),
        instant_us=_instant_us(bundle),
    )


_new_tuple = tuple.__new__


def valid_facts(
    metadata: ModelMetadata, metrics: BundleMetrics, created_at: datetime
) -> BundleFacts:
    """:func:`bundle_facts` of a valid bundle made of these parts, without building the bundle.

    A scan computes them for every valid bundle it reads, right after parsing
    it; the same values as :func:`bundle_facts` (``tests/test_scan_cache.py``
    compares the two), built without its keyword arguments and calls.
    """
    macro, weighted = metrics.macro_f1, metrics.weighted_f1
    return _new_tuple(
        BundleFacts,
        (
            True,
            None,
            True,
            metadata.schema_version,
            metadata.schema_hash,
            _sorted_labels(metadata.label_set),
            True,
            macro if math.isfinite(macro) else -math.inf,
            weighted if math.isfinite(weighted) else -math.inf,
            (created_at - _EPOCH) // _MICROSECOND,
        ),
    )


def facts_of(bundles: Sequence[ModelBundle]) -> list[BundleFacts]:
    """:func:`bundle_facts` of each of ``bundles``, in order.

    A scan's bundles all carry their facts (:func:`cached_facts`); those are
    taken without a Python call per bundle (ranking an unchanged registry from
    the scan cache costs less than a third of reading its files).
    """
    if _types(bundles) == {CachedBundle}:
        sources = list(map(_get_source, map(instance_dict, bundles)))
        if None not in sources:
            return list(map(_last, sources))
    return list(map(bundle_facts, bundles))


_get_source = methodcaller("get", SOURCE_KEY)
_last = itemgetter(-1)


def _types(values: Iterable[object]) -> set[type]:
    return set(map(type, values))


def declared_schema_hash(
    bundle: ModelBundle, schemas: Mapping[str, str] | None = None
) -> str | None:
    """The hash of the schema version the bundle declares, or ``None`` if unknown.

    Args:
        bundle: The bundle.
        schemas: ``{version: hash}`` of the accepted schemas (a registry's
            configuration); default taskclf's v1/v2/v3.
    """
    return _declared_hash(bundle_facts(bundle), schemas)


def _declared_hash(facts: BundleFacts, schemas: Mapping[str, str] | None) -> str | None:
    if not facts.has_metadata:
        return None
    version = facts.schema_version
    assert version is not None
    if schemas is None:
        return known_schema_hash(version)
    return schemas.get(version)


def declared_incompatibility(
    bundle: ModelBundle,
    required_label_set: Collection[str] = LABEL_SET_V1,
    schemas: Mapping[str, str] | None = None,
) -> str | None:
    """Why ``bundle`` is not compatible with the schema it declares and the label set.

    This is the compatibility used when no schema hash is requested: the
    bundle's ``schema_hash`` must equal the known hash of its own declared
    ``schema_version`` (an unknown version is incompatible).

    Args:
        bundle: The bundle.
        required_label_set: The labels it must predict, in any order.
        schemas: ``{version: hash}`` of the accepted schemas; default v1/v2/v3.

    Returns:
        An exclusion-style reason, or ``None`` when compatible.
    """
    return _declared_incompatibility(bundle_facts(bundle), _sorted(required_label_set), schemas)


def _declared_incompatibility(
    facts: BundleFacts, required_sorted: tuple[str, ...], schemas: Mapping[str, str] | None
) -> str | None:
    if not facts.valid:
        return f"{REASON_INVALID}{facts.invalid_reason}"
    expected = _declared_hash(facts, schemas)
    if expected is None:
        return f"incompatible: unknown schema_version {facts.schema_version!r}"
    return _incompatibility(facts, expected, required_sorted)


def compatibility_problem(
    bundle: ModelBundle,
    required_schema_hash: str | None,
    required_label_set: Collection[str],
    schemas: Mapping[str, str] | None = None,
) -> str | None:
    """Why ``bundle`` is not compatible, or ``None``: the one place that reads a ``None`` hash.

    Args:
        bundle: The bundle.
        required_schema_hash: The hash it must carry (:func:`incompatibility`);
            ``None`` checks it against its own declared schema version
            instead (:func:`declared_incompatibility`), as commands do
            without ``--schema-hash``.
        required_label_set: The labels it must predict, in any order.
        schemas: ``{version: hash}`` of the accepted schemas, for the
            declared check; default v1/v2/v3.

    Returns:
        An exclusion-style reason, or ``None`` when compatible.
    """
    return _compatibility_problem(
        bundle_facts(bundle), required_schema_hash, _sorted(required_label_set), schemas
    )


def _compatibility_problem(
    facts: BundleFacts,
    required_schema_hash: str | None,
    required_sorted: tuple[str, ...],
    schemas: Mapping[str, str] | None,
) -> str | None:
    if required_schema_hash is None:
        return _declared_incompatibility(facts, required_sorted, schemas)
    return _incompatibility(facts, required_schema_hash, required_sorted)


def label_set_difference(
    bundle_labels: Sequence[str], required_label_set: Collection[str]
) -> tuple[list[str], list[str]]:
    """``(missing, extra)``: required labels the bundle lacks, and labels it has beyond them.

    Counted as multisets, like the sorted-list comparison of
    :func:`incompatibility`, so a label listed twice shows as extra.
    Missing labels keep the required order, extra ones the bundle's.
    """
    have, want = Counter(bundle_labels), Counter(required_label_set)
    missing = list((want - have).elements())
    extra = list((have - want).elements())
    if isinstance(required_label_set, Sequence):
        order = {label: index for index, label in enumerate(required_label_set)}
        missing.sort(key=lambda label: order.get(label, len(order)))
    else:
        # A set has no order of its own (and str hashing varies between processes).
        missing.sort()
    return missing, extra


def describe_label_mismatch(
    bundle_labels: Sequence[str], required_label_set: Collection[str]
) -> str:
    """``missing: A, B; extra: x`` for two label sets that differ (empty when equal)."""
    missing, extra = label_set_difference(bundle_labels, required_label_set)
    parts = []
    if missing:
        parts.append(f"missing: {', '.join(missing)}")
    if extra:
        parts.append(f"extra: {', '.join(extra)}")
    return "; ".join(parts)


def explain_incompatibility(
    bundle: ModelBundle,
    problem: str,
    required_label_set: Collection[str],
    schemas: Mapping[str, str] | None = None,
) -> str:
    """An exclusion reason with what a person needs to act on it appended.

    ``incompatible: label_set mismatch`` gains the missing and extra labels;
    a declared-schema hash mismatch gains the hashes involved. The reason
    itself stays first and unchanged, so it can still be matched.

    Args:
        bundle: The bundle the reason is about.
        problem: Its reason, from :func:`compatibility_problem`.
        required_label_set: The labels it was checked against.
        schemas: The accepted schemas it was checked against (default v1/v2/v3).
    """
    metadata = bundle.metadata
    if metadata is None:
        return problem
    if problem == REASON_LABELS:
        difference = describe_label_mismatch(metadata.label_set, required_label_set)
        return f"{problem} ({difference})" if difference else problem
    expected = declared_schema_hash(bundle, schemas)
    if problem == REASON_SCHEMA and expected is not None and metadata.schema_hash != expected:
        return (
            f"{problem} (declares schema_version {metadata.schema_version}, whose hash is "
            f"{expected}, but carries schema_hash {metadata.schema_hash})"
        )
    return problem


def passes_constraints(bundle: ModelBundle, policy: SelectionPolicy) -> bool:
    """Policy v1 has no gates beyond a valid bundle with metrics."""
    return _passes_constraints(bundle_facts(bundle), policy)


def _passes_constraints(facts: BundleFacts, policy: SelectionPolicy) -> bool:
    return facts.valid and facts.has_metrics


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
    created = bundle.created_at if bundle.created_at is not None else created_instant(bundle)
    if created is None:
        return NO_INSTANT_US
    return (created - _EPOCH) // _MICROSECOND


def rank_key(bundle: ModelBundle) -> tuple[float, float, int, str]:
    """Sort key, ascending = best first: macro F1, weighted F1, newer, then model_id."""
    return _rank_key(bundle_facts(bundle), bundle.model_id)


def _rank_key(facts: BundleFacts, model_id: str) -> tuple[float, float, int, str]:
    return (-facts.macro_f1, -facts.weighted_f1, -facts.instant_us, model_id)


def rank_bundles(bundles: Iterable[ModelBundle]) -> list[ModelBundle]:
    """Order bundles best first; total and independent of input order."""
    return sorted(bundles, key=rank_key)


def exclusion_reason(
    bundle: ModelBundle,
    policy: SelectionPolicy,
    required_schema_hash: str | None,
    required_label_set: Collection[str],
    schemas: Mapping[str, str] | None = None,
) -> str | None:
    """The first exclusion reason that applies to ``bundle``, or ``None`` if it is eligible.

    ``required_schema_hash`` and ``schemas`` are as for :func:`compatibility_problem`.
    """
    return _exclusion_reason(
        bundle_facts(bundle), policy, required_schema_hash, _sorted(required_label_set), schemas
    )


def _exclusion_reason(
    facts: BundleFacts,
    policy: SelectionPolicy,
    required_schema_hash: str | None,
    required_sorted: tuple[str, ...],
    schemas: Mapping[str, str] | None = None,
) -> str | None:
    reason = _compatibility_problem(facts, required_schema_hash, required_sorted, schemas)
    if reason is None and not _passes_constraints(facts, policy):
        reason = REASON_CONSTRAINT
    return reason


def select_best(
    bundles: Sequence[ModelBundle],
    policy: SelectionPolicy,
    required_schema_hash: str,
    required_label_set: Collection[str],
) -> SelectionReport:
    """One selection pass: every bundle is either ranked or excluded with a reason."""
    return select_with_facts(
        bundles,
        [bundle_facts(bundle) for bundle in bundles],
        policy,
        required_schema_hash,
        required_label_set,
    )


_exclusion_record = FastConstructor(
    ExclusionRecord, {"model_id": "x", "path": Path("/x"), "reason": "r"}
)


def select_with_facts(
    bundles: Sequence[ModelBundle],
    facts: Iterable[BundleFacts],
    policy: SelectionPolicy,
    required_schema_hash: str,
    required_label_set: Collection[str],
    *,
    columns: list[tuple[Any, ...]] | None = None,
) -> SelectionReport:
    """:func:`select_best` with each bundle's :func:`bundle_facts` already computed.

    ``columns``: :func:`facts_columns` of those facts, if the caller has them.
    """
    required_sorted = _sorted(required_label_set)
    facts = facts if isinstance(facts, list) else list(facts)
    if len(facts) != len(bundles):
        raise ValueError(f"{len(bundles)} bundles but {len(facts)} facts")
    # Column by column, in C (map, zip, compress): a repeat scan of an unchanged registry
    # costs less than a third of reading its files, and a Python loop over every bundle
    # here was a fifth of it.
    if columns is None:
        columns = facts_columns(facts)
    eligible = _eligible(columns, required_schema_hash, required_sorted)
    # rank_key, then the position: sorted by each key in turn, least significant first
    # (the sort is stable), on keys that already exist: no tuple and no negated number
    # per bundle (those were most of the ranking of an unchanged registry).
    order = list(compress(range(len(facts)), eligible))
    order.sort(key=list(map(_model_id, bundles)).__getitem__)
    for column in (columns[9], columns[8], columns[7]):  # instant, weighted F1, macro F1
        order.sort(key=column.__getitem__, reverse=True)
    exclusions: list[tuple[int, str]] = []
    for position in compress(count(), map(not_, eligible)):
        reason = _exclusion_reason(facts[position], policy, required_schema_hash, required_sorted)
        assert reason is not None
        exclusions.append((position, reason))
    return report_of(bundles, Outcome(required_schema_hash, order, exclusions), policy)


class Outcome(NamedTuple):
    """A selection pass as positions in the bundles it ranked (what :func:`report_of` needs)."""

    required_schema_hash: str
    ranked: list[int]
    """The ranked bundles' positions, best first."""
    excluded: list[tuple[int, str]]
    """Each excluded bundle's position and reason, in position order."""


def report_of(
    bundles: Sequence[ModelBundle], outcome: Outcome, policy: SelectionPolicy
) -> SelectionReport:
    """The report of a selection pass over ``bundles`` whose outcome is ``outcome``."""
    ranked = list(map(bundles.__getitem__, outcome.ranked))
    excluded: list[ExclusionRecord] = []
    for position, reason in outcome.excluded:
        bundle = bundles[position]
        excluded.append(
            _exclusion_record({"model_id": bundle.model_id, "path": bundle.path, "reason": reason})
        )
    return SelectionReport.model_construct(
        best=ranked[0] if ranked else None,
        ranked=ranked,
        excluded=excluded,
        policy=policy,
        required_schema_hash=outcome.required_schema_hash,
    )


def outcome_of(bundles: Sequence[ModelBundle], report: SelectionReport) -> Outcome:
    """The positions in ``bundles`` (unique ``model_id``s) of ``report``, a pass over them."""
    position = {bundle.model_id: at for at, bundle in enumerate(bundles)}
    return Outcome(
        report.required_schema_hash,
        [position[bundle.model_id] for bundle in report.ranked],
        [(position[record.model_id], record.reason) for record in report.excluded],
    )


_model_id = attrgetter("model_id")
_NO_COLUMNS: list[tuple[Any, ...]] = [()] * len(BundleFacts._fields)


def facts_columns(facts: list[BundleFacts]) -> list[tuple[Any, ...]]:
    """The facts as one tuple per field, in :class:`BundleFacts` order."""
    return list(zip(*facts, strict=True)) if facts else _NO_COLUMNS


def _eligible(
    columns: list[tuple[Any, ...]],
    required_schema_hash: str | None,
    required_sorted: tuple[str, ...],
) -> list[bool]:
    """Per bundle: would it be ranked (``None`` hash: under any hash)?

    ``_exclusion_reason(...) is None`` for every bundle at once (policy v1 has no
    gates beyond a valid bundle with metrics).
    """
    valid, has_metadata, hashes, labels, has_metrics = (
        columns[0],
        columns[2],
        columns[4],
        columns[5],
        columns[6],
    )
    same_labels = map(eq, labels, repeat(required_sorted))
    if required_schema_hash is None:
        return list(map(all, zip(valid, has_metadata, same_labels, has_metrics, strict=True)))
    same_hash = map(eq, hashes, repeat(required_schema_hash))
    return list(
        map(all, zip(valid, has_metadata, same_hash, same_labels, has_metrics, strict=True))
    )


def has_eligible(
    bundles: Iterable[ModelBundle],
    policy: SelectionPolicy,
    required_schema_hash: str,
    required_label_set: Collection[str],
) -> bool:
    """True if any bundle would be ranked by :func:`select_best` (without building a report)."""
    return has_eligible_facts(
        (bundle_facts(b) for b in bundles), policy, required_schema_hash, required_label_set
    )


def has_eligible_facts(
    facts: Iterable[BundleFacts],
    policy: SelectionPolicy,
    required_schema_hash: str,
    required_label_set: Collection[str],
) -> bool:
    """:func:`has_eligible` on bundles' :func:`bundle_facts`."""
    required_sorted = _sorted(required_label_set)
    # _exclusion_reason(...) is None, inlined (policy v1 has no further gates):
    # this runs over every bundle for each schema version tried.
    return any(
        f.valid
        and f.has_metadata
        and f.schema_hash == required_schema_hash
        and f.sorted_labels == required_sorted
        and f.has_metrics
        for f in facts
    )


def eligible_schema_hashes(
    facts: Iterable[BundleFacts],
    policy: SelectionPolicy,
    required_label_set: Collection[str],
    *,
    columns: list[tuple[Any, ...]] | None = None,
) -> set[str | None]:
    """The schema hashes under which :func:`select_best` would rank at least one bundle.

    ``h in eligible_schema_hashes(...)`` equals :func:`has_eligible_facts` with ``h``,
    for every ``h`` at once (policy v1 has no gates beyond a valid bundle with metrics).
    ``columns``: :func:`facts_columns` of ``facts``, if the caller has them.
    """
    if columns is None:
        columns = facts_columns(facts if isinstance(facts, list) else list(facts))
    return set(compress(columns[4], _eligible(columns, None, _sorted(required_label_set))))
