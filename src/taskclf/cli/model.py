"""``taskclf model``: the active pointer, promotion, the index, health checks and retention.

Each command parses its options, calls the registry and renders through
:mod:`taskclf.cli.output`; the registry is imported inside the commands
so that ``taskclf --help`` stays fast.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from taskclf.cli import options
from taskclf.cli.options import (
    DEFAULT_ALIAS,
    DEFAULT_MODELS_DIR,
    Actor,
    Alias,
    Json,
    Labels,
    Message,
    ModelsDir,
    fail,
    registry_config,
    require_name,
    require_registry,
)

# resolution_view is re-exported: the demo tours resolution through it.
from taskclf.cli.resolving import resolution_view as resolution_view
from taskclf.cli.resolving import run_resolve

if TYPE_CHECKING:
    from taskclf.model_registry import ModelBundle, PromotionResult

model_app = typer.Typer(
    help="Manage the active model: activate, resolve, promote, roll back, index, verify, prune, "
    "show, diff.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
alias_app = typer.Typer(
    help="Manage named aliases (pointers besides active).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
model_app.add_typer(alias_app, name="alias")

MAX_BUNDLE_BYTES_ENV = "TASKCLF_MAX_BUNDLE_BYTES"
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_byte_size(text: str) -> int | None:
    """``"500M"`` -> 524288000: bytes, or a number with a binary suffix (K, M, G, T,
    optionally followed by ``B`` or ``iB``); None if ``text`` is not such a size."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    number, unit = match.groups()
    if "." in number and not unit:
        return None  # a fraction of a byte
    return int(float(number) * _SIZE_UNITS[unit.lower()])


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
    alias: Alias = DEFAULT_ALIAS,
    pin: Annotated[
        bool | None,
        typer.Option(
            "--pin/--unpin",
            help="Pin the alias (promotion and self-heal never move it) or release the pin; "
            "default: keep the alias's pin state.",
            show_default=False,
        ),
    ] = None,
    message: Message = None,
    actor: Actor = None,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """Point active.json (or --alias NAME) at a bundle (it must exist, be valid, be compatible)."""
    from taskclf.cli import output
    from taskclf.model_registry.activation import activate, set_alias_pin

    model_id = _one_model_id(model_id_argument, model_id_option, required=pin is None)
    if model_id is not None:
        require_name("--model-id" if model_id_option is not None else "ID", model_id)
    root = require_registry(models_dir)
    config = registry_config(root, labels)
    if model_id is None:
        assert pin is not None
        done = set_alias_pin(root, pin, alias=alias, message=message, actor=actor, config=config)
    else:
        done = activate(
            root,
            model_id,
            reason="manual set-active",
            alias=alias,
            message=message,
            actor=actor,
            pin=pin,
            config=config,
        )
    if json_mode:
        output.emit_json(output.pointer_json(done.pointer))
    else:
        output.render_set_active(
            done.pointer, alias, changed=done.changed, pin_only=model_id is None
        )


def _one_model_id(argument: str | None, option: str | None, *, required: bool) -> str | None:
    """The bundle id given as ``ID`` or ``--model-id``; a usage error if two, or if neither
    and it is ``required`` (``--pin``/``--unpin`` alone keep the alias's bundle)."""
    from typer._click.exceptions import UsageError

    if argument is not None and option is not None and argument != option:
        raise UsageError(
            f"Got two different bundle ids: {argument!r} (ID) and {option!r} (--model-id); "
            "give one."
        )
    model_id = argument if argument is not None else option
    if model_id is None and required:
        raise UsageError(
            "Missing the bundle id: give it as ID or with --model-id (or --pin / --unpin alone "
            "to change the pin where the alias points)."
        )
    return model_id


@model_app.command()
def resolve(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    alias: Alias = DEFAULT_ALIAS,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """Show the bundle inference would run, and whether the pointer had to be repaired."""
    # The body is shared with the console script's fast path (taskclf.cli.entry).
    status = run_resolve(models_dir, alias, labels, json_mode=json_mode)
    if status:
        raise typer.Exit(status)


@model_app.command()
def history(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    limit: Annotated[
        int, typer.Option("--limit", help="Show at most this many transitions (newest first).")
    ] = 20,
    alias: Alias = DEFAULT_ALIAS,
    json_mode: Json = False,
) -> None:
    """The pointer's transitions (who, why) from active_history.jsonl, newest first."""
    from taskclf.cli import output
    from taskclf.model_registry import read_active_history

    if limit < 1:
        fail(f"--limit must be at least 1 (got {limit}).")
    root = require_registry(models_dir)
    entries = list(reversed(read_active_history(root, alias=alias)))[:limit]
    if json_mode:
        output.emit_json(output.history_json(entries))
    else:
        output.render_history(entries, alias)


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
    alias: Alias = DEFAULT_ALIAS,
    message: Message = None,
    actor: Actor = None,
    dry_run: DryRun = False,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """Re-activate an earlier model (default: the most recent usable previous one)."""
    from taskclf.cli import output
    from taskclf.model_registry.activation import execute_rollback, plan_rollback

    require_name("--to", to)
    root = require_registry(models_dir)
    config = registry_config(root, labels)
    plan = plan_rollback(root, to=to, steps=steps, config=config, alias=alias)
    if dry_run:
        if json_mode:
            output.emit_json(output.rollback_json(plan, None))
        else:
            output.render_rollback_plan(plan)
        return
    pointer = execute_rollback(root, plan, config=config, message=message, actor=actor)
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
    max_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-bytes",
            envvar=MAX_BUNDLE_BYTES_ENV,
            help="Refuse a candidate whose files hold more than this (bytes, or with a "
            "binary suffix: 500M, 2G; default 10G, or $TASKCLF_MAX_BUNDLE_BYTES).",
            show_default=False,
        ),
    ] = None,
    alias: Annotated[
        str,
        typer.Option(
            "--alias",
            help="Run the overthrow against this alias only (default: active); a pinned "
            "alias never moves.",
        ),
    ] = DEFAULT_ALIAS,
    activate: Annotated[
        bool,
        typer.Option(
            "--activate/--no-activate",
            help="--no-activate registers the bundle and leaves every pointer alone.",
        ),
    ] = True,
    message: Message = None,
    actor: Actor = None,
    labels: Labels = None,
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
    limit = None if max_bytes is None else parse_byte_size(max_bytes)
    if max_bytes is not None and limit is None:
        fail(
            f"--max-bytes (or ${MAX_BUNDLE_BYTES_ENV}) must be a size in bytes, optionally "
            f"with a binary suffix such as 500M or 2G (got {max_bytes!r})."
        )
    policy = SelectionPolicy(min_improvement=min_improvement)
    config = registry_config(models_dir, labels)
    with output.scanning(Path(models_dir), json_mode=json_mode, what="Ranking"):
        result = promote_bundle(
            candidate_dir,
            models_dir,
            policy=policy,
            move=move,
            name=name,
            max_bytes=limit,
            config=config,
            alias=alias,
            activate=activate,
            message=message,
            actor=actor,
        )
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
    pointer = (
        "The active pointer"
        if result.alias == DEFAULT_ALIAS
        else f"The pointer of alias {result.alias}"
    )
    if not result.activate:
        return (
            f"Registered without activating (--no-activate): no pointer changed; {standing}; "
            f"point an alias at it with `taskclf model set-active --alias NAME --model-id "
            f"{promoted}`."
        )
    if result.active_updated:
        assert best is not None
        return (
            f"{pointer} moved from {previous or 'nothing'} to {best.model_id} "
            f"(the best eligible bundle, macro_f1={num(_macro(best))}); {standing}."
        )
    if best is None:
        return f"{pointer} did not change: no bundle is eligible; {standing}."
    if best.model_id == previous:
        return f"{pointer} did not change: {best.model_id} is still the best; {standing}."
    if result.pinned:
        return (
            f"{pointer} did not change: it is pinned to {previous} (the best is now "
            f"{best.model_id}, macro_f1={num(_macro(best))}); {standing}; unpin it with "
            f"`taskclf model set-active --alias {result.alias} --unpin` to let promotions move it."
        )
    current_f1 = (result.previous.reason or {}).get("macro_f1") if result.previous else None
    return (
        f"{pointer} did not change (hysteresis): the best, {best.model_id} "
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
    labels: Labels = None,
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
    config = registry_config(root, labels)
    with output.scanning(root, json_mode=json_mode, what="Ranking"):
        cache = write_index_cache(root, find_best_model(root, config=config))
    if json_mode:
        output.emit_json(output.index_summary_json(cache, path))
    else:
        output.render_index_written(cache, path)


@model_app.command()
def verify(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Hash every sealed bundle's files (default: only the active bundle's; "
            "the others are checked by size).",
        ),
    ] = False,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """Check bundles, pointer, history, index and leftovers; exit 1 on any error (for CI)."""
    from taskclf.cli import output
    from taskclf.model_registry.storage import is_remote
    from taskclf.model_registry.verify import verify_registry

    # A missing registry is a finding like any other, reported in the same format.
    root = models_dir if is_remote(models_dir) else Path(os.path.abspath(models_dir))
    with output.scanning(root, json_mode=json_mode, what="Verifying"):
        report = verify_registry(root, deep=deep, labels=labels)
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
    labels: Labels = None,
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
    config = registry_config(root, labels)
    with output.scanning(root, json_mode=json_mode, what="Planning a prune of"):
        plan = plan_prune(
            root,
            keep=keep,
            keep_history=keep_history,
            include_invalid=include_invalid,
            config=config,
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


Deep = Annotated[
    bool,
    typer.Option("--deep", help="Hash the bundle's files for the manifest check (default: sizes)."),
]


@model_app.command()
def show(
    model_id: Annotated[
        str, typer.Argument(metavar="ID", help="Bundle directory name.", show_default=False)
    ],
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    deep: Deep = False,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """One bundle in full: training facts, schema, labels, per-class scores, files, manifest."""
    from taskclf.cli import output
    from taskclf.model_registry.inspection import describe_bundle

    root = require_registry(models_dir)
    description = describe_bundle(root, model_id, deep=deep, config=registry_config(root, labels))
    _require_valid(description.model_id, description.invalid_reason)
    if json_mode:
        output.emit_json(description.model_dump(mode="json"))
    else:
        output.render_bundle_description(description)


@model_app.command()
def diff(
    a: Annotated[str, typer.Argument(metavar="A", help="First bundle id.", show_default=False)],
    b: Annotated[str, typer.Argument(metavar="B", help="Second bundle id.", show_default=False)],
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    deep: Deep = False,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """What differs between two bundles, side by side (params, scores, schema, files...)."""
    from taskclf.cli import output
    from taskclf.model_registry.inspection import diff_bundles

    root = require_registry(models_dir)
    result = diff_bundles(root, a, b, deep=deep, config=registry_config(root, labels))
    for side in (result.a, result.b):
        _require_valid(side.model_id, side.invalid_reason)
    if json_mode:
        output.emit_json(output.bundle_diff_json(result))
    else:
        output.render_bundle_diff(result)


def _require_valid(model_id: str, invalid_reason: str | None) -> None:
    if invalid_reason is not None:
        fail(
            f"Bundle {model_id} is invalid ({invalid_reason}); fix it, or see "
            "`taskclf model verify` for the whole registry."
        )


@model_app.command()
def sync(
    source: Annotated[
        str, typer.Argument(metavar="SRC", help="Registry to copy from (a directory or s3://...).")
    ],
    destination: Annotated[
        str, typer.Argument(metavar="DST", help="Registry to copy into (a directory or s3://...).")
    ],
    with_pointer: Annotated[
        bool,
        typer.Option("--with-pointer", help="Also point DST at the bundle SRC's pointer names."),
    ] = False,
    json_mode: Json = False,
) -> None:
    """Copy the bundles DST lacks from SRC (verified by manifest), in either direction."""
    from taskclf.cli import output
    from taskclf.model_registry.sync import sync_registry

    result = sync_registry(source, destination, with_pointer=with_pointer)
    if json_mode:
        output.emit_json(result.model_dump(mode="json"))
    else:
        output.render_sync(result)


@model_app.command()
def package(
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            metavar="ARTIFACT...",
            help="The model file(s), or one directory whose tree is the bundle's content.",
            show_default=False,
        ),
    ],
    schema_version: Annotated[
        str,
        typer.Option(
            "--schema-version",
            help="Feature schema the model was trained on (v1..., or a version the "
            "--models-dir registry.toml declares).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", help="The bundle directory to create (must not exist).", show_default=False
        ),
    ],
    predictions: Annotated[
        Path | None,
        typer.Option("--predictions", help="CSV with a header and columns y_true,y_pred."),
    ] = None,
    confusion_matrix: Annotated[
        Path | None,
        typer.Option(
            "--confusion-matrix",
            help="JSON: a list of rows (true) of counts (predicted), or an object with "
            '"confusion_matrix" and "label_names" (like metrics.json).',
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Comma-separated labels in matrix order (default: the --models-dir registry's: "
            "registry.toml, $TASKCLF_LABELS, else taskclf's 8 labels).",
        ),
    ] = None,
    params: Annotated[
        str | None,
        typer.Option("--params", help="Training parameters: a JSON object, or a JSON file."),
    ] = None,
    dataset_hash: Annotated[
        str | None, typer.Option("--dataset-hash", help="Identifies the training data.")
    ] = None,
    train_from: Annotated[
        str | None, typer.Option("--train-from", help="Start of the training data.")
    ] = None,
    train_to: Annotated[
        str | None, typer.Option("--train-to", help="End of the training data.")
    ] = None,
    test_from: Annotated[
        str | None, typer.Option("--test-from", help="Start of the evaluation data.")
    ] = None,
    test_to: Annotated[
        str | None, typer.Option("--test-to", help="End of the evaluation data.")
    ] = None,
    git_commit: Annotated[
        str | None,
        typer.Option("--git-commit", help="Code version (default: git rev-parse HEAD here)."),
    ] = None,
    model_format: Annotated[
        str | None,
        typer.Option("--model-format", help="How to load it, e.g. lightgbm-text, sklearn-skops."),
    ] = None,
    promote_now: Annotated[
        bool,
        typer.Option("--promote", help="Then promote the bundle into --models-dir."),
    ] = False,
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    json_mode: Json = False,
) -> None:
    """Build a complete, sealed bundle from model files and an evaluation (and promote it)."""
    from taskclf.cli import output
    from taskclf.model_registry import promote_bundle, save_bundle
    from taskclf.model_registry.authoring import (
        check_prediction_labels,
        read_confusion_matrix_json,
        read_predictions_csv,
    )

    if (predictions is None) == (confusion_matrix is None):
        fail("Give exactly one of --predictions CSV or --confusion-matrix JSON.")
    if promote_now and Path(os.path.abspath(out)).parent == Path(os.path.abspath(models_dir)):
        fail(
            f"--out {out} is inside --models-dir {models_dir}, where --promote would copy it; "
            "write the bundle elsewhere (e.g. runs/NAME) and let --promote copy it in."
        )
    # The registry's labels and schemas fill in what the options leave out, so a bundle
    # packaged for a registry.toml registry is compatible with it.
    config = registry_config(Path(models_dir), None)
    label_list = _parse_labels(labels)
    y_true = y_pred = matrix = None
    try:
        parsed_params = _parse_params(params)
        if predictions is not None:
            y_true, y_pred = read_predictions_csv(predictions)
            # Checked here, not by save_bundle, so the error can name the CSV line.
            check_prediction_labels(predictions, y_true, y_pred, label_list or config.labels)
        else:
            assert confusion_matrix is not None
            matrix, file_labels = read_confusion_matrix_json(confusion_matrix)
            if label_list is None:
                label_list = file_labels
            elif file_labels is not None and file_labels != label_list:
                raise ValueError(
                    f"--labels ({', '.join(label_list)}) differ from the label_names in "
                    f"{confusion_matrix} ({', '.join(file_labels)}); give only one of them."
                )
    except ValueError as exc:
        fail(str(exc))
    if label_list is None:
        label_list = list(config.labels)
    bundle = save_bundle(
        out,
        list(artifacts),
        schema_version=schema_version,
        y_true=y_true,
        y_pred=y_pred,
        confusion_matrix=matrix,
        labels=label_list,
        params=parsed_params,
        dataset_hash=dataset_hash,
        train_date_from=train_from,
        train_date_to=train_to,
        test_date_from=test_from,
        test_date_to=test_to,
        git_commit=git_commit,
        model_format=model_format,
        schema_hash=config.schema_hash(schema_version),
    )
    result = None
    explanation = None
    if promote_now:
        with output.scanning(Path(models_dir), json_mode=json_mode, what="Ranking"):
            result = promote_bundle(bundle.path, models_dir)
        explanation = explain_promotion(result, 0.0)
    if json_mode:
        output.emit_json(output.package_json(bundle, result, explanation))
    else:
        output.render_package(bundle, result, explanation)


def _parse_labels(labels: str | None) -> list[str] | None:
    if labels is None:
        return None
    parsed = [label.strip() for label in labels.split(",")]
    if not all(parsed):
        fail(f"--labels {labels!r} has an empty label; give comma-separated names.")
    return parsed


def _parse_params(params: str | None) -> dict[str, Any] | None:
    import json

    if params is None:
        return None
    text = params
    if not params.lstrip().startswith("{"):
        path = Path(params)
        if not path.is_file():
            raise ValueError(
                f"--params {params!r} is neither a JSON object nor an existing JSON file."
            )
        text = path.read_text("utf-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is not valid JSON ({exc}).") from None
    if not isinstance(value, dict):
        raise ValueError("--params must be a JSON object (name: value).")
    return value


@model_app.command()
def seal(
    model_id: Annotated[
        str, typer.Argument(metavar="ID", help="The bundle to seal.", show_default=False)
    ],
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing manifest.json (after an intended change)."
        ),
    ] = False,
    json_mode: Json = False,
) -> None:
    """Add manifest.json (size and SHA-256 of every file) to a bundle in the registry."""
    from taskclf.cli import output
    from taskclf.model_registry.manifest import seal_registry_bundle

    root = require_registry(models_dir)
    manifest, replaced = seal_registry_bundle(root, model_id, force=force)
    if json_mode:
        output.emit_json(output.seal_json(root / model_id, manifest, replaced))
    else:
        output.render_seal(root / model_id, manifest, replaced)


@model_app.command("aliases")
def aliases(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR, labels: Labels = None, json_mode: Json = False
) -> None:
    """Every alias with its bundle, pin state, and when it last moved."""
    from taskclf.cli import output
    from taskclf.model_registry.alias_admin import list_aliases

    root = require_registry(models_dir)
    infos = list_aliases(root, config=registry_config(root, labels))
    if json_mode:
        output.emit_json(output.aliases_json(infos))
    else:
        output.render_aliases(infos, root)


@alias_app.command("delete")
def alias_delete(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The alias to delete (not active).")],
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    message: Message = None,
    actor: Actor = None,
    json_mode: Json = False,
) -> None:
    """Delete an alias's pointer; its history is kept as an archived audit trail."""
    from taskclf.cli import output
    from taskclf.model_registry.alias_admin import delete_alias

    pointer = delete_alias(models_dir, name, message=message, actor=actor)
    if json_mode:
        output.emit_json({"deleted": name, "pointer": output.pointer_json(pointer)})
    else:
        target = output.pointer_model_id(pointer) or "an unreadable pointer"
        output.say(
            f"Deleted alias {name} (it pointed at {target}); its history is kept in "
            f".aliases/{name}_history.deleted-*.jsonl."
        )
