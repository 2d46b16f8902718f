"""``train list`` rows (model_registry.listing): precision, eligibility, active, sorting."""

from __future__ import annotations

import itertools
import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskclf.core.schema import FeatureSchemaV2
from taskclf.model_registry import (
    SORT_KEYS,
    BundleRow,
    ModelBundle,
    build_rows,
    class_precisions,
    list_bundles,
    list_rows,
    write_active_atomic,
)
from taskclf.model_registry.listing import sort_rows
from taskclf.samples import LABELS

if TYPE_CHECKING:
    from conftest import BundleFactory

TEN_KEYS = {
    "model_id",
    "created_at",
    "schema_hash",
    "macro_f1",
    "weighted_f1",
    "bi_prec",
    "min_prec",
    "eligible",
    "active",
    "notes",
}
ROW_KEYS = TEN_KEYS | {"aliases"}
"""CLI.md's ten keys plus ``aliases`` (issue 14 adds it beside ``active``)."""


def test_class_precisions_uses_columns_and_zero_for_unpredicted_class() -> None:
    matrix = [
        [5, 1, 0],
        [3, 2, 0],
        [2, 1, 0],  # class 2 is never predicted: its column sums to 0
    ]
    assert class_precisions(matrix) == [0.5, 0.5, 0.0]


def test_row_has_exactly_the_ten_keys_and_precision_from_the_matrix(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("run_a", accuracy=0.8, seed=3)
    metrics = json.loads((path / "metrics.json").read_text())
    matrix = metrics["confusion_matrix"]
    names = metrics["label_names"]
    j = names.index("BreakIdle")
    expected_bi = matrix[j][j] / sum(row[j] for row in matrix)
    expected_min = min(matrix[k][k] / sum(row[k] for row in matrix) for k in range(len(names)))

    (row,) = list_rows(models_dir)

    assert set(row.model_dump()) == ROW_KEYS
    assert set(BundleRow.model_fields) == ROW_KEYS
    assert row.aliases == []
    assert row.bi_prec == pytest.approx(expected_bi)
    assert row.min_prec == pytest.approx(expected_min)
    assert row.macro_f1 == metrics["macro_f1"]
    assert row.eligible is True
    assert row.notes is None
    assert row.active is False


def test_bi_prec_follows_label_names_not_position(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    labels = ["BreakIdle", *[label for label in LABELS if label != "BreakIdle"]]
    path = make_bundle("reordered", label_set=labels, seed=5)
    matrix = json.loads((path / "metrics.json").read_text())["confusion_matrix"]

    (row,) = list_rows(models_dir)

    assert row.bi_prec == pytest.approx(matrix[0][0] / sum(r[0] for r in matrix))
    assert row.eligible is True  # label sets compare sorted


def test_eligibility_against_declared_schema_or_explicit_hash(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("v1_ok", schema_version="v1", seed=1)
    make_bundle("v2_ok", schema_version="v2", seed=2)
    make_bundle("mismatch", schema_version="v1", schema_hash="000000000000", seed=3)
    make_bundle("unknown_version", extra_metadata={"schema_version": "v9"}, seed=4)
    make_bundle("labels", label_set=[*LABELS[:-1], "Other"], seed=5)

    rows = {r.model_id: r for r in list_rows(models_dir)}
    assert rows["v1_ok"].eligible and rows["v2_ok"].eligible
    assert rows["mismatch"].notes == "incompatible: schema_hash mismatch"
    assert not rows["unknown_version"].eligible
    assert "unknown schema_version" in str(rows["unknown_version"].notes)
    assert rows["labels"].notes == "incompatible: label_set mismatch"

    pinned = {r.model_id: r for r in list_rows(models_dir, schema_hash=FeatureSchemaV2.SCHEMA_HASH)}
    assert pinned["v2_ok"].eligible
    assert not pinned["v1_ok"].eligible
    assert pinned["v1_ok"].notes == "incompatible: schema_hash mismatch"


def test_invalid_bundle_row_has_nulls_and_reason(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    path = make_bundle("broken", seed=1)
    (path / "metrics.json").write_text("{not json")

    (row,) = list_rows(models_dir)

    assert row.eligible is False
    assert row.notes is not None and row.notes.startswith("invalid: metrics.json parse error")
    assert row.macro_f1 is None and row.bi_prec is None and row.min_prec is None
    # metadata parsed before metrics failed: its raw values are still shown
    assert row.created_at is not None and row.schema_hash is not None


@pytest.mark.parametrize("model_dir", ["models/b", "b", "./b", "models/../models/b"])
def test_active_flag_for_both_pointer_styles(
    models_dir: Path, make_bundle: BundleFactory, model_dir: str
) -> None:
    make_bundle("a", seed=1)
    make_bundle("b", seed=2)
    (models_dir / "active.json").write_text(
        json.dumps(
            {
                "model_dir": model_dir,
                "selected_at": "2026-01-01T00:00:00+00:00",
                "policy_version": 1,
            }
        )
    )

    active = [r.model_id for r in list_rows(models_dir) if r.active]

    assert active == ["b"]


def test_escaping_pointer_marks_nothing_active(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    make_bundle("a", seed=1)
    (models_dir / "active.json").write_text(
        json.dumps({"model_dir": "../../etc", "selected_at": "x", "policy_version": 1})
    )

    assert not any(r.active for r in list_rows(models_dir))
    assert "escapes" in caplog.text


def test_pointer_written_by_library_marks_the_bundle(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("a", seed=1)
    make_bundle("b", seed=2)
    bundle = next(b for b in list_bundles(models_dir) if b.model_id == "a")
    write_active_atomic(models_dir, bundle)

    assert [r.model_id for r in list_rows(models_dir) if r.active] == ["a"]


def test_sort_descending_nulls_last_and_eligible_filter(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("low", macro_f1=0.5, weighted_f1=0.9, seed=1)
    make_bundle("high", macro_f1=0.9, weighted_f1=0.5, seed=2)
    make_bundle("mid", macro_f1=0.7, weighted_f1=0.7, seed=3)
    shutil.rmtree(make_bundle("nometrics", seed=4))
    (models_dir / "nometrics").mkdir()

    assert [r.model_id for r in list_rows(models_dir)] == ["high", "mid", "low", "nometrics"]
    assert [r.model_id for r in list_rows(models_dir, sort="weighted_f1")] == [
        "low",
        "mid",
        "high",
        "nometrics",
    ]
    assert [r.model_id for r in list_rows(models_dir, eligible_only=True)] == ["high", "mid", "low"]


def test_sort_created_at_compares_instants_across_offsets(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    # 10:00+05:00 is 05:00 UTC: earlier than 06:00Z although its string sorts later.
    make_bundle("east", created_at="2026-01-01T10:00:00+05:00", seed=1)
    make_bundle("utc", created_at="2026-01-01T06:00:00+00:00", seed=2)
    make_bundle("naive", created_at="2026-01-01T05:30:00", seed=3)  # taken as UTC

    order = [r.model_id for r in list_rows(models_dir, sort="created_at")]

    assert order == ["utc", "naive", "east"]


def test_unknown_sort_key_is_rejected_before_scanning(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="allowed values: macro_f1, weighted_f1, created_at"):
        list_rows(tmp_path / "missing", sort="name")
    assert SORT_KEYS == ("macro_f1", "weighted_f1", "created_at")


def test_missing_or_empty_registry_has_no_rows(tmp_path: Path) -> None:
    assert list_rows(tmp_path / "missing") == []
    assert list_rows(tmp_path) == []


def _row(model_id: str, value: float | None) -> BundleRow:
    return BundleRow(
        model_id=model_id,
        created_at=None,
        schema_hash=None,
        macro_f1=value,
        weighted_f1=value,
        bi_prec=None,
        min_prec=None,
        eligible=value is not None,
        active=False,
        notes=None,
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 1)), max_size=12))
def test_sort_rows_property(values: list[float | None]) -> None:
    rows = [_row(f"m{i:02d}", v) for i, v in enumerate(values)]

    ordered = sort_rows(rows, "macro_f1")

    assert sorted(r.model_id for r in ordered) == sorted(r.model_id for r in rows)
    keys = [r.macro_f1 for r in ordered]
    present = [k for k in keys if k is not None]
    assert keys == present + [None] * (len(keys) - len(present))
    assert present == sorted(present, reverse=True)
    # ties keep input (model_id) order
    for a, b in itertools.pairwise(ordered):
        if a.macro_f1 == b.macro_f1:
            assert a.model_id < b.model_id


def test_build_rows_is_pure_on_constructed_bundles() -> None:
    bundles = [
        ModelBundle(
            model_id="x", path=Path("/r/x"), valid=False, invalid_reason="missing metadata.json"
        ),
    ]

    (row,) = build_rows(bundles, active_path=Path("/r/x"))

    assert row.active is True
    assert row.notes == "invalid: missing metadata.json"
    assert row.created_at is None


def test_created_at_sort_without_parsed_instants_uses_raw_strings() -> None:
    rows = [_row("a", 0.1), _row("b", 0.2)]
    rows = [
        r.model_copy(update={"created_at": c})
        for r, c in zip(rows, ["2026-01-01", "2026-02-01"], strict=True)
    ]

    assert [r.model_id for r in sort_rows(rows, "created_at")] == ["b", "a"]
    assert [r.model_id for r in sort_rows(rows, "created_at", {"a": datetime(2027, 1, 1)})] == [
        "a",
        "b",
    ]


# --- rows from the scan cache's facts ------------------------------------------


def _edit_metrics(path: Path, **changes: object) -> None:
    metrics_file = path / "metrics.json"
    metrics = json.loads(metrics_file.read_text("utf-8"))
    metrics.update(changes)
    metrics_file.write_text(json.dumps(metrics), "utf-8")  # NaN stays NaN


def _rows_json(models_dir: Path, **options: object) -> str:
    # json.dumps keeps NaN as NaN (and equal to itself as text), unlike row ==.
    return json.dumps([row.model_dump() for row in list_rows(models_dir, **options)])  # type: ignore[arg-type]


def test_rows_from_a_warm_scan_cache_equal_rows_read_from_the_files(
    models_dir: Path, make_bundle: BundleFactory, scan_cache_dir: Path
) -> None:
    """Every row field, sort and filter: the cached facts give what the models give."""
    from taskclf.model_registry.lazy_bundle import SOURCE_KEY, CachedBundle, instance_dict
    from taskclf.model_registry.scan_cache import cache_file
    from test_scan_cache import age_files, cache_off

    make_bundle("utc", seed=1, created_at="2026-01-01T10:00:00+00:00")
    make_bundle("offset", seed=2, created_at="2026-01-01T11:30:00+02:00")  # earlier instant
    make_bundle("zulu", seed=3, created_at="2026-01-01T10:00:00Z")  # same instant as utc
    make_bundle("unparseable", seed=4, created_at="last tuesday")
    make_bundle("incompatible", seed=5, schema_hash="000000000000")
    make_bundle("no_breakidle", seed=6, label_set=[x for x in LABELS if x != "BreakIdle"])
    _edit_metrics(make_bundle("nan_f1", seed=7), macro_f1=float("nan"))
    zero_column = make_bundle("zero_column", seed=8)
    matrix = json.loads((zero_column / "metrics.json").read_text("utf-8"))["confusion_matrix"]
    _edit_metrics(zero_column, confusion_matrix=[[*row[:-1], 0] for row in matrix])
    _edit_metrics(
        make_bundle("all_zero", seed=9), confusion_matrix=[[0] * len(matrix)] * len(matrix)
    )
    (make_bundle("no_metrics", seed=10) / "metrics.json").unlink()
    (make_bundle("garbage", seed=11) / "metadata.json").write_text("{not json", "utf-8")
    with cache_off():
        write_active_atomic(
            models_dir, next(b for b in list_bundles(models_dir) if b.model_id == "utc")
        )
    options: list[dict[str, object]] = [
        {"sort": sort, "eligible_only": eligible}
        for sort in SORT_KEYS
        for eligible in (False, True)
    ]
    options.append({"schema_hash": "000000000000"})
    age_files()
    list_rows(models_dir)  # first scan: leaves the marker
    list_rows(models_dir)  # second: writes the cache
    cache = cache_file(models_dir)
    assert cache is not None and cache.exists()

    bundles = list_bundles(models_dir)
    build_rows(bundles, active_path=models_dir / "utc", sort="created_at")
    # Every bundle came from the cache, and building its row left it unmaterialised.
    assert all(type(b) is CachedBundle and SOURCE_KEY in instance_dict(b) for b in bundles), [
        b.model_id for b in bundles
    ]

    cached = [_rows_json(models_dir, **o) for o in options]
    with cache_off():
        from_files = [_rows_json(models_dir, **o) for o in options]
    assert cached == from_files
    rows = json.loads(cached[0])
    assert {row["model_id"] for row in rows if row["active"]} == {"utc"}
    assert len(rows) == 11
