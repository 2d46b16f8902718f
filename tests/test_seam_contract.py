"""Registry behaviour written once over the storage seam, run on both backends.

Each test runs on a local directory and on a bucket of the loopback S3
server (``any_registry``): the same calls must give the same answers,
because the same code makes them; only the storage verbs differ.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskclf.model_registry import (
    AliasNameError,
    RollbackError,
    activate,
    execute_rollback,
    plan_rollback,
    promote_bundle,
    read_active,
    read_active_history,
    resolve_active_model,
)
from taskclf.model_registry.storage import open_storage
from taskclf.samples import write_bundle


def candidate(tmp_path: Path, name: str, macro_f1: float, **kwargs: object) -> Path:
    """A valid candidate bundle outside the registry."""
    return write_bundle(tmp_path / "candidates" / name, macro_f1=macro_f1, **kwargs)  # type: ignore[arg-type]


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
