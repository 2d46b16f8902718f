"""The ``taskclf`` application: sub-apps ``train`` and ``model``, ``demo``, and the error policy.

Error policy (CLI.md): a failure the user can cause (a registry error, or
an ``OSError`` on a registry file) prints one sentence on stderr and exits
1; ``--debug`` or ``TASKCLF_DEBUG=1`` also prints the traceback. It lives in
the root group, so it applies to every command however the app is run
(console script or a test runner). Usage errors keep click's exit code 2;
with ``--json`` on the command line they also print ``{"error": ...}`` on
stdout, so every failure gives a script one JSON document. Anything else
is a bug and keeps its traceback.

``--debug`` is accepted before the sub-command and after it: the root
group gives every command a copy of its option.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from taskclf.cli.model import model_app
from taskclf.cli.options import (
    DEBUG_ENV,
    Json,
    debug_requested,
    fail,
    json_requested,
    print_error,
    remember_debug,
    reset_invocation,
)
from taskclf.cli.policy import expected_error_message, route_library_logs
from taskclf.cli.report import report_command
from taskclf.cli.train import train_app


def _json_on_command_line(args: Sequence[str]) -> bool:
    return "--json" in args[: args.index("--")] if "--" in args else "--json" in args


class _PolicyGroup(TyperGroup):
    """The root command group; turns expected errors into one sentence and exit 1."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        debug = next((p for p in self.params if p.name == "debug"), None)
        if debug is not None:
            _give_debug_option(self, debug)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        ctx.meta["taskclf.json"] = _json_on_command_line(args)
        try:
            return super().parse_args(ctx, args)
        except _usage_error() as exc:
            _usage_error_as_json(ctx, exc)
            raise

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _usage_error() as exc:
            _usage_error_as_json(ctx, exc)
            raise
        except typer.Abort:
            # An interrupted prompt (Ctrl-C, end of input): typer prints "Aborted!", exit 1.
            if json_requested():
                from taskclf.cli import output

                output.emit_json({"error": "Aborted; nothing was changed."})
            raise
        except typer.Exit:
            raise
        except Exception as exc:
            message = expected_error_message(exc)
            if message is None:
                raise
            if debug_requested():
                from taskclf.cli import output

                output.print_traceback(exc)
            print_error(message, json_mode=json_requested())
            raise typer.Exit(1) from None


def _usage_error() -> type[Exception]:
    # typer vendors click; its UsageError is the base of every exit-2 error.
    from typer._click.exceptions import UsageError

    return UsageError


def _usage_error_as_json(ctx: Any, exc: Exception) -> None:
    """With ``--json`` on the command line, a usage error is also a JSON document."""
    if ctx.meta.get("taskclf.json"):
        from taskclf.cli import output

        output.emit_json({"error": exc.format_message()})  # type: ignore[attr-defined]


def _give_debug_option(group: Any, debug: Any) -> None:
    """Add ``--debug`` (a copy of the root's, without the environment variable) to
    every command below ``group``."""
    for command in getattr(group, "commands", {}).values():
        if any(p.name == "debug" for p in command.params):
            continue
        option = copy.copy(debug)
        option.envvar = None
        option.expose_value = False
        option.callback = remember_debug
        command.params.append(option)
        _give_debug_option(command, debug)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        from taskclf.cli import output

        output.say(f"taskclf {version('taskclf')}")
        raise typer.Exit()


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
app.command("report")(report_command)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed taskclf version and exit.",
        ),
    ] = False,
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
    del version  # handled by its eager callback
    reset_invocation(debug=debug)
    route_library_logs()


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
        fail(
            f"{exc}; pass a new or empty directory with --dir, "
            "or omit --dir to use a temporary one."
        )


def main() -> None:
    """Console-script entry point (``taskclf``)."""
    app()
