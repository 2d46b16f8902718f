"""Aliases (issue 14) in a registry with its own labels and schemas (registry.toml, issue 9).

Every alias must be judged against the registry's configuration exactly as
``active`` is: a bundle with the registry's own labels can carry any alias,
one with taskclf's default labels cannot, and prune, verify, resolution,
promotion and the reloader see the same.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from taskclf.infer import ActiveModelReloader, resolve_model_dir
from taskclf.model_registry import (
    ActivationError,
    activate_bundle,
    promote_bundle,
    read_active,
    resolve_active_model,
    verify_registry,
)
from taskclf.model_registry.aliases import alias_paths
from taskclf.model_registry.config import CONFIG_FILE, LABELS_ENV
from taskclf.model_registry.pointer import ACTIVE_FILE
from taskclf.report.data import build_report_data
from taskclf.samples import write_bundle
from test_config import IRIS_HASH, IRIS_TOML, iris_bundle, one_sentence_error, run


@pytest.fixture(autouse=True)
def _no_labels_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LABELS_ENV, raising=False)


@pytest.fixture
def iris(models_dir: Path) -> Path:
    """An iris registry (registry.toml): bundles a < b < c by macro_f1, ``active`` on ``a``."""
    (models_dir / CONFIG_FILE).write_text(IRIS_TOML, "utf-8")
    iris_bundle(models_dir / "a", seed=1, macro_f1=0.70)
    iris_bundle(models_dir / "b", seed=2, macro_f1=0.80)
    iris_bundle(models_dir / "c", seed=3, macro_f1=0.90)
    activate_bundle(models_dir, "a")
    return models_dir


def run_json(*args: str | Path) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_cli_canary_on_a_custom_label_bundle_and_prune_protects_it(iris: Path) -> None:
    active_before = (iris / ACTIVE_FILE).read_bytes()
    data = run_json("model", "set-active", "b", "--alias", "canary", "--models-dir", iris)
    assert data["model_dir"] == "models/b"
    assert (iris / ACTIVE_FILE).read_bytes() == active_before
    assert read_active(iris, alias="canary") is not None

    infos = {i["name"]: i for i in run_json("model", "aliases", "--models-dir", iris)}
    assert infos["canary"]["model_id"] == "b" and not infos["canary"]["broken"]
    assert not infos["active"]["broken"]

    resolved = run_json("model", "resolve", "--alias", "canary", "--models-dir", iris)
    assert resolved["source"] == "pointer" and resolved["active"]["model_id"] == "b"

    rows = {r["model_id"]: r for r in run_json("train", "list", "--models-dir", iris)}
    assert rows["b"]["aliases"] == ["canary"] and rows["b"]["eligible"] is True

    report = run_json("model", "verify", "--models-dir", iris)
    assert report["healthy"] is True, report["findings"]
    assert {"name": "canary", "model_id": "b", "pinned": False} in report["aliases"]

    # keep=1 keeps only c by rank; no history protection: canary alone keeps b.
    pruned = run_json(
        "model", "prune", "--keep", "1", "--keep-history", "0", "--yes", "--models-dir", iris
    )
    kept = {d["model_id"]: d for d in pruned["decisions"]}
    assert kept["b"]["action"] == "keep"
    assert any("alias 'canary'" in reason for reason in kept["b"]["reasons"])
    assert (iris / "b").is_dir() and (iris / "a").is_dir() and (iris / "c").is_dir()


def test_a_default_label_bundle_cannot_carry_an_alias_in_a_custom_registry(iris: Path) -> None:
    # The registry's own schema, but taskclf's eight labels.
    write_bundle(
        iris / "taskclf-run", seed=4, macro_f1=0.99, schema_version="iris-v1", schema_hash=IRIS_HASH
    )
    with pytest.raises(ActivationError) as caught:
        activate_bundle(iris, "taskclf-run", alias="canary")
    assert "missing: setosa" in str(caught.value)
    assert not alias_paths(iris, "canary").pointer.exists()
    error = one_sentence_error(
        run("model", "set-active", "taskclf-run", "--alias", "canary", "--models-dir", iris)
    )
    assert "label_set mismatch" in error and "missing: setosa" in error
    assert not alias_paths(iris, "canary").pointer.exists()


def test_labels_override_applies_to_aliases(iris: Path) -> None:
    """``--labels`` judges an alias's bundle exactly as it judges active's."""
    activate_bundle(iris, "b", alias="canary")
    error = one_sentence_error(
        run(
            "model", "set-active", "c", "--alias", "canary", "--labels", "x,y", "--models-dir", iris
        )
    )
    assert "label_set mismatch" in error
    assert read_active(iris, alias="canary") is not None
    infos = run_json("model", "aliases", "--labels", "x,y", "--models-dir", iris)
    assert all(info["broken"] for info in infos)


def test_pinned_canary_in_a_custom_registry_is_healthy_and_survives_promotion(
    iris: Path, tmp_path: Path
) -> None:
    activate_bundle(iris, "b", alias="canary", pin=True)
    report = verify_registry(iris)
    assert report.healthy, report.findings
    assert not [f for f in report.findings if f.code == "alias-pinned-unusable"]

    candidate = iris_bundle(tmp_path / "runs" / "d", seed=5, macro_f1=0.95)
    result = promote_bundle(candidate, iris, alias="canary")
    assert result.pinned and not result.active_updated
    pointer = read_active(iris, alias="canary")
    assert pointer is not None and pointer.model_dir.endswith("/b") and pointer.pinned

    other = iris_bundle(tmp_path / "runs" / "e", seed=6, macro_f1=0.97)
    moved = promote_bundle(other, iris, alias="challenger")
    assert moved.active_updated
    challenger = read_active(iris, alias="challenger")
    assert challenger is not None and challenger.model_dir.endswith("/e")


def test_resolution_and_reloader_follow_a_canary_in_a_custom_registry(iris: Path) -> None:
    activate_bundle(iris, "b", alias="canary")
    bundle, report = resolve_active_model(iris, alias="canary")
    assert report is None and bundle is not None and bundle.model_id == "b"
    assert resolve_model_dir(None, iris, alias="canary") == iris / "b"

    reloader = ActiveModelReloader(
        iris, lambda path: path.name, check_interval_s=0.0, alias="canary"
    )
    assert reloader.check_reload() == "b"
    activate_bundle(iris, "c", alias="canary")
    assert reloader.check_reload() == "c"

    # A canary lost to a deleted bundle self-heals to the iris registry's best.
    (iris / "c").rename(iris / ".removed-c")
    healed, scan = resolve_active_model(iris, alias="canary")
    assert scan is not None and healed is not None and healed.model_id == "b"
    pointer = read_active(iris, alias="canary")
    assert pointer is not None and pointer.model_dir.endswith("/b")


def test_report_lists_aliases_even_with_a_broken_registry_toml(iris: Path) -> None:
    activate_bundle(iris, "b", alias="canary")
    (iris / CONFIG_FILE).write_text("labels = [", "utf-8")
    data = build_report_data(iris)
    assert [timeline.name for timeline in data.aliases] == ["active", "canary"]
    assert any(CONFIG_FILE in sentence for sentence in data.missing)
    # Judged against the defaults, as the rows are: the iris bundles are not usable then.
    assert all(timeline.problem for timeline in data.aliases)
