"""Issue 9's integrity guarantees end to end: a sealed bundle whose files changed is caught
by verify and refused by every path that moves the pointer or loads a model, with
active.json and the history byte-for-byte unchanged; unsealed bundles work as before."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import sealed_bundle, tree_contents
from taskclf.cli.main import app
from taskclf.infer import ActiveModelReloader
from taskclf.model_registry import (
    ActivationError,
    BundleIntegrityError,
    PromotionError,
    RollbackError,
    activate_bundle,
    execute_rollback,
    find_best_model,
    plan_rollback,
    promote_bundle,
    read_active,
    read_bundle,
    resolve_active_model,
    verify_registry,
    write_active_atomic,
)
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from taskclf.samples import write_bundle


def _truncate(path: Path) -> None:
    os.truncate(path / f"{path.name}.model", 10)


def _modify(path: Path) -> None:
    model = path / f"{path.name}.model"
    data = bytearray(model.read_bytes())
    data[5] ^= 0x20
    model.write_bytes(bytes(data))


def _bump_metrics(path: Path) -> None:
    metrics = json.loads((path / "metrics.json").read_text())
    metrics["macro_f1"] = 0.99
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


TAMPERS: dict[str, tuple[Callable[[Path], object], str]] = {
    "deleted": (lambda p: (p / f"{p.name}.model").unlink(), "{id}.model is missing"),
    "truncated": (_truncate, "{id}.model has 10 bytes"),
    "modified": (_modify, "{id}.model has changed"),
    "metrics": (_bump_metrics, "metrics.json has"),
    "added": (lambda p: (p / "extra.pkl").write_bytes(b"x"), "extra.pkl is not listed"),
}


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    """Sealed bundles: a (0.7) was active, then b (0.8); c (0.6) never active."""
    models = tmp_path / "models"
    models.mkdir()
    for name, f1 in (("a", 0.7), ("b", 0.8), ("c", 0.6)):
        sealed_bundle(models, name, f1)
    activate_bundle(models, "a")
    activate_bundle(models, "b")
    return models


def _pointer_state(models: Path) -> tuple[bytes, bytes]:
    return (models / ACTIVE_FILE).read_bytes(), (models / HISTORY_FILE).read_bytes()


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_tampered_bundle_is_caught_and_refused_everywhere(
    registry: Path, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    tamper, problem = TAMPERS[kind]
    tamper(registry / "a")
    tamper(registry / "c")
    before = _pointer_state(registry)

    # verify (default mode hashes only the active bundle, so --deep for the others)
    deep = verify_registry(registry, deep=True)
    assert not deep.healthy
    mismatched = {
        (f.model_id, f.message.split(": ", 1)[1].split(";")[0])
        for f in deep.findings
        if f.code == "bundle-manifest-mismatch"
    }
    assert {model_id for model_id, _ in mismatched} == {"a", "c"}
    for model_id, text in mismatched:
        assert text.startswith(problem.format(id=model_id)), text
    assert {h.model_id: h.manifest for h in deep.bundles} == {
        "a": "mismatch",
        "b": "match",
        "c": "mismatch",
    }

    # set-active (library and CLI)
    with pytest.raises(ActivationError, match=r"does not match its manifest\.json") as caught:
        activate_bundle(registry, "c")
    assert caught.value.check == "integrity"
    result = CliRunner().invoke(
        app, ["model", "set-active", "--model-id", "c", "--models-dir", str(registry)]
    )
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert f"Bundle does not match its manifest.json: {problem.format(id='c')}" in result.stderr
    # write_active_atomic directly
    bundle_c = read_bundle(registry / "c")
    assert bundle_c is not None
    with pytest.raises(BundleIntegrityError, match=r"Bundle 'c' .* does not match"):
        write_active_atomic(registry, bundle_c)

    # rollback: a was the previous model; it no longer matches, so nothing to roll back to
    with pytest.raises(RollbackError, match="integrity"):
        plan_rollback(registry)
    with pytest.raises(RollbackError, match=r"does not match its manifest\.json"):
        plan_rollback(registry, to="a")
    assert _pointer_state(registry) == before

    # promote: a tampered sealed candidate is refused before anything is written
    candidate = sealed_bundle(tmp_path / "out", "d", 0.95)
    registry_before = tree_contents(registry)
    TAMPERS[kind][0](candidate)
    with pytest.raises(PromotionError, match=r"candidate does not match its manifest\.json"):
        promote_bundle(candidate, registry)
    assert tree_contents(registry) == registry_before
    assert _pointer_state(registry) == before


def test_rollback_refuses_a_target_tampered_after_planning(registry: Path) -> None:
    plan = plan_rollback(registry)
    assert plan.target_model_id == "a"
    before = _pointer_state(registry)
    _modify(registry / "a")
    with pytest.raises(RollbackError, match=r"a\.model has changed"):
        execute_rollback(registry, plan)
    assert _pointer_state(registry) == before


def test_promote_does_not_activate_best_when_it_is_tampered(registry: Path, tmp_path: Path) -> None:
    # The pointer was moved by hand to c; the best (b) is then tampered: promoting a
    # weaker candidate must not move the pointer to the tampered b. The overthrow goes
    # to the best bundle that still matches its manifest (a, 0.7), and says so.
    activate_bundle(registry, "c")
    _modify(registry / "b")
    result = promote_bundle(sealed_bundle(tmp_path / "out", "e", 0.5), registry)
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "a"
    assert result.active_updated
    assert (registry / "e").is_dir()  # the promoted bundle itself landed whole


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_reloader_keeps_the_current_model_on_a_mismatch(
    registry: Path, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    tamper, problem = TAMPERS[kind]
    loaded: list[str] = []

    def loader(path: Path) -> str:
        loaded.append(path.name)
        return path.name

    reloader = ActiveModelReloader(registry, loader, check_interval_s=0.0)
    assert reloader.check_now() == "b"
    activate_bundle(registry, "a")
    pristine = tree_contents(registry / "a")
    tamper(registry / "a")  # after the pointer moved: the reloader must catch it
    with caplog.at_level(logging.ERROR, logger="taskclf.infer"):
        assert reloader.check_now() is None
        assert reloader.check_now() is None  # retried, refused again
    assert loaded == ["b"]
    assert reloader.current == "b"
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(messages) == 2
    assert f"does not match its manifest.json: {problem.format(id='a')}" in messages[0]
    # Restored: the next check loads it.
    shutil.rmtree(registry / "a")
    assert pristine is not None
    for name, (_, content) in pristine.items():
        assert isinstance(content, bytes)
        (registry / "a" / name).parent.mkdir(parents=True, exist_ok=True)
        (registry / "a" / name).write_bytes(content)
    assert reloader.check_now() == "a"
    assert loaded == ["b", "a"]


def test_default_verify_hashes_the_active_bundle_and_sizes_the_rest(registry: Path) -> None:
    _modify(registry / "c")  # same size: only a hash sees it
    report = verify_registry(registry)
    assert report.healthy, report.findings
    assert not verify_registry(registry, deep=True).healthy
    _modify(registry / "b")  # the active bundle is always hashed
    report = verify_registry(registry)
    assert [f.model_id for f in report.findings if f.code == "bundle-manifest-mismatch"] == ["b"]
    _truncate(registry / "c")  # a size change is seen everywhere
    report = verify_registry(registry)
    assert {f.model_id for f in report.findings if f.code == "bundle-manifest-mismatch"} == {
        "b",
        "c",
    }
    result = CliRunner().invoke(
        app, ["model", "verify", "--deep", "--json", "--models-dir", str(registry)]
    )
    assert result.exit_code == 1
    assert not json.loads(result.stdout)["healthy"]


def test_old_bundles_without_manifest_still_rank_and_activate(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_bundle(models / "old-a", seed=1, macro_f1=0.6)
    write_bundle(models / "old-b", seed=2, macro_f1=0.9)
    sealed_bundle(models, "new", 0.8)
    report = find_best_model(models)
    assert [b.model_id for b in report.ranked] == ["old-b", "new", "old-a"]
    activate_bundle(models, "old-a")
    pointer = read_active(models)
    assert pointer is not None and pointer.model_id == "old-a"
    (models / "old-a" / "model.txt").unlink()  # no manifest: nothing to check against
    activate_bundle(models, "old-b")
    verified = verify_registry(models, deep=True)
    assert verified.healthy, verified.findings
    info = [f for f in verified.findings if f.severity == "info"]
    assert [f.code for f in info] == ["bundle-unsealed"]
    assert "2 bundle(s) have no manifest.json" in info[0].message
    result = CliRunner().invoke(app, ["model", "verify", "--models-dir", str(models)])
    assert result.exit_code == 0
    assert "info: bundle-unsealed" in result.stdout


def test_consistency_findings(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_bundle(models / "honest", seed=1, accuracy=0.7)
    bumped = write_bundle(models / "bumped", seed=2, accuracy=0.7)
    metrics = json.loads((bumped / "metrics.json").read_text())
    metrics["macro_f1"] = 0.99
    (bumped / "metrics.json").write_text(json.dumps(metrics))
    relabeled = write_bundle(models / "relabeled", seed=3)
    metrics = json.loads((relabeled / "metrics.json").read_text())
    metrics["label_names"] = [*metrics["label_names"][:-1], "Sleep"]
    (relabeled / "metrics.json").write_text(json.dumps(metrics))
    bare = write_bundle(models / "bare", seed=4)
    (bare / "model.txt").unlink()
    (bare / "confusion_matrix.csv").unlink()

    report = verify_registry(models)
    found = {(f.code, f.model_id): f for f in report.findings}
    assert found["bundle-metrics-inconsistent", "bumped"].severity == "error"
    assert re.search(
        r"declares macro_f1 0\.99 \(the matrix gives 0\.\d{6}\)",
        found["bundle-metrics-inconsistent", "bumped"].message,
    )
    labels = found["bundle-labels-inconsistent", "relabeled"]
    assert labels.severity == "error"
    assert "missing BreakIdle; extra Sleep" in labels.message
    assert found["bundle-no-artifact", "bare"].severity == "warning"
    assert ("bundle-metrics-inconsistent", "honest") not in found
    assert not report.healthy
    # Findings, not invalid reasons: the bumped bundle still ranks (first, wrongly).
    assert find_best_model(models).ranked[0].model_id == "bumped"


def test_truncation_between_the_hash_and_the_lock_is_refused_under_the_lock(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full hash runs before the lock; under it, sizes are re-checked. Force the
    # window: another process truncates the model file just before the lock is taken.
    from taskclf.model_registry._fs import registry_lock
    from taskclf.model_registry.storage import local

    real_lock = registry_lock

    def lock_after_a_truncation(root: Path) -> object:
        model = registry / "c" / "c.model"
        code = f"import os; os.truncate({str(model)!r}, 3)"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        return real_lock(root)

    monkeypatch.setattr(local, "registry_lock", lock_after_a_truncation)
    bundle = read_bundle(registry / "c")
    assert bundle is not None
    before = _pointer_state(registry)
    with pytest.raises(BundleIntegrityError, match=r"c\.model has 3 bytes"):
        write_active_atomic(registry, bundle)
    assert _pointer_state(registry) == before


def test_resolution_does_not_repair_the_pointer_to_a_tampered_bundle(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (registry / ACTIVE_FILE).unlink()
    _modify(registry / "b")  # the best
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        bundle, report = resolve_active_model(registry)
    # Passed over, named in a warning: the repair goes to the best intact bundle.
    assert bundle is not None and bundle.model_id == "a" and report is not None
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "a"
    assert any(
        "Passing over b" in r.getMessage() and "manifest" in r.getMessage() for r in caplog.records
    )
    # Restored bundles compete again (the pointer stays where the repair put it).
    _modify(registry / "b")
    (registry / ACTIVE_FILE).unlink()
    bundle, _ = resolve_active_model(registry)
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "b"
