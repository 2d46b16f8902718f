"""verify and index staleness, on real registries in ``tmp_path``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import BundleFactory, tree_state
from taskclf.model_registry import (
    ActivePointer,
    Finding,
    IndexCache,
    VerifyReport,
    activate_bundle,
    append_active_history,
    execute_prune,
    execute_rollback,
    find_best_model,
    index_staleness,
    plan_prune,
    plan_rollback,
    promote_bundle,
    read_active,
    read_index_cache,
    verify_registry,
    write_index_cache,
)
from taskclf.model_registry._fs import LOCK_FILE, atomic_write
from taskclf.model_registry.index import INDEX_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from taskclf.model_registry.scan import parse_timestamp
from taskclf.samples import write_bundle

_AT = "2026-01-01T00:00:00+00:00"


def codes(report: VerifyReport) -> dict[str, str]:
    """Finding code -> severity, without information (sample bundles are unsealed)."""
    return {f.code: f.severity for f in problems(report)}


def problems(report: VerifyReport) -> list[Finding]:
    """Errors and warnings: what this file's tests are about (not "bundle-unsealed" info)."""
    return [f for f in report.findings if f.severity != "info"]


def finding(report: VerifyReport, code: str) -> str:
    messages = [f.message for f in report.findings if f.code == code]
    assert len(messages) == 1, report.findings
    return messages[0]


def pointer_to(model_dir: str) -> ActivePointer:
    return ActivePointer(model_dir=model_dir, selected_at=_AT, policy_version=1)


def write_pointer(models_dir: Path, content: bytes) -> None:
    atomic_write(models_dir / ACTIVE_FILE, content)


@pytest.fixture
def healthy(models_dir: Path, make_bundle: BundleFactory) -> Path:
    make_bundle("run_a", seed=1, macro_f1=0.7, weighted_f1=0.7)
    make_bundle("run_b", seed=2, macro_f1=0.8, weighted_f1=0.8)
    activate_bundle(models_dir, "run_a")
    activate_bundle(models_dir, "run_b")
    write_index_cache(models_dir, find_best_model(models_dir))
    return models_dir


def test_healthy_registry(healthy: Path) -> None:
    report = verify_registry(healthy)

    assert problems(report) == []
    assert report.healthy
    assert report.models_dir == str(healthy)
    assert report.active_model_id == "run_b"
    assert report.index_state == "fresh"
    assert [
        (b.model_id, b.valid, b.compatible, b.eligible, b.reason, b.active) for b in report.bundles
    ] == [
        ("run_a", True, True, True, None, False),
        ("run_b", True, True, True, None, True),
    ]


def test_verify_changes_nothing(healthy: Path, make_bundle: BundleFactory) -> None:
    """Even on a registry full of problems, and without creating a lock file."""
    os.unlink(healthy / LOCK_FILE)
    make_bundle("new_one", seed=3)
    (healthy / "broken").mkdir()
    (healthy / ".staging-x").mkdir()
    (healthy / ".active.json.abc.tmp").write_text("{")
    with open(healthy / HISTORY_FILE, "ab") as history:
        history.write(b'{"at": "torn')
    before = tree_state(healthy)

    report = verify_registry(healthy)

    assert not report.healthy
    assert tree_state(healthy) == before
    assert not (healthy / LOCK_FILE).exists()


def test_every_message_is_one_line(healthy: Path) -> None:
    (healthy / "broken").mkdir()
    (healthy / HISTORY_FILE).write_bytes(b"garbage\n")
    report = verify_registry(healthy)
    assert report.findings
    assert all("\n" not in f.message for f in report.findings)


def test_registry_missing(tmp_path: Path) -> None:
    report = verify_registry(tmp_path / "nope")
    assert codes(report) == {"registry-missing": "error"}
    assert not report.healthy
    assert str(tmp_path / "nope") in finding(report, "registry-missing")
    assert not (tmp_path / "nope").exists()


# --- bundles -----------------------------------------------------------------


def test_invalid_bundle_is_an_error(healthy: Path) -> None:
    (healthy / "broken").mkdir()
    (healthy / "broken" / "metrics.json").write_text("{")
    report = verify_registry(healthy)
    assert codes(report) == {"bundle-invalid": "error", "index-stale": "warning"}
    assert not report.healthy
    message = finding(report, "bundle-invalid")
    assert "broken" in message and "missing metadata.json" in message
    broken = next(b for b in report.bundles if b.model_id == "broken")
    assert (broken.valid, broken.compatible, broken.eligible) == (False, False, False)
    assert broken.reason == "invalid: missing metadata.json"
    found = next(f for f in report.findings if f.code == "bundle-invalid")
    assert (found.model_id, found.path) == ("broken", str(healthy / "broken"))


def test_incompatible_bundle_is_a_warning(healthy: Path, make_bundle: BundleFactory) -> None:
    make_bundle("odd", seed=5, label_set=["Build", "Debug"])
    report = verify_registry(healthy)
    assert codes(report) == {"bundle-incompatible": "warning", "index-stale": "warning"}
    assert report.healthy
    odd = next(b for b in report.bundles if b.model_id == "odd")
    assert (odd.valid, odd.compatible, odd.eligible) == (True, False, False)
    assert odd.reason == "incompatible: label_set mismatch"


def test_older_schema_bundles_are_eligible(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("old", schema_version="v2")
    activate_bundle(models_dir, "old")
    report = verify_registry(models_dir)
    assert report.bundles[0].eligible
    assert codes(report) == {"index-missing": "warning"}


def test_nothing_eligible(models_dir: Path) -> None:
    report = verify_registry(models_dir)
    assert codes(report) == {"no-eligible-bundle": "error", "index-missing": "warning"}
    assert not report.healthy
    assert report.active_model_id is None


# --- pointer -----------------------------------------------------------------


def test_pointer_missing_while_eligible_bundles_exist(healthy: Path) -> None:
    os.unlink(healthy / ACTIVE_FILE)
    report = verify_registry(healthy)
    assert codes(report)["pointer-missing"] == "error"
    assert "taskclf model resolve" in finding(report, "pointer-missing")
    assert report.active_model_id is None


@pytest.mark.parametrize(
    ("content", "code", "text"),
    [
        (b"{not json", "pointer-invalid", "is not JSON"),
        (b'{"model_dir": 3}', "pointer-invalid", "is not a valid pointer"),
        (pointer_to("../../etc").model_dump_json().encode(), "pointer-escapes", "outside"),
        (pointer_to("/tmp/x").model_dump_json().encode(), "pointer-escapes", "outside"),
        (pointer_to("models/zzz").model_dump_json().encode(), "pointer-target-missing", "zzz"),
    ],
)
def test_pointer_problems(healthy: Path, content: bytes, code: str, text: str) -> None:
    write_pointer(healthy, content)
    report = verify_registry(healthy)
    assert codes(report)[code] == "error"
    assert text in finding(report, code)
    assert "taskclf model set-active" in finding(report, code)
    assert not report.healthy
    assert report.active_model_id is None
    assert not any(b.active for b in report.bundles)


def test_pointer_unreadable(healthy: Path) -> None:
    os.unlink(healthy / ACTIVE_FILE)
    os.mkfifo(healthy / ACTIVE_FILE)
    report = verify_registry(healthy)
    assert codes(report) == {
        "pointer-unreadable": "error",
        "history-pointer-mismatch": "error",
    }
    assert "is not a regular file" in finding(report, "pointer-unreadable")


def test_pointer_target_invalid(healthy: Path) -> None:
    (healthy / "run_b" / "metrics.json").unlink()
    report = verify_registry(healthy)
    assert codes(report)["pointer-target-invalid"] == "error"
    assert "run_b" in finding(report, "pointer-target-invalid")
    assert report.active_model_id == "run_b"


def test_pointer_target_incompatible(healthy: Path, make_bundle: BundleFactory) -> None:
    make_bundle("odd", seed=5, schema_hash="0123456789ab")
    write_pointer(healthy, pointer_to("odd").model_dump_json().encode())
    report = verify_registry(healthy)
    assert codes(report)["pointer-target-incompatible"] == "error"
    assert "schema_hash mismatch" in finding(report, "pointer-target-incompatible")
    assert report.active_model_id == "odd"


def test_hand_written_bare_pointer(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("run_a")
    write_pointer(models_dir, pointer_to("run_a").model_dump_json().encode())
    report = verify_registry(models_dir)
    assert report.active_model_id == "run_a"
    assert codes(report) == {"history-missing": "warning", "index-missing": "warning"}
    assert report.healthy


# --- history -----------------------------------------------------------------


def test_history_torn_line_reports_its_number(healthy: Path) -> None:
    lines = (healthy / HISTORY_FILE).read_bytes().splitlines()
    (healthy / HISTORY_FILE).write_bytes(
        lines[0] + b"\n" + b'{"at": "2026-' + b"\n" + lines[1] + b"\n"
    )
    report = verify_registry(healthy)
    assert codes(report) == {"history-line-invalid": "error"}
    assert finding(report, "history-line-invalid").startswith(
        f"Line 2 of {healthy / HISTORY_FILE} does not parse"
    )


def test_history_unreadable(healthy: Path) -> None:
    os.unlink(healthy / HISTORY_FILE)
    os.mkfifo(healthy / HISTORY_FILE)
    assert codes(verify_registry(healthy)) == {"history-unreadable": "error"}


def test_history_chain_broken(healthy: Path) -> None:
    # The pointer was replaced outside taskclf, then taskclf wrote again.
    write_pointer(healthy, pointer_to("models/run_a").model_dump_json().encode())
    activate_bundle(healthy, "run_b")
    report = verify_registry(healthy)
    assert codes(report) == {"history-chain-broken": "warning"}
    assert report.healthy
    assert finding(report, "history-chain-broken").startswith(f"Line 3 of {healthy / HISTORY_FILE}")


def test_crash_between_history_append_and_pointer_replace(healthy: Path) -> None:
    current = read_active(healthy)
    append_active_history(healthy, current, pointer_to("models/run_a"))

    report = verify_registry(healthy)

    assert codes(report) == {"history-pointer-mismatch": "error"}
    message = finding(report, "history-pointer-mismatch")
    assert "line 3" in message
    assert "a crash between the history append and the pointer replace" in message
    assert "taskclf model set-active" in message and "taskclf model rollback" in message

    # The advice works: after a set-active only a harmless trace remains.
    activate_bundle(healthy, "run_a")
    report = verify_registry(healthy)
    assert codes(report) == {"history-uncommitted-entry": "warning"}
    assert report.healthy
    assert finding(report, "history-uncommitted-entry").startswith(
        f"Line 3 of {healthy / HISTORY_FILE}"
    )


def test_pointer_changed_without_history(healthy: Path) -> None:
    write_pointer(healthy, pointer_to("models/run_a").model_dump_json().encode())
    report = verify_registry(healthy)
    assert codes(report) == {"history-pointer-mismatch": "error"}
    assert "changed without the history" in finding(report, "history-pointer-mismatch")


def test_history_without_pointer(healthy: Path) -> None:
    os.unlink(healthy / ACTIVE_FILE)
    report = verify_registry(healthy)
    assert codes(report) == {"pointer-missing": "error", "history-pointer-mismatch": "error"}


# --- index -------------------------------------------------------------------


def test_index_missing(healthy: Path) -> None:
    os.unlink(healthy / INDEX_FILE)
    report = verify_registry(healthy)
    assert (report.index_state, codes(report)) == ("missing", {"index-missing": "warning"})
    assert report.healthy


@pytest.mark.parametrize("content", [b"{", b'{"generated_at": 1}'])
def test_index_invalid(healthy: Path, content: bytes) -> None:
    (healthy / INDEX_FILE).write_bytes(content)
    report = verify_registry(healthy)
    assert (report.index_state, codes(report)) == ("invalid", {"index-invalid": "warning"})
    assert report.healthy


def _cache(models_dir: Path) -> IndexCache:
    cache = read_index_cache(models_dir)
    assert cache is not None
    return cache


def _touch_after_index(path: Path, cache: IndexCache) -> None:
    """Set a modification time one minute after the cache was generated (no sleeping)."""
    later = parse_timestamp(cache.generated_at).timestamp() + 60
    os.utime(path, (later, later))


def test_index_fresh(healthy: Path) -> None:
    assert index_staleness(healthy, _cache(healthy)) == []


def test_index_stale_added(healthy: Path, make_bundle: BundleFactory) -> None:
    make_bundle("run_c", seed=3)
    assert index_staleness(healthy, _cache(healthy)) == ["bundle run_c was added"]
    report = verify_registry(healthy)
    assert report.index_state == "stale"
    assert "bundle run_c was added" in finding(report, "index-stale")
    assert report.healthy


def test_index_stale_removed(healthy: Path) -> None:
    os.rename(healthy / "run_a", healthy / ".hidden")
    assert index_staleness(healthy, _cache(healthy)) == ["bundle run_a was removed"]


@pytest.mark.parametrize(
    ("relative", "label"),
    [("", "directory"), ("metadata.json", "metadata.json"), ("metrics.json", "metrics.json")],
)
def test_index_stale_changed(healthy: Path, relative: str, label: str) -> None:
    cache = _cache(healthy)
    _touch_after_index(healthy / "run_a" / relative if relative else healthy / "run_a", cache)
    assert index_staleness(healthy, cache) == [
        f"bundle run_a changed ({label} modified after generated_at)"
    ]


def test_index_staleness_covers_excluded_bundles(healthy: Path) -> None:
    (healthy / "broken").mkdir()
    write_index_cache(healthy, find_best_model(healthy))
    assert index_staleness(healthy, _cache(healthy)) == []


def test_index_with_a_garbage_timestamp(healthy: Path) -> None:
    cache = _cache(healthy).model_copy(update={"generated_at": "yesterday"})
    assert index_staleness(healthy, cache) == [
        "generated_at 'yesterday' is not an ISO-8601 timestamp"
    ]


# --- leftovers and symlinks ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "is_dir", "code"),
    [
        (".active.json.k2j3.tmp", False, "leftover-temp-file"),
        (".index.json.x.tmp", False, "leftover-temp-file"),
        (".staging-abc", True, "leftover-staging-dir"),
        (".trash-abc", True, "leftover-trash-dir"),
    ],
)
def test_leftovers(healthy: Path, name: str, is_dir: bool, code: str) -> None:
    if is_dir:
        (healthy / name).mkdir()
    else:
        (healthy / name).write_text("{")
    report = verify_registry(healthy)
    assert codes(report) == {code: "error"}
    assert str(healthy / name) in finding(report, code)
    assert not report.healthy


def test_lock_file_is_not_a_leftover(healthy: Path) -> None:
    assert (healthy / LOCK_FILE).exists()
    assert problems(verify_registry(healthy)) == []


@pytest.mark.parametrize("name", [ACTIVE_FILE, HISTORY_FILE, INDEX_FILE, LOCK_FILE])
def test_symlinked_registry_files(healthy: Path, tmp_path: Path, name: str) -> None:
    real = tmp_path / f"real-{name}"
    os.rename(healthy / name, real)
    os.symlink(real, healthy / name)
    report = verify_registry(healthy)
    assert codes(report) == {"registry-file-symlink": "error"}
    assert finding(report, "registry-file-symlink").startswith(f"{healthy / name} is a symlink")


def test_operator_workflow_keeps_the_registry_healthy(tmp_path: Path) -> None:
    """promote, promote, rollback, prune: verify stays healthy (prune refreshes the index)."""
    root = tmp_path / "models"
    for seed, f1 in enumerate([0.6, 0.7, 0.8]):
        candidate = write_bundle(tmp_path / "out" / f"run_{seed}", seed=seed, macro_f1=f1)
        promote_bundle(candidate, root)
        report = verify_registry(root)
        assert problems(report) == [], report.findings
        assert report.active_model_id == f"run_{seed}"

    execute_rollback(root, plan_rollback(root))
    assert problems(verify_registry(root)) == []

    execute_prune(plan_prune(root, keep=1, keep_history=1))
    report = verify_registry(root)
    assert problems(report) == [], report.findings
    assert report.index_state == "fresh"
    assert report.healthy
    assert report.active_model_id == "run_1"
