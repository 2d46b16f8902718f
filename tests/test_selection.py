"""REGISTRY.md §4-5: compatibility, constraints, score, exclusion and ranking, find_best_model."""

from __future__ import annotations

import itertools
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskclf.model_registry.resolution as resolution
from taskclf.core.model_io import ModelMetadata
from taskclf.core.schema import FeatureSchemaV1, FeatureSchemaV2, FeatureSchemaV3
from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry import (
    BundleMetrics,
    ModelBundle,
    SelectionPolicy,
    find_best_model,
    is_compatible,
    list_bundles,
    passes_constraints,
    rank_bundles,
    score,
)
from taskclf.model_registry.scan import scan_registry
from taskclf.model_registry.selection import rank_key

BundleFactory = Callable[..., Path]
V1, V2, V3 = FeatureSchemaV1.SCHEMA_HASH, FeatureSchemaV2.SCHEMA_HASH, FeatureSchemaV3.SCHEMA_HASH
LABELS = sorted(LABEL_SET_V1)


def _metadata(
    schema_hash: str = V1,
    labels: list[str] | None = None,
    created_at: str = "2026-01-01T00:00:00+00:00",
    schema_version: str = "v1",
) -> ModelMetadata:
    return ModelMetadata(
        schema_version=schema_version,
        schema_hash=schema_hash,
        label_set=LABELS if labels is None else labels,
        train_date_from="a",
        train_date_to="b",
        params={},
        git_commit="c",
        dataset_hash="d",
        created_at=created_at,
    )


def _bundle(
    model_id: str = "m",
    macro: float = 0.5,
    weighted: float = 0.5,
    created_at: str = "2026-01-01T00:00:00+00:00",
    *,
    valid: bool = True,
    with_metrics: bool = True,
    with_created: bool = True,
    **meta: Any,
) -> ModelBundle:
    metrics = (
        BundleMetrics(macro_f1=macro, weighted_f1=weighted, confusion_matrix=[], label_names=[])
        if with_metrics
        else None
    )
    parsed = datetime.fromisoformat(created_at)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return ModelBundle(
        model_id=model_id,
        path=Path("/models") / model_id,
        valid=valid,
        invalid_reason=None if valid else "broken",
        metadata=_metadata(created_at=created_at, **meta),
        metrics=metrics,
        created_at=parsed if with_created else None,
    )


def _ids(bundles: list[ModelBundle]) -> list[str]:
    return [b.model_id for b in bundles]


# --- §4 ---------------------------------------------------------------------


def test_is_compatible_defaults_to_v1_hash_and_label_set_v1() -> None:
    assert is_compatible(_bundle())
    assert not is_compatible(_bundle(schema_hash=V3))
    assert is_compatible(_bundle(schema_hash=V3), V3)


def test_is_compatible_requires_exact_hash() -> None:
    assert not is_compatible(_bundle(schema_hash=V1.upper()), V1)
    assert not is_compatible(_bundle(schema_hash=V1 + " "), V1)
    assert not is_compatible(_bundle(schema_hash=V1[:-1]), V1)


def test_is_compatible_compares_sorted_label_lists() -> None:
    assert is_compatible(_bundle(labels=list(reversed(LABELS))))
    assert not is_compatible(_bundle(labels=LABELS[:-1]))
    assert not is_compatible(_bundle(labels=[*LABELS, "Extra"]))
    # sorted() of lists, not sets: a duplicated label is a different label set.
    assert not is_compatible(_bundle(labels=[*LABELS, LABELS[0]]))
    assert is_compatible(_bundle(labels=["b", "a"]), V1, {"a", "b"})
    assert is_compatible(_bundle(labels=["b", "a"]), V1, ["a", "b"])


def test_is_compatible_requires_valid_bundle_with_metadata() -> None:
    assert not is_compatible(_bundle(valid=False))
    no_meta = ModelBundle(model_id="x", path=Path("/x"), valid=True, metrics=None)
    assert not is_compatible(no_meta)


def test_passes_constraints_v1() -> None:
    policy = SelectionPolicy()
    assert passes_constraints(_bundle(), policy)
    assert not passes_constraints(_bundle(with_metrics=False), policy)
    assert not passes_constraints(_bundle(valid=False), policy)


def test_score_is_macro_weighted_and_raw_created_at_string() -> None:
    bundle = _bundle(macro=0.7, weighted=0.6, created_at="2026-03-01T10:00:00+05:30")
    assert score(bundle, SelectionPolicy()) == (0.7, 0.6, "2026-03-01T10:00:00+05:30")


@pytest.mark.parametrize(
    "bundle",
    [
        _bundle("bad1", valid=False),
        _bundle("bad1", with_metrics=False),
        ModelBundle(model_id="bad1", path=Path("/x"), valid=True, metrics=None),
    ],
    ids=["invalid", "no-metrics", "no-metadata"],
)
def test_score_raises_for_unscorable(bundle: ModelBundle) -> None:
    with pytest.raises(ValueError, match=r"^Cannot score invalid bundle 'bad1'$"):
        score(bundle, SelectionPolicy())


def test_score_requires_metadata_even_with_metrics() -> None:
    metrics = BundleMetrics(macro_f1=0.5, weighted_f1=0.5, confusion_matrix=[], label_names=[])
    bundle = ModelBundle(model_id="q", path=Path("/q"), valid=True, metrics=metrics)
    with pytest.raises(ValueError, match="Cannot score invalid bundle 'q'"):
        score(bundle, SelectionPolicy())


# --- §5 exclusion reasons ---------------------------------------------------


def test_exclusion_reasons_and_their_order(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("good", seed=1)
    (make_bundle("broken") / "metrics.json").unlink()
    make_bundle("schema", schema_hash="000000000000")
    make_bundle("labels", label_set=["Build", "Debug"])
    # Both schema and labels wrong: the schema mismatch wins.
    make_bundle("both", schema_hash="000000000000", label_set=["Build", "Debug"])
    report = find_best_model(models_dir, required_schema_hash=V1)
    reasons = {e.model_id: e.reason for e in report.excluded}
    assert reasons == {
        "broken": "invalid: missing metrics.json",
        "schema": "incompatible: schema_hash mismatch",
        "labels": "incompatible: label_set mismatch",
        "both": "incompatible: schema_hash mismatch",
    }
    assert _ids(report.ranked) == ["good"]
    excluded_paths = {e.model_id: e.path for e in report.excluded}
    assert excluded_paths["broken"] == models_dir / "broken"


def test_invalid_reason_is_carried_verbatim(models_dir: Path, make_bundle: BundleFactory) -> None:
    (make_bundle("b") / "metadata.json").write_text("{")
    [bundle] = list_bundles(models_dir)
    [excluded] = find_best_model(models_dir).excluded
    assert excluded.reason == f"invalid: {bundle.invalid_reason}"
    assert excluded.reason.startswith("invalid: metadata.json parse error: ")


def test_invalid_is_checked_before_schema(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("b", schema_hash="000000000000", created_at="bad date")
    [excluded] = find_best_model(models_dir, required_schema_hash=V1).excluded
    assert excluded.reason.startswith("invalid: created_at parse error: ")


def test_constraint_exclusion_reason() -> None:
    """A valid, compatible bundle without metrics fails the v1 constraints (pure path)."""
    from taskclf.model_registry.selection import select_best

    report = select_best(
        [_bundle("nometrics", with_metrics=False), _bundle("ok")], SelectionPolicy(), V1, LABELS
    )
    assert [(e.model_id, e.reason) for e in report.excluded] == [
        ("nometrics", "constraint: failed policy constraints")
    ]
    assert _ids(report.ranked) == ["ok"]


def test_required_label_set_is_applied(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("two", label_set=["a", "b"])
    make_bundle("eight")
    report = find_best_model(models_dir, required_schema_hash=V1, required_label_set={"b", "a"})
    assert _ids(report.ranked) == ["two"]
    assert [(e.model_id, e.reason) for e in report.excluded] == [
        ("eight", "incompatible: label_set mismatch")
    ]


def test_every_bundle_accounted_for_exactly_once(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    for i in range(4):
        make_bundle(f"v1-{i}", seed=i)
        make_bundle(f"v3-{i}", seed=10 + i, schema_version="v3")
    (make_bundle("bad") / "metadata.json").write_text("[]")
    (models_dir / "empty").mkdir()
    scanned = {b.model_id for b in list_bundles(models_dir)}
    for required in (None, V1, V2, V3, "nope"):
        report = find_best_model(models_dir, required_schema_hash=required)
        ranked = _ids(report.ranked)
        excluded = [e.model_id for e in report.excluded]
        assert len(ranked) + len(excluded) == len(scanned)
        assert set(ranked) | set(excluded) == scanned
        assert not set(ranked) & set(excluded)


# --- §5 ranking -------------------------------------------------------------


def test_rank_macro_f1_first(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", macro_f1=0.70, weighted_f1=0.99, created_at="2026-06-01T00:00:00+00:00")
    make_bundle("b", macro_f1=0.80, weighted_f1=0.10, created_at="2020-01-01T00:00:00+00:00")
    report = find_best_model(models_dir)
    assert _ids(report.ranked) == ["b", "a"]
    assert report.best is not None and report.best.model_id == "b"


def test_rank_weighted_f1_breaks_macro_ties(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", macro_f1=0.8, weighted_f1=0.70, created_at="2026-06-01T00:00:00+00:00")
    make_bundle("b", macro_f1=0.8, weighted_f1=0.75, created_at="2020-01-01T00:00:00+00:00")
    assert _ids(find_best_model(models_dir).ranked) == ["b", "a"]


def test_rank_newer_created_at_breaks_f1_ties(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T00:00:00+00:00")
    make_bundle("b", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-02T00:00:00+00:00")
    make_bundle("c", macro_f1=0.8, weighted_f1=0.8, created_at="2025-12-31T23:59:59.999999+00:00")
    assert _ids(find_best_model(models_dir).ranked) == ["b", "a", "c"]


def test_rank_created_at_compared_as_instants_across_offsets(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    # As strings "2026-01-01T10:00:00+09:00" > "2026-01-01T05:00:00+00:00",
    # but as instants 01:00Z is older than 05:00Z.
    make_bundle("tokyo", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T10:00:00+09:00")
    make_bundle("utc", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T05:00:00+00:00")
    make_bundle("nyc", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T03:00:00-05:00")
    assert _ids(find_best_model(models_dir).ranked) == ["nyc", "utc", "tokyo"]


def test_rank_naive_created_at_is_utc(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("naive", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T05:00:00")
    make_bundle("plus1", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T05:30:00+01:00")
    make_bundle("minus1", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T04:30:00-01:00")
    # naive = 05:00Z; plus1 = 04:30Z; minus1 = 05:30Z
    assert _ids(find_best_model(models_dir).ranked) == ["minus1", "naive", "plus1"]


def test_rank_model_id_ascending_breaks_full_ties(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    for name in ["c", "a", "b"]:
        make_bundle(name, macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T00:00:00+00:00")
    # Same instant written with different offsets is still a tie on created_at.
    make_bundle("0same", macro_f1=0.8, weighted_f1=0.8, created_at="2026-01-01T02:00:00+02:00")
    assert _ids(find_best_model(models_dir).ranked) == ["0same", "a", "b", "c"]


def test_no_eligible_bundle_gives_best_none(models_dir: Path, make_bundle: BundleFactory) -> None:
    (make_bundle("bad") / "metadata.json").unlink()
    report = find_best_model(models_dir)
    assert report.best is None
    assert report.ranked == []
    assert len(report.excluded) == 1


def test_defaults_policy_and_label_set(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a")
    report = find_best_model(models_dir)
    assert report.policy == SelectionPolicy()
    policy = SelectionPolicy(version=1, min_improvement=0.2)
    assert find_best_model(models_dir, policy=policy).policy == policy


def test_missing_models_dir_report(tmp_path: Path) -> None:
    report = find_best_model(tmp_path / "missing")
    assert report.best is None
    assert report.ranked == [] and report.excluded == []
    assert report.required_schema_hash == V1


# --- §5 multi-version fallback ----------------------------------------------


def test_fallback_prefers_v3(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("old-v1", macro_f1=0.99, weighted_f1=0.99)
    make_bundle("new-v3", macro_f1=0.50, weighted_f1=0.50, schema_version="v3")
    make_bundle("mid-v2", macro_f1=0.90, weighted_f1=0.90, schema_version="v2")
    report = find_best_model(models_dir)
    assert report.required_schema_hash == V3
    assert _ids(report.ranked) == ["new-v3"]
    assert {e.model_id: e.reason for e in report.excluded} == {
        "old-v1": "incompatible: schema_hash mismatch",
        "mid-v2": "incompatible: schema_hash mismatch",
    }


def test_fallback_to_v2_then_v1(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a-v1", schema_version="v1")
    make_bundle("b-v2", schema_version="v2")
    # A v3 bundle with the wrong labels is not eligible, so the v3 pass is empty.
    make_bundle("c-v3", schema_version="v3", label_set=["Build", "Debug"])
    report = find_best_model(models_dir)
    assert report.required_schema_hash == V2
    assert _ids(report.ranked) == ["b-v2"]
    (models_dir / "b-v2" / "metrics.json").write_text("{")
    report = find_best_model(models_dir)
    assert report.required_schema_hash == V1
    assert _ids(report.ranked) == ["a-v1"]


def test_fallback_with_nothing_eligible_returns_the_v1_pass(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("v3-wrong-labels", schema_version="v3", label_set=["Build", "Debug"])
    make_bundle("unknown", schema_hash="ffffffffffff")
    report = find_best_model(models_dir)
    assert report.required_schema_hash == V1
    assert report.best is None
    assert {e.model_id: e.reason for e in report.excluded} == {
        "v3-wrong-labels": "incompatible: schema_hash mismatch",
        "unknown": "incompatible: schema_hash mismatch",
    }


def test_explicit_hash_is_a_single_pass(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("v3", schema_version="v3")
    report = find_best_model(models_dir, required_schema_hash=V1)
    assert report.required_schema_hash == V1
    assert report.best is None  # no fallback to the v3 pass
    assert _ids(find_best_model(models_dir, required_schema_hash=V3).ranked) == ["v3"]
    arbitrary = find_best_model(models_dir, required_schema_hash="abc")
    assert arbitrary.required_schema_hash == "abc"
    assert arbitrary.best is None


@pytest.fixture
def count_scans(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record every ``scan_registry`` call made by resolution and every ``os.scandir`` call."""
    calls: list[str] = []
    real_list = scan_registry
    real_scandir = os.scandir

    def counting_list(models_dir: str | os.PathLike[str]) -> Any:
        calls.append(f"list_bundles:{os.fspath(models_dir)}")
        return real_list(models_dir)

    def counting_scandir(path: Any = None) -> Any:
        calls.append(f"scandir:{os.fspath(path) if path is not None else '.'}")
        return real_scandir(path) if path is not None else real_scandir()

    monkeypatch.setattr(resolution, "scan_registry", counting_list)
    monkeypatch.setattr(os, "scandir", counting_scandir)
    yield calls


def test_directory_scanned_once_per_call(
    models_dir: Path, make_bundle: BundleFactory, count_scans: list[str]
) -> None:
    make_bundle("only-v1")  # forces the v3 and v2 passes to come up empty
    report = find_best_model(models_dir)
    assert report.required_schema_hash == V1
    assert len([c for c in count_scans if c.startswith("list_bundles:")]) == 1
    assert count_scans.count(f"scandir:{models_dir}") == 1


def _snapshot(root: Path) -> dict[str, tuple[int, int, bytes | None]]:
    snap: dict[str, tuple[int, int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            content = path.read_bytes() if path.is_file() else None
            snap[str(path.relative_to(root))] = (info.st_mode, info.st_mtime_ns, content)
    return snap


def test_find_best_model_never_writes(models_dir: Path, make_bundle: BundleFactory) -> None:
    make_bundle("a", seed=1)
    make_bundle("b", seed=2, schema_version="v3")
    (make_bundle("c") / "metadata.json").write_text("{")
    (models_dir / "active.json").write_text("not json")  # a broken pointer is not repaired here
    root_mtime = models_dir.stat().st_mtime_ns
    before = _snapshot(models_dir.parent)
    for required in (None, V1, "x"):
        find_best_model(models_dir, required_schema_hash=required)
    assert _snapshot(models_dir.parent) == before
    assert models_dir.stat().st_mtime_ns == root_mtime


# --- Hypothesis properties --------------------------------------------------

_f1 = st.sampled_from([0.0, 0.5, 0.8, 0.80000001, 1.0]) | st.floats(0, 1)
_offsets = st.sampled_from([None, -12, -5, 0, 1, 5, 9, 14])


@st.composite
def _bundles(draw: st.DrawFn) -> list[ModelBundle]:
    count = draw(st.integers(1, 12))
    ids = draw(
        st.lists(
            st.text("abcXYZ019-_", min_size=1, max_size=6),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    base = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for model_id in ids:
        instant = base + timedelta(hours=draw(st.integers(0, 6)))
        offset = draw(_offsets)
        if offset is None:
            text = instant.replace(tzinfo=None).isoformat()
        else:
            text = instant.astimezone(timezone(timedelta(hours=offset))).isoformat()
        out.append(_bundle(model_id, draw(_f1), draw(_f1), text))
    return out


def _key(bundle: ModelBundle) -> tuple[float, float, datetime, str]:
    """The spec's ranking key, written independently of the implementation."""
    assert bundle.metrics is not None and bundle.metadata is not None
    created = datetime.fromisoformat(bundle.metadata.created_at)
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return (bundle.metrics.macro_f1, bundle.metrics.weighted_f1, created, bundle.model_id)


def _better(a: ModelBundle, b: ModelBundle) -> bool:
    ka, kb = _key(a), _key(b)
    if ka[:3] != kb[:3]:
        return ka[:3] > kb[:3]
    return ka[3] < kb[3]


@settings(max_examples=150, deadline=None)
@given(_bundles(), st.randoms(use_true_random=False))
def test_ranking_total_deterministic_and_order_independent(
    bundles: list[ModelBundle], rnd: random.Random
) -> None:
    ranked = rank_bundles(bundles)
    shuffled = list(bundles)
    rnd.shuffle(shuffled)
    assert _ids(rank_bundles(shuffled)) == _ids(ranked)
    assert _ids(rank_bundles(list(reversed(bundles)))) == _ids(ranked)
    keys = [rank_key(b) for b in bundles]
    assert len(set(keys)) == len(bundles), "two distinct bundles compare equal"
    for earlier, later in itertools.pairwise(ranked):
        assert _better(earlier, later)


@settings(max_examples=150, deadline=None)
@given(_bundles())
def test_best_is_maximal_under_the_stated_key(bundles: list[ModelBundle]) -> None:
    from taskclf.model_registry.selection import select_best

    report = select_best(bundles, SelectionPolicy(), V1, LABELS)
    assert report.best is not None
    assert report.best is report.ranked[0]
    for other in bundles:
        if other.model_id != report.best.model_id:
            assert _better(report.best, other)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.permutations(["d", "a", "c", "b", "e"]), st.lists(st.integers(0, 3), min_size=5, max_size=5)
)
def test_ranking_on_disk_independent_of_creation_order(
    tmp_path: Path, order: list[str], f1_levels: list[int]
) -> None:
    """Bundles created in a different order (so listed in a different order) rank the same."""
    import tempfile

    root = Path(tempfile.mkdtemp(dir=tmp_path)) / "models"
    from taskclf.samples import write_bundle

    levels = dict(zip(["a", "b", "c", "d", "e"], f1_levels, strict=True))
    for name in order:
        level = levels[name] / 4
        write_bundle(root / name, macro_f1=level, weighted_f1=level, created_at="2026-01-01")
    ranked = _ids(find_best_model(root).ranked)
    expected = sorted(levels, key=lambda n: (-levels[n], n))
    assert ranked == expected


@settings(max_examples=150, deadline=None)
@given(_bundles(), st.lists(st.sampled_from(["ok", "invalid", "v3", "no-metrics"])), st.randoms())
def test_selection_ranks_as_the_rank_key_sorts_and_excludes_in_input_order(
    bundles: list[ModelBundle], kinds: list[str], rnd: random.Random
) -> None:
    """select_best sorts column by column (stable sorts); the result is rank_key's order."""
    from taskclf.model_registry.selection import select_best

    mixed = []
    for index, bundle in enumerate(bundles):
        kind = kinds[index] if index < len(kinds) else "ok"
        if kind == "invalid":
            bundle = bundle.model_copy(update={"valid": False, "invalid_reason": "broken"})
        elif kind == "v3":
            assert bundle.metadata is not None
            metadata = bundle.metadata.model_copy(update={"schema_hash": V3})
            bundle = bundle.model_copy(update={"metadata": metadata})
        elif kind == "no-metrics":
            bundle = bundle.model_copy(update={"metrics": None})
        mixed.append(bundle)
    rnd.shuffle(mixed)
    report = select_best(mixed, SelectionPolicy(), V1, LABELS)
    eligible = [
        b
        for b in mixed
        if is_compatible(b, V1, LABELS) and passes_constraints(b, SelectionPolicy())
    ]
    assert _ids(report.ranked) == _ids(sorted(eligible, key=rank_key))
    assert all(
        ranked is original
        for ranked, original in zip(report.ranked, sorted(eligible, key=rank_key), strict=True)
    )
    assert [e.model_id for e in report.excluded] == [b.model_id for b in mixed if b not in eligible]
