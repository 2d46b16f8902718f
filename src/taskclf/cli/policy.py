"""The CLI's error policy and registry check, without typer.

Both ways a command runs share these: the typer application
(:mod:`taskclf.cli.main`) and the fast path of ``taskclf model resolve``
(:mod:`taskclf.cli.entry`), which must start without importing typer.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

MODELS_DIR_ENV = "TASKCLF_MODELS_DIR"
DEBUG_ENV = "TASKCLF_DEBUG"

FLAGS = {
    "name": "--name",
    "to": "--to",
    "steps": "--steps",
    "models_dir": "--models-dir",
    "model_id": "--model-id",
    "force": "--force",
    "max_bytes": "--max-bytes",
}
"""The command-line flag for each library argument its messages may name
(``the name= argument`` reads ``--name`` here)."""


def expected_error_message(exc: BaseException) -> str | None:
    """The one-sentence message for an expected failure, or ``None`` for a bug."""
    from taskclf.model_registry.errors import RegistryError, argument_phrase

    if isinstance(exc, RegistryError):
        message = str(exc)
        # Library messages name arguments (``the name= argument``); here they are flags.
        for argument, flag in FLAGS.items():
            message = message.replace(argument_phrase(argument), flag)
    elif isinstance(exc, OSError):
        # For a failed rename (atomic replace) the destination is the file that matters.
        name = exc.filename2 or exc.filename
        target = f" {name}" if name else ""
        what = exc.strerror or str(exc)
        message = (
            f"Cannot access{target}: {what}; check that the registry exists and is "
            "readable and writable by this user, then retry"
        )
    else:
        return None
    return message if message.endswith((".", "?", "!")) else message + "."


class StderrLogHandler(logging.Handler):
    """Library warnings go to the current stderr, never to stdout (JSON stays pure),
    escaped like everything else the CLI prints."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from taskclf.cli import output

            output.print_warning(self.format(record))
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


def route_library_logs() -> None:
    """Send the library's warnings (logger ``taskclf``) to stderr, once per process."""
    logger = logging.getLogger("taskclf")
    if not any(isinstance(h, StderrLogHandler) for h in logger.handlers):
        logger.addHandler(StderrLogHandler(logging.WARNING))


def registry_problem(models_dir: Path) -> tuple[Path, str | None]:
    """The registry as an absolute path, and why it cannot be used (with advice), or None.

    Every command that needs an existing registry checks this first, so a missing
    one reads the same everywhere: the library's sentence, then the CLI's advice.
    """
    from taskclf.model_registry.errors import registry_not_found
    from taskclf.model_registry.locations import is_remote

    if is_remote(models_dir):
        # An object-store registry: the library reports a missing bucket or prefix.
        return models_dir, None
    root = Path(os.path.abspath(models_dir))
    problem = registry_not_found(root)
    if problem is None:
        return root, None
    return root, f"{problem}; {registry_advice(models_dir)}"


def registry_advice(models_dir: Path) -> str:
    """What to do about a missing registry, in the CLI's terms (flag and variable)."""
    from_env = os.environ.get(MODELS_DIR_ENV)
    if from_env and Path(from_env) == models_dir:
        # Telling someone to "set $TASKCLF_MODELS_DIR" when it is already set (to the
        # wrong place) sends them looking in the wrong direction.
        return f"it comes from ${MODELS_DIR_ENV}: fix or unset it, or pass --models-dir DIR."
    return (
        f"pass --models-dir DIR or set ${MODELS_DIR_ENV} "
        "(try `taskclf demo` for a sample registry)."
    )
