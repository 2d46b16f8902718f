"""core.metrics against scikit-learn, on random and edge-case inputs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix as sk_confusion_matrix
from sklearn.metrics import f1_score, precision_score, recall_score

from taskclf.core.metrics import class_precisions, class_scores, confusion_matrix, f1_summary
from taskclf.model_registry import class_precisions as registry_class_precisions

LABELS = ["a", "b", "c", "d"]


@st.composite
def evaluations(draw: st.DrawFn) -> tuple[list[str], list[str], list[str]]:
    """Aligned (y_true, y_pred) over a label list; some labels may never occur or be predicted."""
    n = draw(st.integers(min_value=1, max_value=6))
    labels = [f"L{i}" for i in range(n)]
    # A restricted alphabet per side makes never-occurring and never-predicted labels common.
    true_pool = draw(st.lists(st.sampled_from(labels), min_size=1, max_size=n, unique=True))
    pred_pool = draw(st.lists(st.sampled_from(labels), min_size=1, max_size=n, unique=True))
    size = draw(st.integers(min_value=0, max_value=40))
    y_true = draw(st.lists(st.sampled_from(true_pool), min_size=size, max_size=size))
    y_pred = draw(st.lists(st.sampled_from(pred_pool), min_size=size, max_size=size))
    return y_true, y_pred, labels


@contextmanager
def _quiet() -> Iterator[None]:
    # scikit-learn warns about inputs with a single distinct label even with labels=
    # given; the suite turns warnings into errors, and these are exactly the edge cases.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


def _sk_f1(y_true: list[str], y_pred: list[str], labels: list[str], average: str) -> float:
    if not y_true:
        return 0.0
    with _quiet():
        return float(f1_score(y_true, y_pred, labels=labels, average=average, zero_division=0))


@settings(max_examples=300, deadline=None)
@given(evaluations())
def test_matrix_and_f1_equal_scikit_learn(data: tuple[list[str], list[str], list[str]]) -> None:
    y_true, y_pred, labels = data
    matrix = confusion_matrix(y_true, y_pred, labels)
    if y_true:
        with _quiet():
            expected_matrix = sk_confusion_matrix(y_true, y_pred, labels=labels).tolist()
        assert matrix == expected_matrix
    else:
        assert matrix == [[0] * len(labels) for _ in labels]
    macro, weighted = f1_summary(matrix)
    assert macro == pytest.approx(_sk_f1(y_true, y_pred, labels, "macro"), abs=1e-12)
    assert weighted == pytest.approx(_sk_f1(y_true, y_pred, labels, "weighted"), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(evaluations())
def test_per_class_scores_equal_scikit_learn(
    data: tuple[list[str], list[str], list[str]],
) -> None:
    y_true, y_pred, labels = data
    matrix = confusion_matrix(y_true, y_pred, labels)
    scores = class_scores(matrix)
    assert [s.label_index for s in scores] == list(range(len(labels)))
    assert [s.support for s in scores] == [y_true.count(label) for label in labels]
    assert [s.precision for s in scores] == class_precisions(matrix)
    assert registry_class_precisions is class_precisions
    if not y_true:
        assert all(s.precision == s.recall == s.f1 == 0.0 for s in scores)
        return
    kwargs = {"labels": labels, "average": None, "zero_division": 0}
    with _quiet():
        expected = list(
            zip(
                precision_score(y_true, y_pred, **kwargs),
                recall_score(y_true, y_pred, **kwargs),
                f1_score(y_true, y_pred, **kwargs),
                strict=True,
            )
        )
    for score, (precision, recall, f1) in zip(scores, expected, strict=True):
        assert score.precision == pytest.approx(precision, abs=1e-12)
        assert score.recall == pytest.approx(recall, abs=1e-12)
        assert score.f1 == pytest.approx(f1, abs=1e-12)


def test_all_wrong_predictions_score_zero() -> None:
    matrix = confusion_matrix(["a", "b", "a"], ["b", "a", "b"], ["a", "b"])
    assert matrix == [[0, 2], [1, 0]]
    assert f1_summary(matrix) == (0.0, 0.0)


def test_label_never_occurring_counts_in_macro_but_not_weighted() -> None:
    # "c" and "d" never occur nor are predicted: macro halves, weighted ignores them.
    matrix = confusion_matrix(["a", "b"], ["a", "b"], LABELS)
    macro, weighted = f1_summary(matrix)
    assert macro == 0.5
    assert weighted == 1.0
    assert _sk_f1(["a", "b"], ["a", "b"], LABELS, "macro") == 0.5


def test_empty_column_has_precision_zero() -> None:
    # "b" is never predicted: column 1 sums to 0 (CLI.md's rule).
    matrix = [[3, 0], [2, 0]]
    scores = class_scores(matrix)
    assert scores[1].precision == 0.0
    assert scores[1].recall == 0.0
    assert scores[1].f1 == 0.0
    assert scores[0].precision == 3 / 5
    assert class_precisions(matrix) == [3 / 5, 0.0]


def test_single_label() -> None:
    matrix = confusion_matrix(["x"] * 4, ["x"] * 4, ["x"])
    assert matrix == [[4]]
    assert f1_summary(matrix) == (1.0, 1.0)
    assert f1_summary([[0]]) == (0.0, 0.0)


def test_empty_matrix_scores_zero() -> None:
    assert f1_summary([]) == (0.0, 0.0)
    assert f1_summary([[0, 0], [0, 0]]) == (0.0, 0.0)


def test_label_outside_the_list_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"y_pred\[1\] is 'zzz', which is not one of the labels"):
        confusion_matrix(["a", "a"], ["a", "zzz"], LABELS)
    with pytest.raises(ValueError, match=r"y_true\[0\] is 'q'"):
        confusion_matrix(["q"], ["a"], LABELS)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "message"),
    [
        (["a"], ["a", "b"], LABELS, "aligned"),
        (["a"], ["a"], [], "at least one label"),
        (["a"], ["a"], ["a", "a"], "appears twice"),
    ],
)
def test_bad_inputs_are_refused(
    y_true: list[str], y_pred: list[str], labels: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        confusion_matrix(y_true, y_pred, labels)


@pytest.mark.parametrize(
    "matrix", [[[1, 2]], [[1, 0], [0]], [[-1, 0], [0, 1]], [[1.5, 0], [0, 1]], [[True]]]
)
def test_malformed_matrix_is_refused(matrix: list[list[int]]) -> None:
    with pytest.raises(ValueError, match="confusion matrix row"):
        f1_summary(matrix)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=6).flatmap(
        lambda n: st.lists(
            st.lists(st.integers(min_value=0, max_value=50), min_size=n, max_size=n),
            min_size=n,
            max_size=n,
        )
    )
)
def test_scores_stay_in_unit_interval(matrix: list[list[int]]) -> None:
    macro, weighted = f1_summary(matrix)
    for value in (macro, weighted):
        assert math.isfinite(value)
        assert 0.0 <= value <= 1.0 + 1e-12
