"""``taskclf model sync``: bundles between registries, local and remote, in both directions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskclf.model_registry import (
    check_manifest,
    list_bundles,
    promote_bundle,
    read_active,
    read_active_history,
    seal_bundle,
    verify_registry,
)
from taskclf.model_registry.sync import SyncError, sync_registry
from taskclf.samples import write_bundle


def local_registry(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    for name, f1 in (("run_a", 0.7), ("run_b", 0.8)):
        promote_bundle(write_bundle(tmp_path / "candidates" / name, macro_f1=f1), models)
    return models


def test_local_to_s3_and_back(s3_registry: str, tmp_path: Path) -> None:
    models = local_registry(tmp_path)
    result = sync_registry(models, s3_registry, with_pointer=True)
    assert result.copied == ["run_a", "run_b"] and result.skipped == {}
    assert result.pointer == "run_b"
    assert read_active(s3_registry).model_id == "run_b"  # type: ignore[union-attr]
    assert [h.new.reason["note"] for h in read_active_history(s3_registry)] == ["sync"]  # type: ignore[index]
    assert verify_registry(s3_registry).healthy
    # The unsealed originals were sealed on the way up: the same files, so "already there".
    again = sync_registry(models, s3_registry, with_pointer=True)
    assert again.copied == [] and again.pointer is None and again.skipped == {}
    assert again.present == ["run_a", "run_b"]
    # Back down into a fresh local registry: sealed copies, verified.
    other = tmp_path / "other"
    down = sync_registry(s3_registry, other)
    assert down.copied == ["run_a", "run_b"] and read_active(other) is None
    for bundle in list_bundles(other):
        assert check_manifest(bundle.path).status == "match"


def test_a_sealed_bundle_whose_files_changed_is_not_copied(
    s3_registry: str, tmp_path: Path
) -> None:
    models = local_registry(tmp_path)
    seal_bundle(models / "run_a")
    with open(models / "run_a" / "model.txt", "ab") as handle:
        handle.write(b"changed")
    result = sync_registry(models, s3_registry)
    assert result.copied == ["run_b"]
    assert "do not match its manifest.json" in result.skipped["run_a"]
    write_bundle(tmp_path / "elsewhere" / "run_b", macro_f1=0.5)
    clash = sync_registry(tmp_path / "elsewhere", s3_registry)
    assert clash.skipped == {"run_b": "the destination has a different bundle of this name"}
    assert [b.model_id for b in list_bundles(s3_registry)] == ["run_b"]


def test_sync_refuses_the_same_registry(tmp_path: Path) -> None:
    models = local_registry(tmp_path)
    with pytest.raises(SyncError, match="same registry"):
        sync_registry(models, str(models))


def test_the_sync_command(s3_registry: str, tmp_path: Path) -> None:
    models = local_registry(tmp_path)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("taskclf")),
            "model",
            "sync",
            str(models),
            s3_registry,
            "--with-pointer",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["copied"] == ["run_a", "run_b"]
