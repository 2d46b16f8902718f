"""REGISTRY.md §7: ``resolve_active_model`` — follow the pointer, or heal it."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import taskclf.model_registry.resolution as resolution
import taskclf.model_registry.scan as scan
from conftest import tree_contents
from taskclf.core.schema import FeatureSchemaV1, FeatureSchemaV3
from taskclf.model_registry import (
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
    read_active,
    read_active_history,
    read_bundle,
    resolve_active_model,
    write_active_atomic,
)
from taskclf.model_registry._fs import LOCK_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE
from taskclf.model_registry.scan import scan_registry
from taskclf.samples import write_bundle

BundleFactory = Callable[..., Path]
V1, V3 = FeatureSchemaV1.SCHEMA_HASH, FeatureSchemaV3.SCHEMA_HASH


def _activate(models_dir: Path, name: str) -> ActivePointer:
    bundle = read_bundle(models_dir / name)
    assert bundle is not None
    return write_active_atomic(models_dir, bundle)


def _hand_pointer(models_dir: Path, model_dir: str) -> None:
    pointer = {"model_dir": model_dir, "selected_at": "2026-01-01T00:00:00+00:00"}
    (models_dir / ACTIVE_FILE).write_text(json.dumps(pointer | {"policy_version": 1}))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every directory listing made through ``scan_registry`` or ``os.scandir``."""
    calls: list[str] = []
    real_list = scan_registry
    real_names = scan.bundle_names
    real_scandir = os.scandir

    def counting_list(models_dir: str | os.PathLike[str]) -> Any:
        calls.append(f"list_bundles:{os.fspath(models_dir)}")
        return real_list(models_dir)

    def counting_names(root: Path) -> list[str]:
        calls.append(f"bundle_names:{root}")
        return real_names(root)

    def counting_scandir(path: Any = ".") -> Any:
        calls.append(f"scandir:{os.fspath(path)}")
        return real_scandir(path)

    monkeypatch.setattr(resolution, "scan_registry", counting_list)
    monkeypatch.setattr(scan, "bundle_names", counting_names)
    monkeypatch.setattr(os, "scandir", counting_scandir)
    yield calls


def _assert_healed(
    models_dir: Path,
    result: tuple[ModelBundle | None, Any],
    expected: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bundle, report = result
    assert bundle is not None and report is not None
    assert bundle.model_id == expected
    assert bundle.path == models_dir / expected
    assert report.best is not None and report.best.model_id == expected
    pointer = read_active(models_dir)
    assert pointer is not None
    assert pointer.model_dir == f"models/{expected}"
    assert pointer.reason is not None and pointer.reason["note"] == "auto-repair"
    assert read_active_history(models_dir)[-1].new == pointer
    assert _warnings(caplog)


# --- 1. a valid pointer is followed without scanning ------------------------


def test_valid_pointer_followed_without_scanning(
    models_dir: Path, make_bundle: BundleFactory, scans: list[str]
) -> None:
    for i in range(5):
        make_bundle(f"better-{i}", macro_f1=0.9, weighted_f1=0.9, seed=i)
    make_bundle("pointed", macro_f1=0.1, weighted_f1=0.1)
    _activate(models_dir, "pointed")
    before = tree_contents(models_dir)
    scans.clear()
    bundle, report = resolve_active_model(models_dir)
    assert report is None
    assert bundle is not None and bundle.model_id == "pointed" and bundle.valid
    assert bundle.path == models_dir / "pointed"
    assert not [c for c in scans if c.startswith("list_bundles")]
    assert f"scandir:{models_dir}" not in scans
    assert f"bundle_names:{models_dir}" not in scans
    assert tree_contents(models_dir) == before


@pytest.mark.parametrize("style", ["models/pointed", "pointed", "ABS"])
def test_hand_written_pointer_styles_are_followed(
    models_dir: Path, make_bundle: BundleFactory, scans: list[str], style: str
) -> None:
    make_bundle("best", macro_f1=0.9, weighted_f1=0.9)
    make_bundle("pointed", macro_f1=0.1, weighted_f1=0.1)
    _hand_pointer(models_dir, str(models_dir / "pointed") if style == "ABS" else style)
    bundle, report = resolve_active_model(models_dir)
    assert report is None
    assert bundle is not None and bundle.model_id == "pointed"
    assert not [c for c in scans if c.startswith("list_bundles")]


def test_pointer_to_older_declared_schema_is_followed(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    """Without an explicit hash a v1 bundle stays active even when v3 bundles exist."""
    make_bundle("v3", schema_version="v3", macro_f1=0.9, weighted_f1=0.9)
    make_bundle("v1", schema_version="v1", macro_f1=0.1, weighted_f1=0.1)
    _activate(models_dir, "v1")
    bundle, report = resolve_active_model(models_dir)
    assert report is None
    assert bundle is not None and bundle.model_id == "v1"


def test_explicit_hash_compatible_pointer_is_followed(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("v3", schema_version="v3")
    _activate(models_dir, "v3")
    bundle, report = resolve_active_model(models_dir, required_schema_hash=V3)
    assert report is None and bundle is not None and bundle.model_id == "v3"


# --- 2. otherwise heal --------------------------------------------------------


def test_explicit_hash_incompatible_pointer_is_healed(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_bundle("v1", schema_version="v1", macro_f1=0.9, weighted_f1=0.9)
    make_bundle("v3", schema_version="v3", macro_f1=0.2, weighted_f1=0.2)
    _activate(models_dir, "v1")
    result = resolve_active_model(models_dir, required_schema_hash=V3)
    _assert_healed(models_dir, result, "v3", caplog)
    assert result[1] is not None and result[1].required_schema_hash == V3


@pytest.mark.parametrize(
    "metadata_change",
    [
        {"schema_hash": "ffffffffffff"},
        {"label_set": ["Build", "Debug"]},
    ],
    ids=["unknown-hash", "labels"],
)
def test_declared_incompatible_pointer_is_healed(
    models_dir: Path,
    make_bundle: BundleFactory,
    caplog: pytest.LogCaptureFixture,
    metadata_change: dict[str, object],
) -> None:
    make_bundle("good", macro_f1=0.3, weighted_f1=0.3)
    path = make_bundle("pointed", macro_f1=0.9, weighted_f1=0.9)
    _activate(models_dir, "pointed")
    metadata = json.loads((path / "metadata.json").read_text("utf-8")) | metadata_change
    (path / "metadata.json").write_text(json.dumps(metadata))
    _assert_healed(models_dir, resolve_active_model(models_dir), "good", caplog)


@pytest.mark.parametrize("declared", ["v2", "v9"])
def test_pointer_refused_by_declared_version_but_ranked_by_hash_is_not_rewritten(
    models_dir: Path, make_bundle: BundleFactory, declared: str
) -> None:
    """The pointer check (declared version) and the v1 pass (hash) disagree on this bundle.

    The scan ranks it best, so the repair would rewrite the very same pointer: it must
    not append a history entry on every call.
    """
    make_bundle("good", macro_f1=0.3, weighted_f1=0.3)
    path = make_bundle("pointed", macro_f1=0.9, weighted_f1=0.9)
    _activate(models_dir, "pointed")
    metadata = json.loads((path / "metadata.json").read_text("utf-8"))
    (path / "metadata.json").write_text(json.dumps(metadata | {"schema_version": declared}))
    before = tree_contents(models_dir)
    for _ in range(3):
        bundle, report = resolve_active_model(models_dir)
        assert bundle is not None and bundle.model_id == "pointed"
        assert report is not None and report.required_schema_hash == V1
    assert tree_contents(models_dir) == before
    assert len(read_active_history(models_dir)) == 1


@pytest.mark.parametrize(
    "breakage", ["missing", "not-json", "invalid", "dangling", "invalid-bundle", "dir"]
)
def test_broken_pointer_is_healed(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture, breakage: str
) -> None:
    make_bundle("best", macro_f1=0.8, weighted_f1=0.8)
    make_bundle("worse", macro_f1=0.5, weighted_f1=0.5)
    active = models_dir / ACTIVE_FILE
    if breakage == "not-json":
        active.write_text("{oops")
    elif breakage == "invalid":
        active.write_text('{"model_dir": 3}')
    elif breakage == "dangling":
        _hand_pointer(models_dir, "models/deleted-run")
    elif breakage == "invalid-bundle":
        (make_bundle("broken") / "metrics.json").write_text("{")
        _hand_pointer(models_dir, "models/broken")
    elif breakage == "dir":
        _hand_pointer(models_dir, "models/not-a-bundle")
        (models_dir / "not-a-bundle").mkdir()
    result = resolve_active_model(models_dir)
    _assert_healed(models_dir, result, "best", caplog)
    [entry] = read_active_history(models_dir)
    assert result[1] is not None and result[1].best is not None
    assert entry.new.model_id == "best"


def test_heal_passes_policy_and_labels(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("two", label_set=["a", "b"])
    make_bundle("eight")
    policy = SelectionPolicy(version=4, min_improvement=0.3)
    bundle, report = resolve_active_model(models_dir, policy=policy, required_label_set=["b", "a"])
    assert bundle is not None and bundle.model_id == "two"
    assert report is not None and report.policy == policy
    pointer = read_active(models_dir)
    assert pointer is not None and pointer.policy_version == 4


def test_healed_pointer_is_then_followed(
    models_dir: Path, make_bundle: BundleFactory, scans: list[str]
) -> None:
    make_bundle("best")
    first, report = resolve_active_model(models_dir)
    assert report is not None and first is not None
    scans.clear()
    again, report2 = resolve_active_model(models_dir)
    assert report2 is None and again is not None and again.model_id == first.model_id
    assert not [c for c in scans if c.startswith("list_bundles")]
    assert len(read_active_history(models_dir)) == 1


@pytest.mark.parametrize(
    "model_dir",
    ["../x", "../../etc", "ABS_OUTSIDE", "models/a/b", ".", "..", ".hidden", "models/.hidden"],
)
def test_escaping_pointer_never_selects_the_outside_bundle(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, model_dir: str
) -> None:
    root = tmp_path / "p" / "q" / "models"
    write_bundle(root / "inside", macro_f1=0.2, weighted_f1=0.2)
    outside = tmp_path / "outside-run"
    if model_dir == "ABS_OUTSIDE":
        model_dir = str(outside)
    # A tempting, better, valid bundle at every place the escaping pointer could reach.
    for base in (root.parent, root):
        target = Path(os.path.normpath(base / model_dir))
        if target != root:  # "." read as a bare name is the registry itself
            write_bundle(target, macro_f1=0.99, weighted_f1=0.99)
    write_bundle(outside, macro_f1=0.99, weighted_f1=0.99)
    _hand_pointer(root, model_dir)
    bundle, report = resolve_active_model(root)
    assert bundle is not None and report is not None
    assert bundle.model_id == "inside"
    assert bundle.path == root / "inside"
    pointer = read_active(root)
    assert pointer is not None and pointer.model_dir == "models/inside"
    assert any("escape" in w or "usable" in w for w in _warnings(caplog))
    assert all(b.path.parent == root for b in report.ranked)


# --- nothing eligible / missing registry --------------------------------------


def test_nothing_eligible_returns_none_and_writes_nothing(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    (make_bundle("broken") / "metadata.json").write_text("{")
    make_bundle("wrong-labels", label_set=["x", "y"])
    _hand_pointer(models_dir, "models/broken")
    before = tree_contents(models_dir)
    bundle, report = resolve_active_model(models_dir)
    assert bundle is None
    assert report is not None and report.best is None and len(report.excluded) == 2
    assert tree_contents(models_dir) == before
    assert _warnings(caplog)


def test_empty_registry(models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle, report = resolve_active_model(models_dir)
    assert bundle is None and report is not None and report.ranked == []
    assert list(models_dir.iterdir()) == []


def test_missing_registry(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle, report = resolve_active_model(tmp_path / "models")
    assert bundle is None and report is not None
    assert not (tmp_path / "models").exists()
    assert _warnings(caplog)


# --- 3. heal write fails ------------------------------------------------------


def test_heal_write_failure_still_returns_best(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_bundle("best", macro_f1=0.9, weighted_f1=0.9)
    make_bundle("other", macro_f1=0.1, weighted_f1=0.1)
    # A directory in place of active.json: unreadable as a pointer, and the
    # replace of the repair write fails with a real OSError.
    (models_dir / ACTIVE_FILE).mkdir()
    bundle, report = resolve_active_model(models_dir)
    assert bundle is not None and bundle.model_id == "best"
    assert report is not None and report.best is not None and report.best.model_id == "best"
    assert (models_dir / ACTIVE_FILE).is_dir()
    assert read_active_history(models_dir) == []
    assert any("repair" in w for w in _warnings(caplog))


def test_heal_lock_failure_still_returns_best(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_bundle("best")
    (models_dir / LOCK_FILE).mkdir()  # the lock cannot be opened: a real OSError
    bundle, report = resolve_active_model(models_dir)
    assert bundle is not None and bundle.model_id == "best"
    assert report is not None
    assert not (models_dir / ACTIVE_FILE).exists()
    assert any("repair" in w for w in _warnings(caplog))


def test_heal_on_read_only_registry_when_not_root(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    make_bundle("best")
    models_dir.chmod(0o555)
    try:
        bundle, report = resolve_active_model(models_dir)
    finally:
        models_dir.chmod(0o755)
    assert bundle is not None and bundle.model_id == "best" and report is not None
    assert not (models_dir / ACTIVE_FILE).exists()
