"""Inference-side resolution and hot reload (REGISTRY.md §11) on real registries."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from pathlib import Path

import pytest

from conftest import BundleFactory
from taskclf.infer import (
    ActiveModelReloader,
    ActiveModelWatcher,
    ModelResolutionError,
    resolve_model_dir,
)
from taskclf.model_registry import (
    RegistryError,
    SelectionReport,
    promote_bundle,
    read_active,
    read_bundle,
    write_active_atomic,
)
from taskclf.samples import write_bundle


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingLoader:
    """Loads a bundle by reading its model file; can be told to fail for some bundles."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_next: set[str] = set()

    def __call__(self, path: Path) -> str:
        self.calls.append(path.name)
        if path.name in self.fail_next:
            self.fail_next.discard(path.name)
            raise RuntimeError(f"cannot load {path.name}")
        return f"model:{path.name}:{(path / 'model.txt').read_text('utf-8').strip()}"


SEEDS = {"run-a": 1, "run-b": 2, "run-c": 3}


def activate(models_dir: Path, model_id: str) -> None:
    bundle = read_bundle(models_dir / model_id)
    assert bundle is not None
    write_active_atomic(models_dir, bundle, reason="test")


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """Three valid bundles with same-length names (so pointers have the same size)."""
    for model_id, seed in SEEDS.items():
        score = {"run-a": 0.81, "run-b": 0.85, "run-c": 0.72}[model_id]
        make_bundle(model_id, seed=seed, macro_f1=score, weighted_f1=score)
    return models_dir


# --- resolve_model_dir ---------------------------------------------------------------


def test_explicit_model_dir_wins(tmp_path: Path, registry: Path) -> None:
    explicit = write_bundle(tmp_path / "elsewhere" / "my-model", seed=4)
    assert resolve_model_dir(str(explicit), registry) == explicit
    assert read_active(registry) is None  # the registry was not consulted


def test_explicit_model_dir_must_exist(tmp_path: Path, registry: Path) -> None:
    missing = str(tmp_path / "nope")
    with pytest.raises(ModelResolutionError) as caught:
        resolve_model_dir(missing, registry)
    assert caught.value.message == f"Explicit --model-dir does not exist: {missing}"
    assert str(caught.value) == caught.value.message
    assert caught.value.report is None


def test_missing_models_dir_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "models"
    with pytest.raises(ModelResolutionError) as caught:
        resolve_model_dir(None, root)
    assert caught.value.message.startswith(f"Models directory does not exist: {root}.")
    assert "--model-dir" in caught.value.message
    assert not root.exists()


def test_models_dir_that_is_a_file_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.write_text("", "utf-8")
    with pytest.raises(ModelResolutionError, match="is not a directory"):
        resolve_model_dir(None, root)


def test_resolves_the_pointer(registry: Path) -> None:
    activate(registry, "run-c")
    assert resolve_model_dir(None, registry) == registry / "run-c"
    assert resolve_model_dir("", registry) == registry / "run-c"


def test_resolves_by_scan_and_repairs_the_pointer(registry: Path) -> None:
    assert resolve_model_dir(None, registry) == registry / "run-b"
    pointer = read_active(registry)
    assert pointer is not None
    assert pointer.model_id == "run-b"


def test_nothing_eligible_lists_every_exclusion(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("run-hash", seed=1, schema_hash="deadbeef0000")
    make_bundle("run-labels", seed=2, label_set=["Build", "Debug"])
    broken = make_bundle("run-broken", seed=3)
    (broken / "metrics.json").write_text("[", "utf-8")

    with pytest.raises(ModelResolutionError) as caught:
        resolve_model_dir(None, models_dir)

    error = caught.value
    assert isinstance(error, RegistryError)
    assert isinstance(error.report, SelectionReport)
    lines = error.message.splitlines()
    assert lines[0] == f"No eligible model found in {models_dir}: every bundle is excluded."
    assert lines[1] == "Excluded bundles (3):"
    assert lines[2:] == [f"  - {r.model_id}: {r.reason}" for r in error.report.excluded]
    assert [r.model_id for r in error.report.excluded] == ["run-broken", "run-hash", "run-labels"]
    assert lines[2].startswith("  - run-broken: invalid: metrics.json parse error")
    assert lines[3] == "  - run-hash: incompatible: schema_hash mismatch"
    assert read_active(models_dir) is None


def test_empty_registry_says_so(models_dir: Path) -> None:
    with pytest.raises(ModelResolutionError, match="no model bundles in") as caught:
        resolve_model_dir(None, models_dir)
    assert caught.value.report is not None
    assert caught.value.report.excluded == []


# --- ActiveModelReloader ---------------------------------------------------------------


def make_reloader(
    registry: Path, interval: float = 60.0
) -> tuple[RecordingLoader, FakeClock, ActiveModelReloader[str]]:
    loader = RecordingLoader()
    clock = FakeClock()
    return loader, clock, ActiveModelReloader(registry, loader, interval, clock=clock)


def model(model_id: str) -> str:
    """What :class:`RecordingLoader` returns for a bundle of the ``registry`` fixture."""
    return f"model:{model_id}:tree-ensemble seed={SEEDS[model_id]}"


def test_constructor_does_no_io_and_first_check_loads(tmp_path: Path) -> None:
    root = tmp_path / "models"
    loader, _, reloader = make_reloader(root)
    assert reloader.current is None
    assert not root.exists()

    write_bundle(root / "run-a", seed=1)
    loaded = reloader.check_reload()

    assert loaded == model("run-a")
    assert reloader.current == loaded
    assert reloader.current_bundle is not None
    assert reloader.current_bundle.model_id == "run-a"
    assert loader.calls == ["run-a"]


def test_never_checks_more_often_than_the_interval(registry: Path) -> None:
    loader, clock, reloader = make_reloader(registry)
    activate(registry, "run-a")
    assert reloader.check_reload() == model("run-a")

    activate(registry, "run-b")
    clock.advance(59.9)
    assert reloader.check_reload() is None
    assert reloader.current == model("run-a")
    assert loader.calls == ["run-a"]

    clock.advance(0.1)
    assert reloader.check_reload() == model("run-b")
    assert reloader.current == model("run-b")


def test_unchanged_pointer_does_not_reload(registry: Path) -> None:
    loader, clock, reloader = make_reloader(registry)
    activate(registry, "run-a")
    reloader.check_reload()
    for _ in range(3):
        clock.advance(60)
        assert reloader.check_reload() is None
    assert loader.calls == ["run-a"]
    assert reloader.current == model("run-a")


def test_follows_a_pointer_that_moves_several_times_within_one_second(registry: Path) -> None:
    loader, clock, reloader = make_reloader(registry, interval=0.25)
    pointer_file = registry / "active.json"
    activate(registry, "run-a")
    first = os.stat(pointer_file)
    assert reloader.check_reload() == model("run-a")

    sizes = set()
    for model_id in ["run-b", "run-c", "run-a", "run-b", "run-b"]:
        activate(registry, model_id)
        # Worst case for stat-based detection: the same mtime as the first write.
        os.utime(pointer_file, ns=(first.st_atime_ns, first.st_mtime_ns))
        sizes.add(os.stat(pointer_file).st_size)
        clock.advance(0.25)
        assert reloader.check_reload() == model(model_id)
        assert reloader.current_bundle is not None
        assert reloader.current_bundle.model_id == model_id

    assert len(sizes) == 1  # every rewrite had the same size
    # Five moves in 1.25 simulated seconds: every rewrite loaded, even to the same bundle.
    assert loader.calls == ["run-a", "run-b", "run-c", "run-a", "run-b", "run-b"]


def test_failed_load_keeps_the_current_model_and_retries(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loader, clock, reloader = make_reloader(registry)
    activate(registry, "run-a")
    reloader.check_reload()

    activate(registry, "run-b")
    loader.fail_next.add("run-b")
    clock.advance(60)
    with caplog.at_level(logging.ERROR, logger="taskclf.infer"):
        assert reloader.check_reload() is None
    assert "cannot load run-b" in caplog.text
    assert reloader.current == model("run-a")
    assert reloader.current_bundle is not None
    assert reloader.current_bundle.model_id == "run-a"

    # The retry waits for the interval like any other check...
    clock.advance(30)
    assert reloader.check_reload() is None
    assert loader.calls == ["run-a", "run-b"]
    # ...and then loads the new bundle, although the pointer did not change again.
    clock.advance(30)
    assert reloader.check_reload() == model("run-b")
    assert loader.calls == ["run-a", "run-b", "run-b"]


def test_first_load_failure_leaves_no_model(registry: Path) -> None:
    loader, clock, reloader = make_reloader(registry)
    loader.fail_next.add("run-b")
    assert reloader.check_reload() is None
    assert reloader.current is None
    clock.advance(60)
    assert reloader.check_reload() == model("run-b")


def test_own_pointer_repair_does_not_cause_a_second_load(registry: Path) -> None:
    loader, clock, reloader = make_reloader(registry)
    assert read_active(registry) is None

    assert reloader.check_reload() == model("run-b")
    pointer = read_active(registry)
    assert pointer is not None
    assert pointer.model_id == "run-b"  # repaired by resolution
    clock.advance(60)
    assert reloader.check_reload() is None
    assert loader.calls == ["run-b"]


def test_broken_pointer_is_repaired_and_loaded(registry: Path) -> None:
    loader, clock, reloader = make_reloader(registry)
    activate(registry, "run-c")
    reloader.check_reload()

    (registry / "active.json").write_text(
        json.dumps({"model_dir": "models/gone", "selected_at": "x", "policy_version": 1}), "utf-8"
    )
    clock.advance(60)
    assert reloader.check_reload() == model("run-b")
    assert loader.calls == ["run-c", "run-b"]


def test_empty_registry_then_a_promotion(tmp_path: Path, models_dir: Path) -> None:
    _, clock, reloader = make_reloader(models_dir)
    assert reloader.check_reload() is None
    assert reloader.current is None

    promote_bundle(write_bundle(tmp_path / "run-new", seed=5), models_dir)
    clock.advance(60)
    assert reloader.check_reload() == "model:run-new:tree-ensemble seed=5"


@pytest.mark.parametrize("interval", [-1.0, float("nan"), float("inf")])
def test_bad_interval_is_refused(models_dir: Path, interval: float) -> None:
    with pytest.raises(ValueError, match="check_interval_s"):
        ActiveModelReloader(models_dir, RecordingLoader(), interval)


def test_check_now_ignores_the_interval(registry: Path) -> None:
    loader, _, reloader = make_reloader(registry)
    activate(registry, "run-a")
    reloader.check_reload()
    activate(registry, "run-c")
    assert reloader.check_reload() is None
    assert reloader.check_now() == model("run-c")
    assert loader.calls == ["run-a", "run-c"]


# --- ActiveModelWatcher ---------------------------------------------------------------


def test_watcher_reloads_when_the_pointer_moves(registry: Path) -> None:
    activate(registry, "run-a")
    loaded = threading.Event()
    seen: list[str] = []

    def on_reload(loaded_model: str) -> None:
        seen.append(loaded_model)
        if loaded_model == model("run-c"):
            loaded.set()

    # A huge interval: only the watcher can trigger the reload.
    reloader = ActiveModelReloader(registry, RecordingLoader(), check_interval_s=3600)
    watcher = ActiveModelWatcher(reloader, on_reload=on_reload, fallback_interval_s=1.0)
    with watcher:
        assert watcher.running
        activate(registry, "run-c")
        assert loaded.wait(timeout=30)
    assert not watcher.running
    assert reloader.current == model("run-c")
    assert seen[-1] == reloader.current


def test_watcher_needs_watchfiles(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "watchfiles", None)
    watcher = ActiveModelWatcher(ActiveModelReloader(registry, RecordingLoader()))
    with pytest.raises(ImportError, match=r"taskclf\[watch\]"):
        watcher.start()
    assert not watcher.running


@pytest.mark.parametrize("fallback", [0.0, -1.0, float("nan")])
def test_watcher_refuses_a_bad_fallback(registry: Path, fallback: float) -> None:
    reloader = ActiveModelReloader(registry, RecordingLoader())
    with pytest.raises(ValueError, match="fallback_interval_s"):
        ActiveModelWatcher(reloader, fallback_interval_s=fallback)


def test_watcher_waits_for_a_registry_that_appears_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "models"
    loaded = threading.Event()
    reloader = ActiveModelReloader(root, RecordingLoader(), check_interval_s=3600)
    watcher = ActiveModelWatcher(
        reloader, on_reload=lambda _model: loaded.set(), fallback_interval_s=0.2
    )
    with caplog.at_level(logging.WARNING), watcher:
        promote_bundle(write_bundle(tmp_path / "run-late", seed=6), root)
        assert loaded.wait(timeout=30)
    assert reloader.current == "model:run-late:tree-ensemble seed=6"
    assert not watcher.running
