"""The ranking cache: an unchanged registry's ranking is kept, and never outlives its facts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from taskclf.model_registry import find_best_model
from taskclf.model_registry import ranking_cache as ranking_cache_module
from taskclf.model_registry import resolution as resolution_module
from taskclf.model_registry.caching import CACHE_DIR_ENV, RACY_WINDOW_NS
from taskclf.model_registry.config import RegistryConfig
from taskclf.model_registry.models import SelectionPolicy
from taskclf.model_registry.ranking_cache import cache_path
from taskclf.model_registry.scan import scan_registry
from taskclf.samples import LABELS, write_bundle


def age_files() -> None:
    """Let the racy window pass, so that files written so far may be cached."""
    time.sleep(RACY_WINDOW_NS / 1e9 * 1.5)


def uncached(models_dir: Path, **request: Any) -> str:
    """The report of a ranking with every cache off, as JSON."""
    saved = os.environ.get(CACHE_DIR_ENV)
    os.environ[CACHE_DIR_ENV] = ""
    try:
        return find_best_model(models_dir, **request).model_dump_json()
    finally:
        if saved is None:
            del os.environ[CACHE_DIR_ENV]
        else:
            os.environ[CACHE_DIR_ENV] = saved


@pytest.fixture
def rankings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many bundles each ranking actually run (not answered from the cache) ranked."""
    ran: list[int] = []
    original = resolution_module.rank_scanned

    def counting(bundles: list[Any], *args: Any, **kwargs: Any) -> Any:
        ran.append(len(bundles))
        return original(bundles, *args, **kwargs)

    monkeypatch.setattr(resolution_module, "rank_scanned", counting)
    return ran


def registry_with_a_warm_scan_cache(models_dir: Path, count: int = 4) -> None:
    """``count`` bundles (one invalid, one incompatible) whose scans the scan cache serves."""
    for index in range(count - 2):
        write_bundle(models_dir / f"b{index}", seed=index, macro_f1=0.5 + index / 10)
    write_bundle(models_dir / "old-schema", seed=7, schema_hash="0" * 64)
    broken = models_dir / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{not json")
    age_files()
    scan_registry(models_dir)  # a first scan leaves only a marker
    scan_registry(models_dir)  # the second writes the scan cache
    assert scan_registry(models_dir).snapshot is not None


def test_an_unchanged_registry_is_ranked_once(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int]
) -> None:
    registry_with_a_warm_scan_cache(models_dir)
    first = find_best_model(models_dir)
    assert rankings == [4]
    again = find_best_model(models_dir)
    assert rankings == [4]  # answered from the kept ranking
    assert again.model_dump_json() == first.model_dump_json() == uncached(models_dir)
    assert again == first
    assert again.best is not None and again.best.model_id == "b1"
    assert {record.model_id for record in again.excluded} == {"old-schema", "broken"}
    path = cache_path(models_dir.resolve())
    assert path is not None and path.is_file()


def test_a_ranking_is_never_kept_past_a_change_of_the_facts(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int]
) -> None:
    registry_with_a_warm_scan_cache(models_dir)
    find_best_model(models_dir)
    assert find_best_model(models_dir).best.model_id == "b1"  # type: ignore[union-attr]
    # b0 becomes the best: the scan reads it from its files (no snapshot: ranked), and
    # rewrites the scan cache; the next scan's snapshot is another, so it ranks too.
    write_bundle(models_dir / "b0", seed=0, macro_f1=0.95)
    age_files()
    changed = find_best_model(models_dir)
    assert changed.best is not None and changed.best.model_id == "b0"
    assert scan_registry(models_dir).snapshot is not None
    expected = uncached(models_dir)
    rankings.clear()
    after = find_best_model(models_dir)
    assert rankings == [4]
    assert after.model_dump_json() == changed.model_dump_json() == expected
    assert find_best_model(models_dir) == after
    assert rankings == [4]


@pytest.mark.parametrize(
    "request_",
    [
        {"required_label_set": [*LABELS[:-1], "Other"]},
        {"policy": SelectionPolicy(min_improvement=0.5)},
        {"required_schema_hash": "0" * 64},
        {"config": RegistryConfig(schemas=RegistryConfig().schemas[:1])},
    ],
    ids=["labels", "policy", "schema hash", "schemas"],
)
def test_each_request_is_kept_for_itself(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int], request_: dict[str, Any]
) -> None:
    registry_with_a_warm_scan_cache(models_dir)
    default = find_best_model(models_dir)
    other = find_best_model(models_dir, **request_)
    assert rankings == [4, 4]
    assert other.model_dump_json() != default.model_dump_json()
    # Both kept side by side.
    assert find_best_model(models_dir, **request_) == other
    assert find_best_model(models_dir) == default
    assert rankings == [4, 4]
    assert other.model_dump_json() == uncached(models_dir, **request_)


def _kept(models_dir: Path) -> dict[str, Any]:
    path = cache_path(models_dir.resolve())
    assert path is not None
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _edit_kept(models_dir: Path, edit: Any) -> None:
    path = cache_path(models_dir.resolve())
    assert path is not None
    document = _kept(models_dir)
    for entry in document["requests"].values():
        edit(entry)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(
    "damage",
    [
        lambda path: path.write_bytes(b"\x00 not json"),
        lambda path: path.write_text("[]"),
        lambda path: path.write_text(json.dumps({**json.loads(path.read_text()), "version": 9})),
        lambda path: path.write_text(
            json.dumps({**json.loads(path.read_text()), "snapshot": "another"})
        ),
        lambda path: path.unlink() or path.mkdir(),
    ],
    ids=["garbage", "not an object", "other version", "other snapshot", "a directory"],
)
def test_an_unusable_ranking_file_only_costs_the_ranking(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int], damage: Any
) -> None:
    registry_with_a_warm_scan_cache(models_dir)
    expected = find_best_model(models_dir).model_dump_json()
    path = cache_path(models_dir.resolve())
    assert path is not None
    damage(path)
    rankings.clear()
    assert find_best_model(models_dir).model_dump_json() == expected
    assert rankings == [4]


@pytest.mark.parametrize(
    "edit",
    [
        lambda entry: entry[1].append(entry[1][0]),  # a bundle twice
        lambda entry: entry[1].pop(),  # a bundle missing
        lambda entry: entry[1].__setitem__(0, 99),  # out of range
        lambda entry: entry[1].__setitem__(0, -1),  # negative
        lambda entry: entry[1].__setitem__(0, 1.0),  # not an int
        lambda entry: entry[2][0].__setitem__(1, None),  # a reason not a string
        lambda entry: entry.__setitem__(0, 5),  # the schema hash not a string
        lambda entry: entry.pop(),  # too short
    ],
    ids=["twice", "missing", "out of range", "negative", "float", "reason", "hash", "short"],
)
def test_a_kept_ranking_that_is_not_one_pass_over_the_bundles_is_a_miss(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int], edit: Any
) -> None:
    registry_with_a_warm_scan_cache(models_dir)
    expected = find_best_model(models_dir).model_dump_json()
    _edit_kept(models_dir, edit)
    rankings.clear()
    assert find_best_model(models_dir).model_dump_json() == expected
    assert rankings == [4]


def test_the_kept_ranking_is_what_answers(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int]
) -> None:
    """A well-formed kept ranking for the snapshot is believed: it is keyed, not re-checked.

    (Which is why the key must hold everything a ranking depends on.)
    """
    registry_with_a_warm_scan_cache(models_dir)
    first = find_best_model(models_dir)
    order = [bundle.model_id for bundle in first.ranked]
    assert order == ["b1", "b0"]

    def swapped(entry: list[Any]) -> None:
        entry[1].reverse()

    _edit_kept(models_dir, swapped)
    assert [bundle.model_id for bundle in find_best_model(models_dir).ranked] == ["b0", "b1"]


def test_requests_kept_are_bounded(
    models_dir: Path, scan_cache_dir: Path, rankings: list[int]
) -> None:
    registry_with_a_warm_scan_cache(models_dir)
    limit = ranking_cache_module.MAX_REQUESTS
    for step in range(limit + 3):
        find_best_model(models_dir, policy=SelectionPolicy(min_improvement=step / 100))
    assert len(_kept(models_dir)["requests"]) == limit
    rankings.clear()
    # The newest are kept, the oldest went first.
    find_best_model(models_dir, policy=SelectionPolicy(min_improvement=(limit + 2) / 100))
    find_best_model(models_dir, policy=SelectionPolicy(min_improvement=0.0))
    assert rankings == [4]


def test_no_ranking_is_kept_without_a_scan_cache(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch, rankings: list[int]
) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, "")
    write_bundle(models_dir / "a", seed=1)
    age_files()
    for _ in range(3):
        find_best_model(models_dir)
    assert rankings == [1, 1, 1]
    assert cache_path(models_dir) is None
