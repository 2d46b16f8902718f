"""Registry behaviour written once over the storage seam, run on both backends.

Each test runs on a local directory and on a bucket of the loopback S3
server (``any_registry``): the same calls must give the same answers,
because the same code makes them; only the storage verbs differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskclf.model_registry import (
    ActivationError,
    AliasNameError,
    BundleNotFoundError,
    RegistryConfigError,
    RollbackError,
    activate,
    describe_bundle,
    diff_bundles,
    execute_rollback,
    find_best_model,
    list_aliases,
    list_rows,
    load_registry_config,
    plan_prune,
    plan_rollback,
    promote_bundle,
    read_active,
    read_active_history,
    resolve_active_model,
    verify_registry,
)
from taskclf.model_registry.manifest import seal_bundle
from taskclf.model_registry.storage import open_storage
from taskclf.samples import write_bundle


def candidate(tmp_path: Path, name: str, macro_f1: float, **kwargs: object) -> Path:
    """A valid, sealed candidate bundle outside the registry (with a model file)."""
    path = write_bundle(tmp_path / "candidates" / name, macro_f1=macro_f1, **kwargs)  # type: ignore[arg-type]
    (path / "model.txt").write_text(f"weights of {name}\n" * 20)
    seal_bundle(path)
    return path


@pytest.fixture
def three(any_registry: str, tmp_path: Path) -> str:
    """A registry with run_a < run_b < run_c by macro F1, ``active`` on run_c."""
    for name, f1 in (("run_a", 0.6), ("run_b", 0.7), ("run_c", 0.8)):
        promote_bundle(candidate(tmp_path, name, f1), any_registry)
    return any_registry


def test_an_alias_is_set_rolled_back_and_audited_apart_from_active(three: str) -> None:
    assert read_active(three, alias="canary") is None
    activate(three, "run_a", alias="canary", message="first canary", actor="ci@build")
    activate(three, "run_b", alias="canary")
    assert read_active(three, alias="canary").model_id == "run_b"  # type: ignore[union-attr]
    # active is untouched by the alias's moves, and the other way round.
    assert read_active(three).model_id == "run_c"  # type: ignore[union-attr]
    history = read_active_history(three, alias="canary")
    assert [(e.old.model_id if e.old else None, e.new.model_id) for e in history] == [
        (None, "run_a"),
        ("run_a", "run_b"),
    ]
    assert history[0].actor == "ci@build" and history[0].message == "first canary"
    plan = plan_rollback(three, alias="canary")
    assert plan.target_model_id == "run_a" and plan.current_model_id == "run_b"
    execute_rollback(three, plan)
    assert read_active(three, alias="canary").model_id == "run_a"  # type: ignore[union-attr]
    assert read_active_history(three, alias="canary")[-1].new.reason == {
        **(read_active_history(three, alias="canary")[-1].new.reason or {}),
        "note": "rollback",
    }
    assert read_active(three).model_id == "run_c"  # type: ignore[union-attr]
    assert open_storage(three).alias_names() == ["active", "canary"]


def test_a_pinned_alias_keeps_its_bundle_and_resolves_to_it(three: str) -> None:
    activate(three, "run_a", alias="stable", pin=True)
    pointer = read_active(three, alias="stable")
    assert pointer is not None and pointer.pinned and pointer.model_id == "run_a"
    # A manual move keeps the pin; resolution follows the alias, not the best bundle.
    bundle, report = resolve_active_model(three, alias="stable")
    assert bundle is not None and bundle.model_id == "run_a" and report is None
    activate(three, "run_b", alias="stable")
    assert read_active(three, alias="stable").pinned  # type: ignore[union-attr]


def test_a_stale_alias_rollback_plan_is_refused(three: str) -> None:
    activate(three, "run_a", alias="canary")
    activate(three, "run_b", alias="canary")
    plan = plan_rollback(three, alias="canary")
    activate(three, "run_c", alias="canary")
    with pytest.raises(RollbackError, match="plan the rollback again"):
        execute_rollback(three, plan)
    assert read_active(three, alias="canary").model_id == "run_c"  # type: ignore[union-attr]


def test_a_bad_alias_name_is_refused_on_both_backends(three: str) -> None:
    with pytest.raises(AliasNameError, match="not allowed"):
        activate(three, "run_a", alias="../escape")


def _same_size_edit(models_dir: str, model_id: str) -> str:
    """Overwrite a bundle's model file with other bytes of the same size; returns its name."""
    storage = open_storage(models_dir)
    files = [i for i in storage.list_files(model_id) if i.key.endswith(".txt")]
    assert files, storage.list_files(model_id)
    key = files[0].key
    data, _ = storage.read(key)
    storage.put(key, bytes(255 - b for b in data))
    return key.partition("/")[2]


def test_verify_deep_hashes_bundles_and_finds_a_same_size_edit(three: str) -> None:
    name = _same_size_edit(three, "run_a")
    if not three.startswith("s3://"):
        # Sizes match: only hashing can tell. (On a store, a LIST's timestamps may
        # tell too: see the test below.)
        shallow = verify_registry(three)
        assert "bundle-manifest-mismatch" not in [f.code for f in shallow.findings]
    deep = verify_registry(three, deep=True)
    mismatches = [f for f in deep.findings if f.code == "bundle-manifest-mismatch"]
    assert [f.model_id for f in mismatches] == ["run_a"]
    assert name in mismatches[0].message
    # The advice is one that works where the bundle is: an object-store bundle cannot be
    # re-sealed (`taskclf model seal` refuses there).
    remote = three.startswith("s3://")
    assert ("taskclf model seal" in mismatches[0].message) is not remote
    assert ("promote the intended files again" in mismatches[0].message) is remote
    assert not deep.healthy
    assert {b.model_id: b.manifest for b in deep.bundles} == {
        "run_a": "mismatch",
        "run_b": "match",
        "run_c": "match",
    }


def test_a_same_size_edit_on_a_store_is_caught_without_hashing(
    s3_registry: str, tmp_path: Path
) -> None:
    """A bundle's manifest is uploaded last, so a file a LIST shows as modified in a later
    second was rewritten after the upload: verify and prune see it without downloading."""
    import time

    for name, f1 in (("run_a", 0.9), ("run_b", 0.7), ("run_c", 0.6)):
        promote_bundle(candidate(tmp_path, name, f1), s3_registry)
    time.sleep(1.1)  # the store's timestamps are whole seconds
    name = _same_size_edit(s3_registry, "run_a")
    shallow = verify_registry(s3_registry)
    mismatches = [f for f in shallow.findings if f.code == "bundle-manifest-mismatch"]
    assert [f.model_id for f in mismatches] == ["run_a"]
    assert f"{name} was rewritten after manifest.json" in mismatches[0].message
    # prune keeps the changed bundle aside and keeps the best intact bundle instead.
    plan = plan_prune(s3_registry, keep=1)
    kept = {d.model_id: d.reasons for d in plan.decisions if d.action == "keep"}
    assert "run_b" in kept and any("manifest" in r for r in kept["run_a"])
    assert "run_c" not in kept


def test_a_tampered_bundle_cannot_be_set_active(three: str) -> None:
    _same_size_edit(three, "run_b")
    with pytest.raises(ActivationError, match="manifest") as refused:
        activate(three, "run_b", alias="canary")
    assert ("taskclf model seal" in str(refused.value)) is not three.startswith("s3://")
    assert read_active(three, alias="canary") is None


def test_verify_reports_aliases_and_their_histories(three: str) -> None:
    activate(three, "run_a", alias="canary")
    report = verify_registry(three)
    assert report.healthy, report.findings
    assert [(a.name, a.model_id) for a in report.aliases] == [
        ("active", "run_c"),
        ("canary", "run_a"),
    ]
    assert {b.model_id: b.aliases for b in report.bundles}["run_a"] == ["canary"]


IRIS = ["setosa", "versicolor", "virginica"]


def test_the_registry_configuration_is_read_from_where_the_registry_is(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bundles carry taskclf's own labels; a registry of iris labels refuses them all.
    open_storage(three).put("registry.toml", f"labels = {json.dumps(IRIS)}\n".encode())
    assert load_registry_config(three).labels == tuple(IRIS)
    assert find_best_model(three).best is None
    with pytest.raises(ActivationError, match=r"incompatible|label"):
        activate(three, "run_a", alias="canary")
    open_storage(three).put("registry.toml", b"labels = [\n")
    with pytest.raises(RegistryConfigError, match=r"registry\.toml"):
        find_best_model(three)


def test_label_overrides_apply_on_both_backends(
    three: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_best_model(three).best is not None
    monkeypatch.setenv("TASKCLF_LABELS", ",".join(IRIS))
    assert find_best_model(three).best is None
    monkeypatch.delenv("TASKCLF_LABELS")
    rows = list_rows(three, config=load_registry_config(three, labels=IRIS))
    assert rows and not any(row.eligible for row in rows)
    report = verify_registry(three, labels=IRIS)
    assert "no-eligible-bundle" in [f.code for f in report.findings]


def test_show_and_diff_describe_bundles_on_both_backends(three: str) -> None:
    shown = describe_bundle(three, "run_c", deep=True)
    assert shown.active and shown.valid and shown.manifest.status == "match"
    assert "model.txt" in [f.path for f in shown.files]
    diff = diff_bundles(three, "run_a", "run_c")
    assert "macro_f1" in [d.field for d in diff.differences]
    with pytest.raises(BundleNotFoundError):
        describe_bundle(three, "missing")


TASKCLF = str(Path(sys.executable).with_name("taskclf"))


def test_package_promote_lands_a_sealed_bundle_on_both_backends(
    any_registry: str, tmp_path: Path
) -> None:
    from taskclf.model_registry.authoring import DEFAULT_LABELS

    model = tmp_path / "model.txt"
    model.write_text("weights\n" * 50)
    labels = list(DEFAULT_LABELS)
    rows = "".join(f"{label},{label}\n" for label in labels * 3)
    csv = tmp_path / "preds.csv"
    csv.write_text("y_true,y_pred\n" + rows)
    done = subprocess.run(
        [
            TASKCLF, "model", "package", str(model), "--schema-version", "v1",
            "--predictions", str(csv), "--out", str(tmp_path / "runs" / "run-7"),
            "--promote", "--models-dir", any_registry, "--json",
        ],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["promotion"]["active_updated"] is True
    assert read_active(any_registry).model_id == "run-7"  # type: ignore[union-attr]
    assert describe_bundle(any_registry, "run-7", deep=True).manifest.status == "match"


def test_the_aliases_listing_on_both_backends(three: str) -> None:
    activate(three, "run_a", alias="canary", pin=True)
    infos = {info.name: info for info in list_aliases(three)}
    assert list(infos) == ["active", "canary"]
    assert infos["canary"].model_id == "run_a" and infos["canary"].pinned
    assert not infos["active"].broken and infos["active"].model_id == "run_c"
