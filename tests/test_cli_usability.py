"""The CLI contract and the friction a new user met (issue 10 items 10, 11, 12, 15, 18):
JSON on every failure, accurate errors, --version, --debug anywhere, set-active ID, the
README walkthrough as written, 80-column output, and docs that stay inside the repo."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner, Result

from conftest import run_on_a_pty
from taskclf.cli.main import app
from taskclf.model_registry import read_active
from taskclf.samples import write_bundle

if TYPE_CHECKING:
    from conftest import BundleFactory

runner = CliRunner(env={"COLUMNS": None})
REPO = Path(__file__).resolve().parent.parent


def run(*args: str | Path, env: dict[str, str | None] | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], env=env)


def _installed_script() -> Path:
    script = Path(sys.executable).parent / "taskclf"
    if not script.exists():
        pytest.skip("the taskclf console script is not installed next to this interpreter")
    return script


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    make_bundle("run-a", macro_f1=0.7, seed=1)
    make_bundle("run-b", macro_f1=0.8, seed=2)
    return models_dir


# --- item 10: one JSON document on every failure ------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["train", "list", "--srot", "x"],
        ["model", "history", "--limit", "many"],
        ["model", "promote"],  # missing argument
        ["model", "set-active"],  # missing id
        ["model", "prune"],  # missing --keep
    ],
)
def test_usage_errors_in_json_mode_print_one_error_document(
    registry: Path, command: list[str]
) -> None:
    result = run(*command, "--models-dir", registry, "--json")

    assert result.exit_code == 2  # click's usage-error code is kept
    document = json.loads(result.stdout)
    assert list(document) == ["error"] and document["error"]
    assert "Usage: taskclf" in result.stderr  # people still get click's usage text


def test_usage_error_without_json_prints_no_json(registry: Path) -> None:
    result = run("train", "list", "--srot", "x", "--models-dir", registry)
    assert result.exit_code == 2 and result.stdout == ""


def test_unreadable_models_dir_in_json_mode_prints_one_error_document(registry: Path) -> None:
    """chmod 000 does not stop root, so run the script without DAC capabilities then."""
    registry.chmod(0o000)
    command = [str(_installed_script()), "train", "list", "--json", "--models-dir", str(registry)]
    try:
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: cannot make a directory unreadable")
            drop = "-dac_override,-dac_read_search"
            command = [setpriv, "--bounding-set", drop, "--inh-caps", drop, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    finally:
        registry.chmod(0o755)
    if result.returncode != 0 and "setpriv" in result.stderr:
        pytest.skip(f"setpriv refused: {result.stderr.strip()}")

    assert result.returncode in (1, 2), result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["error"] and "readable" in document["error"]
    assert "Traceback" not in result.stderr


def test_an_aborted_prompt_in_json_mode_prints_one_error_document(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskclf.cli import options

    monkeypatch.setattr(options, "stdin_is_terminal", lambda: True)
    args = ["model", "prune", "--keep", "0", "--keep-history", "0", "--json"]
    result = runner.invoke(app, [*args, "--models-dir", str(registry)], input="")  # EOF

    assert result.exit_code == 1
    assert list(json.loads(result.stdout)) == ["error"]
    assert (registry / "run-a").is_dir() and (registry / "run-b").is_dir()


def test_resolve_json_on_an_empty_registry_uses_the_error_shape(models_dir: Path) -> None:
    result = run("model", "resolve", "--models-dir", models_dir, "--json")

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["error"].startswith(f"No model bundles in {models_dir}")
    assert document["excluded"] == []
    assert f"Error: {document['error']}" in result.stderr.splitlines()


# --- item 11: clear, accurate errors ------------------------------------------------------

MISSING_REGISTRY_COMMANDS = [
    ["train", "list"],
    ["model", "resolve"],
    ["model", "history"],
    ["model", "index"],
    ["model", "prune", "--keep", "1"],
    ["model", "set-active", "run-a"],
    ["model", "rollback"],
]


@pytest.mark.parametrize("command", MISSING_REGISTRY_COMMANDS)
def test_a_missing_registry_reads_the_same_in_every_command(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "nope"
    result = run(*command, "--models-dir", missing)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Registry not found: {missing} does not exist; ")
    assert "--models-dir" in result.stderr  # the CLI's advice
    assert "Bundle directory not found" not in result.stderr
    assert not missing.exists()


def test_verify_names_a_missing_registry_with_the_same_words(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run("model", "verify", "--models-dir", missing)

    assert result.exit_code == 1
    assert f"Registry not found: {missing} does not exist" in result.stdout
    assert "--models-dir" in result.stdout


@pytest.mark.parametrize("command", [*MISSING_REGISTRY_COMMANDS, ["model", "verify"]])
def test_a_models_dir_that_is_a_file_is_named_as_such(tmp_path: Path, command: list[str]) -> None:
    a_file = tmp_path / "models"
    a_file.write_text("not a registry")
    result = run(*command, "--models-dir", a_file)

    assert result.exit_code == 1
    assert f"Registry not found: {a_file} is a file, not a registry directory" in (
        result.stdout + result.stderr
    )
    assert a_file.read_text() == "not a registry"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["model", "set-active", "--model-id", ""], "--model-id"),
        (["model", "set-active", " "], "ID"),
        (["model", "rollback", "--to", ""], "--to"),
    ],
)
def test_an_empty_bundle_name_is_refused_as_such(
    registry: Path, args: list[str], flag: str
) -> None:
    result = run(*args, "--models-dir", registry)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {flag} must name a bundle (got ")
    assert not (registry / "active.json").exists()


def test_promote_into_a_models_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "models"
    a_file.write_text("not a registry")
    candidate = write_bundle(tmp_path / "in" / "new", seed=5)

    result = run("model", "promote", candidate, "--models-dir", a_file)

    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"Error: Registry not found: {a_file} is a file, not a registry directory; "
    )
    assert a_file.read_text() == "not a registry" and candidate.is_dir()


def test_promote_with_an_empty_name_is_refused(registry: Path, tmp_path: Path) -> None:
    candidate = write_bundle(tmp_path / "in" / "new", seed=5)
    result = run("model", "promote", candidate, "--name", "", "--models-dir", registry)

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --name must name a bundle (got '')")
    assert sorted(p.name for p in registry.iterdir()) == ["run-a", "run-b"]


def test_demo_dir_on_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    a_file = tmp_path / "workspace"
    a_file.write_text("mine")
    result = run("demo", "--dir", a_file)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {a_file} is a file, not a directory; ")
    assert "--dir" in result.stderr
    assert a_file.read_text() == "mine"


def test_library_errors_name_arguments_and_the_cli_names_flags(
    registry: Path, tmp_path: Path
) -> None:
    from taskclf.model_registry import PromotionError, promote_bundle
    from taskclf.model_registry.activation import plan_rollback
    from taskclf.model_registry.errors import RollbackError

    duplicate = write_bundle(tmp_path / "in" / "run-a", seed=6)
    with pytest.raises(PromotionError) as promoted:
        promote_bundle(duplicate, registry)
    assert "the name= argument" in str(promoted.value) and "--" not in str(promoted.value)
    with pytest.raises(RollbackError) as rolled:
        plan_rollback(registry, to="run-a", steps=1)
    assert "the to= argument" in str(rolled.value) and "--" not in str(rolled.value)
    with pytest.raises(RollbackError) as missing:
        plan_rollback(tmp_path / "nope")
    assert "--" not in str(missing.value)

    cli = run("model", "promote", duplicate, "--models-dir", registry)
    assert cli.exit_code == 1 and "pass another name with --name" in cli.stderr
    cli = run("model", "rollback", "--to", "run-a", "--steps", "1", "--models-dir", registry)
    assert cli.exit_code == 1 and "(--to)" in cli.stderr and "(--steps)" in cli.stderr


# --- item 12: --version, --debug anywhere, set-active ID -----------------------------------


def test_version() -> None:
    from importlib.metadata import version

    result = subprocess.run(
        [_installed_script(), "--version"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"taskclf {version('taskclf')}\n"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_sub_command(registry: Path, where: str) -> None:
    command = ["model", "set-active", "ghost", "--models-dir", str(registry)]
    args = ["--debug", *command] if where == "before" else [*command, "--debug"]
    result = run(*args, env={"TASKCLF_DEBUG": None})

    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("Error: Bundle directory not found")

    plain = run(*command, env={"TASKCLF_DEBUG": None})
    assert "Traceback" not in plain.stderr


def test_set_active_takes_the_id_as_argument_or_option(registry: Path) -> None:
    where = ["--models-dir", str(registry)]
    assert run("model", "set-active", "run-a", *where).exit_code == 0
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "run-a"

    assert run("model", "set-active", "run-b", "--model-id", "run-b", *where).exit_code == 0
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "run-b"

    both = run("model", "set-active", "run-a", "--model-id", "run-b", *where)
    assert both.exit_code == 2 and "two different bundle ids" in both.stderr
    neither = run("model", "set-active", *where)
    assert neither.exit_code == 2 and "Missing the bundle id" in neither.stderr
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "run-b"


def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """The README's commands, literally, in a shell: from a checkout whose ``.venv`` is this
    environment, then every ``$ taskclf ...`` example after the walkthrough's ``cd``.
    Only the workspace path changes (the demo needs a fresh directory per run)."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").exists():
        pytest.skip("the tests do not run inside a virtual environment")
    _installed_script()
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"```(\w*)\n(.*?)```", readme, flags=re.DOTALL)
    walkthrough = next(body for _, body in blocks if "taskclf demo --dir" in body)
    examples = [
        line.removeprefix("$ ")
        for lang, body in blocks
        if lang == "text"
        for line in body.splitlines()
        if line.startswith("$ taskclf ")
    ]
    assert len(examples) >= 3
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / ".venv").symlink_to(venv)
    workspace = str(tmp_path / "try-taskclf")
    script = "\n".join(["set -e", walkthrough.strip(), *examples]).replace(
        "/tmp/try-taskclf", workspace
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKCLF_", "VIRTUAL_ENV"))}
    env["PATH"] = "/usr/bin:/bin"  # taskclf is found only through the venv's activation
    env["TASKCLF_CACHE_DIR"] = os.environ["TASKCLF_CACHE_DIR"]  # never the user's scan cache

    result = subprocess.run(
        ["bash", "-c", script], cwd=checkout, capture_output=True, text=True, env=env, check=False
    )

    assert result.returncode == 0, (script, result.stdout[-2000:], result.stderr[-2000:])
    assert "Model Bundles" in result.stdout and "Rolled back from" in result.stdout


# --- item 15: 80 columns ------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _on_a_terminal(args: list[str], columns: int) -> list[str]:
    """Run the installed script with stdout on a pseudo-terminal; the lines it printed."""
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "xterm"}
    status, printed, errors = run_on_a_pty([str(_installed_script()), *args], env)
    assert status == 0, errors
    text = _ANSI.sub("", printed.decode("utf-8", "replace"))
    return text.replace("\r\n", "\n").split("\n")


def test_prose_at_80_columns_breaks_only_between_words(tmp_path: Path) -> None:
    lines = _on_a_terminal(["demo", "--dir", str(tmp_path / "ws")], 80)

    # A line longer than the terminal is cut wherever column 80 falls, inside a word or
    # an id; only a single unbreakable token (a long path) may be longer.
    too_long = [line for line in lines if len(line.rstrip()) > 80 and len(line.split()) > 1]
    assert too_long == []
    prose = " ".join(" ".join(lines).split())
    assert "one whose metrics.json a crash cut short (invalid);" in prose


def test_errors_on_a_terminal_at_80_columns_break_only_between_words(tmp_path: Path) -> None:
    missing = tmp_path / ("a-registry-path-long-enough-to-need-two-lines" * 2)
    env = {**os.environ, "COLUMNS": "80"}
    command = [str(_installed_script()), "model", "history", "--models-dir", str(missing)]
    status, printed, _ = run_on_a_pty(command, env, stream="stderr")
    lines = printed.decode().replace("\r\n", "\n").splitlines()

    assert status == 1
    assert len(lines) > 1
    assert [line for line in lines if len(line) > 80 and len(line.split()) > 1] == []
    assert str(missing) in [line.strip() for line in lines]  # the path is whole


def test_history_shortens_timestamps_before_dropping_columns(
    registry: Path, make_bundle: BundleFactory
) -> None:
    # Ids of 10 characters: full timestamps do not fit in 80 columns, short ones do.
    make_bundle("model-0001", seed=3)
    make_bundle("model-0002", seed=4)
    for model_id in ("model-0001", "model-0002", "model-0001"):
        assert run("model", "set-active", model_id, "--models-dir", registry).exit_code == 0

    narrow = run("model", "history", "--models-dir", registry, env={"COLUMNS": "80"}).stdout
    assert "not shown" not in narrow  # every column is still there
    header = next(line for line in narrow.splitlines() if "when" in line)
    assert "from" in header and "macro_f1" in header
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", narrow)

    wide = run("model", "history", "--models-dir", registry, env={"COLUMNS": "200"}).stdout
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", wide)


def test_short_time() -> None:
    from taskclf.cli.output import short_time

    assert short_time("2026-11-27T14:09:59.529889+00:00") == "2026-11-27 14:09:59Z"
    assert short_time("2026-11-27T16:09:59+02:00") == "2026-11-27 14:09:59Z"
    assert short_time("not a time") == "not a time"


# --- item 18: docs stay inside the repository ---------------------------------------------


def _docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench/README.md"]


@pytest.mark.parametrize("doc", _docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_docs_reference_only_files_in_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert "shared/spec" not in text
    missing = []
    for name in re.findall(r"[\w./-]*\w\.md\b", text):
        if name.startswith("bench/results/"):
            continue  # written by the benchmarks (gitignored), not a reference to read
        candidates = [doc.parent / name, REPO / name, REPO / "docs" / name]
        if not any(path.is_file() for path in candidates):
            missing.append(name)
    assert missing == []
