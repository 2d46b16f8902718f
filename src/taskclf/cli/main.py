"""The ``taskclf`` application: sub-apps ``train`` and ``model``, ``demo``, and the error policy.

Error policy (CLI.md): a failure the user can cause (a registry error, or
an ``OSError`` on a registry file) prints one sentence on stderr and exits
1; ``--debug`` or ``TASKCLF_DEBUG=1`` also prints the traceback. It lives in
the root group's ``invoke``, so it applies to every command however the
app is run (console script or a test runner). Usage errors keep click's
exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import shutil
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from taskclf.cli.model import model_app
from taskclf.cli.options import (
    DEBUG_ENV,
    Json,
    fail,
    json_requested,
    print_error,
    reset_invocation,
)
from taskclf.cli.train import train_app


class _PolicyGroup(TyperGroup):
    """The root command group; turns expected errors into one sentence and exit 1."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            message = expected_error_message(exc)
            if message is None:
                raise
            if _debug_requested(ctx):
                traceback.print_exception(exc, file=sys.stderr)
            print_error(message, json_mode=json_requested())
            raise typer.Exit(1) from None


def expected_error_message(exc: BaseException) -> str | None:
    """The one-sentence message for an expected failure, or ``None`` for a bug."""
    from taskclf.model_registry.errors import RegistryError

    if isinstance(exc, RegistryError):
        message = str(exc)
    elif isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        # copytree collects one (source, destination, why) per file that failed.
        failures = exc.args[0] or [("the candidate", None, "copy failed")]
        source, _, why = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        message = f"Cannot copy {source}: {why}{more}; nothing was added to the registry"
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


def _debug_requested(ctx: Any) -> bool:
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return bool(obj.get("debug"))


class _StderrLogHandler(logging.Handler):
    """Library warnings go to the current stderr, never to stdout (JSON stays pure)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(f"warning: {self.format(record)}\n")
        except Exception:  # pragma: no cover - logging must never break a command
            self.handleError(record)


def _route_library_logs() -> None:
    logger = logging.getLogger("taskclf")
    if not any(isinstance(h, _StderrLogHandler) for h in logger.handlers):
        logger.addHandler(_StderrLogHandler(logging.WARNING))


app = typer.Typer(
    name="taskclf",
    cls=_PolicyGroup,
    help="Operate taskclf's model registry: list, activate, promote, roll back, verify, prune.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(train_app, name="train")
app.add_typer(model_app, name="model")


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help="Show the full traceback of a failure (also: TASKCLF_DEBUG=1).",
        ),
    ] = False,
) -> None:
    """Operate taskclf's model registry from the terminal, cron or CI."""
    reset_invocation()
    ctx.ensure_object(dict)["debug"] = debug
    _route_library_logs()


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Workspace for the sample registry (DIR/models) and the candidate "
            "(DIR/candidates); must be missing or empty. Default: a new temporary directory.",
            show_default=False,
        ),
    ] = None,
    json_mode: Json = False,
) -> None:
    """Build a sample registry offline and tour list, resolve, promote, history, rollback."""
    from taskclf.demo import DemoDirectoryError, run_demo

    try:
        run_demo(directory, json_mode=json_mode)
    except DemoDirectoryError as exc:
        fail(str(exc))


def main() -> None:
    """Console-script entry point (``taskclf``)."""
    app()
