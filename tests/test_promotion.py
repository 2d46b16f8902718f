"""Promotion (REGISTRY.md §10) with real bundles: ranking, hysteresis, refusals, failures."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import BundleFactory, change_between_check_and_copy, tree_contents
from taskclf.model_registry import (
    ActivePointer,
    PromotionError,
    RegistryError,
    SelectionPolicy,
    list_bundles,
    promote_bundle,
    read_active,
    read_active_history,
    read_bundle,
    read_index_cache,
    write_active_atomic,
)
from taskclf.model_registry.promotion import STAGING_PREFIX
from taskclf.samples import write_bundle


def staging_dirs(root: Path) -> list[str]:
    return [name for name in os.listdir(root) if name.startswith(STAGING_PREFIX)]


def active_id(root: Path) -> str | None:
    pointer = read_active(root)
    return pointer.model_id if pointer is not None else None


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """A registry whose pointer is on ``run-a`` (macro F1 0.80), with a worse ``run-b``."""
    make_bundle("run-a", seed=1, macro_f1=0.80, weighted_f1=0.80)
    make_bundle("run-b", seed=2, macro_f1=0.70, weighted_f1=0.70)
    bundle = read_bundle(models_dir / "run-a")
    assert bundle is not None
    write_active_atomic(models_dir, bundle, reason="manual set-active")
    return models_dir


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Where candidates are built, outside the registry."""
    path = tmp_path / "candidates"
    path.mkdir()
    return path


def test_first_promotion_creates_the_registry_and_activates(tmp_path: Path, outside: Path) -> None:
    candidate = write_bundle(outside / "run-001", seed=3)
    root = tmp_path / "deploy" / "models"

    result = promote_bundle(candidate, root)

    assert result.bundle.model_id == "run-001"
    assert result.bundle.path == root / "run-001"
    assert result.bundle.valid
    assert result.active_updated
    assert result.previous is None
    assert result.active is not None
    assert result.active.model_dir == "models/run-001"
    assert result.active.reason is not None
    assert result.active.reason["note"] == "promotion"
    assert read_active(root) == result.active
    history = read_active_history(root)
    assert [(e.old, e.new) for e in history] == [(None, result.active)]
    index = read_index_cache(root)
    assert index is not None
    assert index.best_model_id == "run-001"
    assert [s.model_id for s in index.ranked] == ["run-001"]
    assert staging_dirs(root) == []
    # Copy, not move: the candidate is untouched and identical to the promoted copy.
    assert tree_contents(candidate) == tree_contents(root / "run-001")


def test_better_candidate_takes_the_pointer(registry: Path, outside: Path) -> None:
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.90, weighted_f1=0.90)
    before = read_active(registry)

    result = promote_bundle(candidate, registry, policy=SelectionPolicy(min_improvement=0.05))

    assert result.active_updated
    assert result.previous == before
    assert result.active is not None
    assert result.active.model_id == "run-c"
    assert active_id(registry) == "run-c"
    assert result.report.best is not None
    assert result.report.best.model_id == "run-c"
    assert [b.model_id for b in result.report.ranked] == ["run-c", "run-a", "run-b"]
    last = read_active_history(registry)[-1]
    assert last.old == before
    assert last.new == result.active


def test_worse_candidate_lands_without_moving_the_pointer(registry: Path, outside: Path) -> None:
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.75, weighted_f1=0.75)
    before = read_active(registry)
    history_before = (registry / "active_history.jsonl").read_bytes()

    result = promote_bundle(candidate, registry)

    assert not result.active_updated
    assert result.previous == before
    assert result.active == before
    assert read_active(registry) == before
    assert (registry / "active_history.jsonl").read_bytes() == history_before
    assert result.bundle.model_id == "run-c"
    assert (registry / "run-c" / "metadata.json").is_file()
    index = read_index_cache(registry)
    assert index is not None
    assert [s.model_id for s in index.ranked] == ["run-a", "run-c", "run-b"]
    assert index.best_model_id == "run-a"


@pytest.mark.parametrize(
    ("created_at", "min_improvement", "expect_switch"),
    [
        # Same F1 scores but newer: it ranks first, and without hysteresis it wins.
        ("2027-01-01T00:00:00+00:00", 0.0, True),
        # Same, but hysteresis demands a real improvement.
        ("2027-01-01T00:00:00+00:00", 0.01, False),
        # Same scores and older: the current bundle stays best.
        ("2020-01-01T00:00:00+00:00", 0.0, False),
    ],
)
def test_equal_candidate(
    registry: Path, outside: Path, created_at: str, min_improvement: float, expect_switch: bool
) -> None:
    candidate = write_bundle(
        outside / "run-c", seed=3, macro_f1=0.80, weighted_f1=0.80, created_at=created_at
    )
    result = promote_bundle(
        candidate, registry, policy=SelectionPolicy(min_improvement=min_improvement)
    )
    assert result.active_updated is expect_switch
    assert active_id(registry) == ("run-c" if expect_switch else "run-a")
    assert len(read_active_history(registry)) == (2 if expect_switch else 1)


@pytest.mark.parametrize(
    ("macro_f1", "expect_switch"),
    [(0.805, False), (0.8099, False), (0.81, True), (0.95, True)],
)
def test_hysteresis_threshold(
    registry: Path, outside: Path, macro_f1: float, expect_switch: bool
) -> None:
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=macro_f1, weighted_f1=macro_f1)
    result = promote_bundle(candidate, registry, policy=SelectionPolicy(min_improvement=0.01))
    # The candidate is the best either way; only hysteresis decides.
    assert result.report.best is not None
    assert result.report.best.model_id == "run-c"
    assert result.active_updated is expect_switch
    assert active_id(registry) == ("run-c" if expect_switch else "run-a")


@pytest.mark.parametrize(
    "model_dir",
    ["../../etc", "models/missing-run", "models/run-broken"],
    ids=["escapes", "missing", "invalid"],
)
def test_unusable_pointer_gets_no_hysteresis(
    registry: Path, outside: Path, make_bundle: BundleFactory, model_dir: str
) -> None:
    broken = make_bundle("run-broken", seed=9)
    (broken / "metrics.json").write_text("{not json", "utf-8")
    pointer = ActivePointer(
        model_dir=model_dir,
        selected_at="2026-01-01T00:00:00+00:00",
        policy_version=1,
        reason={"metric": "macro_f1", "macro_f1": 0.99},
    )
    (registry / "active.json").write_text(pointer.model_dump_json(), "utf-8")
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.85, weighted_f1=0.85)

    result = promote_bundle(candidate, registry, policy=SelectionPolicy(min_improvement=0.5))

    assert result.active_updated
    assert result.previous == pointer
    assert active_id(registry) == "run-c"


def test_pointer_already_on_best_is_not_rewritten(registry: Path, outside: Path) -> None:
    # A hand-written pointer with a bare bundle name locates run-a too.
    (registry / "active.json").write_text(
        json.dumps(
            {"model_dir": "run-a", "selected_at": "2026-01-01T00:00:00", "policy_version": 1}
        ),
        "utf-8",
    )
    before = (registry / "active.json").read_bytes()
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.60, weighted_f1=0.60)

    result = promote_bundle(candidate, registry)

    assert not result.active_updated
    assert (registry / "active.json").read_bytes() == before


def _corrupt(path: Path) -> Path:
    write_bundle(path, seed=5)
    (path / "metrics.json").write_text('{"macro_f1": ', "utf-8")
    return path


def _missing_metadata(path: Path) -> Path:
    write_bundle(path, seed=5)
    (path / "metadata.json").unlink()
    return path


def _bad_metrics_contract(path: Path) -> Path:
    return write_bundle(path, seed=5, macro_f1=1.5)


def _wrong_hash(path: Path) -> Path:
    return write_bundle(path, seed=5, schema_hash="deadbeef0000")


def _wrong_labels(path: Path) -> Path:
    return write_bundle(path, seed=5, label_set=["Build", "Debug", "Review"])


def _unknown_version(path: Path) -> Path:
    write_bundle(path, seed=5)
    metadata = json.loads((path / "metadata.json").read_text("utf-8"))
    metadata["schema_version"] = "v9"
    (path / "metadata.json").write_text(json.dumps(metadata), "utf-8")
    return path


def _missing(path: Path) -> Path:
    return path


def _plain_file(path: Path) -> Path:
    path.write_text("not a bundle", "utf-8")
    return path


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (_corrupt, "invalid: metrics.json parse error"),
        (_missing_metadata, "invalid: missing metadata.json"),
        (_bad_metrics_contract, "invalid: metrics.json validation error"),
        (_wrong_hash, "incompatible: schema_hash mismatch"),
        (_wrong_labels, "incompatible: label_set mismatch"),
        (_unknown_version, "incompatible: unknown schema_version 'v9'"),
        (_missing, "candidate directory does not exist"),
        (_plain_file, "candidate is not a directory"),
    ],
)
@pytest.mark.parametrize("move", [False, True])
def test_refused_candidate_changes_nothing(
    registry: Path, outside: Path, build: Callable[[Path], Path], reason: str, move: bool
) -> None:
    candidate = build(outside / "run-c")
    before = tree_contents(registry)
    candidate_before = tree_contents(outside)

    with pytest.raises(PromotionError) as caught:
        promote_bundle(candidate, registry, move=move)

    assert caught.value.reason.startswith(reason)
    assert caught.value.model_id == "run-c"
    assert caught.value.path == candidate
    assert reason in str(caught.value)
    assert tree_contents(registry) == before
    assert tree_contents(outside) == candidate_before


def test_promotion_error_is_a_value_error_and_a_registry_error() -> None:
    assert issubclass(PromotionError, ValueError)
    assert issubclass(PromotionError, RegistryError)


def test_refused_candidate_does_not_create_the_registry(tmp_path: Path, outside: Path) -> None:
    candidate = _corrupt(outside / "run-c")
    root = tmp_path / "nowhere" / "models"
    with pytest.raises(PromotionError):
        promote_bundle(candidate, root)
    assert not os.path.lexists(tmp_path / "nowhere")


@pytest.mark.parametrize("move", [False, True])
def test_existing_name_is_refused(registry: Path, outside: Path, move: bool) -> None:
    candidate = write_bundle(outside / "run-a", seed=3, macro_f1=0.99, weighted_f1=0.99)
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match="already exists"):
        promote_bundle(candidate, registry, move=move)

    assert tree_contents(registry) == before
    assert (candidate / "metadata.json").is_file()


def test_name_option_avoids_a_collision(registry: Path, outside: Path) -> None:
    candidate = write_bundle(outside / "run-a", seed=3, macro_f1=0.99, weighted_f1=0.99)
    original = tree_contents(registry / "run-a")

    result = promote_bundle(candidate, registry, name="run-a-retrained")

    assert result.bundle.model_id == "run-a-retrained"
    assert result.bundle.path == registry / "run-a-retrained"
    assert active_id(registry) == "run-a-retrained"
    assert tree_contents(registry / "run-a") == original


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", ".hidden", "a/b", "../escape", "active.json", "index.json",
     "active_history.jsonl", "x" * 256],
)  # fmt: skip
def test_unusable_names_are_refused(registry: Path, outside: Path, name: str) -> None:
    candidate = write_bundle(outside / "run-c", seed=3)
    before = tree_contents(registry)
    with pytest.raises(PromotionError):
        promote_bundle(candidate, registry, name=name)
    assert tree_contents(registry) == before


def test_move_removes_the_source(registry: Path, outside: Path) -> None:
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.90, weighted_f1=0.90)
    content = tree_contents(candidate)

    result = promote_bundle(candidate, registry, move=True, name="run-c-final")

    assert not os.path.lexists(candidate)
    assert tree_contents(registry / "run-c-final") == content
    assert result.active_updated
    assert active_id(registry) == "run-c-final"
    assert staging_dirs(registry) == []


def test_move_of_a_symlink_is_refused(registry: Path, outside: Path, tmp_path: Path) -> None:
    target = write_bundle(outside / "run-c", seed=3)
    link = tmp_path / "link-to-run-c"
    link.symlink_to(target, target_is_directory=True)
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match="symlink"):
        promote_bundle(link, registry, move=True)

    assert tree_contents(registry) == before
    assert link.is_symlink()
    # Copying follows the link and promotes real files.
    result = promote_bundle(link, registry)
    assert not (registry / "link-to-run-c").is_symlink()
    assert result.bundle.valid


def test_move_from_inside_the_registry_is_refused(registry: Path) -> None:
    before = tree_contents(registry)
    with pytest.raises(PromotionError, match="already inside"):
        promote_bundle(registry / "run-b", registry, move=True, name="run-b2")
    assert tree_contents(registry) == before


def test_registry_inside_the_candidate_is_refused(tmp_path: Path) -> None:
    candidate = write_bundle(tmp_path / "project", seed=3)
    root = candidate / "models"
    with pytest.raises(PromotionError, match="inside the candidate"):
        promote_bundle(candidate, root)
    assert not os.path.lexists(root)


def test_a_dangling_link_is_refused_before_staging(registry: Path, outside: Path) -> None:
    # Before issue 10 the copy followed links and failed here after staging began;
    # now every link is refused before anything is written (test_promotion_confinement).
    candidate = write_bundle(outside / "run-c", seed=3)
    (candidate / "weights.bin").symlink_to(outside / "gone")
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match="symlink"):
        promote_bundle(candidate, registry)

    assert tree_contents(registry) == before
    assert (candidate / "metadata.json").is_file()


def _grow_when_staging_starts(monkeypatch: pytest.MonkeyPatch, file: Path) -> None:
    def grow() -> None:
        with open(file, "ab") as handle:
            handle.write(b"x" * 10_000)

    change_between_check_and_copy(monkeypatch, grow)


def test_copy_failure_leaves_no_staging(
    registry: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate = write_bundle(outside / "run-c", seed=3)
    limit = sum(p.stat().st_size for p in candidate.iterdir()) + 100
    _grow_when_staging_starts(monkeypatch, candidate / "model.txt")
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match="grew while it was copied"):
        promote_bundle(candidate, registry, max_bytes=limit)

    assert tree_contents(registry) == before
    assert (candidate / "metadata.json").is_file()


def test_copy_failure_removes_a_registry_it_created(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    candidate = write_bundle(outside / "run-c", seed=3)
    limit = sum(p.stat().st_size for p in candidate.iterdir()) + 100
    _grow_when_staging_starts(monkeypatch, candidate / "model.txt")
    root = tmp_path / "models"
    with pytest.raises(PromotionError):
        promote_bundle(candidate, root, max_bytes=limit)
    assert not os.path.lexists(root)


def test_pointer_write_failure_after_landing(registry: Path, outside: Path, tmp_path: Path) -> None:
    # active.json as a symlink: the registry refuses to write through it.
    real = tmp_path / "elsewhere.json"
    shutil.copy(registry / "active.json", real)
    (registry / "active.json").unlink()
    (registry / "active.json").symlink_to(real)
    history_before = (registry / "active_history.jsonl").read_bytes()
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.95, weighted_f1=0.95)

    with pytest.raises(OSError, match="symlink"):
        promote_bundle(candidate, registry)

    # The bundle landed whole; nothing else changed and no staging is left.
    assert read_bundle(registry / "run-c") is not None
    assert staging_dirs(registry) == []
    assert (registry / "active_history.jsonl").read_bytes() == history_before
    assert (registry / "active.json").is_symlink()


def test_index_write_failure_is_logged_and_the_pointer_still_moves(
    registry: Path, outside: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (registry / "index.json").symlink_to(tmp_path / "index-target.json")
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.95, weighted_f1=0.95)

    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        result = promote_bundle(candidate, registry)

    assert result.active_updated
    assert active_id(registry) == "run-c"
    assert "index.json" in caplog.text
    assert not (tmp_path / "index-target.json").exists()


def test_promoted_bundle_is_not_best_under_a_newer_schema(
    registry: Path, outside: Path, make_bundle: BundleFactory
) -> None:
    # A v3 bundle makes the v3 pass win; a v1 candidate is excluded from it.
    make_bundle("run-v3", seed=7, schema_version="v3", macro_f1=0.5, weighted_f1=0.5)
    candidate = write_bundle(outside / "run-c", seed=3, macro_f1=0.99, weighted_f1=0.99)

    result = promote_bundle(candidate, registry)

    assert result.bundle.model_id == "run-c"
    assert result.bundle.valid
    assert result.report.best is not None
    assert result.report.best.model_id == "run-v3"
    assert "run-c" in {e.model_id for e in result.report.excluded}
    assert {b.model_id for b in list_bundles(registry)} == {"run-a", "run-b", "run-c", "run-v3"}


def test_move_refuses_special_files_and_links_and_keeps_the_candidate(
    registry: Path, outside: Path
) -> None:
    # Before issue 10 a move kept them; now a bundle is only regular files and directories.
    candidate = write_bundle(outside / "run-c", seed=3)
    os.mkfifo(candidate / "pipe")
    (candidate / "weights.bin").symlink_to("model.txt")
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match="only regular files and directories"):
        promote_bundle(candidate, registry, move=True)

    assert tree_contents(registry) == before
    assert (candidate / "weights.bin").is_symlink()
    assert (candidate / "metadata.json").is_file()


def test_copy_refuses_special_files_cleanly(registry: Path, outside: Path) -> None:
    candidate = write_bundle(outside / "run-c", seed=3)
    os.mkfifo(candidate / "pipe")
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match="pipe is a named pipe"):
        promote_bundle(candidate, registry)

    assert tree_contents(registry) == before
