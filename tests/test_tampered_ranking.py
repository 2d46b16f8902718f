"""A sealed bundle whose files changed never takes the pointer, nor a "top N" place.

Ranking never hashes (the scan stays cheap), so a tampered bundle can rank
first. Every path that *chooses* a bundle for a pointer (a repair, a
promotion's overthrow) passes over it to the best bundle that matches its
manifest, and prune does not let it displace a good bundle from the top N.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from conftest import sealed_bundle
from taskclf.infer import ActiveModelReloader, resolve_model_dir
from taskclf.model_registry import (
    activate_bundle,
    execute_prune,
    find_best_model,
    plan_prune,
    promote_bundle,
    read_active,
    resolve_active_model,
)
from taskclf.model_registry.pointer import ACTIVE_FILE


def _tamper(bundle: Path) -> None:
    # Same size, other bytes: only a hash can tell.
    model = bundle / f"{bundle.name}.model"
    data = bytearray(model.read_bytes())
    data[0] ^= 0xFF
    model.write_bytes(bytes(data))


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    for name, f1 in (("good-low", 0.6), ("good-mid", 0.7), ("tampered-top", 0.9)):
        sealed_bundle(root, name, f1)
    _tamper(root / "tampered-top")
    assert find_best_model(root).best is not None
    assert find_best_model(root).best.model_id == "tampered-top"  # type: ignore[union-attr]
    return root


def test_repair_passes_over_a_tampered_best_bundle(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        bundle, report = resolve_active_model(registry)

    assert report is not None
    assert bundle is not None and bundle.model_id == "good-mid"
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "good-mid"
    assert "tampered-top" in caplog.text and "manifest" in caplog.text


def test_services_never_receive_the_tampered_directory(registry: Path) -> None:
    assert resolve_model_dir(None, registry).name == "good-mid"

    reloader = ActiveModelReloader(registry, loader=lambda path: path.name)
    assert reloader.check_reload() == "good-mid"


def test_nothing_intact_means_nothing_resolved(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    _tamper(sealed_bundle(root, "only", 0.8))

    bundle, report = resolve_active_model(root)

    assert bundle is None and report is not None
    assert not os.path.exists(root / ACTIVE_FILE)


def test_promotion_overthrows_to_the_best_intact_bundle(registry: Path, tmp_path: Path) -> None:
    activate_bundle(registry, "good-low")
    candidate = sealed_bundle(tmp_path / "runs", "new-0.8", 0.8)

    result = promote_bundle(candidate, registry)

    # The tampered bundle still ranks first, but the candidate takes the pointer.
    assert result.report.best is not None and result.report.best.model_id == "tampered-top"
    assert result.active_updated
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "new-0.8"


def test_prune_keeps_the_best_intact_bundles_not_the_tampered_one(registry: Path) -> None:
    plan = plan_prune(registry, keep=1, keep_history=0)
    by_id = {decision.model_id: decision for decision in plan.decisions}

    assert by_id["good-mid"].action == "keep"
    assert any("top 1" in reason for reason in by_id["good-mid"].reasons)
    # Kept for inspection, but not as one of the top bundles.
    assert by_id["tampered-top"].action == "keep"
    assert any("manifest" in reason for reason in by_id["tampered-top"].reasons)
    assert not any("top 1" in reason for reason in by_id["tampered-top"].reasons)
    assert by_id["good-low"].action == "delete"

    execute_prune(plan)
    assert sorted(p.name for p in registry.iterdir() if p.is_dir()) == [
        "good-mid",
        "tampered-top",
    ]
