"""The ``taskclf`` console script: a fast path for ``model resolve``, else the typer app.

Services and cron jobs run ``taskclf model resolve`` as a health check, where
start-up is most of the cost, and typer (with the pydantic adapters it builds
for every parameter while parsing) takes longer to import and parse than the
resolution itself. So this entry point recognises the plain argument vectors of
that one command, ``[--debug] model resolve`` followed by any of
``--models-dir DIR``, ``--alias NAME``, ``--labels A,B``, ``--json`` and
``--debug`` (each at most once, in any order, values also as ``--opt=value``),
and runs the command's one implementation
(:func:`taskclf.cli.resolving.run_resolve`) under the same error policy,
without importing typer. Anything else (``--help``, an unknown or repeated
option, a value that looks like an option, another command) goes to the full
typer application, which also owns every usage error, so both paths print the
same and exit the same (``tests/test_startup_fast_path.py`` compares them).

``TASKCLF_NO_FAST_PATH=1`` turns the fast path off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from taskclf.cli.policy import DEBUG_ENV, MODELS_DIR_ENV

NO_FAST_PATH_ENV = "TASKCLF_NO_FAST_PATH"

_VALUE_OPTIONS = ("--models-dir", "--alias", "--labels")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
"""``$TASKCLF_DEBUG`` values whose meaning is certain; the typer app judges any other."""


class ResolveArgs(NamedTuple):
    """A ``taskclf model resolve`` invocation the fast path can run."""

    models_dir: Path
    alias: str
    labels: str | None
    json_mode: bool
    debug: bool


def parse_resolve_args(args: Sequence[str], environ: Mapping[str, str]) -> ResolveArgs | None:
    """``args`` (without the program name) as a plain ``model resolve``, or None.

    None means "not certainly the same as typer would parse it": the caller
    then runs the typer application, which handles every case.
    """
    debug_env = environ.get(DEBUG_ENV, "").lower()
    if debug_env not in _TRUE | _FALSE:
        return None
    rest = list(args)
    debug = debug_env in _TRUE
    if rest[:1] == ["--debug"]:
        debug = True
        del rest[0]
    if rest[:2] != ["model", "resolve"]:
        return None
    values: dict[str, str] = {}
    flags: set[str] = set()
    for arg in (tokens := iter(rest[2:])):
        name, equals, value = arg.partition("=")
        if name in _VALUE_OPTIONS and name not in values:
            if not equals:
                value = next(tokens, "")
            # An empty value, or one that looks like an option, is typer's to judge.
            if not value or value.startswith("-"):
                return None
            values[name] = value
        elif arg in ("--json", "--debug") and arg not in flags:
            flags.add(arg)
        else:
            return None
    return ResolveArgs(
        models_dir=Path(values.get("--models-dir") or environ.get(MODELS_DIR_ENV) or "models"),
        alias=values.get("--alias", "active"),
        labels=values.get("--labels"),
        json_mode="--json" in flags,
        debug=debug or "--debug" in flags,
    )


def run_fast(args: ResolveArgs) -> int:
    """Run ``model resolve`` under the CLI's error policy (as :mod:`.main` applies it).

    Returns:
        The exit status.
    """
    from taskclf.cli import output
    from taskclf.cli.policy import expected_error_message, route_library_logs
    from taskclf.cli.resolving import run_resolve

    route_library_logs()
    try:
        return run_resolve(args.models_dir, args.alias, args.labels, json_mode=args.json_mode)
    except KeyboardInterrupt:
        return 130  # as typer's main: no message, the shell's status for SIGINT
    except EOFError:
        output.print_aborted()
        return 1
    except Exception as exc:
        message = expected_error_message(exc)
        if message is None:
            raise
        if args.debug:
            output.print_traceback(exc)
        output.print_error(message, json_mode=args.json_mode)
        return 1


def main() -> None:
    """Console-script entry point (``taskclf``)."""
    args = None
    if not os.environ.get(NO_FAST_PATH_ENV):
        args = parse_resolve_args(sys.argv[1:], os.environ)
    if args is None:
        from taskclf.cli.main import main as typer_main

        typer_main()
        return
    sys.exit(run_fast(args))
