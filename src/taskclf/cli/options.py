"""Options shared by every command, and the one way a command fails on purpose.

Only typer is imported here: this module loads on every ``taskclf`` start.
"""

from __future__ import annotations

import json
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


_invocation = {"json": False}
"""Whether the running command was given ``--json``: the root callback resets it on every
invocation, the option's callback sets it, so a failure raised anywhere below can still
answer in JSON (see :func:`print_error`)."""


def reset_invocation() -> None:
    """Forget the previous command's options (one process may run several, e.g. in tests)."""
    _invocation["json"] = False


def _remember_json(value: bool) -> bool:
    if value:
        _invocation["json"] = True
    return value


Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print exactly one JSON document on stdout and nothing else "
        '(on an expected failure: {"error": "<sentence>"}).',
        callback=_remember_json,
    ),
]

DEFAULT_MODELS_DIR = Path("models")


def json_requested() -> bool:
    """True when the running command was given ``--json``."""
    return _invocation["json"]


def print_error(message: str, *, json_mode: bool = False) -> None:
    """Report an expected failure: ``Error: ...`` on stderr, and in JSON mode also
    ``{"error": ...}`` as the one JSON document on stdout, so scripts always get JSON."""
    sys.stderr.write(f"Error: {message}\n")
    if json_mode:
        sys.stdout.write(json.dumps({"error": message}, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def fail(message: str) -> NoReturn:
    """Print one sentence on stderr and exit 1 (an expected failure, never a traceback)."""
    print_error(message, json_mode=json_requested())
    raise typer.Exit(1)


def require_registry(models_dir: Path) -> Path:
    """The registry as an absolute path; exit 1 with advice if it is not a directory."""
    root = Path(os.path.abspath(models_dir))
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        from_env = os.environ.get(MODELS_DIR_ENV)
        if from_env and Path(from_env) == models_dir:
            # Telling someone to "set $TASKCLF_MODELS_DIR" when it is already set (to the
            # wrong place) sends them looking in the wrong direction.
            fail(
                f"Registry directory {root} {what}; it comes from ${MODELS_DIR_ENV}: "
                f"fix or unset it, or pass --models-dir DIR."
            )
        fail(
            f"Registry directory {root} {what}; pass --models-dir DIR or set "
            f"${MODELS_DIR_ENV} (try `taskclf demo` for a sample registry)."
        )
    return root


def stdin_is_terminal() -> bool:
    """True when a person can answer a confirmation prompt."""
    return sys.stdin.isatty()
