"""Classification metrics from a confusion matrix: pure, no I/O.

One mechanism for every number the registry derives from an evaluation:
``save_bundle`` computes ``metrics.json`` with it, ``train list`` its
per-class precision, ``verify`` its consistency check. The definitions
match scikit-learn's with ``labels=`` given and ``zero_division=0``:

- rows of the matrix are true labels, columns predicted labels;
- precision of class ``j`` = ``cm[j][j]`` / sum of column ``j`` (0.0 for
  a class never predicted), recall = ``cm[j][j]`` / sum of row ``j``
  (0.0 for a class that never occurs);
- F1 = 2*tp / (row sum + column sum), which equals the harmonic mean of
  precision and recall and is 0.0 when both are 0;
- macro F1 is the mean over *all* labels, including those that never
  occur (they count as 0.0, as in ``f1_score(average="macro",
  labels=...)``); weighted F1 weights each class by its support and is
  0.0 when the matrix is empty.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClassScores:
    """One class's scores, read off a confusion matrix.

    Attributes:
        label_index: Row/column of the class in the matrix (its index in the label list).
        precision: ``tp`` / predicted count; 0.0 when the class was never predicted.
        recall: ``tp`` / true count; 0.0 when the class never occurs.
        f1: Harmonic mean of precision and recall; 0.0 when both are 0.
        support: How many samples truly belong to the class (its row sum).
    """

    label_index: int
    precision: float
    recall: float
    f1: float
    support: int


def confusion_matrix(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable]
) -> list[list[int]]:
    """Count ``(true, predicted)`` pairs into a matrix ordered by ``labels``.

    Args:
        y_true: True label of each sample.
        y_pred: Predicted label of each sample, aligned with ``y_true``.
        labels: Every label, in matrix order (unique, at least one).

    Returns:
        ``len(labels)`` rows (true labels) of ``len(labels)`` counts (predicted labels).

    Raises:
        ValueError: The sequences differ in length, ``labels`` is empty or
            repeats a label, or a sample's label is not in ``labels``.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(
            f"y_true has {len(y_true)} labels but y_pred has {len(y_pred)}; they must be aligned"
        )
    position = _label_positions(labels)
    n = len(labels)
    matrix = [[0] * n for _ in range(n)]
    for sample, (true, predicted) in enumerate(zip(y_true, y_pred, strict=True)):
        i = _position(position, true, sample, "y_true")
        j = _position(position, predicted, sample, "y_pred")
        matrix[i][j] += 1
    return matrix


def _label_positions(labels: Sequence[Hashable]) -> dict[Hashable, int]:
    if not labels:
        raise ValueError("labels must name at least one label")
    position: dict[Hashable, int] = {}
    for index, label in enumerate(labels):
        if label in position:
            raise ValueError(f"label {label!r} appears twice in labels; labels must be unique")
        position[label] = index
    return position


def _position(position: dict[Hashable, int], label: Hashable, sample: int, name: str) -> int:
    try:
        return position[label]
    except (KeyError, TypeError):
        known = ", ".join(map(str, position))
        raise ValueError(
            f"{name}[{sample}] is {label!r}, which is not one of the labels ({known}); "
            "pass the full label list"
        ) from None


def _check_matrix(matrix: Sequence[Sequence[int]]) -> None:
    n = len(matrix)
    for i, row in enumerate(matrix):
        if len(row) != n:
            raise ValueError(f"confusion matrix row {i} has {len(row)} cells; expected {n}")
        # ``type(...) is int``: bools are not counts (verify runs this once per bundle).
        if not all(type(cell) is int and cell >= 0 for cell in row):
            bad = next(c for c in row if type(c) is not int or c < 0)
            raise ValueError(f"confusion matrix row {i} holds {bad!r}; cells must be integers >= 0")


def class_scores(matrix: Sequence[Sequence[int]]) -> list[ClassScores]:
    """Per-class precision, recall, F1 and support of a square confusion matrix.

    Raises:
        ValueError: The matrix is not square or holds a cell that is not an integer >= 0.
    """
    _check_matrix(matrix)
    return _scores(matrix)


def _scores(matrix: Sequence[Sequence[int]]) -> list[ClassScores]:
    # zip(*matrix) yields the columns; train list runs this once per bundle on 10k bundles.
    columns = [sum(column) for column in zip(*matrix, strict=True)]
    scores = []
    for j, row in enumerate(matrix):
        tp = row[j]
        support = sum(row)
        predicted = columns[j]
        scores.append(
            ClassScores(
                label_index=j,
                precision=tp / predicted if predicted else 0.0,
                recall=tp / support if support else 0.0,
                f1=2 * tp / (support + predicted) if support + predicted else 0.0,
                support=support,
            )
        )
    return scores


def class_precisions(matrix: Sequence[Sequence[int]]) -> list[float]:
    """Per-class precision only (``train list``'s ``bi_prec``/``min_prec``), unchecked.

    The matrix is assumed square with integer cells (``BundleMetrics``
    enforces that), so this skips :func:`class_scores`'s checks.
    """
    return [
        column[j] / total if (total := sum(column)) else 0.0
        for j, column in enumerate(zip(*matrix, strict=True))
    ]


def f1_summary(matrix: Sequence[Sequence[int]], *, check: bool = True) -> tuple[float, float]:
    """``(macro_f1, weighted_f1)`` of a square confusion matrix.

    Macro F1 averages over every class, including classes that never occur
    or are never predicted (each counts as 0.0). Weighted F1 weights each
    class's F1 by its support; both are 0.0 for an empty matrix (0x0 or all zeros).

    Args:
        matrix: Rows true labels, columns predicted labels.
        check: Validate shape and cells first; ``False`` for a matrix already
            validated (a parsed ``BundleMetrics``), which ``verify`` has per bundle.

    Raises:
        ValueError: The matrix is not square or holds a cell that is not an integer >= 0.
    """
    if check:
        _check_matrix(matrix)
    n = len(matrix)
    if not n:
        return 0.0, 0.0
    # The same F1 as class_scores, without building a record per class: verify
    # recomputes this for every bundle of the registry.
    columns = [sum(column) for column in zip(*matrix, strict=True)]
    macro_sum = weighted_sum = 0.0
    total = 0
    for j, row in enumerate(matrix):
        support = sum(row)
        denominator = support + columns[j]
        f1 = 2 * row[j] / denominator if denominator else 0.0
        macro_sum += f1
        weighted_sum += f1 * support
        total += support
    return macro_sum / n, weighted_sum / total if total else 0.0
