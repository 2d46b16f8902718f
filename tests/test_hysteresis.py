"""REGISTRY.md §9: ``should_switch_active`` — hysteresis against marginal gains."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskclf.model_registry import (
    ActivePointer,
    BundleMetrics,
    ModelBundle,
    SelectionPolicy,
    should_switch_active,
)


def _pointer(reason: dict[str, object] | None) -> ActivePointer:
    return ActivePointer(
        model_dir="models/cur", selected_at="2026-01-01T00:00:00+00:00", policy_version=1,
        reason=reason,
    )  # fmt: skip


def _candidate(macro: float | None) -> ModelBundle:
    metrics = (
        None
        if macro is None
        else BundleMetrics(macro_f1=macro, weighted_f1=0.5, confusion_matrix=[], label_names=[])
    )
    return ModelBundle(model_id="cand", path=Path("/models/cand"), valid=True, metrics=metrics)


def _switch(current_f1: object, candidate_f1: float | None, min_improvement: float) -> bool:
    return should_switch_active(
        _pointer({"metric": "macro_f1", "macro_f1": current_f1}),
        _candidate(candidate_f1),
        SelectionPolicy(min_improvement=min_improvement),
    )


def test_none_current_always_switches() -> None:
    assert should_switch_active(None, _candidate(0.0), SelectionPolicy(min_improvement=0.5))
    assert should_switch_active(None, _candidate(None), SelectionPolicy(min_improvement=0.5))


def test_zero_min_improvement_always_switches() -> None:
    assert _switch(0.9, 0.1, 0.0)
    assert _switch(0.9, None, 0.0)  # checked before "no metrics"


def test_candidate_without_metrics_does_not_switch() -> None:
    assert not _switch(0.5, None, 0.01)
    # Even when the current pointer records no usable F1: "no metrics" is checked first.
    assert not should_switch_active(
        _pointer(None), _candidate(None), SelectionPolicy(min_improvement=0.01)
    )


def test_exactly_at_threshold_switches() -> None:
    assert _switch(0.80, 0.81, 0.01)


@pytest.mark.parametrize(
    ("current", "improvement", "candidate"), [(0.2, 0.1, 0.3), (0.05, 0.01, 0.06)]
)
def test_exactly_at_threshold_switches_despite_float_rounding(
    current: float, improvement: float, candidate: float
) -> None:
    assert candidate < current + improvement  # the float trap the tolerance exists for
    assert _switch(current, candidate, improvement)


def test_within_tolerance_below_threshold_switches() -> None:
    assert _switch(0.80, 0.81 - 1e-10, 0.01)


def test_clearly_below_threshold_does_not_switch() -> None:
    assert not _switch(0.80, 0.8099, 0.01)
    assert not _switch(0.80, 0.81 - 1e-8, 0.01)
    assert not _switch(0.80, 0.80, 0.01)
    assert not _switch(0.80, 0.70, 0.01)


def test_above_threshold_switches() -> None:
    assert _switch(0.80, 0.82, 0.01)
    assert _switch(0, 1.0, 0.5)  # an integer current F1 is a real number


def test_missing_macro_f1_switches() -> None:
    policy = SelectionPolicy(min_improvement=0.5)
    assert should_switch_active(_pointer(None), _candidate(0.1), policy)
    assert should_switch_active(_pointer({}), _candidate(0.1), policy)
    assert should_switch_active(_pointer({"metric": "macro_f1"}), _candidate(0.1), policy)


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        "high",
        "",
        "0.8.1",
        math.nan,
        math.inf,
        -math.inf,
        "nan",
        "inf",
        "-Infinity",
        None,
        [0.9],
        {"v": 0.9},
        10**400,  # a JSON integer beyond float range
    ],
    ids=repr,
)
def test_non_real_current_f1_switches(value: object) -> None:
    # The candidate is far worse: only "not a number -> True" makes this switch.
    assert _switch(value, 0.01, 0.5)


@pytest.mark.parametrize(("value", "expected"), [("0.9", False), ("0.4", True), (" 0.9 ", False)])
def test_numeric_strings_count_as_numbers(value: str, expected: bool) -> None:
    assert _switch(value, 0.95, 0.1) is expected


def test_pointer_read_from_json_with_huge_integer(tmp_path: Path) -> None:
    pointer = ActivePointer.model_validate_json(
        '{"model_dir": "models/a", "selected_at": "t", "policy_version": 1, '
        '"reason": {"macro_f1": ' + "9" * 400 + "}}"
    )
    assert should_switch_active(pointer, _candidate(0.0), SelectionPolicy(min_improvement=0.1))


def test_only_macro_f1_is_consulted() -> None:
    pointer = _pointer({"metric": "macro_f1", "macro_f1": 0.5, "weighted_f1": 0.99})
    assert should_switch_active(pointer, _candidate(0.6), SelectionPolicy(min_improvement=0.1))


# --- properties -------------------------------------------------------------

_unit = st.floats(0, 1, allow_nan=False)
_improvement = st.floats(0, 1, allow_nan=False)


@settings(max_examples=200)
@given(_unit, _unit, _unit, _improvement)
def test_monotonic_in_candidate_f1(current: float, a: float, b: float, improvement: float) -> None:
    low, high = sorted((a, b))
    if _switch(current, low, improvement):
        assert _switch(current, high, improvement)


@settings(max_examples=200)
@given(_unit, _unit, _unit, _improvement)
def test_antimonotonic_in_current_f1(cand: float, a: float, b: float, improvement: float) -> None:
    low, high = sorted((a, b))
    if _switch(high, cand, improvement):
        assert _switch(low, cand, improvement)


@settings(max_examples=100)
@given(st.one_of(_unit, st.text(), st.booleans(), st.none()), st.one_of(_unit, st.none()))
def test_zero_improvement_always_switches(current: object, candidate: float | None) -> None:
    assert _switch(current, candidate, 0.0)


@settings(max_examples=100)
@given(st.one_of(_unit, st.none()), _improvement)
def test_none_current_always_switches_property(candidate: float | None, improvement: float) -> None:
    policy = SelectionPolicy(min_improvement=improvement)
    assert should_switch_active(None, _candidate(candidate), policy)


@settings(max_examples=200)
@given(_unit, _unit, st.floats(1e-6, 1, allow_nan=False))
def test_matches_the_stated_rule(current: float, candidate: float, improvement: float) -> None:
    threshold = current + improvement
    if abs(candidate - threshold) > 1e-8:  # away from the tolerance band, the rule is exact
        assert _switch(current, candidate, improvement) is (candidate > threshold)
