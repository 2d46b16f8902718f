"""``taskclf train``: looking at the trained bundles in a registry."""

from __future__ import annotations

from typing import Annotated

import typer

from taskclf.cli.options import (
    DEFAULT_MODELS_DIR,
    Json,
    Labels,
    ModelsDir,
    fail,
    registry_config,
    require_registry,
)

train_app = typer.Typer(
    help="Inspect trained model bundles.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)


@train_app.command("list")
def list_command(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    sort: Annotated[
        str,
        typer.Option(
            "--sort", help="Sort key, descending, nulls last: macro_f1, weighted_f1 or created_at."
        ),
    ] = "macro_f1",
    eligible: Annotated[
        bool, typer.Option("--eligible", help="Show only eligible bundles.")
    ] = False,
    schema_hash: Annotated[
        str | None,
        typer.Option(
            "--schema-hash",
            help="Check compatibility against this schema hash instead of each bundle's "
            "declared schema version.",
        ),
    ] = None,
    labels: Labels = None,
    json_mode: Json = False,
) -> None:
    """One row per bundle: metrics, precision, eligibility and the active marker (*)."""
    from taskclf.cli import output
    from taskclf.model_registry.listing import SORT_KEYS, list_rows

    if sort not in SORT_KEYS:
        fail(f"Unknown --sort value {sort!r}; allowed values: {', '.join(SORT_KEYS)}.")
    root = require_registry(models_dir)
    config = registry_config(root, labels)
    with output.scanning(root, json_mode=json_mode):
        rows = list_rows(
            root, sort=sort, schema_hash=schema_hash, eligible_only=eligible, config=config
        )
    if json_mode:
        output.emit_json(output.bundle_rows_json(rows))
    else:
        output.render_bundle_rows(rows, eligible_only=eligible)
