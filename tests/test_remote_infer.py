"""Inference on an ``s3://`` registry: verified local copies, reloads that follow the pointer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from taskclf.infer import ActiveModelReloader, resolve_model_dir
from taskclf.model_registry import activate, promote_bundle
from taskclf.model_registry.bundle_cache import KEEP_BUNDLES
from taskclf.samples import write_bundle


def candidate(tmp_path: Path, name: str, macro_f1: float) -> Path:
    return write_bundle(tmp_path / "candidates" / name, macro_f1=macro_f1)


def model_id_of(bundle_dir: Path) -> str:
    """A stand-in loader: the model is the bundle's directory, read from its files."""
    assert (bundle_dir / "model.txt").is_file()
    return bundle_dir.name.rpartition("-")[0]


def test_resolve_model_dir_returns_a_verified_local_copy(s3_registry: str, tmp_path: Path) -> None:
    source = candidate(tmp_path, "run_a", 0.7)
    promote_bundle(source, s3_registry)
    cache = tmp_path / "cache"
    local = resolve_model_dir(None, s3_registry, cache_dir=cache)
    assert local.is_relative_to(cache) and local.name.startswith("run_a-")
    for file in source.iterdir():
        assert (local / file.name).read_bytes() == file.read_bytes()
    assert resolve_model_dir(None, s3_registry, cache_dir=cache) == local  # reused
    # No temporary download directory is left behind.
    assert [p.name for p in local.parent.iterdir()] == [local.name]


def test_a_tampered_cached_file_is_downloaded_again(s3_registry: str, tmp_path: Path) -> None:
    source = candidate(tmp_path, "run_a", 0.7)
    promote_bundle(source, s3_registry)
    cache = tmp_path / "cache"
    local = resolve_model_dir(None, s3_registry, cache_dir=cache)
    (local / "model.txt").write_bytes(b"tampered")
    again = resolve_model_dir(None, s3_registry, cache_dir=cache)
    assert again == local
    assert (again / "model.txt").read_bytes() == (source / "model.txt").read_bytes()


def test_the_cache_keeps_a_bounded_number_of_bundles(s3_registry: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    names = [f"run_{index}" for index in range(KEEP_BUNDLES + 2)]
    for index, name in enumerate(names):
        promote_bundle(candidate(tmp_path, name, 0.5 + index / 100), s3_registry)
        assert resolve_model_dir(None, s3_registry, cache_dir=cache).name.startswith(name)
    (registry,) = cache.iterdir()
    kept = sorted(p.name.rpartition("-")[0] for p in registry.iterdir())
    assert len(kept) == KEEP_BUNDLES and names[-1] in kept


def test_the_reloader_follows_a_remote_promotion(s3_registry: str, tmp_path: Path) -> None:
    promote_bundle(candidate(tmp_path, "run_a", 0.7), s3_registry)
    reloader = ActiveModelReloader(s3_registry, model_id_of, cache_dir=tmp_path / "cache")
    assert reloader.check_now() == "run_a"
    assert reloader.check_now() is None  # the pointer did not change: nothing reloaded
    promote_bundle(candidate(tmp_path, "run_b", 0.9), s3_registry)
    assert reloader.check_now() == "run_b"
    assert reloader.current == "run_b"
    activate(s3_registry, "run_a")
    assert reloader.check_now() == "run_a"


_SECOND_HOST = textwrap.dedent(
    """
    import sys
    from taskclf.infer import ActiveModelReloader

    def load(bundle_dir):
        return bundle_dir.name.rpartition("-")[0]

    reloader = ActiveModelReloader(sys.argv[1], load, cache_dir=sys.argv[2])
    for line in sys.stdin:
        reloader.check_now()
        print(reloader.current, flush=True)
    """
)


def test_a_second_host_follows_promotions(s3_registry: str, tmp_path: Path) -> None:
    """Another process, with its own cache directory, sees each promotion on its next check."""
    promote_bundle(candidate(tmp_path, "run_a", 0.7), s3_registry)
    seen = []
    with subprocess.Popen(
        [sys.executable, "-c", _SECOND_HOST, s3_registry, str(tmp_path / "other-cache")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    ) as host:
        assert host.stdin is not None and host.stdout is not None
        for name, f1 in (("run_b", 0.8), ("run_c", 0.9), (None, 0.0)):
            host.stdin.write("check\n")
            host.stdin.flush()
            seen.append(host.stdout.readline().strip())
            if name is not None:
                promote_bundle(candidate(tmp_path, name, f1), s3_registry)
        host.stdin.close()
        assert host.wait(timeout=60) == 0
    assert seen == ["run_a", "run_b", "run_c"]
    (registry,) = (tmp_path / "other-cache").iterdir()
    assert sorted(p.name.rpartition("-")[0] for p in registry.iterdir()) == [
        "run_a",
        "run_b",
        "run_c",
    ]


def test_the_file_watcher_refuses_an_object_store_registry(s3_registry: str) -> None:
    import pytest

    from taskclf.infer.watch import ActiveModelWatcher

    reloader = ActiveModelReloader(s3_registry, model_id_of)
    with pytest.raises(ValueError, match="sends no file events; poll it"):
        ActiveModelWatcher(reloader)
