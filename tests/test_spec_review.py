"""Deviations from REGISTRY.md / CLI.md found by an independent review, one test each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from typer.testing import CliRunner, Result

from taskclf.cli.main import app

if TYPE_CHECKING:
    from conftest import BundleFactory

runner = CliRunner(env={"COLUMNS": None})


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def test_promote_usage_names_the_argument_candidate_dir_like_cli_md() -> None:
    # CLI.md: `taskclf model promote CANDIDATE_DIR [...]`.
    usage = run("model", "promote", "--help").stdout.splitlines()[0]
    assert "CANDIDATE_DIR" in usage

    result = run("model", "promote")
    assert result.exit_code == 2
    assert "Missing argument 'CANDIDATE_DIR'" in result.stderr


def test_promote_copy_failure_is_one_clear_sentence_naming_the_candidate_file(
    tmp_path: Path, models_dir: Path, make_bundle: BundleFactory
) -> None:
    # CLI.md: expected failures print one clear sentence and exit 1. A candidate
    # holding a file that cannot be copied (a named pipe, a dangling symlink) makes
    # shutil raise one error listing every file; that list is not a sentence.
    candidate = make_bundle("run-1", parent=tmp_path / "candidates")
    os.mkfifo(candidate / "pipe")
    (candidate / "dangling").symlink_to(tmp_path / "nowhere")

    result = run("model", "promote", candidate, "--models-dir", models_dir)

    assert result.exit_code == 1, result.stdout
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    line = errors[0]
    assert "[(" not in line  # no Python list repr
    assert f"Cannot copy {candidate}" in line
    assert "named pipe" in line or "No such file" in line
    assert "(and 1 more)" in line
    # Nothing was left in the registry.
    assert sorted(os.listdir(models_dir)) in ([], [".taskclf.lock"])
