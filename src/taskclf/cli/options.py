"""Options shared by every command, and the one way a command fails on purpose.

Only typer is imported here: this module loads on every ``taskclf`` start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

MODELS_DIR_ENV = "TASKCLF_MODELS_DIR"
DEBUG_ENV = "TASKCLF_DEBUG"

ModelsDir = Annotated[
    Path,
    typer.Option(
        "--models-dir",
        envvar=MODELS_DIR_ENV,
        help="Registry directory (default: $TASKCLF_MODELS_DIR, else ./models).",
        show_default=False,
    ),
]
Json = Annotated[
    bool,
    typer.Option("--json", help="Print exactly one JSON document on stdout and nothing else."),
]

DEFAULT_MODELS_DIR = Path("models")


def print_error(message: str) -> None:
    """Write the one-sentence ``Error: ...`` line of an expected failure on stderr."""
    sys.stderr.write(f"Error: {message}\n")


def fail(message: str) -> NoReturn:
    """Print one sentence on stderr and exit 1 (an expected failure, never a traceback)."""
    print_error(message)
    raise typer.Exit(1)


def require_registry(models_dir: Path) -> Path:
    """The registry as an absolute path; exit 1 with advice if it is not a directory."""
    root = Path(os.path.abspath(models_dir))
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        fail(
            f"Registry directory {root} {what}; pass --models-dir DIR or set "
            f"${MODELS_DIR_ENV} (try `taskclf demo` for a sample registry)."
        )
    return root


def stdin_is_terminal() -> bool:
    """True when a person can answer a confirmation prompt."""
    return sys.stdin.isatty()
