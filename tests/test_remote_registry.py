"""The registry on S3-compatible storage, against a real S3 API on 127.0.0.1 (moto's server).

The registry-level contract tests run on both backends (``any_registry``):
the same calls, the same answers, whether ``models_dir`` is a directory or
``s3://bucket/prefix``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskclf.model_registry import (
    ActivationError,
    PromotionError,
    RollbackError,
    activate,
    execute_prune,
    execute_rollback,
    find_best_model,
    list_bundles,
    plan_prune,
    plan_rollback,
    promote_bundle,
    read_active,
    read_active_history,
    resolve_active_model,
    verify_registry,
)
from taskclf.model_registry.pointer import pointer_change
from taskclf.model_registry.storage import open_storage
from taskclf.model_registry.storage.chain import (
    HISTORY_PREFIX,
    chain_state,
    commit_pointer,
)
from taskclf.model_registry.storage.chain import read_pointer as read_pointer_state
from taskclf.samples import write_bundle


@contextlib.contextmanager
def two_hours_later() -> Iterator[None]:
    """Prune as it will see the registry two hours from now: today's leftovers are stale."""
    from taskclf.model_registry import retention

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retention, "LEFTOVER_MIN_AGE_S", retention.LEFTOVER_MIN_AGE_S - 7200)
        yield


def candidate(tmp_path: Path, name: str, macro_f1: float, **kwargs: object) -> Path:
    """A valid candidate bundle outside the registry."""
    return write_bundle(tmp_path / "candidates" / name, macro_f1=macro_f1, **kwargs)  # type: ignore[arg-type]


def chain_is_intact(models_dir: str) -> None:
    history = read_active_history(models_dir)
    for before, after in itertools.pairwise(history):
        assert after.old == before.new
    if history:
        assert history[-1].new == read_active(models_dir)


# -- the same behaviour on both backends ------------------------------------------------


def test_promote_ranks_and_moves_the_pointer(any_registry: str, tmp_path: Path) -> None:
    first = promote_bundle(candidate(tmp_path, "run_a", 0.70), any_registry)
    assert first.active_updated
    assert first.active is not None and first.active.model_id == "run_a"
    second = promote_bundle(candidate(tmp_path, "run_b", 0.80), any_registry)
    assert second.active_updated and second.previous == first.active
    assert [b.model_id for b in list_bundles(any_registry)] == ["run_a", "run_b"]
    assert find_best_model(any_registry).best is not None
    assert find_best_model(any_registry).best.model_id == "run_b"  # type: ignore[union-attr]
    bundle, report = resolve_active_model(any_registry)
    assert bundle is not None and bundle.model_id == "run_b" and report is None
    history = read_active_history(any_registry)
    assert [(h.old and h.old.model_id, h.new.model_id) for h in history] == [
        (None, "run_a"),
        ("run_a", "run_b"),
    ]
    chain_is_intact(any_registry)


def test_promotion_refuses_an_existing_name_and_bad_bundles(
    any_registry: str, tmp_path: Path
) -> None:
    promote_bundle(candidate(tmp_path, "run_a", 0.70), any_registry)
    with pytest.raises(PromotionError, match="already exists"):
        promote_bundle(candidate(tmp_path / "again", "run_a", 0.90), any_registry)
    bad = candidate(tmp_path, "bad", 0.5)
    (bad / "metrics.json").write_text("{not json")
    with pytest.raises(PromotionError, match="invalid"):
        promote_bundle(bad, any_registry)
    assert [b.model_id for b in list_bundles(any_registry)] == ["run_a"]


def test_set_active_rollback_and_history(any_registry: str, tmp_path: Path) -> None:
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8), ("run_c", 0.9)):
        promote_bundle(candidate(tmp_path, name, f1), any_registry)
    done = activate(any_registry, "run_a")
    assert done.changed and done.pointer.model_id == "run_a"
    assert not activate(any_registry, "run_a").changed
    with pytest.raises(ActivationError, match="not found"):
        activate(any_registry, "nope")
    plan = plan_rollback(any_registry)
    assert plan.target_model_id == "run_c"
    pointer = execute_rollback(any_registry, plan)
    assert pointer.model_id == "run_c"
    assert read_active(any_registry) == pointer
    assert read_active_history(any_registry)[-1].new.reason == pointer.reason
    chain_is_intact(any_registry)


def test_a_stale_rollback_plan_is_refused(any_registry: str, tmp_path: Path) -> None:
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8)):
        promote_bundle(candidate(tmp_path, name, f1), any_registry)
    plan = plan_rollback(any_registry)
    activate(any_registry, "run_a")
    with pytest.raises(RollbackError, match="changed since the rollback was planned"):
        execute_rollback(any_registry, plan)


def test_prune_keeps_active_top_and_history(any_registry: str, tmp_path: Path) -> None:
    for index, name in enumerate(["run_a", "run_b", "run_c", "run_d"]):
        promote_bundle(candidate(tmp_path, name, 0.9 - index * 0.1), any_registry)
    plan = plan_prune(any_registry, keep=1, keep_history=0)
    assert [d.model_id for d in plan.to_delete] == ["run_b", "run_c", "run_d"]
    execute_prune(plan)
    assert [b.model_id for b in list_bundles(any_registry)] == ["run_a"]
    assert verify_registry(any_registry).healthy


def test_verify_a_healthy_registry(any_registry: str, tmp_path: Path) -> None:
    promote_bundle(candidate(tmp_path, "run_a", 0.7), any_registry)
    report = verify_registry(any_registry)
    assert report.healthy, report.findings
    assert report.active_model_id == "run_a"


# -- remote specifics --------------------------------------------------------------------


def test_remote_bundles_are_always_sealed(s3_registry: str, tmp_path: Path) -> None:
    source = candidate(tmp_path, "run_a", 0.7)
    promote_bundle(source, s3_registry)
    assert not (source / "manifest.json").exists()  # the candidate itself is untouched
    storage = open_storage(s3_registry)
    manifest = json.loads(storage.read("run_a/manifest.json")[0])
    assert set(manifest["files"]) == {p.name for p in source.iterdir()}


def test_a_tampered_sealed_candidate_is_refused(s3_registry: str, tmp_path: Path) -> None:
    from taskclf.model_registry import seal_bundle

    source = candidate(tmp_path, "run_a", 0.7)
    seal_bundle(source)
    with open(source / "model.txt", "ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(PromotionError, match="manifest"):
        promote_bundle(source, s3_registry)
    assert list_bundles(s3_registry) == []


def test_history_entries_form_one_chain_of_objects(s3_registry: str, tmp_path: Path) -> None:
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8)):
        promote_bundle(candidate(tmp_path, name, f1), s3_registry)
    storage = open_storage(s3_registry)
    keys = [info.key for info in storage.list_files(HISTORY_PREFIX)]
    assert len(keys) == 2 and keys[0].startswith(f"{HISTORY_PREFIX}/000000000001-")
    state = chain_state(read_pointer_state(storage))
    assert state.seq == 2 and state.entry == keys[1]
    assert json.loads(storage.read(keys[1])[0])["prev"] == keys[0]


def test_a_crash_between_entry_and_swap_is_reported_and_ignored(
    s3_registry: str, tmp_path: Path
) -> None:
    for name, f1 in (("run_a", 0.7), ("run_b", 0.6)):
        promote_bundle(candidate(tmp_path, name, f1), s3_registry)
    storage = open_storage(s3_registry)
    state = read_pointer_state(storage)
    # What a writer leaves when it dies after step 1 (the entry), before step 2 (the swap).
    bundle = storage.read_bundle("run_b")
    assert bundle is not None
    new = pointer_change(storage, state, bundle, None, "crashed").new
    orphan = f"{HISTORY_PREFIX}/{chain_state(state).seq + 1:012d}-deadbeef.json"
    storage.create(
        orphan, json.dumps({"at": new.selected_at, "old": None, "new": new.model_dump()}).encode()
    )
    before = read_active_history(s3_registry)
    report = verify_registry(s3_registry)
    assert report.healthy
    assert [f.code for f in report.findings] == ["history-uncommitted-entry"]
    assert "crashed between" in report.findings[0].message
    # The next writer is not blocked and the chain skips the orphan.
    activate(s3_registry, "run_b")
    history = read_active_history(s3_registry)
    assert history[:-1] == before and history[-1].new.model_id == "run_b"
    chain_is_intact(s3_registry)
    # prune removes the orphan once it is an hour old.
    plan = plan_prune(s3_registry, keep=5)
    assert plan.leftovers == []
    with two_hours_later():
        later = plan_prune(s3_registry, keep=5)
        assert [p.name for p in later.leftovers] == [orphan.rpartition("/")[2]]
        execute_prune(later)
    assert [f.code for f in verify_registry(s3_registry).findings] == []


def test_a_lost_swap_is_a_conflict_and_leaves_nothing(s3_registry: str, tmp_path: Path) -> None:
    from taskclf.model_registry import RegistryConflictError

    for name, f1 in (("run_a", 0.7), ("run_b", 0.6)):
        promote_bundle(candidate(tmp_path, name, f1), s3_registry)
    storage = open_storage(s3_registry)
    stale = read_pointer_state(storage)
    activate(s3_registry, "run_b")
    bundle = storage.read_bundle("run_a")
    assert bundle is not None
    keys_before = [i.key for i in storage.list_files(HISTORY_PREFIX)]
    with pytest.raises(RegistryConflictError, match="changed by another writer"):
        commit_pointer(storage, stale, pointer_change(storage, stale, bundle, None, "late"))
    assert [i.key for i in storage.list_files(HISTORY_PREFIX)] == keys_before
    assert read_active(s3_registry).model_id == "run_b"  # type: ignore[union-attr]


def test_self_heal_repairs_a_broken_remote_pointer(s3_registry: str, tmp_path: Path) -> None:
    promote_bundle(candidate(tmp_path, "run_a", 0.7), s3_registry)
    storage = open_storage(s3_registry)
    storage.replace("active.json", b"{broken", expected=storage.head("active.json"))
    assert verify_registry(s3_registry).healthy is False
    bundle, report = resolve_active_model(s3_registry)
    assert bundle is not None and bundle.model_id == "run_a" and report is not None
    assert read_active(s3_registry).model_id == "run_a"  # type: ignore[union-attr]
    history = read_active_history(s3_registry)
    # The repair continues the chain: the promotion's entry is still committed.
    assert [h.new.reason["note"] for h in history] == ["promotion", "auto-repair"]  # type: ignore[index]
    health = verify_registry(s3_registry)
    assert health.healthy
    assert [f.code for f in health.findings] == ["history-chain-broken"]
    with two_hours_later():
        assert plan_prune(s3_registry, keep=5).leftovers == []


def test_an_incomplete_upload_is_invisible_and_pruned_after_an_hour(
    s3_registry: str, tmp_path: Path
) -> None:
    promote_bundle(candidate(tmp_path, "run_a", 0.7), s3_registry)
    storage = open_storage(s3_registry)
    storage.create("half/metadata.json", b"{}")
    assert [b.model_id for b in list_bundles(s3_registry)] == ["run_a"]
    codes = [f.code for f in verify_registry(s3_registry).findings]
    assert codes == ["leftover-staging-dir"]
    assert plan_prune(s3_registry, keep=5).leftovers == []
    with two_hours_later():
        execute_prune(plan_prune(s3_registry, keep=5))
    assert storage.list_files("half") == []


def test_a_candidate_with_a_symlink_is_refused_before_upload(
    s3_registry: str, tmp_path: Path
) -> None:
    source = candidate(tmp_path, "run_a", 0.7)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the bucket")
    (source / "extra.txt").symlink_to(secret)
    with pytest.raises(PromotionError, match="symlink"):
        promote_bundle(source, s3_registry)
    assert open_storage(s3_registry).list_files() == []


def test_a_repeat_scan_of_an_unchanged_registry_costs_only_the_list(
    s3_registry: str, s3_server: Any, tmp_path: Path
) -> None:
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8), ("run_c", 0.9)):
        promote_bundle(candidate(tmp_path, name, f1), s3_registry)
    first = list_bundles(s3_registry)
    before = s3_server.requests
    assert list_bundles(s3_registry) == first
    assert s3_server.requests - before == 1  # one LIST page, no GET
    # A file changed in place gets a new ETag: re-read, never served stale.
    storage = open_storage(s3_registry)
    metrics = json.loads(storage.read("run_a/metrics.json")[0])
    metrics["macro_f1"] = 0.95
    storage.replace(
        "run_a/metrics.json",
        json.dumps(metrics).encode(),
        expected=storage.head("run_a/metrics.json"),
    )
    before = s3_server.requests
    rescanned = {b.model_id: b for b in list_bundles(s3_registry)}
    assert rescanned["run_a"].metrics.macro_f1 == 0.95  # type: ignore[union-attr]
    assert s3_server.requests - before == 2  # the LIST and that one GET


def test_a_corrupt_scan_cache_is_ignored_and_rebuilt(s3_registry: str, tmp_path: Path) -> None:
    from taskclf.model_registry.bundle_cache import SCAN_CACHE_FILE, registry_cache_dir

    promote_bundle(candidate(tmp_path, "run_a", 0.7), s3_registry)
    expected = list_bundles(s3_registry)
    cache = registry_cache_dir(open_storage(s3_registry)) / SCAN_CACHE_FILE
    assert cache.is_file()
    cache.write_text('{"run_a/metadata.json": ["etag", 12]')
    assert list_bundles(s3_registry) == expected
    assert json.loads(cache.read_text())["run_a/metadata.json"][0] != "etag"
