"""REGISTRY.md §2: the data models (frozen, forward compatible, the metrics contract)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from taskclf.core.model_io import ModelMetadata
from taskclf.model_registry import (
    ActiveHistoryEntry,
    ActivePointer,
    BundleMetrics,
    ExclusionRecord,
    IndexCache,
    IndexCacheBundleSummary,
    ModelBundle,
    SelectionPolicy,
    SelectionReport,
)

POINTER = {"model_dir": "models/a", "selected_at": "2026-01-01T00:00:00+00:00", "policy_version": 1}


def _metrics(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "macro_f1": 0.5,
        "weighted_f1": 0.6,
        "confusion_matrix": [[3, 1], [0, 4]],
        "label_names": ["a", "b"],
    }
    fields.update(overrides)
    return fields


SAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    BundleMetrics: _metrics(),
    ModelBundle: {"model_id": "x", "path": "/x", "valid": True},
    SelectionPolicy: {},
    ExclusionRecord: {"model_id": "x", "path": "/x", "reason": "r"},
    SelectionReport: {
        "best": None,
        "ranked": [],
        "excluded": [],
        "policy": {},
        "required_schema_hash": "h",
    },
    ActivePointer: POINTER,
    ActiveHistoryEntry: {"at": "t", "old": None, "new": POINTER},
    IndexCacheBundleSummary: {"model_id": "x", "path": "/x"},
    IndexCache: {
        "generated_at": "t",
        "schema_hash": "h",
        "policy_version": 1,
        "ranked": [],
        "excluded": [],
    },
}


@pytest.mark.parametrize("model", list(SAMPLES), ids=lambda m: m.__name__)
def test_models_are_frozen(model: type[BaseModel]) -> None:
    instance = model.model_validate(SAMPLES[model])
    field = next(iter(model.model_fields))
    with pytest.raises(ValidationError):
        setattr(instance, field, getattr(instance, field))
    assert model.model_config.get("frozen") is True


@pytest.mark.parametrize("model", [*SAMPLES, ModelMetadata], ids=lambda m: m.__name__)
def test_unknown_keys_are_ignored(model: type[BaseModel]) -> None:
    fields = dict(SAMPLES.get(model, {}))
    if model is ModelMetadata:
        fields = {
            "schema_version": "v1",
            "schema_hash": "h",
            "label_set": [],
            "train_date_from": "a",
            "train_date_to": "b",
            "params": {},
            "git_commit": "c",
            "dataset_hash": "d",
        }
    fields["some_future_key"] = {"nested": [1, 2, 3]}
    instance = model.model_validate_json(json.dumps(fields))
    assert "some_future_key" not in instance.model_dump()


def test_model_bundle_constructible_directly_as_in_the_spec() -> None:
    bundle = ModelBundle(model_id="x", path=Path("/x"), valid=True, metrics=None)
    assert bundle.model_id == "x"
    assert bundle.path == Path("/x")
    assert bundle.valid is True
    assert bundle.invalid_reason is None
    assert bundle.metadata is None
    assert bundle.metrics is None
    assert bundle.created_at is None


def test_model_bundle_created_at_is_a_datetime() -> None:
    bundle = ModelBundle.model_validate(
        {"model_id": "x", "path": "/x", "valid": True, "created_at": "2026-01-01T00:00:00+02:00"}
    )
    assert bundle.created_at is not None
    assert bundle.created_at.utcoffset() is not None


def test_pointer_and_summary_defaults() -> None:
    pointer = ActivePointer.model_validate(POINTER)
    assert pointer.model_id is None
    assert pointer.reason is None
    summary = IndexCacheBundleSummary(model_id="x", path="/x")
    assert (summary.macro_f1, summary.weighted_f1, summary.created_at) == (None, None, None)
    assert summary.eligible is False
    cache = IndexCache.model_validate(SAMPLES[IndexCache])
    assert cache.best_model_id is None


def test_history_entry_old_may_be_null_but_not_absent() -> None:
    assert (
        ActiveHistoryEntry.model_validate_json(
            json.dumps({"at": "t", "old": None, "new": POINTER})
        ).old
        is None
    )
    with pytest.raises(ValidationError):
        ActiveHistoryEntry.model_validate_json(json.dumps({"at": "t", "new": POINTER}))


def test_pointer_reason_holds_arbitrary_json_values() -> None:
    pointer = ActivePointer.model_validate(
        {**POINTER, "reason": {"metric": "macro_f1", "macro_f1": 0.8, "note": None, "x": [1]}}
    )
    assert pointer.reason == {"metric": "macro_f1", "macro_f1": 0.8, "note": None, "x": [1]}


# --- SelectionPolicy --------------------------------------------------------


def test_selection_policy_defaults() -> None:
    policy = SelectionPolicy()
    assert policy.version == 1
    assert policy.min_improvement == 0.0


@pytest.mark.parametrize("value", [0.0, 0.01, 1.0, 5])
def test_selection_policy_accepts_finite_non_negative(value: float) -> None:
    assert SelectionPolicy(min_improvement=value).min_improvement == value


@pytest.mark.parametrize("value", [-0.01, -1.0, math.nan, math.inf, -math.inf])
def test_selection_policy_rejects_negative_or_non_finite(value: float) -> None:
    with pytest.raises(ValidationError):
        SelectionPolicy(min_improvement=value)


# --- BundleMetrics contract -------------------------------------------------


def test_valid_metrics_parse() -> None:
    metrics = BundleMetrics.model_validate_json(json.dumps(_metrics()))
    assert metrics.confusion_matrix == [[3, 1], [0, 4]]


@pytest.mark.parametrize("value", [0, 1, 0.0, 1.0, 0.5])
def test_f1_bounds_inclusive(value: float) -> None:
    metrics = BundleMetrics.model_validate_json(
        json.dumps(_metrics(macro_f1=value, weighted_f1=value))
    )
    assert metrics.macro_f1 == value
    assert metrics.weighted_f1 == value


@pytest.mark.parametrize("field", ["macro_f1", "weighted_f1"])
@pytest.mark.parametrize(
    "raw", ["-0.01", "1.0000001", "2", "NaN", "Infinity", "-Infinity", "1e400"]
)
def test_f1_must_be_finite_and_within_unit_interval(field: str, raw: str) -> None:
    text = json.dumps(_metrics(**{field: "__X__"})).replace('"__X__"', raw)
    with pytest.raises(ValidationError):
        BundleMetrics.model_validate_json(text)


@pytest.mark.parametrize("field", ["macro_f1", "weighted_f1"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_f1_non_finite_rejected_from_python_too(field: str, value: float) -> None:
    with pytest.raises(ValidationError):
        BundleMetrics(**_metrics(**{field: value}))


@pytest.mark.parametrize("field", ["macro_f1", "weighted_f1"])
@pytest.mark.parametrize("value", ["0.5", True, None, [0.5]])
def test_f1_must_be_a_number(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        BundleMetrics.model_validate_json(json.dumps(_metrics(**{field: value})))


@pytest.mark.parametrize(
    "matrix",
    [
        [[1, 2]],  # 1 row for 2 labels
        [[1, 2], [3, 4], [5, 6]],  # 3 rows
        [[1, 2], [3]],  # ragged
        [[1, 2, 3], [4, 5, 6]],  # too wide
        [],
    ],
)
def test_matrix_must_be_square_matching_label_names(matrix: list[list[int]]) -> None:
    with pytest.raises(ValidationError):
        BundleMetrics.model_validate_json(json.dumps(_metrics(confusion_matrix=matrix)))


@pytest.mark.parametrize("cell", [-1, 1.5, 2.0, "3", True, None])
def test_matrix_cells_are_integers_at_least_zero(cell: object) -> None:
    with pytest.raises(ValidationError):
        BundleMetrics.model_validate_json(
            json.dumps(_metrics(confusion_matrix=[[cell, 0], [0, 1]]))
        )


def test_matrix_cell_zero_and_large_ints_are_fine() -> None:
    metrics = BundleMetrics.model_validate_json(
        json.dumps(_metrics(confusion_matrix=[[0, 0], [10**12, 0]]))
    )
    assert metrics.confusion_matrix[1][0] == 10**12


def test_label_names_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        BundleMetrics.model_validate_json(json.dumps(_metrics(label_names=["a", "a"])))


def test_metrics_contract_enforced_on_direct_construction() -> None:
    with pytest.raises(ValidationError):
        BundleMetrics(macro_f1=0.5, weighted_f1=0.5, confusion_matrix=[[1]], label_names=["a", "b"])
