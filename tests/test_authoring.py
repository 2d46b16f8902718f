"""save_bundle and ``taskclf model package``: complete sealed bundles, or nothing at all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import f1_score
from typer.testing import CliRunner, Result

from conftest import one_sentence_error, tree_contents
from taskclf.cli.main import app
from taskclf.core.schema import FeatureSchemaV1, FeatureSchemaV3
from taskclf.model_registry import (
    AuthoringError,
    check_manifest,
    list_bundles,
    promote_bundle,
    read_active,
    read_bundle,
    save_bundle,
)
from taskclf.model_registry._fs import rename_noreplace
from taskclf.model_registry.authoring import DEFAULT_LABELS, current_git_commit

Y_TRUE = ["Build", "Debug", "Build", "Meet", "Write", "Write"]
Y_PRED = ["Build", "Build", "Build", "Meet", "Review", "Write"]


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.txt"
    path.write_text("tree\n")
    return path


def _sk(average: str, labels: list[str] | tuple[str, ...] = DEFAULT_LABELS) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        value = f1_score(Y_TRUE, Y_PRED, labels=list(labels), average=average, zero_division=0)
    return float(value)


def _entries(directory: Path) -> list[str]:
    return sorted(os.listdir(directory)) if directory.exists() else []


def test_save_bundle_from_predictions(tmp_path: Path, model_file: Path) -> None:
    bundle = save_bundle(
        tmp_path / "out" / "run-1",
        model_file,
        schema_version="v3",
        y_true=Y_TRUE,
        y_pred=Y_PRED,
        params={"num_leaves": 31},
        dataset_hash="abc123",
        train_date_from="2026-01-01",
        train_date_to="2026-02-01",
        test_date_from="2026-02-02",
        test_date_to="2026-02-09",
        git_commit="f" * 40,
        model_format="lightgbm-text",
        reject_threshold=0.3,
    )
    assert bundle.valid and bundle.model_id == "run-1"
    assert bundle.metrics is not None and bundle.metadata is not None
    assert bundle.metrics.macro_f1 == pytest.approx(_sk("macro"), abs=1e-12)
    assert bundle.metrics.weighted_f1 == pytest.approx(_sk("weighted"), abs=1e-12)
    assert bundle.metrics.label_names == list(DEFAULT_LABELS)
    assert bundle.metadata.label_set == list(DEFAULT_LABELS)
    assert bundle.metadata.schema_hash == FeatureSchemaV3.SCHEMA_HASH
    assert bundle.metadata.params == {"num_leaves": 31}
    assert bundle.metadata.reject_threshold == 0.3
    assert bundle.created_at is not None and bundle.created_at.utcoffset() is not None
    raw = json.loads((bundle.path / "metadata.json").read_text())
    assert raw["model_format"] == "lightgbm-text"
    assert raw["model_files"] == ["model.txt"]
    assert (raw["test_date_from"], raw["test_date_to"]) == ("2026-02-02", "2026-02-09")
    assert (bundle.path / "model.txt").read_text() == "tree\n"
    csv_lines = (bundle.path / "confusion_matrix.csv").read_text().splitlines()
    assert csv_lines[0] == "true\\pred," + ",".join(DEFAULT_LABELS)
    assert _entries(bundle.path) == [
        "confusion_matrix.csv",
        "manifest.json",
        "metadata.json",
        "metrics.json",
        "model.txt",
    ]
    assert check_manifest(bundle.path).status == "match"
    assert _entries(tmp_path / "out") == ["run-1"]  # no staging left


def test_defaults_for_missing_training_facts(tmp_path: Path, model_file: Path) -> None:
    before = datetime.now(UTC)
    bundle = save_bundle(
        tmp_path / "run",
        model_file,
        schema_version="v1",
        confusion_matrix=[[3, 1], [0, 2]],
        labels=["spam", "ham"],
    )
    metadata = bundle.metadata
    assert metadata is not None and bundle.created_at is not None
    assert bundle.created_at >= before
    assert metadata.params == {}
    assert metadata.dataset_hash == metadata.train_date_from == metadata.train_date_to == "unknown"
    assert metadata.git_commit == current_git_commit()
    assert metadata.schema_hash == FeatureSchemaV1.SCHEMA_HASH
    assert metadata.label_set == ["spam", "ham"]
    raw = json.loads((bundle.path / "metadata.json").read_text())
    assert raw["model_format"] is None and raw["test_date_from"] is None


def test_git_commit_default(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "f").write_text("x")
    subprocess.run([*git, "add", "f"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert current_git_commit(repo) == head
    outside = tmp_path / "plain"
    outside.mkdir()
    env_free = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=outside, capture_output=True, check=False
    )
    if env_free.returncode != 0:
        assert current_git_commit(outside) == "unknown"


def test_numpy_inputs_from_scikit_learn(tmp_path: Path, model_file: Path) -> None:
    import numpy as np
    from sklearn.metrics import confusion_matrix

    labels = list(DEFAULT_LABELS)
    y_true, y_pred = np.array(Y_TRUE), np.array(Y_PRED)
    from_predictions = save_bundle(
        tmp_path / "p", model_file, schema_version="v1", y_true=y_true, y_pred=y_pred
    )
    from_matrix = save_bundle(
        tmp_path / "m",
        model_file,
        schema_version="v1",
        confusion_matrix=confusion_matrix(y_true, y_pred, labels=labels),
    )
    assert from_predictions.metrics == from_matrix.metrics
    assert from_matrix.metrics is not None
    assert from_matrix.metrics.macro_f1 == pytest.approx(_sk("macro"), abs=1e-12)
    with pytest.raises(AuthoringError, match="cells must be integers"):
        save_bundle(
            tmp_path / "f",
            model_file,
            schema_version="v1",
            confusion_matrix=[[0.5]],  # type: ignore[list-item]
            labels=["a"],
        )


def test_directory_artifact_tree_is_copied(tmp_path: Path) -> None:
    source = tmp_path / "trained"
    (source / "encoders").mkdir(parents=True)
    (source / "model.skops").write_bytes(b"\x00" * 10)
    (source / "encoders" / "labels.json").write_text("[]")
    bundle = save_bundle(
        tmp_path / "run", source, schema_version="v1", y_true=Y_TRUE, y_pred=Y_PRED
    )
    assert (bundle.path / "encoders" / "labels.json").read_text() == "[]"
    raw = json.loads((bundle.path / "metadata.json").read_text())
    assert raw["model_files"] == ["encoders/labels.json", "model.skops"]
    assert check_manifest(bundle.path).status == "match"


def test_several_files(tmp_path: Path, model_file: Path) -> None:
    other = tmp_path / "calibration.json"
    other.write_text("{}")
    bundle = save_bundle(
        tmp_path / "run", [model_file, other], schema_version="v1", y_true=Y_TRUE, y_pred=Y_PRED
    )
    raw = json.loads((bundle.path / "metadata.json").read_text())
    assert raw["model_files"] == ["calibration.json", "model.txt"]


def _refused(tmp_path: Path, match: str, artifacts: Any, **kwargs: Any) -> None:
    target = tmp_path / "out" / "run"
    kwargs.setdefault("schema_version", "v1")
    if "confusion_matrix" not in kwargs:
        kwargs.setdefault("y_true", Y_TRUE)
        kwargs.setdefault("y_pred", Y_PRED)
    with pytest.raises(AuthoringError, match=match) as caught:
        save_bundle(target, artifacts, **kwargs)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith(f"Cannot save bundle 'run' at {target}: ")
    assert not (tmp_path / "out").exists()  # not even the parent it would have created


def test_bad_inputs_write_nothing(tmp_path: Path, model_file: Path) -> None:
    _refused(tmp_path, "not both", model_file, confusion_matrix=[[1]], labels=["a"], y_true=["a"])
    _refused(tmp_path, "no evaluation given", model_file, y_true=None, y_pred=None)
    _refused(tmp_path, "must be given together", model_file, y_pred=None)
    _refused(tmp_path, r"y_pred\[0\] is 'Nope'", model_file, y_pred=["Nope"] * 6)
    _refused(tmp_path, "Unknown feature schema version 'v9'", model_file, schema_version="v9")
    _refused(tmp_path, "has 1 rows but there are 8 labels", model_file, confusion_matrix=[[1]])
    _refused(tmp_path, "cells must be integers", model_file, confusion_matrix=[[-1]], labels=["a"])
    _refused(tmp_path, "does not exist", tmp_path / "missing.txt")
    _refused(tmp_path, "no artifact given", [])
    _refused(tmp_path, "not an ISO-8601", model_file, created_at="yesterday")
    reserved = tmp_path / "metrics.json"
    reserved.write_text("{}")
    _refused(tmp_path, "reserved for the files save_bundle writes", [model_file, reserved])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.txt").write_text("x")
    _refused(tmp_path, "both named model.txt", [model_file, tmp_path / "sub" / "model.txt"])


def test_hidden_bundle_name_is_refused(tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(AuthoringError, match=r"may not start with '\.'"):
        save_bundle(
            tmp_path / ".run", model_file, schema_version="v1", y_true=["Build"], y_pred=["Build"]
        )
    assert _entries(tmp_path) == ["model.txt"]


def test_symlink_inside_an_artifact_directory_is_refused(tmp_path: Path, model_file: Path) -> None:
    source = tmp_path / "trained"
    source.mkdir()
    os.symlink(model_file, source / "model.txt")
    _refused(tmp_path, "model.txt in .* is a symlink", source)
    os.unlink(source / "model.txt")
    os.mkfifo(source / "pipe")
    _refused(tmp_path, "not a regular file or directory", source)


def test_existing_bundle_is_never_overwritten(tmp_path: Path, model_file: Path) -> None:
    first = save_bundle(
        tmp_path / "run", model_file, schema_version="v1", y_true=Y_TRUE, y_pred=Y_PRED
    )
    before = {name: (first.path / name).read_bytes() for name in _entries(first.path)}
    with pytest.raises(AuthoringError, match="already exists; bundles are never overwritten"):
        save_bundle(tmp_path / "run", model_file, schema_version="v3", y_true=Y_TRUE, y_pred=Y_TRUE)
    assert {name: (first.path / name).read_bytes() for name in _entries(first.path)} == before
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AuthoringError, match="already exists"):
        save_bundle(empty, model_file, schema_version="v1", y_true=Y_TRUE, y_pred=Y_PRED)
    assert _entries(empty) == []


def test_rename_noreplace_never_replaces_a_directory_created_meanwhile(tmp_path: Path) -> None:
    # What save_bundle's final step does when another process created the target
    # between its existence check and the rename: plain rename() would replace it.
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "f").write_text("new")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(FileExistsError):
        rename_noreplace(staged, target)
    assert _entries(target) == [] and _entries(staged) == ["f"]
    rename_noreplace(staged, tmp_path / "free")
    assert (tmp_path / "free" / "f").read_text() == "new"


def test_saved_bundle_promotes_and_activates(tmp_path: Path, model_file: Path) -> None:
    bundle = save_bundle(
        tmp_path / "out" / "run", model_file, schema_version="v1", y_true=Y_TRUE, y_pred=Y_PRED
    )
    models = tmp_path / "models"
    result = promote_bundle(bundle.path, models)
    assert result.active_updated
    pointer = read_active(models)
    assert pointer is not None and pointer.model_id == "run"
    assert check_manifest(models / "run").status == "match"


_SLOW_SAVE = """
import sys
from pathlib import Path
from taskclf.model_registry import save_bundle
print("started", flush=True)
save_bundle(Path(sys.argv[1]), Path(sys.argv[2]), schema_version="v1",
            confusion_matrix=[[1, 0], [0, 1]], labels=["a", "b"])
print("finished", flush=True)
"""


def _interrupt_save(tmp_path: Path, sig: int) -> tuple[Path, int]:
    """Start save_bundle on a large artifact in a child, signal it once staging exists."""
    big = tmp_path / "big.bin"
    if not big.exists():
        with open(big, "wb") as handle:
            for _ in range(64):
                handle.write(os.urandom(1 << 20))
    registry = tmp_path / "models"
    registry.mkdir(exist_ok=True)
    target = registry / "run"
    child = subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAVE, str(target), str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"started"
        # Busy-poll (no sleep) for the staging directory: the copy is in progress.
        while child.poll() is None and not any(
            name.startswith(".staging-") for name in os.listdir(registry)
        ):
            pass
    finally:
        if child.poll() is None:
            os.kill(child.pid, sig)
        child.communicate(timeout=60)
    return target, child.returncode


def test_sigkill_during_save_leaves_no_visible_bundle(tmp_path: Path) -> None:
    interrupted = 0
    for _ in range(3):
        target, code = _interrupt_save(tmp_path, signal.SIGKILL)
        if code == -signal.SIGKILL:
            interrupted += 1
            # Only a dot-prefixed staging directory may survive a hard crash: scans skip it.
            assert not os.path.lexists(target)
            assert list_bundles(target.parent) == []
            assert all(name.startswith(".staging-") for name in _entries(target.parent))
        else:
            # Finished before the kill: then it is whole and sealed.
            bundle = read_bundle(target)
            assert bundle is not None and bundle.valid
            assert check_manifest(target).status == "match"
            os.system(f"rm -rf {target}")
    assert interrupted > 0


def test_keyboard_interrupt_during_save_leaves_nothing(tmp_path: Path) -> None:
    target, code = _interrupt_save(tmp_path, signal.SIGINT)
    if code == 0:
        pytest.skip("the save finished before the interrupt arrived")
    assert code != 0
    assert _entries(target.parent) == []  # staging removed by the cleanup, no bundle


# --- taskclf model package ---------------------------------------------------------------

runner = CliRunner(env={"COLUMNS": None})


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def _csv(tmp_path: Path, text: str, name: str = "preds.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_package_from_csv_and_promote(tmp_path: Path, model_file: Path) -> None:
    rows = "".join(f"{t},{p}\n" for t, p in zip(Y_TRUE, Y_PRED, strict=True))
    csv = _csv(tmp_path, "y_true,y_pred\n" + rows)
    out = tmp_path / "out" / "run-7"
    models = tmp_path / "models"
    result = run(
        "model", "package", model_file, "--schema-version", "v1", "--predictions", csv,
        "--out", out, "--params", '{"lr": 0.1}', "--dataset-hash", "d1", "--train-from",
        "2026-01-01", "--train-to", "2026-01-31", "--git-commit", "abc", "--model-format",
        "lightgbm-text", "--promote", "--models-dir", models, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["bundle"]["model_id"] == "run-7"
    assert document["bundle"]["macro_f1"] == pytest.approx(_sk("macro"), abs=1e-12)
    assert document["promotion"]["active_updated"] is True
    bundle = read_bundle(models / "run-7")
    assert bundle is not None and bundle.metadata is not None
    assert bundle.metadata.params == {"lr": 0.1}
    assert bundle.metadata.git_commit == "abc"
    assert check_manifest(out).status == "match"


def test_package_from_confusion_matrix_json(tmp_path: Path, model_file: Path) -> None:
    matrix = tmp_path / "cm.json"
    matrix.write_text(json.dumps({"confusion_matrix": [[5, 1], [2, 4]], "label_names": ["x", "y"]}))
    result = run(
        "model", "package", model_file, "--schema-version", "v2", "--confusion-matrix", matrix,
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Packaged run at" in result.stdout
    bundle = read_bundle(tmp_path / "run")
    assert bundle is not None and bundle.metrics is not None
    assert bundle.metrics.label_names == ["x", "y"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty; it needs a header row y_true,y_pred"),
        ("truth,guess\nBuild,Build\n", "Line 1 of .* lacks the column"),
        ("y_true,y_pred\nBuild,Build\nDebug\n", "Line 3 of .* has 1 field"),
        ("y_true,y_pred\nBuild,Build\nBuild,Build\n,Debug\n", "Line 4 of .* has an empty"),
        ("y_true,y_pred\nBuild,Build\nBuild,Bild\n", "Line 3 of .* has y_pred 'Bild'"),
        ("y_true,y_pred\n", "has a header but no prediction rows"),
        ('y_true,y_pred\n"Build,Build\n', "Line 2 of .*"),
    ],
)
def test_package_bad_csv_is_one_sentence_with_the_line(
    tmp_path: Path, model_file: Path, text: str, message: str
) -> None:
    csv = _csv(tmp_path, text)
    result = run(
        "model", "package", model_file, "--schema-version", "v1", "--predictions", csv,
        "--out", tmp_path / "out" / "run",
    )  # fmt: skip
    error = one_sentence_error(result)
    import re

    assert re.search(message, error), error
    assert not (tmp_path / "out").exists()


def test_package_option_errors(tmp_path: Path, model_file: Path) -> None:
    csv = _csv(tmp_path, "y_true,y_pred\nBuild,Build\n")
    base: list[str | Path] = [
        "model",
        "package",
        model_file,
        "--schema-version",
        "v1",
        "--out",
        tmp_path / "r",
    ]
    assert "exactly one of" in one_sentence_error(run(*base))
    assert "--params" in one_sentence_error(run(*base, "--predictions", csv, "--params", "[1]"))
    assert "Unknown feature schema" in one_sentence_error(
        run("model", "package", model_file, "--schema-version", "v9", "--out", tmp_path / "r",
            "--predictions", csv)
    )  # fmt: skip
    inside: list[str | Path] = ["--promote", "--models-dir", tmp_path]
    assert "is inside --models-dir" in one_sentence_error(run(*base, "--predictions", csv, *inside))
    (tmp_path / "r").mkdir()
    assert "already exists" in one_sentence_error(run(*base, "--predictions", csv))


def test_seal_command(tmp_path: Path) -> None:
    from taskclf.samples import write_bundle

    models = tmp_path / "models"
    write_bundle(models / "old")
    result = run("model", "seal", "old", "--models-dir", models, "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["replaced"] is False and "model.txt" in document["files"]
    refused = one_sentence_error(run("model", "seal", "old", "--models-dir", models))
    assert "already has a manifest.json; pass --force to replace it" in refused
    result = run("model", "seal", "old", "--force", "--models-dir", models)
    assert result.exit_code == 0 and "Re-sealed old" in result.stdout
    assert "no bundle directory named" in one_sentence_error(
        run("model", "seal", "nope", "--models-dir", models)
    )


def test_readme_promotion_snippet_runs(tmp_path: Path) -> None:
    # The README's "Promotion and hot reload" snippet, as a new user runs it: it must
    # work from an empty directory, and a second run must stop with one clear error.
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [block.split("```", 1)[0] for block in readme.split("```python\n")[1:]]
    snippet = next(b for b in blocks if "save_bundle(" in b and "ActiveModelReloader" in b)
    first = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    assert "promoted run-0042 - active: run-0042" in first.stdout
    assert check_manifest(tmp_path / "models" / "run-0042").status == "match"
    second = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert second.returncode == 1
    assert "AuthoringError: Cannot save bundle 'run-0042'" in second.stderr
    assert "already exists; bundles are never overwritten" in second.stderr


def test_save_bundle_refuses_to_write_into_a_registry_or_a_bundle(tmp_path: Path) -> None:
    """A bundle written straight into models/ would skip promotion; inside a bundle it
    would break that bundle's manifest (review finding: `package --out models/b0/inner`)."""
    from taskclf.model_registry import AuthoringError, activate_bundle, verify_registry

    models = tmp_path / "models"
    models.mkdir()
    model = tmp_path / "m.txt"
    model.write_text("weights\n")
    matrix = [[3, 1], [0, 4]]
    save_bundle(
        tmp_path / "b0", model, schema_version="v1", confusion_matrix=matrix, labels=["a", "b"]
    )
    os.rename(tmp_path / "b0", models / "b0")
    (models / "registry.toml").write_text('labels = ["a", "b"]\n')
    activate_bundle(models, "b0")
    before = tree_contents(models)

    with pytest.raises(AuthoringError, match="is a registry; write the bundle elsewhere"):
        save_bundle(
            models / "b1", model, schema_version="v1", confusion_matrix=matrix, labels=["a", "b"]
        )
    with pytest.raises(AuthoringError, match="would be inside the bundle"):
        save_bundle(
            models / "b0" / "inner",
            model,
            schema_version="v1",
            confusion_matrix=matrix,
            labels=["a", "b"],
        )

    assert tree_contents(models) == before
    assert not [f for f in verify_registry(models).findings if f.severity == "error"]


@pytest.mark.parametrize(
    "evaluation",
    [{"y_true": [], "y_pred": []}, {"confusion_matrix": [[0, 0], [0, 0]], "labels": ["a", "b"]}],
)
def test_save_bundle_refuses_an_empty_evaluation(
    tmp_path: Path, evaluation: dict[str, Any]
) -> None:
    """Like `model package` with a header-only CSV: a model evaluated on nothing has no F1."""
    from taskclf.model_registry import AuthoringError

    model = tmp_path / "m.txt"
    model.write_text("weights\n")
    with pytest.raises(AuthoringError, match="the evaluation has no samples"):
        save_bundle(tmp_path / "run", model, schema_version="v1", **evaluation)
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m.txt"]
