"""``taskclf model``: the active pointer, promotion, the index, health checks and retention.

Each command parses its options, calls the registry and renders through
:mod:`taskclf.cli.output`; the registry is imported inside the commands
so that ``taskclf --help`` stays fast.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskclf.cli import options
from taskclf.cli.options import (
    DEFAULT_MODELS_DIR,
    Json,
    ModelsDir,
    fail,
    require_name,
    require_registry,
)

if TYPE_CHECKING:
    from taskclf.model_registry import ModelBundle, PromotionResult, SelectionReport

model_app = typer.Typer(
    help="Manage the active model: activate, resolve, promote, roll back, index, verify, prune.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)

DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan and change nothing.")]


@model_app.command("set-active")
def set_active(
    model_id_argument: Annotated[
        str | None,
        typer.Argument(
            metavar="ID",
            help="Bundle directory name to activate (or give it as --model-id).",
            show_default=False,
        ),
    ] = None,
    model_id_option: Annotated[
        str | None,
        typer.Option(
            "--model-id", help="Bundle directory name to activate (same as the ID argument)."
        ),
    ] = None,
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    json_mode: Json = False,
) -> None:
    """Point active.json at a bundle (it must exist, be valid and be compatible)."""
    from taskclf.cli import output
    from taskclf.model_registry.activation import activate

    model_id = _one_model_id(model_id_argument, model_id_option)
    require_name("--model-id" if model_id_option is not None else "ID", model_id)
    root = require_registry(models_dir)
    done = activate(root, model_id, reason="manual set-active")
    if json_mode:
        output.emit_json(output.pointer_json(done.pointer))
    else:
        output.render_set_active(done.pointer, changed=done.changed)


def _one_model_id(argument: str | None, option: str | None) -> str:
    """The bundle id given as ``ID`` or ``--model-id``; a usage error if neither, or two."""
    from typer._click.exceptions import UsageError

    if argument is not None and option is not None and argument != option:
        raise UsageError(
            f"Got two different bundle ids: {argument!r} (ID) and {option!r} (--model-id); "
            "give one."
        )
    model_id = argument if argument is not None else option
    if model_id is None:
        raise UsageError("Missing the bundle id: give it as ID or with --model-id.")
    return model_id


@model_app.command()
def resolve(models_dir: ModelsDir = DEFAULT_MODELS_DIR, json_mode: Json = False) -> None:
    """Show the bundle inference would run, and whether the pointer had to be repaired."""
    from taskclf.cli import output
    from taskclf.model_registry import resolve_active_model

    root = require_registry(models_dir)
    with output.scanning(root, json_mode=json_mode):
        bundle, report = resolve_active_model(root)
    if bundle is None:
        assert report is not None
        if json_mode:
            # The error shape of every failure, plus the exclusions that explain it.
            sentence = output.no_eligible_message(report, root)
            message = sentence[:-1] + "." if sentence.endswith(":") else sentence
            output.print_error(message)
            output.emit_json({"error": message, "excluded": output.exclusions_json(report)})
        else:
            output.render_no_eligible(report, root)
        raise typer.Exit(1)
    data, detail = resolution_view(root, bundle, report)
    if json_mode:
        output.emit_json(data)
    else:
        output.render_resolution(bundle, data["source"], detail)


def resolution_view(
    root: Path, bundle: ModelBundle, report: SelectionReport | None
) -> tuple[dict[str, Any], str]:
    """The JSON document and the explaining sentence of a successful resolution."""
    from taskclf.cli import output
    from taskclf.model_registry.pointer import locate_active_bundle

    data: dict[str, Any] = {"active": output.bundle_summary(bundle)}
    if report is None:
        data.update(source="pointer", pointer_repaired=False)
        return data, f"Followed the active pointer ({root / 'active.json'}) to {bundle.model_id}."
    # Quietly: resolution has already warned about the pointer it could not use.
    repaired = locate_active_bundle(root, warn=False) == bundle.path
    data.update(
        source="scan",
        pointer_repaired=repaired,
        ranked=len(report.ranked),
        excluded=output.exclusions_json(report),
    )
    outcome = (
        "and repaired active.json to point at it"
        if repaired
        else "but could not repair active.json (see the warning above)"
    )
    detail = (
        f"The active pointer was missing or unusable: scanned the registry, selected "
        f"{bundle.model_id} (best of {len(report.ranked)} eligible, "
        f"{len(report.excluded)} excluded) {outcome}."
    )
    return data, detail


@model_app.command()
def history(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    limit: Annotated[
        int, typer.Option("--limit", help="Show at most this many transitions (newest first).")
    ] = 20,
    json_mode: Json = False,
) -> None:
    """The active pointer's transitions from active_history.jsonl, newest first."""
    from taskclf.cli import output
    from taskclf.model_registry import read_active_history

    if limit < 1:
        fail(f"--limit must be at least 1 (got {limit}).")
    root = require_registry(models_dir)
    entries = list(reversed(read_active_history(root)))[:limit]
    if json_mode:
        output.emit_json(output.history_json(entries))
    else:
        output.render_history(entries)


@model_app.command()
def rollback(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Roll back to this bundle id (in the history or any valid one)."),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option("--steps", help="Go this many distinct previously active models back."),
    ] = None,
    dry_run: DryRun = False,
    json_mode: Json = False,
) -> None:
    """Re-activate an earlier model (default: the most recent usable previous one)."""
    from taskclf.cli import output
    from taskclf.model_registry.activation import execute_rollback, plan_rollback

    require_name("--to", to)
    root = require_registry(models_dir)
    plan = plan_rollback(root, to=to, steps=steps)
    if dry_run:
        if json_mode:
            output.emit_json(output.rollback_json(plan, None))
        else:
            output.render_rollback_plan(plan)
        return
    pointer = execute_rollback(root, plan)
    if json_mode:
        output.emit_json(output.rollback_json(plan, pointer))
    else:
        output.render_rollback(plan, pointer)


@model_app.command()
def promote(
    candidate_dir: Annotated[
        Path,
        typer.Argument(
            metavar="CANDIDATE_DIR",
            help="The bundle directory to add to the registry.",
            show_default=False,
        ),
    ],
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    min_improvement: Annotated[
        float,
        typer.Option(
            "--min-improvement",
            help="Hysteresis: the pointer moves only if the new best beats the active "
            "model's macro_f1 by at least this much.",
        ),
    ] = 0.0,
    move: Annotated[
        bool, typer.Option("--move", help="Move the candidate instead of copying it.")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Bundle name in the registry (default: the directory name)."),
    ] = None,
    json_mode: Json = False,
) -> None:
    """Add a bundle to the registry, re-rank, and move the pointer to the best if it changed."""
    from taskclf.cli import output
    from taskclf.model_registry import SelectionPolicy, promote_bundle

    require_name("--name", name)
    if os.path.lexists(models_dir) and not os.path.isdir(models_dir):
        # promote creates a missing registry, but never replaces a file with one.
        require_registry(models_dir)
    if not math.isfinite(min_improvement) or min_improvement < 0:
        fail(f"--min-improvement must be a finite number >= 0 (got {min_improvement}).")
    policy = SelectionPolicy(min_improvement=min_improvement)
    with output.scanning(Path(models_dir), json_mode=json_mode, what="Ranking"):
        result = promote_bundle(candidate_dir, models_dir, policy=policy, move=move, name=name)
    explanation = explain_promotion(result, min_improvement)
    if json_mode:
        output.emit_json(output.promotion_json(result, explanation))
    else:
        output.render_promotion(result.bundle, result.report, explanation)


def explain_promotion(result: PromotionResult, min_improvement: float) -> str:
    """Why the pointer moved, or why it did not (not the best, already active, hysteresis)."""
    from taskclf.cli.output import num, pointer_model_id

    best = result.report.best
    promoted = result.bundle.model_id
    ids = [b.model_id for b in result.report.ranked]
    if promoted in ids:
        standing = f"{promoted} ranks #{ids.index(promoted) + 1} of {len(ids)} eligible"
    else:
        reason = next(
            (e.reason for e in result.report.excluded if e.model_id == promoted), "not eligible"
        )
        standing = f"{promoted} is not ranked ({reason})"
    previous = pointer_model_id(result.previous)
    if result.active_updated:
        assert best is not None
        return (
            f"The active pointer moved from {previous or 'nothing'} to {best.model_id} "
            f"(the best eligible bundle, macro_f1={num(_macro(best))}); {standing}."
        )
    if best is None:
        return f"The active pointer did not change: no bundle is eligible; {standing}."
    if best.model_id == previous:
        return f"The active pointer did not change: {best.model_id} is still the best; {standing}."
    current_f1 = (result.previous.reason or {}).get("macro_f1") if result.previous else None
    return (
        f"The active pointer did not change (hysteresis): the best, {best.model_id} "
        f"(macro_f1={num(_macro(best))}), does not beat the active {previous} "
        f"(macro_f1={num(current_f1)}) by --min-improvement {min_improvement:g}; {standing}."
    )


def _macro(bundle: ModelBundle) -> float | None:
    return bundle.metrics.macro_f1 if bundle.metrics else None


@model_app.command()
def index(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    read: Annotated[
        bool,
        typer.Option("--read", help="Show the cached index.json and whether it is stale."),
    ] = False,
    json_mode: Json = False,
) -> None:
    """Rank the registry and write index.json (or, with --read, show the cached one)."""
    from taskclf.cli import output
    from taskclf.model_registry import find_best_model, read_index_cache, write_index_cache
    from taskclf.model_registry.index import INDEX_FILE, index_staleness

    root = require_registry(models_dir)
    path = root / INDEX_FILE
    if read:
        cache = read_index_cache(root)
        if cache is None:
            fail(
                f"No usable index at {path} (missing or invalid); "
                "run `taskclf model index` to write it."
            )
        with output.scanning(root, json_mode=json_mode, what="Comparing"):
            changes = index_staleness(root, cache)
        if json_mode:
            output.emit_json(
                {"index": cache.model_dump(mode="json"), "stale": bool(changes), "changes": changes}
            )
        else:
            output.render_index_read(cache, path, changes)
        return
    with output.scanning(root, json_mode=json_mode, what="Ranking"):
        cache = write_index_cache(root, find_best_model(root))
    if json_mode:
        output.emit_json(output.index_summary_json(cache, path))
    else:
        output.render_index_written(cache, path)


@model_app.command()
def verify(models_dir: ModelsDir = DEFAULT_MODELS_DIR, json_mode: Json = False) -> None:
    """Check bundles, pointer, history, index and leftovers; exit 1 on any error (for CI)."""
    from taskclf.cli import output
    from taskclf.model_registry.verify import verify_registry

    # A missing registry is a finding like any other, reported in the same format.
    root = Path(os.path.abspath(models_dir))
    with output.scanning(root, json_mode=json_mode, what="Verifying"):
        report = verify_registry(root)
    if json_mode:
        output.emit_json(report.model_dump(mode="json"))
    else:
        output.render_verify(report)
        if any(f.code == "registry-missing" for f in report.findings):
            advice = options.registry_advice(models_dir)
            output.say(advice[0].upper() + advice[1:])
    if not report.healthy:
        raise typer.Exit(1)


@model_app.command()
def prune(
    keep: Annotated[
        int,
        typer.Option("--keep", help="Keep the top N ranked eligible bundles.", show_default=False),
    ],
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    keep_history: Annotated[
        int,
        typer.Option(
            "--keep-history",
            help="Also keep every bundle named in the last K history entries (rollback targets).",
        ),
    ] = 10,
    include_invalid: Annotated[
        bool,
        typer.Option("--include-invalid", help="Allow deleting invalid bundles too."),
    ] = False,
    dry_run: DryRun = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete without asking for confirmation.")
    ] = False,
    json_mode: Json = False,
) -> None:
    """Delete old bundles, never the active one, the top N, or recent rollback targets."""
    from taskclf.cli import output
    from taskclf.model_registry.retention import execute_prune, plan_prune

    if keep < 0:
        fail(f"--keep must be at least 0 (got {keep}).")
    if keep_history < 0:
        fail(f"--keep-history must be at least 0 (got {keep_history}).")
    root = require_registry(models_dir)
    with output.scanning(root, json_mode=json_mode, what="Planning a prune of"):
        plan = plan_prune(
            root, keep=keep, keep_history=keep_history, include_invalid=include_invalid
        )
    count = len(plan.to_delete)
    if dry_run or (count == 0 and not plan.leftovers):
        if json_mode:
            output.emit_json(output.prune_json(plan, executed=False))
        else:
            output.render_prune_plan(plan, executed=False)
        return
    shown = False
    # Confirmation guards bundles; stale leftovers alone are removed without asking.
    if count and not yes:
        if not options.stdin_is_terminal():
            fail(
                f"Refusing to delete {count} bundle(s) from {root} without confirmation: "
                "stdin is not a terminal; review the plan with --dry-run, then pass --yes."
            )
        if not json_mode:
            output.render_prune_plan(plan, executed=False)
            shown = True
        if not output.confirm(f"Delete {count} bundle(s) from {root}?"):
            fail("Prune cancelled; nothing was deleted.")
    plan = execute_prune(plan)
    if json_mode:
        output.emit_json(output.prune_json(plan, executed=True))
    else:
        output.render_prune_plan(plan, executed=True, table=not shown)
