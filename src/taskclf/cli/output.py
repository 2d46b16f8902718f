r"""Everything the CLI prints: rich tables and sentences for people, one JSON document for tools.

Human output goes through a rich console (no colour when stdout is not
a terminal); ``--json`` output is written straight to stdout as a single
document. Numbers show 4 decimals and a missing value shows ``--``.

Terminal safety: how every renderer must print
-----------------------------------------------
Bundle ids, paths, timestamps, hashes, notes and library messages come
from disk: a directory may be called ``[bold]b0``, ``x[/]`` or
``ESC ]0;title BEL``. They are data, never rich markup and never control
sequences. :func:`clean` is the one escaping helper: it replaces every
control character (C0, DEL, C1, lone surrogates, bidi overrides, line
separators) with a visible escape (``\x1b``, ``\n``, ``\u202e``), and
everything below calls it, so a renderer is safe as long as it prints
only through these functions:

- :func:`say` for a sentence on stdout (wrapped at word boundaries on a
  terminal, one line per sentence in a pipe);
- :func:`print_table` for a table (rich, or aligned plain text when long)
  and :func:`print_fields` for a key/value block;
- :func:`emit_json` for the ``--json`` document (JSON escapes, plus the
  C1/bidi characters ``json.dumps`` leaves raw);
- :func:`print_error`, :func:`print_warning` (stderr) and :func:`confirm`
  (a prompt on stderr).

Pass values as plain ``str``; never call ``console().print`` or write to
``sys.stdout`` with a string that contains a disk value. A renderer that
needs its own rich renderable builds every piece of text with
:func:`literal` (a ``rich.text.Text``, which is never parsed as markup).
rich is imported only inside the functions that draw, so importing this
module stays cheap.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from taskclf.model_registry import (
        ActiveHistoryEntry,
        ActivePointer,
        BundleRow,
        IndexCache,
        Manifest,
        ModelBundle,
        PromotionResult,
        SelectionReport,
    )
    from taskclf.model_registry.activation import RollbackPlan
    from taskclf.model_registry.alias_admin import AliasInfo
    from taskclf.model_registry.inspection import BundleDescription, BundleDiff, ManifestSummary
    from taskclf.model_registry.retention import PrunePlan
    from taskclf.model_registry.sync import SyncResult
    from taskclf.model_registry.verify import VerifyReport

NULL = "--"
TOP_N = 5
PROGRESS_MIN_BUNDLES = 200
"""Below this many bundles a scan is instant; no spinner flickers on screen."""

_PIPE_WIDTH = 200
"""Width of tables written to a pipe or file, wide enough that ids never wrap."""


# --- escaping: the one helper ----------------------------------------------------------

_BEYOND_C0 = "\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
"""DEL, C1, lone surrogates (undecodable file names), bidi marks, embeddings, overrides and
isolates, line and paragraph separators."""

_UNSAFE = re.compile(f"[\x00-\x1f{_BEYOND_C0}]")
"""Characters a terminal acts on, or that reorder or hide text: C0 and the above."""

_JSON_RAW_UNSAFE = re.compile(f"[{_BEYOND_C0}]")
# A Path made from an s3:// location folds its "//" ("s3:/bucket/..."), and library
# messages embed such Paths; what the CLI shows must paste back as --models-dir.
_FOLDED_S3 = re.compile(r"(?<![\w:/.])s3:/(?=[^/])")
"""What :func:`clean` escapes but ``json.dumps(ensure_ascii=False)`` leaves raw (it
escapes only U+0000-U+001F)."""

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown_path(path: object) -> str:
    """A location as messages show it (``s3://bucket/...`` for an object store)."""
    from taskclf.model_registry.locations import shown_path as shown

    return shown(path)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(value: object) -> str:
    """``value`` as text that is safe to print: every control character as a visible escape.

    ``"a\\x1b]0;t\\x07"`` becomes ``a\\x1b]0;t\\x07`` spelled out with backslashes; rich
    markup is left as typed (it only matters to rich, and :func:`literal` keeps rich from
    reading it). This is the one escaping helper of the CLI: every function below that
    prints calls it. An object-store location a ``Path`` folded (``s3:/bucket``) is
    shown as ``s3://bucket``, so every location printed pastes back as ``--models-dir``.
    """
    return _UNSAFE.sub(_escape_char, _FOLDED_S3.sub("s3://", str(value)))


def literal(value: object, **kwargs: Any) -> Text:
    """A rich ``Text`` of ``clean(value)``: printed as typed, never parsed as markup."""
    from rich.text import Text

    return Text(clean(value), **kwargs)


def is_terminal() -> bool:
    """True when stdout is an interactive terminal."""
    return sys.stdout.isatty()


def console() -> Console:
    """A console on the current stdout (looked up per call, so test runners can swap it)."""
    from rich.console import Console

    if is_terminal():
        return Console(file=sys.stdout, highlight=False)
    # COLUMNS, when set, wins (rich reads it); otherwise a pipe gets a wide page.
    width = None if os.environ.get("COLUMNS") else _PIPE_WIDTH
    return Console(file=sys.stdout, width=width, no_color=True, highlight=False)


def _wrap_prose(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` cells, broken only at spaces: a word or id longer than
    the width keeps a line of its own instead of being cut in two."""
    if len(text) <= width:
        return [text]
    import textwrap

    indent = text[: len(text) - len(text.lstrip(" "))]
    return textwrap.wrap(
        text,
        width=max(width, 20),
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [text]


def _terminal_lines(text: str, stream: TextIO) -> str:
    """``text`` wrapped at word boundaries when ``stream`` is a terminal, else unchanged
    (a pipe gets one line per message, for grep and scripts)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        return text
    import shutil  # a terminal's width; scripts reading a pipe start without it

    width = shutil.get_terminal_size().columns
    return "\n".join(_wrap_prose(text, width))


def say(text: str) -> None:
    """Print one sentence for a person: escaped, never markup, never broken inside a word."""
    safe = clean(text)
    out = console()
    if is_terminal():
        for line in _wrap_prose(safe, out.width):
            out.print(literal(line), soft_wrap=True)
        return
    out.print(literal(safe), soft_wrap=True)


def emit_json(data: Any) -> None:
    """Write ``data`` as the command's single JSON document on stdout."""
    sys.stdout.write(json_text(data) + "\n")
    sys.stdout.flush()


def json_text(data: Any) -> str:
    """``data`` as one line of JSON that is safe on a terminal and parses to the same value."""
    dumped = json.dumps(data, ensure_ascii=False, default=str)
    # Each pattern only where it can match: a regex pass over every character costs
    # 30 ms per MB (`train list --json` of 10,000 bundles writes 5 MB).
    if "s3:/" in dumped:
        dumped = _FOLDED_S3.sub("s3://", dumped)
    if dumped.isascii() and "\x7f" not in dumped:  # DEL is the only ASCII one
        return dumped
    return _JSON_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def print_error(message: str, *, json_mode: bool = False) -> None:
    """Report an expected failure: ``Error: ...`` on stderr, and in JSON mode also
    ``{"error": ...}`` as the one JSON document on stdout, so scripts always get JSON."""
    line = f"Error: {clean(message)}"
    sys.stderr.write(_terminal_lines(line, sys.stderr) + "\n")
    sys.stderr.flush()
    if json_mode:
        emit_json({"error": message})


def print_warning(message: str) -> None:
    """One ``warning: ...`` line on stderr (the library's log records end up here)."""
    line = f"warning: {clean(message)}"
    sys.stderr.write(_terminal_lines(line, sys.stderr) + "\n")


def print_aborted() -> None:
    """What typer prints when input ends unexpectedly, for the path without typer."""
    sys.stderr.write("\nAborted!\n")


def print_traceback(exc: BaseException) -> None:
    """The traceback of ``exc`` on stderr (``--debug``), each line escaped."""
    import traceback

    for chunk in traceback.format_exception(exc):
        for line in chunk.rstrip("\n").split("\n"):
            sys.stderr.write(clean(line) + "\n")


def confirm(question: str) -> bool:
    """Ask a yes/no question on stderr (default no); the question is escaped."""
    import typer

    return typer.confirm(clean(question), default=False, err=True)


def num(value: object) -> str:
    """A number to 4 decimals, ``--`` for null (or anything that is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return NULL
    return f"{value:.4f}"


def text(value: object) -> str:
    """A value as text, ``--`` for null."""
    return NULL if value is None else str(value)


def short_time(value: str) -> str:
    """An ISO-8601 timestamp as ``2026-11-27 14:09:59Z`` (UTC, whole seconds); anything
    that does not parse is returned unchanged."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def pointer_model_id(pointer: ActivePointer | None) -> str | None:
    """The bundle a pointer names, as resolution follows it (``model_dir``, not ``model_id``)."""
    from taskclf.model_registry.pointer import pointer_bundle_name

    return None if pointer is None else pointer_bundle_name(pointer)


@contextlib.contextmanager
def scanning(models_dir: Path, *, json_mode: bool, what: str = "Scanning") -> Iterator[None]:
    """Show a transient spinner naming the directory and bundle count while a scan runs.

    Only on a terminal, never in ``--json`` mode, and only for registries
    large enough for the scan to take a noticeable moment.
    """
    from taskclf.model_registry.locations import is_remote

    if json_mode or not is_terminal() or is_remote(models_dir):
        yield
        return
    from taskclf.model_registry.scan import bundle_names

    count = len(bundle_names(models_dir))
    if count < PROGRESS_MIN_BUNDLES:
        yield
        return
    with console().status(literal(f"{what} {count:,} bundles in {models_dir} ..."), spinner="dots"):
        yield


# --- tables ---------------------------------------------------------------------------

RICH_TABLE_MAX_ROWS = 500
"""Above this, tables are drawn as aligned plain text: rich lays out ~3 ms per row,
which would make ``train list`` on 10,000 bundles take half a minute."""

_FREE_TEXT_WIDTH = 48
_FREE_TEXT_COLUMNS = frozenset({"notes", "why", "note", "message", "status"})
"""Prose columns: the only ones that wrap, so ids and timestamps stay copy-pasteable."""

Column = tuple[str, str]
"""A column header and its justification (``"left"`` or ``"right"``)."""


_DROP_TO_FIT = (
    "actor",
    "message",
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


def print_table(
    title: str,
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    compact_rows: Sequence[Sequence[str]] | None = None,
) -> None:
    """Print a titled table: a rich table, or the same columns as plain text when it is long.

    Every cell and the title are escaped (:func:`clean`) and printed as typed. A rich
    table that cannot fit the console's width first tries ``compact_rows`` (the same
    cells, shortened: e.g. timestamps without fractions), then loses its least useful
    columns (``_DROP_TO_FIT``) and says which, instead of cropping ids.
    """
    if len(rows) > RICH_TABLE_MAX_ROWS:
        _print_plain_table(title, columns, rows)
        return
    from rich.measure import Measurement

    out = console()
    # Measured unconstrained: rich clamps a measurement to the width it is given.
    unbounded = out.options.update_width(10_000)

    def fits(table: Table) -> bool:
        return Measurement.get(out, unbounded, table).minimum <= out.width

    keep = list(range(len(columns)))
    table = _rich_table(title, columns, rows, keep)
    if not fits(table) and compact_rows is not None:
        rows = compact_rows
        table = _rich_table(title, columns, rows, keep)
    hidden: list[str] = []
    while not fits(table):
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


def _print_plain_table(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> None:
    """The columns as aligned plain text (no rich layout: fast for thousands of rows)."""
    headers = [clean(header) for header, _ in columns]
    cells = [[clean(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if justify == "right" else cell.ljust(width)
            for cell, width, (_, justify) in zip(row, widths, columns, strict=True)
        ]
        return "  ".join(parts).rstrip()

    out_lines = [clean(title), line(headers), "  ".join("-" * w for w in widths)]
    out_lines += [line(row) for row in cells]
    sys.stdout.write("\n".join(out_lines) + "\n")
    sys.stdout.flush()


def _rich_table(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], keep: Sequence[int]
) -> Table:
    """A rich table of the ``keep`` columns (indexes into ``columns`` and each row)."""
    from rich.table import Table

    table = Table(title=literal(title), title_justify="left")
    for header, justify in (columns[i] for i in keep):
        # Ids, timestamps and numbers never wrap or crop; prose columns wrap at spaces
        # and fold only a word longer than the whole column.
        fixed = header not in _FREE_TEXT_COLUMNS
        table.add_column(
            literal(header),
            justify=justify,  # type: ignore[arg-type]
            no_wrap=fixed,
            min_width=max(len(header), 1) if fixed else None,
            overflow="fold",
            # Long reasons wrap within their column instead of squeezing the ids.
            max_width=None if fixed else _FREE_TEXT_WIDTH,
        )
    for row in rows:
        table.add_row(*(literal(row[i]) for i in keep))
    return table


def print_fields(title: str, fields: Sequence[tuple[str, str]]) -> None:
    """A titled key/value block; as ``key: value`` lines when the box would cut a value."""
    from rich.measure import Measurement
    from rich.table import Table

    out = console()
    table = Table(title=literal(title), title_justify="left", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", no_wrap=True)
    for key, value in fields:
        table.add_row(literal(key), literal(value))
    if Measurement.get(out, out.options.update_width(10_000), table).minimum <= out.width:
        out.print(table)
        return
    say(f"{title}:")
    for key, value in fields:
        say(f"  {key}: {value}")


# --- train list -------------------------------------------------------------------------


def bundle_rows_json(rows: Sequence[BundleRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts: the ten ``train list`` keys of CLI.md plus ``aliases``."""
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
    """Print the ``Model Bundles`` table, or say that there is nothing to show.

    An ``aliases`` column (every alias but ``active``, which is the ``*``
    marker) appears only when some bundle carries one, so a registry without
    aliases prints exactly the table it always did.
    """
    if not rows and eligible_only:
        say("No eligible model bundles found; run without --eligible to see why each is out.")
        return
    if not rows:
        say("No model bundles found.")
        return
    cells = [bundle_cells(row) for row in rows]
    columns = BUNDLE_COLUMNS
    named = [[a for a in row.aliases if a != "active"] for row in rows]
    if any(named):
        columns = (*columns[:2], ("aliases", "left"), *columns[2:])
        cells = [
            [*cell[:2], ", ".join(names), *cell[2:]]
            for cell, names in zip(cells, named, strict=True)
        ]
    print_table("Model Bundles", columns, cells)


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


def render_set_active(
    pointer: ActivePointer,
    alias: str = "active",
    *,
    changed: bool = True,
    pin_only: bool = False,
) -> None:
    """``Active model set to <ID> (macro_f1=<x>, at=<selected_at>)`` (or the alias's
    sentence), or that it already was so."""
    pinned = " (pinned)" if pointer.pinned else ""
    state = "pinned" if pointer.pinned else "unpinned"
    current = pointer_model_id(pointer)
    if not changed:
        if pin_only:
            say(f"Alias {alias} is already {state} at {current}; nothing was changed.")
        elif alias == "active":
            say(
                f"{current} is already active (the active model since "
                f"{pointer.selected_at}); nothing was changed."
            )
        else:
            say(
                f"Alias {alias} already points at {current} (since {pointer.selected_at}); "
                "nothing was changed."
            )
    elif pin_only:
        say(f"Alias {alias} {state} at {pointer_sentence(pointer)}")
    elif alias == "active":
        say(f"Active model set to {pointer_sentence(pointer)}{pinned}")
    else:
        say(f"Alias {alias} set to {pointer_sentence(pointer)}{pinned}")


def bundle_summary(bundle: ModelBundle) -> dict[str, Any]:
    """The identifying facts of a bundle, JSON-ready."""
    metadata, metrics = bundle.metadata, bundle.metrics
    return {
        "model_id": bundle.model_id,
        "path": shown_path(bundle.path),
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
        {"model_id": e.model_id, "path": shown_path(e.path), "reason": e.reason}
        for e in report.excluded
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


def render_resolution(
    summary: dict[str, Any],
    source: str,
    detail: str,
    *,
    alias: str = "active",
    pinned: bool = False,
) -> None:
    """The active bundle (or an alias's, its :func:`bundle_summary`), its metrics, and where
    the answer came from."""
    fields = [(key, text(summary[key])) for key in ("model_id", "path", "schema_version")]
    fields += [("created_at", text(summary["created_at"]))]
    fields += [("macro_f1", num(summary["macro_f1"])), ("weighted_f1", num(summary["weighted_f1"]))]
    fields += [("source", source), ("alias", alias), ("pinned", "yes" if pinned else "no")]
    print_fields("Active model" if alias == "active" else f"Model of alias {alias}", fields)
    say(detail)


def no_eligible_message(report: SelectionReport, models_dir: Path) -> str:
    """The one sentence for "nothing to resolve": no bundles, or every bundle excluded."""
    if not report.excluded:
        return (
            f"No model bundles in {shown_path(models_dir)}; promote one with "
            "`taskclf model promote`."
        )
    return (
        f"No eligible model bundle in {shown_path(models_dir)}; every bundle is excluded "
        f"({len(report.excluded)}):"
    )


def render_no_eligible(report: SelectionReport, models_dir: Path) -> None:
    """Nothing eligible: the error sentence, then one line per excluded bundle (on stderr)."""
    print_error(no_eligible_message(report, models_dir))
    for e in report.excluded:
        sys.stderr.write(f"  - {clean(e.model_id)}: {clean(e.reason)}\n")


# --- history, rollback ------------------------------------------------------------------


def history_json(entries: Sequence[ActiveHistoryEntry]) -> list[dict[str, Any]]:
    """History entries (already newest first), JSON-ready."""
    return [
        {
            "at": e.at,
            "from": pointer_model_id(e.old),
            "to": pointer_model_id(e.new),
            "note": (e.new.reason or {}).get("note"),
            "actor": e.actor,
            "message": e.message,
            "old": pointer_json(e.old),
            "new": pointer_json(e.new),
        }
        for e in entries
    ]


def render_history(entries: Sequence[ActiveHistoryEntry], alias: str = "active") -> None:
    """The pointer transitions, newest first, with who made each and why (timestamps
    shortened before columns go)."""
    if not entries:
        where = "active_history.jsonl" if alias == "active" else f".aliases/{alias}_history.jsonl"
        say(f"No pointer history yet ({where} is empty or missing).")
        return
    columns = [("when", "left"), ("from", "left"), ("to", "left")]
    columns += [("macro_f1", "right"), ("note", "left")]
    # Who and why (issue 14) only when recorded: an old history prints as it always did.
    who = any(e.actor is not None for e in entries)
    why = any(e.message is not None for e in entries)
    columns += [("actor", "left")] if who else []
    columns += [("message", "left")] if why else []
    rows = [
        [
            e.at,
            text(pointer_model_id(e.old)),
            text(pointer_model_id(e.new)) + (" (pinned)" if e.new.pinned else ""),
            num((e.new.reason or {}).get("macro_f1")),
            text((e.new.reason or {}).get("note")),
            *([text(e.actor)] if who else []),
            *([text(e.message)] if why else []),
        ]
        for e in entries
    ]
    compact = [[short_time(row[0]), *row[1:]] for row in rows]
    title = "Active pointer" if alias == "active" else f"Alias {alias}"
    print_table(f"{title} history (newest first)", columns, rows, compact_rows=compact)


def rollback_json(plan: RollbackPlan, pointer: ActivePointer | None) -> dict[str, Any]:
    """A rollback plan and, once executed, the pointer written; JSON-ready."""
    return {
        "alias": plan.alias,
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
        "path": shown_path(result.bundle.path),
        "active_updated": result.active_updated,
        "alias": result.alias,
        "activate": result.activate,
        "pinned": result.pinned,
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
    say(f"Promoted {bundle.model_id} into the registry at {shown_path(bundle.path)}.")
    print_ranking(report, title="Ranking after promotion (top 5)")
    say(explanation)


# --- package and seal -------------------------------------------------------------------


def package_json(
    bundle: ModelBundle, result: PromotionResult | None, explanation: str | None
) -> dict[str, Any]:
    """The bundle ``model package`` built and, with ``--promote``, what the promotion did."""
    return {
        "bundle": bundle_summary(bundle),
        "promotion": promotion_json(result, explanation or "") if result is not None else None,
    }


def render_package(
    bundle: ModelBundle, result: PromotionResult | None, explanation: str | None
) -> None:
    """Where the bundle was written, its scores, and the promotion if one ran."""
    metrics = bundle.metrics
    say(
        f"Packaged {bundle.model_id} at {bundle.path} (sealed; macro_f1="
        f"{num(metrics.macro_f1 if metrics else None)}, weighted_f1="
        f"{num(metrics.weighted_f1 if metrics else None)})."
    )
    if result is not None:
        render_promotion(result.bundle, result.report, explanation or "")


def seal_json(path: Path, manifest: Manifest, replaced: bool) -> dict[str, Any]:
    """A sealed bundle's manifest, JSON-ready."""
    return {
        "model_id": path.name,
        "path": str(path),
        "replaced": replaced,
        "files": {name: entry.model_dump() for name, entry in manifest.files.items()},
    }


def render_seal(path: Path, manifest: Manifest, replaced: bool) -> None:
    """How many files were sealed, and their total size."""
    total = sum(entry.size for entry in manifest.files.values())
    verb = "Re-sealed" if replaced else "Sealed"
    say(
        f"{verb} {path.name}: {len(manifest.files)} file(s), {human_bytes(total)}, recorded in "
        f"{path / 'manifest.json'}."
    )


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
    # The path goes in the sentence, not the title: rich would wrap a long title inside it.
    print_table(f"Index cache (top {TOP_N})", RANKING_COLUMNS, rows)
    if len(cache.ranked) > TOP_N:
        say(f"(showing the top {TOP_N} of {len(cache.ranked):,} ranked; --json lists them all)")
    say(
        f"{path}: generated_at {cache.generated_at}; {len(cache.ranked)} ranked, "
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
    """A summary line, then one line per finding (errors, warnings, information)."""
    bundles = report.bundles
    valid = sum(b.valid for b in bundles)
    eligible = sum(b.eligible for b in bundles)
    say(
        f"{report.models_dir}: {len(bundles)} bundles ({valid} valid, {eligible} eligible); "
        f"active {text(report.active_model_id)}; index {report.index_state}."
    )
    if any(alias.name != "active" or alias.pinned for alias in report.aliases):
        shown = "; ".join(
            f"{alias.name} -> {text(alias.model_id)}" + (" (pinned)" if alias.pinned else "")
            for alias in report.aliases
        )
        say(f"Aliases: {shown}.")
    for finding in report.findings:
        where = f" [{finding.model_id}]" if finding.model_id else ""
        say(f"{finding.severity}: {finding.code}{where}: {finding.message}")
    errors = sum(f.severity == "error" for f in report.findings)
    warnings = sum(f.severity == "warning" for f in report.findings)
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


# --- show, diff ---------------------------------------------------------------------------


def _manifest_text(manifest: ManifestSummary) -> str:
    how = "hashed" if manifest.deep else "sizes checked; --deep hashes"
    if manifest.status == "unsealed":
        return "unsealed (no manifest.json; `taskclf model seal ID` adds one)"
    if manifest.status == "match":
        return f"sealed, matches ({how})"
    return f"sealed, MISMATCH: {len(manifest.problems)} problem(s) ({how})"


def _schema_text(d: BundleDescription) -> str:
    if d.schema_version is None:
        return NULL
    if d.schema_known:
        state = "known"
    elif d.expected_schema_hash is None:
        state = "unknown version"
    else:
        state = f"hash mismatch: {d.schema_version} is {d.expected_schema_hash}"
    return f"{d.schema_version} ({d.schema_hash}; {state})"


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return num(value)
    if isinstance(value, list):
        return ", ".join(map(str, value)) if value else "[]"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text(value)


def render_bundle_description(d: BundleDescription) -> None:
    """``model show``: facts, per-class scores, params, files and manifest problems."""
    eligible = "yes" if d.eligible else f"no: {d.reason_detail}"
    print_fields(
        f"Bundle {d.model_id}",
        [
            ("path", d.path),
            ("active", "yes" if d.active else "no"),
            ("eligible", eligible),
            ("created_at", text(d.created_at)),
            ("macro_f1", num(d.macro_f1)),
            ("weighted_f1", num(d.weighted_f1)),
            ("schema", _schema_text(d)),
            ("label_set", _value_text(d.label_set)),
            ("train dates", f"{text(d.train_date_from)} .. {text(d.train_date_to)}"),
            ("test dates", f"{text(d.test_date_from)} .. {text(d.test_date_to)}"),
            ("dataset_hash", text(d.dataset_hash)),
            ("git_commit", text(d.git_commit)),
            ("data_provenance", text(d.data_provenance)),
            ("reject_threshold", num(d.reject_threshold)),
            ("model_format", text(d.model_format)),
            ("model_files", _value_text(d.model_files)),
            ("manifest", _manifest_text(d.manifest)),
            ("files", f"{len(d.files)} ({human_bytes(d.total_bytes)})"),
        ],
    )
    if d.classes:
        columns = [("label", "left"), ("precision", "right"), ("recall", "right")]
        columns += [("f1", "right"), ("support", "right")]
        print_table(
            "Per-class scores (from the confusion matrix)",
            columns,
            [
                [c.label, num(c.precision), num(c.recall), num(c.f1), str(c.support)]
                for c in d.classes
            ],
        )
    if d.params:
        print_table(
            "params",
            [("param", "left"), ("value", "left")],
            [[key, _value_text(value)] for key, value in d.params.items()],
        )
    print_table(
        "Files",
        [("path", "left"), ("size", "right"), ("kind", "left")],
        [[f.path, human_bytes(f.size), f.kind] for f in d.files],
    )
    for problem in d.manifest.problems:
        say(f"manifest mismatch: {problem}")


def bundle_diff_json(diff: BundleDiff) -> dict[str, Any]:
    """Both ids and paths, and every differing field with both values."""
    return {
        "a": {"model_id": diff.a.model_id, "path": diff.a.path},
        "b": {"model_id": diff.b.model_id, "path": diff.b.path},
        "identical": diff.identical,
        "differences": [d.model_dump(mode="json") for d in diff.differences],
    }


def _change(a: object, b: object) -> str:
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numbers:
        return ""
    delta = b - a  # type: ignore[operator]
    if isinstance(delta, int):
        return f"{delta:+d}"
    return f"{delta:+.4f}"


def render_bundle_diff(diff: BundleDiff) -> None:
    """``model diff``: one row per differing field, A and B side by side."""
    a, b = diff.a.model_id, diff.b.model_id
    if diff.identical:
        say(f"{a} and {b} do not differ in any compared field.")
        return
    print_table(
        f"{a} (A) vs {b} (B): {len(diff.differences)} differing field(s)",
        [("field", "left"), ("A", "left"), ("B", "left"), ("B - A", "right")],
        [
            [d.field, _value_text(d.a), _value_text(d.b), _change(d.a, d.b)]
            for d in diff.differences
        ],
    )


# --- aliases ----------------------------------------------------------------------------


def aliases_json(infos: Sequence[AliasInfo]) -> list[dict[str, Any]]:
    """Every alias, JSON-ready."""
    return [
        {
            "name": info.name,
            "model_id": info.model_id,
            "pinned": info.pinned,
            "last_moved_at": info.last_moved_at,
            "broken": info.broken,
            "problem": info.problem,
            "pointer_path": str(info.pointer_path),
            "pointer": pointer_json(info.pointer),
        }
        for info in infos
    ]


def render_aliases(infos: Sequence[AliasInfo], models_dir: Path) -> None:
    """The ``Aliases`` table: name, bundle, pinned, when it last moved, and whether it works."""
    if not infos:
        say(
            f"No aliases in {models_dir} yet (no active.json, nothing in .aliases/); "
            "create one with `taskclf model set-active [--alias NAME] --model-id ID`."
        )
        return
    rows = [
        [
            info.name,
            text(info.model_id),
            "yes" if info.pinned else "no",
            text(info.last_moved_at),
            f"broken: {info.problem}" if info.broken else "ok",
        ]
        for info in infos
    ]
    columns = [("alias", "left"), ("model_id", "left"), ("pinned", "left")]
    columns += [("last moved", "left"), ("status", "left")]
    print_table("Aliases", columns, rows)


def render_sync(result: SyncResult) -> None:
    """``taskclf model sync``: what was copied, already there, skipped, and the pointer."""
    say(
        f"Synced {result.source} -> {result.destination}: {len(result.copied)} copied, "
        f"{len(result.present)} already there, {len(result.skipped)} skipped."
    )
    for name in result.copied:
        say(f"  copied {name}")
    for name, why in sorted(result.skipped.items()):
        say(f"  skipped {name}: {why}")
    if result.pointer is not None:
        say(f"The destination's active model is now {result.pointer}.")
