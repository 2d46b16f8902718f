"""set-active and rollback on real registries in ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import BundleFactory
from taskclf.model_registry import (
    ActivationError,
    ActivePointer,
    RegistryError,
    RollbackError,
    SelectionPolicy,
    activate_bundle,
    append_active_history,
    execute_rollback,
    plan_rollback,
    read_active,
    read_active_history,
)
from taskclf.model_registry._fs import atomic_write
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE

# --- set-active --------------------------------------------------------------


def _nothing_written(models_dir: Path) -> bool:
    return not (models_dir / ACTIVE_FILE).exists() and not (models_dir / HISTORY_FILE).exists()


def test_activate_writes_pointer_and_history(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("run_a", accuracy=0.8)

    pointer = activate_bundle(models_dir, "run_a")

    assert pointer.model_dir == "models/run_a"
    assert pointer.model_id == "run_a"
    assert pointer.reason is not None and pointer.reason["note"] == "manual set-active"
    assert read_active(models_dir) == pointer
    history = read_active_history(models_dir)
    assert [(e.old, e.new) for e in history] == [(None, pointer)]


def test_activate_passes_reason_and_policy(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("run_a")
    pointer = activate_bundle(models_dir, "run_a", policy=SelectionPolicy(version=3), reason="why")
    assert pointer.policy_version == 3
    assert pointer.reason is not None and pointer.reason["note"] == "why"


@pytest.mark.parametrize(
    "model_id", ["missing", "", ".", "..", "../run_a", "run_a/", "sub/run_a", ".staging-x"]
)
def test_activate_not_found(models_dir: Path, make_bundle: BundleFactory, model_id: str) -> None:
    make_bundle("run_a")
    (models_dir / ".staging-x").mkdir()

    with pytest.raises(ActivationError) as caught:
        activate_bundle(models_dir, model_id)

    assert caught.value.check == "not_found"
    assert str(caught.value).startswith("Bundle directory not found: ")
    assert str(models_dir / model_id) in str(caught.value)
    assert "taskclf train list" in str(caught.value)
    assert _nothing_written(models_dir)


def test_activate_not_found_for_a_plain_file(models_dir: Path) -> None:
    (models_dir / "run_a").write_text("not a bundle")
    with pytest.raises(ActivationError, match=r"^Bundle directory not found: "):
        activate_bundle(models_dir, "run_a")
    assert _nothing_written(models_dir)


def test_activate_in_a_missing_registry_creates_nothing(tmp_path: Path) -> None:
    # Issue 10 item 11: the registry is named as missing, not "<dir>/run_a".
    missing = tmp_path / "nope"
    with pytest.raises(ActivationError, match=r"^Registry not found: .*nope does not exist; ") as e:
        activate_bundle(missing, "run_a")
    assert e.value.check == "registry_missing" and "--" not in str(e.value)
    assert not missing.exists()


def test_activate_invalid_bundle(models_dir: Path, make_bundle: BundleFactory) -> None:
    (make_bundle("run_a") / "metrics.json").unlink()

    with pytest.raises(ActivationError) as caught:
        activate_bundle(models_dir, "run_a")

    assert str(caught.value).startswith("Bundle is invalid: missing metrics.json; ")
    assert caught.value.check == "invalid"
    assert caught.value.model_id == "run_a"
    assert caught.value.path == models_dir / "run_a"
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, RegistryError)
    assert _nothing_written(models_dir)


@pytest.mark.parametrize(
    ("kwargs", "detail"),
    [
        ({"schema_hash": "0123456789ab"}, "schema_hash mismatch (declares schema_version v1"),
        ({"schema_version": "v2", "schema_hash": "0123456789ab"}, "schema_hash mismatch"),
        ({"label_set": ["Build", "Debug"]}, "label_set mismatch"),
        ({"extra_metadata": {"schema_version": "v9"}}, "unknown schema_version 'v9'"),
    ],
)
def test_activate_incompatible_bundle(
    models_dir: Path, make_bundle: BundleFactory, kwargs: dict[str, object], detail: str
) -> None:
    make_bundle("run_a", **kwargs)

    with pytest.raises(ActivationError) as caught:
        activate_bundle(models_dir, "run_a")

    prefix = "Bundle is incompatible with the current schema/labels: "
    assert str(caught.value).startswith(prefix + detail)
    assert caught.value.check == "incompatible"
    assert _nothing_written(models_dir)


def test_activate_accepts_older_schema_versions(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("v2_run", schema_version="v2")
    assert activate_bundle(models_dir, "v2_run").model_id == "v2_run"


# --- rollback ----------------------------------------------------------------


@pytest.fixture
def three_activations(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """Bundles a, b, c activated in that order (c is active)."""
    for seed, name in enumerate("abc"):
        make_bundle(name, seed=seed)
        activate_bundle(models_dir, name)
    return models_dir


def test_rollback_default_goes_to_the_previous_model(three_activations: Path) -> None:
    plan = plan_rollback(three_activations)

    assert plan.current_model_id == "c"
    assert plan.target_model_id == "b"
    assert plan.target_path == three_activations / "b"
    assert plan.steps == 1
    assert plan.considered == ["b", "a"]
    assert plan.skipped == []

    pointer = execute_rollback(three_activations, plan)

    assert pointer.model_id == "b"
    assert pointer.reason is not None and pointer.reason["note"] == "rollback"
    assert read_active(three_activations) == pointer
    last = read_active_history(three_activations)[-1]
    assert last.new == pointer
    assert last.old is not None and last.old.model_id == "c"


def test_rollback_plan_writes_nothing(three_activations: Path) -> None:
    before = (three_activations / HISTORY_FILE).read_bytes()
    pointer = (three_activations / ACTIVE_FILE).read_bytes()
    plan_rollback(three_activations, steps=2)
    assert (three_activations / HISTORY_FILE).read_bytes() == before
    assert (three_activations / ACTIVE_FILE).read_bytes() == pointer


def test_rollback_twice_toggles_back(three_activations: Path) -> None:
    execute_rollback(three_activations, plan_rollback(three_activations))
    assert plan_rollback(three_activations).target_model_id == "c"


def test_rollback_steps(three_activations: Path) -> None:
    plan = plan_rollback(three_activations, steps=2)
    assert (plan.target_model_id, plan.steps) == ("a", 2)
    assert execute_rollback(three_activations, plan).model_id == "a"


def test_rollback_too_many_steps(three_activations: Path) -> None:
    with pytest.raises(RollbackError, match=r"^Cannot go 3 models back: only 2 "):
        plan_rollback(three_activations, steps=3)


def test_rollback_skips_unusable_models(three_activations: Path) -> None:
    (three_activations / "b" / "metrics.json").unlink()

    plan = plan_rollback(three_activations)

    assert plan.target_model_id == "a"
    assert [(r.model_id, r.reason) for r in plan.skipped] == [
        ("b", "invalid: missing metrics.json")
    ]
    with pytest.raises(RollbackError, match=r"^Cannot go 2 models back: only 1 .*\(b \(invalid"):
        plan_rollback(three_activations, steps=2)


def test_rollback_nothing_usable(three_activations: Path) -> None:
    os.rename(three_activations / "b", three_activations / ".gone-b")
    (three_activations / "a" / "metadata.json").write_text("{")

    with pytest.raises(RollbackError) as caught:
        plan_rollback(three_activations)

    message = str(caught.value)
    assert message.startswith("Nothing to roll back to: no previously active model is still valid")
    assert "b (missing: bundle directory not found)" in message
    assert "a (invalid: metadata.json parse error" in message
    assert "taskclf model set-active" in message


def test_rollback_without_history(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a")
    with pytest.raises(RollbackError, match=r"^Nothing to roll back to: the history of "):
        plan_rollback(models_dir)
    activate_bundle(models_dir, "a")
    with pytest.raises(RollbackError, match=r"^Nothing to roll back to: "):
        plan_rollback(models_dir)


def test_rollback_missing_registry(tmp_path: Path) -> None:
    with pytest.raises(RollbackError, match=r"^Registry not found: .*nope does not exist\.$"):
        plan_rollback(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(
    ("to", "steps", "pattern"),
    [
        ("a", 1, r"not both"),
        (None, 0, r"at least 1 \(got 0\)"),
        (None, -2, r"at least 1 \(got -2\)"),
    ],
)
def test_rollback_bad_arguments(
    three_activations: Path, to: str | None, steps: int, pattern: str
) -> None:
    with pytest.raises(RollbackError, match=pattern):
        plan_rollback(three_activations, to=to, steps=steps)


def test_rollback_to_named_model(three_activations: Path, make_bundle: BundleFactory) -> None:
    plan = plan_rollback(three_activations, to="a")
    assert (plan.target_model_id, plan.steps) == ("a", None)
    assert plan.considered == ["b", "a"]
    # Never active before, but a valid compatible bundle: accepted.
    make_bundle("fresh", seed=9)
    assert plan_rollback(three_activations, to="fresh").target_model_id == "fresh"


def test_rollback_to_current_is_refused(three_activations: Path) -> None:
    with pytest.raises(RollbackError, match=r"^c is already the active model"):
        plan_rollback(three_activations, to="c")


@pytest.mark.parametrize(
    ("breakage", "sentence"),
    [("missing", "Bundle directory not found"), ("invalid", "Bundle is invalid")],
)
def test_rollback_to_unusable_model(three_activations: Path, breakage: str, sentence: str) -> None:
    if breakage == "invalid":
        (three_activations / "a" / "metrics.json").write_text("[]")
    target = "a" if breakage == "invalid" else "zzz"
    with pytest.raises(RollbackError) as caught:
        plan_rollback(three_activations, to=target)
    assert str(caught.value).startswith(f"Cannot roll back to {target}: {sentence}")
    assert caught.value.model_id == target


def test_rollback_ignores_an_entry_that_never_took_effect(three_activations: Path) -> None:
    """A crash between the history append and the pointer replace leaves such an entry."""
    current = read_active(three_activations)
    assert current is not None
    ghost = ActivePointer(
        model_dir="models/a", selected_at="2030-01-01T00:00:00+00:00", policy_version=1
    )
    append_active_history(three_activations, current, ghost)

    plan = plan_rollback(three_activations)

    assert plan.current_model_id == "c"
    assert plan.target_model_id == "b"
    assert plan.considered == ["b", "a"]


def test_execute_refuses_when_the_pointer_moved(three_activations: Path) -> None:
    plan = plan_rollback(three_activations)
    activate_bundle(three_activations, "a")
    history = (three_activations / HISTORY_FILE).read_bytes()

    with pytest.raises(RollbackError, match=r"changed since the rollback was planned"):
        execute_rollback(three_activations, plan)

    assert (three_activations / HISTORY_FILE).read_bytes() == history
    pointer = read_active(three_activations)
    assert pointer is not None and pointer.model_id == "a"


def test_execute_refuses_a_target_that_became_invalid(three_activations: Path) -> None:
    plan = plan_rollback(three_activations)
    (three_activations / "b" / "metadata.json").unlink()

    with pytest.raises(RollbackError, match=r"^Cannot roll back to b: Bundle is invalid"):
        execute_rollback(three_activations, plan)

    pointer = read_active(three_activations)
    assert pointer is not None and pointer.model_id == "c"


def test_execute_refuses_a_plan_for_another_registry(
    three_activations: Path, tmp_path: Path, make_bundle: BundleFactory
) -> None:
    plan = plan_rollback(three_activations)
    other = tmp_path / "other"
    make_bundle("b", parent=other)
    with pytest.raises(RollbackError, match=r"not in .*other; plan the rollback again"):
        execute_rollback(other, plan)
    assert not (other / ACTIVE_FILE).exists()


def test_rollback_after_the_pointer_was_deleted(three_activations: Path) -> None:
    os.unlink(three_activations / ACTIVE_FILE)
    plan = plan_rollback(three_activations)
    assert plan.current_model_id is None
    assert plan.considered == ["c", "b", "a"]
    assert plan.target_model_id == "c"
    assert execute_rollback(three_activations, plan).model_id == "c"


def test_rollback_after_a_hand_edited_pointer(three_activations: Path) -> None:
    hand_made = ActivePointer(
        model_dir="a", selected_at="2030-01-01T00:00:00+00:00", policy_version=1
    )
    atomic_write(three_activations / ACTIVE_FILE, hand_made.model_dump_json().encode())
    plan = plan_rollback(three_activations)
    assert plan.current_model_id == "a"
    assert plan.considered == ["c", "b"]
