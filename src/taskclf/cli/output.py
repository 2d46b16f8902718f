"""Everything the CLI prints: rich tables and sentences for people, one JSON document for tools.

Human output goes through a rich console (no colour when stdout is not
a terminal); ``--json`` output is written straight to stdout as a single
document. Numbers show 4 decimals and a missing value shows ``--``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

if TYPE_CHECKING:
    from taskclf.model_registry import (
        ActiveHistoryEntry,
        ActivePointer,
        BundleRow,
        IndexCache,
        ModelBundle,
        PromotionResult,
        SelectionReport,
    )
    from taskclf.model_registry.activation import RollbackPlan
    from taskclf.model_registry.retention import PrunePlan
    from taskclf.model_registry.verify import VerifyReport

NULL = "--"
TOP_N = 5
PROGRESS_MIN_BUNDLES = 200
"""Below this many bundles a scan is instant; no spinner flickers on screen."""

_PIPE_WIDTH = 200
"""Width of tables written to a pipe or file, wide enough that ids never wrap."""


def is_terminal() -> bool:
    """True when stdout is an interactive terminal."""
    return sys.stdout.isatty()


def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners can swap it)."""
    if is_terminal():
        return Console(file=sys.stdout)
    # COLUMNS, when set, wins (rich reads it); otherwise a pipe gets a wide page.
    width = None if os.environ.get("COLUMNS") else _PIPE_WIDTH
    return Console(file=sys.stdout, width=width, no_color=True, highlight=False)


def say(text: str) -> None:
    """Print one sentence for a person (rich markup is not interpreted)."""
    console().print(text, markup=False, highlight=False, soft_wrap=True)


def emit_json(data: Any) -> None:
    """Write ``data`` as the command's single JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def num(value: object) -> str:
    """A number to 4 decimals, ``--`` for null (or anything that is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NULL
    return f"{value:.4f}"


def text(value: object) -> str:
    """A value as text, ``--`` for null."""
    return NULL if value is None else str(value)


def pointer_model_id(pointer: ActivePointer | None) -> str | None:
    """The bundle id a pointer names (hand-written pointers may only carry ``model_dir``)."""
    if pointer is None:
        return None
    return pointer.model_id or PurePosixPath(pointer.model_dir).name


@contextlib.contextmanager
def scanning(models_dir: Path, *, json_mode: bool, what: str = "Scanning") -> Iterator[None]:
    """Show a transient spinner naming the directory and bundle count while a scan runs.

    Only on a terminal, never in ``--json`` mode, and only for registries
    large enough for the scan to take a noticeable moment.
    """
    if json_mode or not is_terminal():
        yield
        return
    from taskclf.model_registry.scan import bundle_names

    count = len(bundle_names(models_dir))
    if count < PROGRESS_MIN_BUNDLES:
        yield
        return
    with console().status(f"{what} {count:,} bundles in {models_dir} ...", spinner="dots"):
        yield


# --- tables ---------------------------------------------------------------------------

RICH_TABLE_MAX_ROWS = 500
"""Above this, tables are drawn as aligned plain text: rich lays out ~3 ms per row,
which would make ``train list`` on 10,000 bundles take half a minute."""

_FREE_TEXT_WIDTH = 48
_FREE_TEXT_COLUMNS = frozenset({"notes", "why", "note"})
"""Prose columns: the only ones that wrap, so ids and timestamps stay copy-pasteable."""

Column = tuple[str, str]
"""A column header and its justification (``"left"`` or ``"right"``)."""


_DROP_TO_FIT = (
    "created_at",
    "schema_hash",
    "bi_prec",
    "min_prec",
    "weighted_f1",
    "from",
    "macro_f1",
    "size",
)
"""Columns hidden, in this order, when a table is wider than the terminal. Rich would
otherwise crop every id silently (``2026-02-19_013000_ru``) and squeeze the active
marker and the notes to nothing; the ids, the verdict and the reasons matter most."""


def print_table(title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    """Print a titled table: a rich table, or the same columns as plain text when it is long.

    A rich table that cannot fit the console's width loses its least useful
    columns (``_DROP_TO_FIT``) and says which, instead of cropping ids.
    """
    if len(rows) <= RICH_TABLE_MAX_ROWS:
        out = console()
        keep = list(range(len(columns)))
        table = _rich_table(title, columns, rows, keep)
        hidden: list[str] = []
        # Measured unconstrained: rich clamps a measurement to the width it is given.
        unbounded = out.options.update_width(10_000)
        while Measurement.get(out, unbounded, table).minimum > out.width:
            drop = next((i for name in _DROP_TO_FIT for i in keep if columns[i][0] == name), None)
            if drop is None:
                break
            keep.remove(drop)
            hidden.append(columns[drop][0])
            table = _rich_table(title, columns, rows, keep)
        out.print(table)
        if hidden:
            say(
                f"(not shown at width {out.width}: {', '.join(hidden)}; "
                "use --json or a wider terminal to see every field)"
            )
        return
    headers = [header for header, _ in columns]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if justify == "right" else cell.ljust(width)
            for cell, width, (_, justify) in zip(cells, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out_lines = [title, line(headers), "  ".join("-" * w for w in widths)]
    out_lines += [line(row) for row in rows]
    sys.stdout.write("\n".join(out_lines) + "\n")
    sys.stdout.flush()


def _rich_table(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: Sequence[int]
) -> Table:
    """A rich table of the ``keep`` columns (indexes into ``columns`` and each row)."""
    table = Table(title=title, title_justify="left")
    for header, justify in (columns[i] for i in keep):
        # Ids, timestamps and numbers never wrap or crop; prose columns wrap instead.
        fixed = header not in _FREE_TEXT_COLUMNS
        table.add_column(
            header,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=fixed,
            min_width=max(len(header), 1) if fixed else None,
            overflow="fold",
            # Long reasons wrap within their column instead of squeezing the ids.
            max_width=None if fixed else _FREE_TEXT_WIDTH,
        )
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table


# --- train list -------------------------------------------------------------------------


def bundle_rows_json(rows: Sequence[BundleRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts with exactly the ten ``train list`` keys."""
    return [row.model_dump() for row in rows]


BUNDLE_COLUMNS: tuple[Column, ...] = (
    ("", "left"),
    ("model_id", "left"),
    ("created_at", "left"),
    ("schema_hash", "left"),
    ("macro_f1", "right"),
    ("weighted_f1", "right"),
    ("bi_prec", "right"),
    ("min_prec", "right"),
    ("eligible", "left"),
    ("notes", "left"),
)


def bundle_cells(row: BundleRow) -> list[str]:
    """One ``train list`` row as table cells: ``*`` for active, 4 decimals, ``--`` for null."""
    return [
        "*" if row.active else "",
        row.model_id,
        text(row.created_at),
        text(row.schema_hash),
        num(row.macro_f1),
        num(row.weighted_f1),
        num(row.bi_prec),
        num(row.min_prec),
        "yes" if row.eligible else "no",
        text(row.notes),
    ]


def render_bundle_rows(rows: Sequence[BundleRow], *, eligible_only: bool = False) -> None:
    """Print the ``Model Bundles`` table, or say that there is nothing to show."""
    if not rows and eligible_only:
        say("No eligible model bundles found; run without --eligible to see why each is out.")
        return
    if not rows:
        say("No model bundles found.")
        return
    print_table("Model Bundles", BUNDLE_COLUMNS, [bundle_cells(row) for row in rows])


# --- pointer, resolution ----------------------------------------------------------------


def pointer_json(pointer: ActivePointer | None) -> dict[str, Any] | None:
    """A pointer as a JSON-ready dict (or None)."""
    return None if pointer is None else pointer.model_dump(mode="json")


def pointer_sentence(pointer: ActivePointer) -> str:
    """``<id> (macro_f1=<x>, at=<selected_at>)``."""
    reason = pointer.reason or {}
    return (
        f"{pointer_model_id(pointer)} (macro_f1={num(reason.get('macro_f1'))}, "
        f"at={pointer.selected_at})"
    )


def render_set_active(pointer: ActivePointer) -> None:
    """``Active model set to <ID> (macro_f1=<x>, at=<selected_at>)``."""
    say(f"Active model set to {pointer_sentence(pointer)}")


def bundle_summary(bundle: ModelBundle) -> dict[str, Any]:
    """The identifying facts of a bundle, JSON-ready."""
    metadata, metrics = bundle.metadata, bundle.metrics
    return {
        "model_id": bundle.model_id,
        "path": str(bundle.path),
        "valid": bundle.valid,
        "schema_version": metadata.schema_version if metadata else None,
        "schema_hash": metadata.schema_hash if metadata else None,
        "created_at": metadata.created_at if metadata else None,
        "macro_f1": metrics.macro_f1 if metrics else None,
        "weighted_f1": metrics.weighted_f1 if metrics else None,
    }


def exclusions_json(report: SelectionReport) -> list[dict[str, Any]]:
    """The report's exclusions, JSON-ready."""
    return [
        {"model_id": e.model_id, "path": str(e.path), "reason": e.reason} for e in report.excluded
    ]


RANKING_COLUMNS: tuple[Column, ...] = (
    ("#", "right"),
    ("model_id", "left"),
    ("macro_f1", "right"),
    ("weighted_f1", "right"),
    ("created_at", "left"),
)


def ranking_cells(
    rank: int, model_id: str, macro: float | None, weighted: float | None, created: str | None
) -> list[str]:
    """One ranking row as table cells."""
    return [str(rank), model_id, num(macro), num(weighted), text(created)]


def print_ranking(report: SelectionReport, *, title: str, limit: int = TOP_N) -> None:
    """The top of a ranking: rank, id, both F1 scores, created_at."""
    rows = []
    for rank, bundle in enumerate(report.ranked[:limit], start=1):
        summary = bundle_summary(bundle)
        rows.append(
            ranking_cells(
                rank,
                bundle.model_id,
                summary["macro_f1"],
                summary["weighted_f1"],
                summary["created_at"],
            )
        )
    print_table(title, RANKING_COLUMNS, rows)


def render_resolution(bundle: ModelBundle, source: str, detail: str) -> None:
    """The active bundle, its metrics, and where the answer came from."""
    summary = bundle_summary(bundle)
    out = console()
    table = Table(title="Active model", title_justify="left", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for key in ("model_id", "path", "schema_version", "created_at"):
        table.add_row(key, text(summary[key]))
    table.add_row("macro_f1", num(summary["macro_f1"]))
    table.add_row("weighted_f1", num(summary["weighted_f1"]))
    table.add_row("source", source)
    out.print(table)
    say(detail)


def render_no_eligible(report: SelectionReport, models_dir: Path) -> None:
    """Nothing eligible: one line per excluded bundle and its reason (on stderr)."""
    lines = [f"No eligible model bundle in {models_dir}; every bundle is excluded:"]
    lines += [f"  - {e.model_id}: {e.reason}" for e in report.excluded]
    if not report.excluded:
        lines = [f"No model bundles in {models_dir}; promote one with `taskclf model promote`."]
    sys.stderr.write("\n".join(lines) + "\n")


# --- history, rollback ------------------------------------------------------------------


def history_json(entries: Sequence[ActiveHistoryEntry]) -> list[dict[str, Any]]:
    """History entries (already newest first), JSON-ready."""
    return [
        {
            "at": e.at,
            "from": pointer_model_id(e.old),
            "to": pointer_model_id(e.new),
            "note": (e.new.reason or {}).get("note"),
            "old": pointer_json(e.old),
            "new": pointer_json(e.new),
        }
        for e in entries
    ]


def render_history(entries: Sequence[ActiveHistoryEntry]) -> None:
    """The pointer's transitions, newest first."""
    if not entries:
        say("No pointer history yet (active_history.jsonl is empty or missing).")
        return
    columns = [("when", "left"), ("from", "left"), ("to", "left")]
    columns += [("macro_f1", "right"), ("note", "left")]
    rows = [
        [
            e.at,
            text(pointer_model_id(e.old)),
            text(pointer_model_id(e.new)),
            num((e.new.reason or {}).get("macro_f1")),
            text((e.new.reason or {}).get("note")),
        ]
        for e in entries
    ]
    print_table("Active pointer history (newest first)", columns, rows)


def rollback_json(plan: RollbackPlan, pointer: ActivePointer | None) -> dict[str, Any]:
    """A rollback plan and, once executed, the pointer written; JSON-ready."""
    return {
        "from": plan.current_model_id,
        "to": plan.target_model_id,
        "steps": plan.steps,
        "considered": list(plan.considered),
        "skipped": [{"model_id": s.model_id, "reason": s.reason} for s in plan.skipped],
        "executed": pointer is not None,
        "active": pointer_json(pointer),
    }


def _skipped_note(plan: RollbackPlan) -> str:
    if not plan.skipped:
        return ""
    skipped = ", ".join(f"{s.model_id} ({s.reason})" for s in plan.skipped)
    return f" Skipped, no longer usable: {skipped}."


def _rollback_origin(plan: RollbackPlan) -> str:
    """The model a rollback leaves, in prose ("from -- to X" reads like a typo)."""
    return plan.current_model_id or "no usable active pointer"


def render_rollback_plan(plan: RollbackPlan) -> None:
    """What a rollback would do (``--dry-run``)."""
    say(
        f"Would roll back from {_rollback_origin(plan)} to {plan.target_model_id} "
        f"({plan.target_path}); nothing was changed.{_skipped_note(plan)}"
    )


def render_rollback(plan: RollbackPlan, pointer: ActivePointer) -> None:
    """One sentence: from where to where."""
    say(
        f"Rolled back from {_rollback_origin(plan)} to {pointer_sentence(pointer)}."
        f"{_skipped_note(plan)}"
    )


# --- promotion --------------------------------------------------------------------------


def promotion_json(result: PromotionResult, explanation: str) -> dict[str, Any]:
    """What a promotion did, JSON-ready (the ranking's top entries, not all of it)."""
    report = result.report
    return {
        "model_id": result.bundle.model_id,
        "path": str(result.bundle.path),
        "active_updated": result.active_updated,
        "explanation": explanation,
        "previous": pointer_json(result.previous),
        "active": pointer_json(result.active),
        "best_model_id": report.best.model_id if report.best else None,
        "ranked": len(report.ranked),
        "excluded": len(report.excluded),
        "top": [bundle_summary(b) for b in report.ranked[:TOP_N]],
    }


def render_promotion(bundle: ModelBundle, report: SelectionReport, explanation: str) -> None:
    """Where the bundle went, the new ranking's top entries, and what the pointer did."""
    say(f"Promoted {bundle.model_id} into the registry at {bundle.path}.")
    print_ranking(report, title="Ranking after promotion (top 5)")
    say(explanation)


# --- index ------------------------------------------------------------------------------


def index_summary_json(cache: IndexCache, path: Path) -> dict[str, Any]:
    """The counts and identity of an index, JSON-ready."""
    return {
        "path": str(path),
        "generated_at": cache.generated_at,
        "schema_hash": cache.schema_hash,
        "policy_version": cache.policy_version,
        "best_model_id": cache.best_model_id,
        "ranked": len(cache.ranked),
        "excluded": len(cache.excluded),
    }


def render_index_written(cache: IndexCache, path: Path) -> None:
    """A one-line summary of the index just written."""
    say(
        f"Wrote {path}: {len(cache.ranked)} ranked, {len(cache.excluded)} excluded, "
        f"best {text(cache.best_model_id)} (schema_hash {cache.schema_hash}, "
        f"generated_at {cache.generated_at})."
    )


def render_index_read(cache: IndexCache, path: Path, changes: Sequence[str]) -> None:
    """The cached ranking and whether it is stale."""
    rows = [
        ranking_cells(rank, e.model_id, e.macro_f1, e.weighted_f1, e.created_at)
        for rank, e in enumerate(cache.ranked[:TOP_N], start=1)
    ]
    print_table(f"Index cache {path}", RANKING_COLUMNS, rows)
    say(
        f"generated_at {cache.generated_at}; {len(cache.ranked)} ranked, "
        f"{len(cache.excluded)} excluded; best {text(cache.best_model_id)}."
    )
    if not changes:
        say("The index is fresh: no bundle was added, removed or changed since it was written.")
        return
    say(f"The index is stale ({len(changes)} change(s)); run `taskclf model index` to refresh:")
    for change in changes[:20]:
        say(f"  - {change}")
    if len(changes) > 20:
        say(f"  ... and {len(changes) - 20} more")


# --- verify -----------------------------------------------------------------------------


def render_verify(report: VerifyReport) -> None:
    """A summary line, then one line per finding (errors and warnings)."""
    bundles = report.bundles
    valid = sum(b.valid for b in bundles)
    eligible = sum(b.eligible for b in bundles)
    say(
        f"{report.models_dir}: {len(bundles)} bundles ({valid} valid, {eligible} eligible); "
        f"active {text(report.active_model_id)}; index {report.index_state}."
    )
    for finding in report.findings:
        where = f" [{finding.model_id}]" if finding.model_id else ""
        say(f"{finding.severity}: {finding.code}{where}: {finding.message}")
    errors = sum(f.severity == "error" for f in report.findings)
    warnings = len(report.findings) - errors
    if report.healthy:
        say(f"Healthy ({warnings} warning(s)).")
    else:
        say(f"Unhealthy: {errors} error(s), {warnings} warning(s).")


# --- prune ------------------------------------------------------------------------------


def human_bytes(size: int) -> str:
    """``1.2 MiB``-style size."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def prune_json(plan: PrunePlan, *, executed: bool) -> dict[str, Any]:
    """The prune plan (and whether it was carried out), JSON-ready."""
    data: dict[str, Any] = plan.model_dump(mode="json")
    data["executed"] = executed
    return data


def render_prune_plan(plan: PrunePlan, *, executed: bool, table: bool = True) -> None:
    """Every bundle kept or deleted with why (unless ``table`` is off), then the bytes freed."""
    deleted = [d for d in plan.decisions if d.action == "delete"]
    if table and plan.decisions:
        print_table(
            "Prune plan",
            [("action", "left"), ("model_id", "left"), ("size", "right"), ("why", "left")],
            [
                [d.action, d.model_id, human_bytes(d.size_bytes), "; ".join(d.reasons) or NULL]
                for d in plan.decisions
            ],
        )
    verb = "Deleted" if executed else "Would delete"
    say(
        f"{verb} {len(deleted)} of {len(plan.decisions)} bundles, freeing "
        f"{human_bytes(plan.bytes_freed)} ({plan.bytes_freed} bytes)."
    )
    if plan.leftovers:
        verb = "Removed" if executed else "Would remove"
        names = ", ".join(path.name for path in plan.leftovers)
        say(f"{verb} {len(plan.leftovers)} stale leftover(s) of interrupted operations: {names}.")
