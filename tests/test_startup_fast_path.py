"""The console script's fast path for ``taskclf model resolve`` (issue 13, start-up).

The fast path must be invisible: for every argument vector, with and without
it (``TASKCLF_NO_FAST_PATH=1``), the installed ``taskclf`` prints the same
bytes on stdout and stderr and exits with the same status. Each case rebuilds
its registry at the same path before each run, since a resolution may repair
the pointer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from taskclf.cli.entry import NO_FAST_PATH_ENV, ResolveArgs, parse_resolve_args
from taskclf.model_registry import read_bundle, write_active_atomic
from taskclf.samples import LABELS, write_bundle

SCRIPT = str(Path(sys.executable).with_name("taskclf"))
_SCRUBBED = ("TASKCLF_MODELS_DIR", "TASKCLF_DEBUG", "TASKCLF_LABELS", NO_FAST_PATH_ENV)


def _two_bundles(models: Path) -> None:
    models.mkdir()
    write_bundle(models / "a", seed=1, macro_f1=0.7)
    write_bundle(models / "b", seed=2, macro_f1=0.9)


def _point(models: Path, name: str, alias: str = "active") -> None:
    bundle = read_bundle(models / name)
    assert bundle is not None
    write_active_atomic(models, bundle, alias=alias)


def healthy(models: Path) -> None:
    _two_bundles(models)
    _point(models, "a")  # not the best: a scan would pick b


def with_alias(models: Path) -> None:
    healthy(models)
    _point(models, "b", alias="canary")


def corrupt_pointer(models: Path) -> None:
    _two_bundles(models)
    (models / "active.json").write_bytes(b"{not json")


def pointer_to_missing_bundle(models: Path) -> None:
    _two_bundles(models)
    (models / "active.json").write_text('{"model_dir": "models/gone"}')


def nothing_eligible(models: Path) -> None:
    models.mkdir()
    write_bundle(models / "a", seed=1)
    (models / "a" / "metrics.json").unlink()
    write_bundle(models / "b", seed=2, schema_version="v2", schema_hash="0" * 12)


def empty(models: Path) -> None:
    models.mkdir()


def absent(models: Path) -> None:
    del models


def other_labels(models: Path) -> None:
    healthy(models)
    (models / "registry.toml").write_text('labels = ["x", "y"]\n')


def malformed_config(models: Path) -> None:
    healthy(models)
    (models / "registry.toml").write_text("labels = [\n")


def a_file(models: Path) -> None:
    models.write_text("not a registry\n")


Case = tuple[Callable[[Path], None], list[str], dict[str, str]]

M = "--models-dir"
CASES: dict[str, Case] = {
    # Healthy pointer: the fast path's reason to exist, in every spelling.
    "healthy": (healthy, [M, "models"], {}),
    "healthy json": (healthy, [M, "models", "--json"], {}),
    "json first": (healthy, ["--json", M, "models"], {}),
    "equals forms": (healthy, ["--json", "--models-dir=models", "--alias=active"], {}),
    "absolute dir": (healthy, [M, "{tmp}/models", "--json"], {}),
    "debug everywhere": (healthy, [M, "models", "--debug", "--json"], {"TASKCLF_DEBUG": "0"}),
    "root debug": (healthy, [M, "models"], {}),  # with --debug before "model", below
    "from the environment": (healthy, ["--json"], {"TASKCLF_MODELS_DIR": "models"}),
    "empty variable": (healthy, ["--json"], {"TASKCLF_MODELS_DIR": ""}),
    "default ./models": (healthy, ["--json"], {}),
    "alias": (with_alias, [M, "models", "--alias", "canary", "--json"], {}),
    "alias human": (with_alias, [M, "models", "--alias", "canary"], {}),
    "labels": (healthy, [M, "models", "--labels", "a,b", "--json"], {}),
    "labels matching": (healthy, [M, "models", "--labels=" + ",".join(LABELS)], {}),
    "labels variable": (healthy, [M, "models", "--json"], {"TASKCLF_LABELS": "p,q"}),
    # Failures, each with and without --json.
    "repair": (corrupt_pointer, [M, "models"], {}),
    "repair json": (corrupt_pointer, [M, "models", "--json"], {}),
    "missing bundle": (pointer_to_missing_bundle, [M, "models", "--json"], {}),
    "no eligible": (nothing_eligible, [M, "models"], {}),
    "no eligible json": (nothing_eligible, [M, "models", "--json"], {}),
    "empty registry": (empty, [M, "models", "--json"], {}),
    "missing registry": (absent, [M, "models"], {}),
    "missing registry json": (absent, [M, "models", "--json"], {}),
    "missing from variable": (absent, ["--json"], {"TASKCLF_MODELS_DIR": "models"}),
    "a file": (a_file, [M, "models", "--json"], {}),
    "bad alias": (healthy, [M, "models", "--alias", "BAD"], {}),
    "undecodable alias": (healthy, [M, "models", "--alias", "a\udcff", "--json"], {}),
    "undecodable registry": (healthy, [M, "models\udcff", "--json"], {}),
    "bad alias json": (healthy, [M, "models", "--alias", "BAD", "--json"], {}),
    "unknown alias": (healthy, [M, "models", "--alias", "canary", "--json"], {}),
    "bad labels": (healthy, [M, "models", "--labels", "a,,b", "--json"], {}),
    "malformed config": (malformed_config, [M, "models", "--json"], {}),
    "config labels": (other_labels, [M, "models"], {}),
    "traceback": (healthy, [M, "models", "--alias", "BAD", "--debug"], {}),
    "traceback variable": (healthy, [M, "models", "--alias", "BAD"], {"TASKCLF_DEBUG": "TRUE"}),
    # What only typer handles (the fast path steps aside; still the same output).
    "help": (healthy, ["--help"], {}),
    "unknown option": (healthy, [M, "models", "--nope"], {}),
    "unknown option json": (healthy, [M, "models", "--json", "--nope"], {}),
    "missing value": (healthy, ["--json", M], {}),
    "repeated": (healthy, [M, "models", "--json", "--json"], {}),
    "empty value": (healthy, [M, "", "--json"], {}),
    "value like an option": (healthy, ["--alias", "--json", M, "models"], {}),
    "positional": (healthy, [M, "models", "extra"], {}),
    "bad debug variable": (healthy, [M, "models"], {"TASKCLF_DEBUG": "maybe"}),
}


def _run(
    tmp_path: Path, case: Case, *, fast: bool, root_debug: bool
) -> subprocess.CompletedProcess[bytes]:
    build, args, extra_env = case
    models = tmp_path / "models"
    if models.is_dir():
        import shutil

        shutil.rmtree(models)
    elif models.exists():
        models.unlink()
    build(models)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(extra_env)
    if not fast:
        env[NO_FAST_PATH_ENV] = "1"
    argv = [SCRIPT, *(["--debug"] if root_debug else []), "model", "resolve"]
    argv += [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, check=False)


_TRACEBACK = re.compile(rb"^Traceback \(most recent call last\):\n(?:[ \t].*\n)*", re.MULTILINE)


def _comparable_stderr(stderr: bytes) -> bytes:
    # Tracebacks (--debug) differ in their frames (click's, or none); what is compared
    # is that there is one, and every other line.
    return _TRACEBACK.sub(b"Traceback\n", stderr)


@pytest.mark.parametrize("name", list(CASES))
def test_same_output_with_and_without_the_fast_path(tmp_path: Path, name: str) -> None:
    root_debug = name == "root debug"
    fast = _run(tmp_path, CASES[name], fast=True, root_debug=root_debug)
    slow = _run(tmp_path, CASES[name], fast=False, root_debug=root_debug)
    assert fast.returncode == slow.returncode, (fast.stderr, slow.stderr)
    assert fast.stdout == slow.stdout
    assert _comparable_stderr(fast.stderr) == _comparable_stderr(slow.stderr)
    assert b"Traceback" not in fast.stderr or "traceback" in name


def test_the_cases_cover_success_failure_and_usage_errors(tmp_path: Path) -> None:
    """The table is not vacuous: it sees 0, 1 and 2, and the healthy case follows the pointer."""
    statuses = {
        name: _run(tmp_path, CASES[name], fast=True, root_debug=False)
        for name in ("healthy json", "no eligible json", "unknown option")
    }
    assert [r.returncode for r in statuses.values()] == [0, 1, 2]
    assert b'"source": "pointer"' in statuses["healthy json"].stdout
    assert b'"model_id": "a"' in statuses["healthy json"].stdout


def _parse(args: list[str], **environ: str) -> ResolveArgs | None:
    return parse_resolve_args(["model", "resolve", *args], environ)


def test_the_fast_path_takes_the_plain_vectors() -> None:
    """Every plain spelling is taken (else the differential test compares typer with typer)."""
    expected = ResolveArgs(Path("m"), "canary", "a,b", json_mode=True, debug=False)
    for args in (
        [M, "m", "--alias", "canary", "--labels", "a,b", "--json"],
        ["--json", "--labels=a,b", "--alias=canary", "--models-dir=m"],
    ):
        assert _parse(args) == expected
    assert _parse([]) == ResolveArgs(Path("models"), "active", None, json_mode=False, debug=False)
    assert _parse([], TASKCLF_MODELS_DIR="env") == _parse([M, "env"])
    assert _parse([M, "flag"], TASKCLF_MODELS_DIR="env") == _parse([M, "flag"])
    assert _parse(["--debug"]) == _parse([], TASKCLF_DEBUG="yes")
    assert parse_resolve_args(["--debug", "model", "resolve"], {}) == _parse(["--debug"])
    debug = _parse(["--debug"])
    assert debug is not None and debug.debug


@pytest.mark.parametrize(
    "argv",
    [
        ["model", "resolve", "--help"],
        ["model", "resolve", "--json", "--json"],
        ["model", "resolve", M, "a", M, "b"],
        ["model", "resolve", M],
        ["model", "resolve", M, "--json"],
        ["model", "resolve", M, ""],
        ["model", "resolve", "--models"],  # click has no prefix matching; typer says so
        ["model", "resolve", "--json=1"],
        ["model", "resolve", "x"],
        ["model", "resolve", "--", "--json"],
        ["model", "--debug", "resolve"],
        ["--version", "model", "resolve"],
        ["model", "list"],
        ["model"],
        [],
    ],
)
def test_anything_else_goes_to_typer(argv: list[str]) -> None:
    assert parse_resolve_args(argv, {}) is None


def test_an_uncertain_debug_variable_goes_to_typer() -> None:
    assert _parse([], TASKCLF_DEBUG="maybe") is None
    assert _parse([], TASKCLF_DEBUG="") == _parse([], TASKCLF_DEBUG="off")


def test_the_console_script_is_the_fast_entry() -> None:
    (script,) = entry_points(group="console_scripts", name="taskclf")
    assert script.value == "taskclf.cli.entry:main"


_IMPORTS_AFTER_RESOLVE = """
import atexit, sys
heavy = ("typer", "click", "rich", "filelock", "tomllib",
         "taskclf.model_registry.manifest", "taskclf.cli.main")
atexit.register(lambda: print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr))
sys.argv = ["taskclf", "model", "resolve", "--json", "--models-dir", sys.argv[1]]
from taskclf.cli.entry import main
main()
"""


def test_a_healthy_resolve_imports_only_what_it_needs(tmp_path: Path) -> None:
    """What start-up is spent on: no typer, no rich, no lock, no hashing, no TOML."""
    healthy(tmp_path / "models")
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER_RESOLVE, str(tmp_path / "models")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"source": "pointer"' in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_the_kill_switch_runs_typer(tmp_path: Path) -> None:
    healthy(tmp_path / "models")
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env[NO_FAST_PATH_ENV] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER_RESOLVE, str(tmp_path / "models")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"source": "pointer"' in done.stdout
    assert "'typer'" in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("interruption", "status", "stderr"),
    [(KeyboardInterrupt, 130, ""), (EOFError, 1, "\nAborted!\n")],
)
def test_an_interruption_reads_as_in_typer(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    interruption: type[BaseException],
    status: int,
    stderr: str,
) -> None:
    """Ctrl-C (or input ending) while resolving: typer's status and message on both paths."""
    from typer.testing import CliRunner

    from taskclf.cli import resolving
    from taskclf.cli.entry import run_fast
    from taskclf.cli.main import app

    def interrupted(*args: object, **kwargs: object) -> int:
        raise interruption

    healthy(tmp_path / "models")
    monkeypatch.setattr(resolving, "run_resolve", interrupted)
    monkeypatch.setattr("taskclf.cli.model.run_resolve", interrupted)
    args = ResolveArgs(tmp_path / "models", "active", None, json_mode=True, debug=False)
    assert run_fast(args) == status
    fast = capsys.readouterr()
    slow = CliRunner().invoke(app, ["model", "resolve", M, str(tmp_path / "models"), "--json"])
    assert slow.exit_code == status
    assert (fast.out, fast.err) == (slow.stdout, slow.stderr) == ("", stderr)
