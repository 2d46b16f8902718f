"""The report's data step: one scan of a registry into a :class:`ReportData` (no HTML here).

Everything comes through the public registry API: one ``list_bundles``
scan, handed to ``verify_registry`` (pointer health) and ``build_rows``
(eligibility, exclusion reasons, precisions), plus ``read_active_history`` and,
for every alias (issue 14), ``list_aliases`` and that alias's history.
Bad input never aborts: each part that cannot be shown says why in
:attr:`ReportData.missing` or in its own note.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from taskclf.core.metrics import class_scores
from taskclf.model_registry import (
    DEFAULT_REGISTRY_CONFIG,
    ActiveHistoryEntry,
    ActivePointer,
    BundleError,
    BundleRow,
    ModelBundle,
    RegistryConfig,
    RegistryConfigError,
    VerifyReport,
    build_rows,
    list_aliases,
    list_bundles,
    load_registry_config,
    rank_bundles,
    read_active_history,
    verify_registry,
)
from taskclf.model_registry._fs import absolute
from taskclf.model_registry.locations import shown_path

RANKING_LIMIT = 200
"""Rows in the ranking table; the full list is ``taskclf train list``."""
INELIGIBLE_POINT_LIMIT = 2_000
"""Ineligible bundles drawn in the time chart; beyond this an even sample is kept."""

_FROZEN = ConfigDict(frozen=True, protected_namespaces=())


class Overview(BaseModel):
    """The header of the report: where, when, what is active and how healthy."""

    model_config = _FROZEN

    models_dir: str
    generated_at: str
    active_model_id: str | None
    pointer_healthy: bool
    """No error finding about ``active.json`` or its history."""
    pointer_findings: list[str]
    """``verify`` findings (errors and warnings) about the pointer and the history."""
    registry_healthy: bool
    """``verify`` found no error at all (bundles included)."""
    bundles: int
    valid: int
    eligible: int
    excluded: dict[str, int]
    """Ineligible bundles counted by exclusion reason (details after the kind dropped)."""


class TimePoint(BaseModel):
    """One bundle in the quality-over-time chart."""

    model_config = _FROZEN

    model_id: str
    created_at: str
    """UTC, ``YYYY-MM-DD HH:MM:SS`` (what plotly's date axis parses)."""
    macro_f1: float
    eligible: bool
    schema_version: str
    active: bool


class ProductionStep(BaseModel):
    """One switch of the active pointer, drawn as a step of the production line."""

    model_config = _FROZEN

    at: str
    """UTC, ``YYYY-MM-DD HH:MM:SS``."""
    model_id: str
    from_model_id: str | None
    macro_f1: float | None
    reason: str | None


class HistoryRow(BaseModel):
    """One line of the pointer history, as the timeline table shows it."""

    model_config = _FROZEN

    at: str
    """As written in the history (the writer's ISO-8601)."""
    from_model_id: str | None
    to_model_id: str
    reason: str | None
    macro_f1: float | None
    actor: str | None = None
    """Who made the change (absent in entries written before issue 14)."""
    message: str | None = None
    """Why, when the change was given a message."""
    pinned: bool = False
    """The pointer was pinned after this change."""


class AliasTimeline(BaseModel):
    """One alias: where it points now, and every change of it (issue 14)."""

    model_config = _FROZEN

    name: str
    model_id: str | None
    pinned: bool
    last_moved_at: str | None
    problem: str | None
    """Why its pointer does not lead to a usable bundle, else ``None``."""
    history: list[HistoryRow]


class RankingRow(BaseModel):
    """One row of the ranking table: a ``train list`` row plus the declared schema version."""

    model_config = _FROZEN

    rank: int
    row: BundleRow
    schema_version: str | None


class ClassScore(BaseModel):
    """One class's scores in a compared bundle."""

    model_config = _FROZEN

    label: str
    precision: float
    recall: float
    f1: float
    support: int


class MatrixView(BaseModel):
    """A bundle's confusion matrix, row-normalised, with its per-class scores."""

    model_config = _FROZEN

    model_id: str
    role: str
    """Why this bundle is shown: ``active``, ``best challenger`` or ``compared``."""
    macro_f1: float
    weighted_f1: float
    label_names: list[str]
    counts: list[list[int]]
    normalised: list[list[float]]
    """Each row divided by its sum (true-label recall view); an empty row stays 0."""
    scores: list[ClassScore]


class ReportData(BaseModel):
    """Everything the HTML shows, computed once from one scan."""

    model_config = _FROZEN

    overview: Overview
    points: list[TimePoint]
    points_note: str | None
    production: list[ProductionStep]
    ranking: list[RankingRow]
    ranking_note: str | None
    matrices: list[MatrixView]
    """Zero, one or two: left (active or the first ``--compare``) then right."""
    matrices_note: str | None
    history: list[HistoryRow]
    aliases: list[AliasTimeline] = []
    """Every alias, ``active`` first (its history is :attr:`history` too)."""
    missing: list[str]
    """What the report could not show, one sentence each."""


def build_report_data(
    models_dir: str | os.PathLike[str],
    *,
    compare: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Scan ``models_dir`` once and gather what the report shows.

    Args:
        models_dir: The registry directory (missing or empty is reported, not raised).
        compare: Two model ids to compare instead of the active bundle and
            the best challenger.
        now: The generation time (default: now, UTC).

    Returns:
        The report's data.

    Raises:
        BundleError: A ``compare`` id is not a bundle of the registry or has no metrics.
    """
    from taskclf.model_registry.storage import is_remote

    root = absolute(models_dir)
    present = is_remote(models_dir) or root.is_dir()
    generated = (now or datetime.now(UTC)).astimezone(UTC)
    bundles = list_bundles(root)
    missing: list[str] = []
    try:
        config: RegistryConfig | None = load_registry_config(root)
    except RegistryConfigError as exc:
        # Still a report: verify lists it as a config-invalid finding, and the rows say
        # what they were judged against.
        config = None
        missing.append(f"{exc} Eligibility is shown against taskclf's default labels.")
    health = verify_registry(root, bundles=bundles, config=config)
    active_id = health.active_model_id
    by_id = {bundle.model_id: bundle for bundle in bundles}
    active_bundle = by_id.get(active_id) if active_id is not None else None
    rows = build_rows(
        bundles, active_path=active_bundle.path if active_bundle else None, config=config
    )
    eligible_ids = {row.model_id for row in rows if row.eligible}
    if not present:
        missing.append(f"The registry directory {root} does not exist.")
    elif not bundles:
        missing.append(f"The registry {root} holds no bundles.")

    history = read_active_history(root) if present else []
    points, points_note = _time_points(bundles, eligible_ids, active_id)
    matrices, matrices_note = _matrices(bundles, by_id, eligible_ids, active_id, compare)
    ranking, ranking_note = _ranking(rows, by_id)
    if active_id is None:
        missing.append("No bundle is active: the pointer is missing, unusable or escapes.")
    elif active_bundle is None:
        missing.append(f"The active pointer names {active_id}, which the scan did not find.")
    if not history:
        missing.append("No pointer history: nothing was ever activated by taskclf here.")
    without_metrics = sum(1 for bundle in bundles if bundle.metrics is None)
    if without_metrics:
        missing.append(
            f"{without_metrics} bundle(s) have no usable metrics.json and appear in no chart."
        )
    return ReportData(
        overview=_overview(root, generated, health, rows),
        points=points,
        points_note=points_note,
        production=_production(history, by_id, generated),
        ranking=ranking,
        ranking_note=ranking_note,
        matrices=matrices,
        matrices_note=matrices_note,
        history=[_history_row(entry, by_id) for entry in history],
        aliases=_alias_timelines(root, by_id, config) if root.is_dir() else [],
        missing=missing,
    )


def _alias_timelines(
    root: Path, by_id: dict[str, ModelBundle], config: RegistryConfig | None
) -> list[AliasTimeline]:
    # A broken registry.toml is already in ``missing``; aliases are judged like the rows.
    config = config if config is not None else DEFAULT_REGISTRY_CONFIG
    return [
        AliasTimeline(
            name=info.name,
            model_id=info.model_id,
            pinned=info.pinned,
            last_moved_at=info.last_moved_at,
            problem=info.problem,
            history=[
                _history_row(entry, by_id) for entry in read_active_history(root, alias=info.name)
            ],
        )
        for info in list_aliases(root, config=config)
    ]


def _overview(
    root: Path, generated: datetime, health: VerifyReport, rows: Sequence[BundleRow]
) -> Overview:
    pointer_findings = [f for f in health.findings if f.code.startswith(("pointer-", "history-"))]
    return Overview(
        models_dir=shown_path(root),
        generated_at=generated.isoformat(timespec="seconds"),
        active_model_id=health.active_model_id,
        pointer_healthy=not any(f.severity == "error" for f in pointer_findings),
        pointer_findings=[f"{f.severity}: {f.message}" for f in pointer_findings],
        registry_healthy=health.healthy,
        bundles=len(rows),
        valid=sum(1 for b in health.bundles if b.valid),
        eligible=sum(1 for row in rows if row.eligible),
        excluded=dict(
            Counter(
                exclusion_kind(row.notes) for row in rows if row.notes is not None
            ).most_common()
        ),
    )


def exclusion_kind(reason: str) -> str:
    """An exclusion reason without its per-bundle detail, for counting.

    ``invalid: metrics.json parse error: <detail>`` counts as
    ``invalid: metrics.json parse error``; reasons without detail are kept whole.
    """
    parts = reason.split(": ", 2)
    return ": ".join(parts[:2])


def _utc_text(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _parse_instant(text: str) -> datetime | None:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    # A timestamp without an offset is UTC, as for created_at (REGISTRY.md §2).
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _time_points(
    bundles: Sequence[ModelBundle], eligible_ids: set[str], active_id: str | None
) -> tuple[list[TimePoint], str | None]:
    eligible: list[TimePoint] = []
    ineligible: list[TimePoint] = []
    undated = 0
    for bundle in bundles:
        if bundle.metrics is None or bundle.metadata is None:
            continue
        if bundle.created_at is None:
            undated += 1
            continue
        point = TimePoint.model_construct(
            model_id=bundle.model_id,
            created_at=_utc_text(bundle.created_at),
            macro_f1=bundle.metrics.macro_f1,
            eligible=bundle.model_id in eligible_ids,
            schema_version=bundle.metadata.schema_version,
            active=bundle.model_id == active_id,
        )
        (eligible if point.eligible else ineligible).append(point)
    notes = []
    if len(ineligible) > INELIGIBLE_POINT_LIMIT:
        # Every eligible bundle stays (they are the candidates); ineligible ones only
        # show where the rejects are, which an even sample shows as well as all of them.
        stride = len(ineligible) / INELIGIBLE_POINT_LIMIT
        sample = {int(i * stride) for i in range(INELIGIBLE_POINT_LIMIT)}
        kept = [p for i, p in enumerate(ineligible) if i in sample or p.active]
        notes.append(
            f"{len(kept)} of {len(ineligible)} ineligible bundles drawn (an even sample); "
            "every eligible bundle is drawn"
        )
        ineligible = kept
    if undated:
        notes.append(f"{undated} bundle(s) without a parseable created_at are not drawn")
    return eligible + ineligible, "; ".join(notes) + "." if notes else None


def _pointer_model_id(pointer: ActivePointer | None) -> str | None:
    if pointer is None:
        return None
    # Old pointers carry no model_id; their model_dir ends with the bundle's name.
    return pointer.model_id or pointer.model_dir.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _pointer_f1(pointer: ActivePointer, by_id: dict[str, ModelBundle]) -> float | None:
    recorded = (pointer.reason or {}).get("macro_f1")
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        value = float(recorded)
        if math.isfinite(value):
            return value
    bundle = by_id.get(_pointer_model_id(pointer) or "")
    return bundle.metrics.macro_f1 if bundle is not None and bundle.metrics else None


def _pointer_note(pointer: ActivePointer) -> str | None:
    note = (pointer.reason or {}).get("note")
    return None if note is None else str(note)


def _history_row(entry: ActiveHistoryEntry, by_id: dict[str, ModelBundle]) -> HistoryRow:
    return HistoryRow(
        at=entry.at,
        from_model_id=_pointer_model_id(entry.old),
        to_model_id=_pointer_model_id(entry.new) or entry.new.model_dir,
        reason=_pointer_note(entry.new),
        macro_f1=_pointer_f1(entry.new, by_id),
        actor=entry.actor,
        message=entry.message,
        pinned=entry.new.pinned,
    )


def _production(
    history: Sequence[ActiveHistoryEntry], by_id: dict[str, ModelBundle], generated: datetime
) -> list[ProductionStep]:
    steps: list[ProductionStep] = []
    for entry in history:
        instant = _parse_instant(entry.at)
        if instant is None:
            continue
        steps.append(
            ProductionStep(
                at=_utc_text(instant),
                model_id=_pointer_model_id(entry.new) or entry.new.model_dir,
                from_model_id=_pointer_model_id(entry.old),
                macro_f1=_pointer_f1(entry.new, by_id),
                reason=_pointer_note(entry.new),
            )
        )
    if steps:
        # The last model is still in production now: extend its step to the report time.
        last = steps[-1]
        steps.append(last.model_copy(update={"at": _utc_text(generated), "reason": "(now)"}))
    return steps


def _ranking(
    rows: Sequence[BundleRow], by_id: dict[str, ModelBundle]
) -> tuple[list[RankingRow], str | None]:
    ranking = []
    for rank, row in enumerate(rows, start=1):
        # The active bundle always has its row, wherever it ranks.
        if rank > RANKING_LIMIT and not row.active:
            continue
        bundle = by_id.get(row.model_id)
        metadata = bundle.metadata if bundle is not None else None
        ranking.append(
            RankingRow(
                rank=rank, row=row, schema_version=metadata.schema_version if metadata else None
            )
        )
    note = None
    if len(rows) > len(ranking):
        note = (
            f"The top {RANKING_LIMIT} of {len(rows)} bundles by macro F1 (and the active one); "
            "`taskclf train list` lists them all."
        )
    return ranking, note


def _class_scores(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> list[ClassScore]:
    return [
        ClassScore(
            label=labels[score.label_index],
            precision=score.precision,
            recall=score.recall,
            f1=score.f1,
            support=score.support,
        )
        for score in class_scores(matrix)
    ]


def matrix_view(bundle: ModelBundle, role: str) -> MatrixView:
    """The confusion-matrix view of a bundle that has metrics (pure).

    Raises:
        ValueError: The bundle has no metrics.
    """
    metrics = bundle.metrics
    if metrics is None:
        raise ValueError(f"Bundle {bundle.model_id} has no metrics")
    counts = metrics.confusion_matrix
    normalised = [[cell / total if (total := sum(row)) else 0.0 for cell in row] for row in counts]
    return MatrixView(
        model_id=bundle.model_id,
        role=role,
        macro_f1=metrics.macro_f1,
        weighted_f1=metrics.weighted_f1,
        label_names=list(metrics.label_names),
        counts=[list(row) for row in counts],
        normalised=normalised,
        scores=_class_scores(counts, metrics.label_names),
    )


def _matrices(
    bundles: Sequence[ModelBundle],
    by_id: dict[str, ModelBundle],
    eligible_ids: set[str],
    active_id: str | None,
    compare: tuple[str, str] | None,
) -> tuple[list[MatrixView], str | None]:
    if compare is not None:
        views = []
        for model_id in compare:
            bundle = by_id.get(model_id)
            if bundle is None:
                raise BundleError(
                    model_id,
                    Path(model_id),
                    "no such bundle in the registry; pick ids from `taskclf train list`",
                )
            if bundle.metrics is None:
                reason = bundle.invalid_reason or "no metrics"
                raise BundleError(
                    model_id, bundle.path, f"it has no usable metrics.json ({reason})"
                )
            views.append(matrix_view(bundle, "compared"))
        return views, None
    ranked = rank_bundles(b for b in bundles if b.model_id in eligible_ids)
    active = by_id.get(active_id) if active_id is not None else None
    challenger = next((b for b in ranked if b.model_id != active_id), None)
    views = []
    notes = []
    if active is not None and active.metrics is not None:
        views.append(matrix_view(active, "active"))
    elif active is not None:
        notes.append(f"the active bundle {active.model_id} has no usable metrics")
    else:
        notes.append("no bundle is active")
    if challenger is not None:
        views.append(matrix_view(challenger, "best challenger"))
    else:
        notes.append("there is no eligible challenger")
    note = None
    if notes:
        note = "Comparison incomplete: " + "; ".join(notes) + "."
    return views, note
