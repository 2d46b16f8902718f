"""``describe_bundle`` / ``diff_bundles`` and ``taskclf model show`` / ``model diff``."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sklearn.metrics import precision_recall_fscore_support
from typer.testing import CliRunner, Result

from taskclf.cli.main import app
from taskclf.model_registry import (
    BundleNotFoundError,
    activate_bundle,
    describe_bundle,
    diff_bundles,
    save_bundle,
)
from taskclf.model_registry.config import LABELS_ENV
from taskclf.model_registry.inspection import compare_descriptions
from taskclf.samples import write_bundle

if TYPE_CHECKING:
    from conftest import BundleFactory

runner = CliRunner(env={"COLUMNS": None, LABELS_ENV: None})

LABELS = ["cat", "dog", "bird"]
Y_TRUE = ["cat", "cat", "dog", "dog", "dog", "bird", "bird", "cat", "dog", "bird"]
Y_PRED = ["cat", "dog", "dog", "dog", "cat", "bird", "dog", "cat", "dog", "cat"]


def run(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def pets(models_dir: Path, tmp_path: Path) -> Path:
    """A registry for cat/dog/bird with one sealed bundle ``pets-1`` made by save_bundle."""
    (models_dir / "registry.toml").write_text(f"labels = {json.dumps(LABELS)}\n")
    artifact = tmp_path / "out" / "model.txt"
    artifact.parent.mkdir()
    artifact.write_text("a model\n")
    save_bundle(
        tmp_path / "runs" / "pets-1",
        artifact,
        schema_version="v1",
        y_true=Y_TRUE,
        y_pred=Y_PRED,
        labels=LABELS,
        params={"depth": 3, "lr": 0.1},
        dataset_hash="d1",
        train_date_from="2026-01-01",
        train_date_to="2026-01-31",
        test_date_from="2026-02-01",
        test_date_to="2026-02-07",
        git_commit="a" * 40,
        model_format="lightgbm-text",
    )
    # Registered by hand (promote_bundle would also activate it, and these tests want
    # an inactive bundle); save_bundle itself refuses to write into a registry.
    os.rename(tmp_path / "runs" / "pets-1", models_dir / "pets-1")
    return models_dir


def test_describe_a_packaged_bundle(pets: Path) -> None:
    d = describe_bundle(pets, "pets-1")

    assert d.valid and d.eligible and d.reason is None and not d.active
    assert d.params == {"depth": 3, "lr": 0.1}
    assert (d.dataset_hash, d.git_commit) == ("d1", "a" * 40)
    assert (d.train_date_from, d.train_date_to) == ("2026-01-01", "2026-01-31")
    assert (d.test_date_from, d.test_date_to) == ("2026-02-01", "2026-02-07")
    assert d.schema_version == "v1" and d.schema_hash == "4077fe0dba70" and d.schema_known
    assert d.label_set == LABELS
    assert d.model_format == "lightgbm-text" and d.model_files == ["model.txt"]
    assert d.manifest.status == "match" and not d.manifest.deep

    precision, recall, f1, support = precision_recall_fscore_support(
        Y_TRUE, Y_PRED, labels=LABELS, zero_division=0
    )
    assert [c.label for c in d.classes] == LABELS
    for i, c in enumerate(d.classes):
        assert c.precision == pytest.approx(precision[i])
        assert c.recall == pytest.approx(recall[i])
        assert c.f1 == pytest.approx(f1[i])
        assert c.support == support[i]

    on_disk = {
        name: os.stat(pets / "pets-1" / name).st_size for name in os.listdir(pets / "pets-1")
    }
    assert {f.path: f.size for f in d.files} == on_disk
    assert d.total_bytes == sum(on_disk.values())


def test_manifest_status_sizes_by_default_hashes_with_deep(pets: Path) -> None:
    model = pets / "pets-1" / "model.txt"
    model.write_text("A model\n")  # same size, other content
    assert describe_bundle(pets, "pets-1").manifest.status == "match"
    deep = describe_bundle(pets, "pets-1", deep=True).manifest
    assert deep.status == "mismatch" and deep.deep
    assert any(problem.startswith("model.txt: ") for problem in deep.problems)

    (pets / "pets-1" / "extra.bin").write_bytes(b"x")
    shallow = describe_bundle(pets, "pets-1").manifest
    assert shallow.status == "mismatch"
    assert any(problem.startswith("extra.bin: ") for problem in shallow.problems)


def test_unsealed_active_and_incompatible(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("plain", seed=1)
    make_bundle("labels", seed=2, label_set=["Build", "Debug", "x"])
    make_bundle("hash", seed=3, schema_hash="000000000000")
    activate_bundle(models_dir, "plain")

    plain = describe_bundle(models_dir, "plain")
    assert plain.manifest.status == "unsealed" and plain.active and plain.eligible
    assert plain.model_format is None and plain.model_files is None

    labels = describe_bundle(models_dir, "labels")
    assert not labels.eligible and labels.reason == "incompatible: label_set mismatch"
    assert labels.reason_detail is not None
    assert "missing: Review, Write, ReadResearch" in labels.reason_detail
    assert "extra: x" in labels.reason_detail

    wrong = describe_bundle(models_dir, "hash")
    assert not wrong.schema_known and wrong.expected_schema_hash == "4077fe0dba70"
    assert wrong.reason == "incompatible: schema_hash mismatch"


def test_invalid_bundle_is_described_by_the_library(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    broken = make_bundle("broken", seed=1)
    (broken / "metrics.json").write_text("{")
    d = describe_bundle(models_dir, "broken")
    assert not d.valid and d.invalid_reason is not None
    assert d.invalid_reason.startswith("metrics.json parse error")
    assert d.reason is not None and d.reason.startswith("invalid: ")
    assert d.classes == [] and d.schema_version == "v1"


@pytest.mark.parametrize("model_id", ["missing", "", ".staging-x", "../models", "a/b"])
def test_not_a_bundle(models_dir: Path, make_bundle: BundleFactory, model_id: str) -> None:
    make_bundle("a", seed=1)
    (models_dir / ".staging-x").mkdir()
    with pytest.raises(BundleNotFoundError) as caught:
        describe_bundle(models_dir, model_id)
    assert isinstance(caught.value, ValueError)
    assert "Bundle directory not found" in str(caught.value)


def test_diff_lists_what_differs(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1)
    make_bundle("b", seed=2, macro_f1=0.5)
    (models_dir / "b" / "notes.txt").write_text("hello")

    result = diff_bundles(models_dir, "a", "b")

    fields = {d.field: (d.a, d.b) for d in result.differences}
    assert fields["macro_f1"][1] == 0.5
    assert fields["params.seed"] == (1, 2)
    assert fields["files.notes.txt"] == (None, 5)
    assert "schema_version" not in fields and "label_set" not in fields
    assert "model_id" not in fields and "path" not in fields
    assert not result.identical


def test_diff_of_a_copy_is_identical(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1)
    shutil.copytree(models_dir / "a", models_dir / "a-copy")
    assert diff_bundles(models_dir, "a", "a-copy").identical


def test_compare_descriptions_is_symmetric(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1)
    make_bundle("b", seed=2, label_set=["x", "y"])
    a, b = describe_bundle(models_dir, "a"), describe_bundle(models_dir, "b")
    forward = {d.field: (d.a, d.b) for d in compare_descriptions(a, b)}
    backward = {d.field: (d.b, d.a) for d in compare_descriptions(b, a)}
    assert forward == backward
    assert compare_descriptions(a, a) == []


# --- CLI ----------------------------------------------------------------------------------


def test_cli_show_json_and_table(pets: Path) -> None:
    result = run("model", "show", "pets-1", "--models-dir", pets, "--json")
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["model_id"] == "pets-1" and data["manifest"]["status"] == "match"
    assert [c["label"] for c in data["classes"]] == LABELS
    assert data["files"][0]["path"] == "confusion_matrix.csv"

    result = run("model", "show", "pets-1", "--models-dir", pets, "--deep")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Bundle pets-1" in out and "Per-class scores" in out
    assert "sealed, matches (hashed)" in out and "lightgbm-text" in out


def test_cli_diff_json_and_table(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1, macro_f1=0.6)
    make_bundle("b", seed=2, macro_f1=0.7)

    result = run("model", "diff", "a", "b", "--models-dir", models_dir, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["a"]["model_id"] == "a" and data["b"]["model_id"] == "b"
    assert {"field": "macro_f1", "a": 0.6, "b": 0.7} in data["differences"]
    assert data["identical"] is False

    result = run("model", "diff", "a", "b", "--models-dir", models_dir)
    assert result.exit_code == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("│ macro_f1 "))
    assert "0.6000" in line and "0.7000" in line and "+0.1000" in line


@pytest.mark.parametrize(
    "args",
    [
        ("model", "show", "nope"),
        ("model", "diff", "a", "nope"),
        ("model", "show", "broken"),
        ("model", "diff", "broken", "a"),
    ],
)
def test_cli_missing_or_invalid_bundle_is_one_sentence(
    models_dir: Path, make_bundle: BundleFactory, args: tuple[str, ...]
) -> None:
    make_bundle("a", seed=1)
    broken = make_bundle("broken", seed=2)
    (broken / "metadata.json").unlink()
    for json_flag in ((), ("--json",)):
        result = run(*args, "--models-dir", models_dir, *json_flag)
        assert result.exit_code == 1, result.stdout
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1
        assert "not found" in errors[0] or "is invalid (missing metadata.json)" in errors[0]
        if json_flag:
            assert set(json.loads(result.stdout)) == {"error"}


def test_cli_show_and_diff_print_disk_values_literally(models_dir: Path) -> None:
    write_bundle(
        models_dir / "[bold]b0", seed=1, extra_metadata={"params": {"note": "x\x1b[2Jy[/]"}}
    )
    write_bundle(models_dir / "b1", seed=2)

    show = run("model", "show", "[bold]b0", "--models-dir", models_dir)
    assert show.exit_code == 0, show.stderr
    assert "Bundle [bold]b0" in show.stdout and "x\\x1b[2Jy[/]" in show.stdout
    assert "\x1b" not in show.stdout

    diff = run("model", "diff", "[bold]b0", "b1", "--models-dir", models_dir)
    assert diff.exit_code == 0, diff.stderr
    assert "[bold]b0 (A) vs b1 (B)" in diff.stdout and "\x1b" not in diff.stdout
