"""Deviations from REGISTRY.md / CLI.md found by an independent review, one test each."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner, Result

from conftest import prune_just_before_locking
from taskclf.cli.main import app
from taskclf.model_registry import (
    BundleRejectedError,
    list_bundles,
    read_active,
    write_active_atomic,
)
from taskclf.model_registry.pointer import HISTORY_FILE

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
    # holding a file that cannot be copied (a named pipe, a dangling symlink) once made
    # shutil raise one error listing every file; since issue 10 (promote confinement)
    # the first such file is refused, by name, before anything is copied.
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
    assert f"Cannot promote 'run-1' from {candidate}" in line
    assert "pipe is a named pipe" in line or "dangling is a symlink" in line
    # Nothing was left in the registry.
    assert sorted(os.listdir(models_dir)) in ([], [".taskclf.lock"])


def test_train_list_sorts_by_created_at_of_a_bundle_with_broken_metrics(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    # CLI.md: "descending by the chosen key, rows whose key is null last". A bundle
    # whose metrics.json is broken still has a created_at (its metadata parsed), so
    # it sorts by that date, not with the nulls.
    make_bundle("old", created_at="2026-01-01T00:00:00+00:00")
    make_bundle("new", created_at="2026-03-01T00:00:00+00:00")
    broken = make_bundle("broken", created_at="2026-02-01T00:00:00+00:00")
    (broken / "metrics.json").write_text("{")
    (models_dir / "empty").mkdir()

    rows = json.loads(
        run("train", "list", "--sort", "created_at", "--json", "--models-dir", models_dir).stdout
    )

    assert [(r["model_id"], r["created_at"]) for r in rows] == [
        ("new", "2026-03-01T00:00:00+00:00"),
        ("broken", "2026-02-01T00:00:00+00:00"),
        ("old", "2026-01-01T00:00:00+00:00"),
        ("empty", None),
    ]


def test_write_active_atomic_refuses_a_bundle_pruned_between_its_check_and_the_lock(
    models_dir: Path, make_bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # REGISTRY.md §6: the bundle must be a direct child of models_dir, else
    # ValueError and nothing is written. A prune in another process between the
    # pre-lock check and the lock used to leave active.json naming a deleted bundle
    # (the soak test's verify found `pointer-target-missing`). The interleaving is
    # forced: a real deletion under the lock, in a child, just before we lock.
    make_bundle("a", seed=1)
    bundle = next(b for b in list_bundles(models_dir) if b.model_id == "a")
    from taskclf.model_registry.storage import local as storage_local

    prune_just_before_locking(monkeypatch, storage_local, "a")

    with pytest.raises(BundleRejectedError, match="does not exist"):
        write_active_atomic(models_dir, bundle)

    assert read_active(models_dir) is None
    assert not (models_dir / HISTORY_FILE).exists()
