"""Options shared by every command, and the one way a command fails on purpose.

Only typer is imported here: this module loads on every ``taskclf`` start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

# DEBUG_ENV and registry_advice are re-exported: commands know them from here.
from taskclf.cli.policy import DEBUG_ENV as DEBUG_ENV
from taskclf.cli.policy import MODELS_DIR_ENV, registry_problem
from taskclf.cli.policy import registry_advice as registry_advice

if TYPE_CHECKING:
    from taskclf.model_registry.config import RegistryConfig

ModelsDir = Annotated[
    Path,
    typer.Option(
        "--models-dir",
        envvar=MODELS_DIR_ENV,
        help="Registry directory (default: $TASKCLF_MODELS_DIR, else ./models).",
        show_default=False,
    ),
]


_invocation = {"json": False, "debug": False}
"""Whether the running command was given ``--json`` (or ``--debug``): the root callback
resets it on every invocation, the options' callbacks set it, so a failure raised anywhere
below can still answer in JSON (see :func:`print_error`) and show its traceback."""


def reset_invocation(*, debug: bool = False) -> None:
    """Forget the previous command's options (one process may run several, e.g. in tests)."""
    _invocation["json"] = False
    _invocation["debug"] = debug


def remember_debug(ctx: object, param: object, value: bool) -> bool:
    """Option callback: ``--debug`` given after the sub-command (click's signature)."""
    if value:
        _invocation["debug"] = True
    return value


def debug_requested() -> bool:
    """True when the running command was given ``--debug`` (or ``TASKCLF_DEBUG=1``)."""
    return _invocation["debug"]


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

Labels = Annotated[
    str | None,
    typer.Option(
        "--labels",
        help="Comma-separated labels the registry's classifier predicts, overriding "
        "registry.toml and $TASKCLF_LABELS (default: those, else taskclf's eight).",
        show_default=False,
    ),
]


def registry_config(models_dir: Path, labels: str | None) -> RegistryConfig:
    """The registry's labels and schemas, with ``--labels`` applied (errors are one sentence)."""
    from taskclf.model_registry.config import load_registry_config

    return load_registry_config(models_dir, labels=labels)


def json_requested() -> bool:
    """True when the running command was given ``--json``."""
    return _invocation["json"]


def print_error(message: str, *, json_mode: bool = False) -> None:
    """Report an expected failure: ``Error: ...`` on stderr, and in JSON mode also
    ``{"error": ...}`` as the one JSON document on stdout, so scripts always get JSON."""
    from taskclf.cli import output

    output.print_error(message, json_mode=json_mode)


def fail(message: str) -> NoReturn:
    """Print one sentence on stderr and exit 1 (an expected failure, never a traceback)."""
    print_error(message, json_mode=json_requested())
    raise typer.Exit(1)


def require_registry(models_dir: Path) -> Path:
    """The registry as an absolute path; exit 1 with advice if it is not a directory.

    Every command that needs an existing registry calls this first, so a missing
    one reads the same everywhere: the library's sentence, then the CLI's advice.
    """
    root, problem = registry_problem(models_dir)
    if problem is not None:
        fail(problem)
    return root


def require_name(flag: str, value: str | None) -> None:
    """Exit 1 when a bundle name given as ``flag`` is empty or only spaces."""
    if value is not None and not value.strip():
        fail(f"{flag} must name a bundle (got {value!r}); run `taskclf train list` to see them.")


def stdin_is_terminal() -> bool:
    """True when a person can answer a confirmation prompt."""
    return sys.stdin.isatty()


Alias = Annotated[
    str,
    typer.Option(
        "--alias",
        help="Which named pointer (default: active, i.e. active.json); names match "
        "[a-z][a-z0-9_-]{0,63}. `taskclf model aliases` lists them.",
    ),
]
DEFAULT_ALIAS = "active"

Message = Annotated[
    str | None,
    typer.Option("--message", help="Why: recorded in the pointer's history entry."),
]

Actor = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who: recorded in the history entry (default: $TASKCLF_ACTOR, else user@host).",
        show_default=False,
    ),
]
