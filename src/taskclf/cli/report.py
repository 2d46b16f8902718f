"""``taskclf report``: write the registry's interactive HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from taskclf.cli.options import DEFAULT_MODELS_DIR, Json, ModelsDir, fail, require_registry

DEFAULT_REPORT_FILE = Path("taskclf-report.html")


def report_command(
    models_dir: ModelsDir = DEFAULT_MODELS_DIR,
    out: Annotated[
        Path,
        typer.Option("--out", help="The HTML file to write (replaced if it exists)."),
    ] = DEFAULT_REPORT_FILE,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the report in the default web browser.")
    ] = False,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare",
            help="Compare these two model ids instead of the active bundle and the best "
            "challenger.",
            metavar="A B",
        ),
    ] = None,
    json_mode: Json = False,
) -> None:
    """Write one self-contained HTML page: overview, F1 over time, ranking, matrices, history."""
    from taskclf.cli import output
    from taskclf.report import build_report_data, render_report, write_html

    root = require_registry(models_dir)
    # Checked before the scan, which can take seconds on a large registry.
    folder = out.expanduser().absolute().parent
    if not folder.is_dir():
        fail(
            f"Cannot write the report to {out}: the directory {folder} does not exist; "
            "create it or choose another --out"
        )
    if out.expanduser().is_dir():
        fail(f"Cannot write the report to {out}: it is a directory; give a file name with --out")
    with output.scanning(root, json_mode=json_mode):
        data = build_report_data(root, compare=compare)
    path = write_html(out, render_report(data))
    if json_mode:
        output.emit_json({"path": str(path), "report": data.model_dump(mode="json")})
    else:
        output.say(f"Report written to {path}")
    if open_browser:
        import webbrowser

        webbrowser.open(path.as_uri())
