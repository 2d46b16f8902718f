"""Cross-cutting CLI promises: help everywhere, JSON purity, the installed script, lazy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import typer
from typer.testing import CliRunner

from conftest import run_on_a_pty
from taskclf.cli.main import app

if TYPE_CHECKING:
    from conftest import BundleFactory

runner = CliRunner(env={"COLUMNS": None})  # pipes get the wide page: rows never wrap


def _walk(
    command: typer.core.TyperCommand | typer.core.TyperGroup, path: str
) -> list[tuple[str, object]]:
    found: list[tuple[str, object]] = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _walk(sub, f"{path} {name}")
    return found


def test_every_command_and_option_has_help() -> None:
    root = typer.main.get_command(app)
    commands = _walk(root, "taskclf")  # type: ignore[arg-type]
    names = {path for path, _ in commands}
    assert {
        "taskclf train list",
        "taskclf model set-active",
        "taskclf model resolve",
        "taskclf model history",
        "taskclf model rollback",
        "taskclf model promote",
        "taskclf model index",
        "taskclf model verify",
        "taskclf model prune",
        "taskclf demo",
    } <= names
    missing = []
    for path, command in commands:
        if not (getattr(command, "help", None) or "").strip():
            missing.append(path)
        for param in getattr(command, "params", []):
            if not (getattr(param, "help", None) or "").strip():
                missing.append(f"{path} {param.name}")
    assert missing == []


def test_every_registry_command_takes_models_dir_and_json() -> None:
    root = typer.main.get_command(app)
    for path, command in _walk(root, "taskclf"):  # type: ignore[arg-type]
        if getattr(command, "commands", None) is not None or path == "taskclf demo":
            continue
        options = {opt for param in command.params for opt in param.opts}  # type: ignore[attr-defined]
        if path == "taskclf model sync":
            # Two registries, named by its SRC and DST arguments (issue 12).
            assert "--json" in options and "--models-dir" not in options
            continue
        assert {"--models-dir", "--json"} <= options, path


@pytest.fixture
def noisy_registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """A registry whose pointer is broken, so the library logs warnings while it works."""
    make_bundle("a", macro_f1=0.7, seed=1)
    make_bundle("b", macro_f1=0.8, seed=2)
    (models_dir / "broken").mkdir()
    (models_dir / "active.json").write_text("{ not json")
    return models_dir


@pytest.mark.parametrize(
    "command",
    [
        ["train", "list"],
        ["model", "resolve"],
        ["model", "history"],
        ["model", "index"],
        ["model", "verify"],
        ["model", "prune", "--keep", "1", "--dry-run"],
        ["model", "set-active", "--model-id", "a"],
    ],
)
def test_json_mode_prints_one_document_and_nothing_else(
    noisy_registry: Path, command: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--models-dir", str(noisy_registry), "--json"])

    assert result.exit_code in (0, 1), result.stderr
    json.loads(result.stdout)  # the whole of stdout is one JSON document
    assert "\x1b[" not in result.stdout  # no colour codes


@pytest.mark.parametrize(
    "command",
    [
        ["train", "list", "--sort", "name"],
        ["model", "set-active", "--model-id", "no-such-bundle"],
        ["model", "history", "--limit", "0"],
        ["model", "rollback", "--to", "no-such-bundle"],
        ["model", "prune", "--keep", "-1"],
        ["model", "promote", "/no/such/candidate"],
    ],
)
def test_json_mode_expected_failure_is_one_error_document(
    noisy_registry: Path, command: list[str]
) -> None:
    result = runner.invoke(app, [*command, "--models-dir", str(noisy_registry), "--json"])

    assert result.exit_code == 1, result.stderr
    document = json.loads(result.stdout)  # scripts parsing stdout still get JSON
    assert list(document) == ["error"]
    assert f"Error: {document['error']}" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_failure_without_json_leaves_stdout_empty(noisy_registry: Path) -> None:
    args = ["model", "set-active", "--model-id", "x", "--models-dir", str(noisy_registry)]
    runner.invoke(app, [*args, "--json"])  # a previous JSON run must not leak into the next
    result = runner.invoke(app, args)

    assert result.exit_code == 1
    assert result.stdout == ""


def test_library_warnings_go_to_stderr(noisy_registry: Path) -> None:
    result = runner.invoke(app, ["train", "list", "--models-dir", str(noisy_registry), "--json"])

    assert "warning: Active pointer" in result.stderr
    assert "warning" not in result.stdout


def _installed_script() -> Path:
    script = Path(sys.executable).parent / "taskclf"
    if not script.exists():
        pytest.skip("the taskclf console script is not installed next to this interpreter")
    return script


def test_installed_console_script(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", macro_f1=0.7, seed=1)
    script = _installed_script()
    env = {**os.environ, "TASKCLF_MODELS_DIR": str(models_dir)}
    env.pop("TASKCLF_DEBUG", None)

    listed = subprocess.run(
        [script, "train", "list", "--json"], capture_output=True, text=True, env=env, check=False
    )
    assert listed.returncode == 0, listed.stderr
    assert [row["model_id"] for row in json.loads(listed.stdout)] == ["a"]

    failed = subprocess.run(
        [script, "model", "set-active", "--model-id", "ghost"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stdout == ""
    assert failed.stderr.startswith("Error: Bundle directory not found: ")
    assert "Traceback" not in failed.stderr

    usage = subprocess.run([script, "train", "list", "--nope"], capture_output=True, check=False)
    assert usage.returncode == 2


def test_help_does_not_import_the_registry_or_rich() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['taskclf', '--help']\n"
        "from taskclf.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('taskclf.model_registry', 'rich.table', 'taskclf.demo')\n"
        "print([m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert "Usage: taskclf" in result.stdout
    assert result.stderr.strip() == "[]"


def test_long_tables_print_as_aligned_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    from taskclf.cli import output

    rows = [["*" if i == 3 else "", f"run-{i:04d}", output.num(i / 1000)] for i in range(501)]
    output.print_table("Model Bundles", [("", "left"), ("id", "left"), ("f1", "right")], rows)

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Model Bundles"
    assert len(lines) == 3 + 501
    assert lines[3 + 3] == "*  run-0003  0.0030"
    assert lines[3 + 500] == "   run-0500  0.5000"
    assert len({len(line) for line in lines[3:]}) == 1  # right-aligned numbers line up


def _run_on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run the installed script with stdout on a pseudo-terminal; return what it printed."""
    status, printed, _ = run_on_a_pty([str(_installed_script()), *args], env)
    assert status == 0
    return printed.decode("utf-8", "replace")


def test_progress_spinner_only_on_a_terminal_and_never_in_json(models_dir: Path) -> None:
    from taskclf.cli.output import PROGRESS_MIN_BUNDLES
    from taskclf.samples import write_bundle

    for i in range(PROGRESS_MIN_BUNDLES):
        write_bundle(models_dir / f"run-{i:04d}", seed=i)
    env = {**os.environ, "TASKCLF_MODELS_DIR": str(models_dir), "COLUMNS": "200"}

    human = _run_on_a_terminal(["train", "list"], env)
    assert f"Scanning {PROGRESS_MIN_BUNDLES} bundles in {models_dir}" in human
    assert "Model Bundles" in human

    as_json = _run_on_a_terminal(["train", "list", "--json"], env)
    assert "Scanning" not in as_json
    assert len(json.loads(as_json)) == PROGRESS_MIN_BUNDLES

    piped = subprocess.run(
        [_installed_script(), "train", "list"], capture_output=True, text=True, env=env, check=True
    )
    assert "Scanning" not in piped.stdout + piped.stderr
