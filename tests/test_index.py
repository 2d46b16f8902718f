"""REGISTRY.md §8: the informational index cache ``index.json``."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskclf.model_registry import (
    IndexCache,
    IndexCacheBundleSummary,
    SelectionPolicy,
    find_best_model,
    read_index_cache,
    write_index_cache,
)
from taskclf.model_registry._fs import LOCK_FILE
from taskclf.model_registry.index import INDEX_FILE

BundleFactory = Callable[..., Path]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _registry(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", macro_f1=0.9, weighted_f1=0.8, created_at="2026-01-02T03:04:05+02:00")
    make_bundle("b", macro_f1=0.7, weighted_f1=0.6, created_at="2026-01-01T00:00:00")
    (make_bundle("broken") / "metrics.json").write_text("{")
    make_bundle("labels", label_set=["x", "y"])


def test_write_index_contents(models_dir: Path, make_bundle: BundleFactory) -> None:
    _registry(models_dir, make_bundle)
    report = find_best_model(models_dir, policy=SelectionPolicy(version=2))
    before = datetime.now(UTC)
    cache = write_index_cache(models_dir, report)
    after = datetime.now(UTC)
    assert cache.schema_hash == report.required_schema_hash
    assert cache.policy_version == 2
    assert cache.best_model_id == "a"
    generated = datetime.fromisoformat(cache.generated_at)
    assert generated.utcoffset() == timedelta(0)
    assert before <= generated <= after
    assert cache.ranked == [
        IndexCacheBundleSummary(
            model_id="a",
            path=str(models_dir / "a"),
            macro_f1=0.9,
            weighted_f1=0.8,
            created_at="2026-01-02T03:04:05+02:00",
            eligible=True,
        ),
        IndexCacheBundleSummary(
            model_id="b",
            path=str(models_dir / "b"),
            macro_f1=0.7,
            weighted_f1=0.6,
            created_at="2026-01-01T00:00:00",
            eligible=True,
        ),
    ]
    assert cache.excluded == report.excluded
    assert {e.model_id for e in cache.excluded} == {"broken", "labels"}


def test_written_file_round_trips(models_dir: Path, make_bundle: BundleFactory) -> None:
    _registry(models_dir, make_bundle)
    cache = write_index_cache(models_dir, find_best_model(models_dir))
    assert read_index_cache(models_dir) == cache
    data = json.loads((models_dir / INDEX_FILE).read_text("utf-8"))
    assert isinstance(data["ranked"][0]["path"], str)
    assert data["ranked"][0]["eligible"] is True
    assert data["best_model_id"] == "a"


def test_empty_report_has_no_best(models_dir: Path) -> None:
    cache = write_index_cache(models_dir, find_best_model(models_dir))
    assert cache.best_model_id is None
    assert cache.ranked == [] and cache.excluded == []
    assert read_index_cache(models_dir) == cache


def test_write_is_atomic_and_leaves_no_temp_files(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    _registry(models_dir, make_bundle)
    report = find_best_model(models_dir)
    for _ in range(3):
        write_index_cache(models_dir, report)
    names = {p.name for p in models_dir.iterdir() if not p.is_dir()}
    assert names <= {INDEX_FILE, LOCK_FILE}
    assert not (models_dir / "index.json.tmp").exists()


def test_replace_is_a_new_inode(models_dir: Path, make_bundle: BundleFactory) -> None:
    """Atomic replace, not an in-place rewrite: a reader holding the old file keeps it whole."""
    _registry(models_dir, make_bundle)
    report = find_best_model(models_dir)
    write_index_cache(models_dir, report)
    with (models_dir / INDEX_FILE).open("rb") as old_handle:
        old_inode = os.fstat(old_handle.fileno()).st_ino
        old_content = (models_dir / INDEX_FILE).read_bytes()
        write_index_cache(models_dir, report)
        assert old_handle.read() == old_content
    assert (models_dir / INDEX_FILE).stat().st_ino != old_inode


def test_failed_write_keeps_previous_index(models_dir: Path, make_bundle: BundleFactory) -> None:
    _registry(models_dir, make_bundle)
    report = find_best_model(models_dir)
    (models_dir / INDEX_FILE).mkdir()  # os.replace onto a directory fails for real
    with pytest.raises(OSError):
        write_index_cache(models_dir, report)
    assert (models_dir / INDEX_FILE).is_dir()
    assert {p.name for p in models_dir.iterdir() if not p.is_dir()} <= {LOCK_FILE}


def test_read_missing_is_none_silently(
    models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert read_index_cache(models_dir) is None
    assert read_index_cache(tmp_path / "nope") is None
    assert _warnings(caplog) == []


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"\xff\xfe", b"[]", b"{}", b'{"generated_at": "t"}', b"[" * 100_000],
    ids=["empty", "torn", "non-utf8", "list", "empty-object", "partial", "deep"],
)
def test_read_bad_is_none(models_dir: Path, content: bytes) -> None:
    (models_dir / INDEX_FILE).write_bytes(content)
    assert read_index_cache(models_dir) is None


def test_read_unreadable_is_none(models_dir: Path) -> None:
    (models_dir / INDEX_FILE).mkdir()
    assert read_index_cache(models_dir) is None


def test_read_huge_is_none(models_dir: Path) -> None:
    with (models_dir / INDEX_FILE).open("wb") as handle:
        handle.truncate(32 * 1024 * 1024)
    assert read_index_cache(models_dir) is None


def test_read_ignores_extra_keys(models_dir: Path) -> None:
    cache = IndexCache(generated_at="t", schema_hash="h", policy_version=1, ranked=[], excluded=[])
    data = json.loads(cache.model_dump_json()) | {"future": 1}
    (models_dir / INDEX_FILE).write_text(json.dumps(data))
    assert read_index_cache(models_dir) == cache


def test_selection_never_reads_the_cache(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("real", macro_f1=0.5, weighted_f1=0.5)
    fake = IndexCache(
        generated_at="t",
        schema_hash="h",
        policy_version=1,
        ranked=[IndexCacheBundleSummary(model_id="ghost", path="/ghost", eligible=True)],
        excluded=[],
        best_model_id="ghost",
    )
    (models_dir / INDEX_FILE).write_text(fake.model_dump_json())
    report = find_best_model(models_dir)
    assert report.best is not None and report.best.model_id == "real"
    # And a corrupt cache does not disturb selection either.
    (models_dir / INDEX_FILE).write_text("garbage")
    assert [b.model_id for b in find_best_model(models_dir).ranked] == ["real"]
