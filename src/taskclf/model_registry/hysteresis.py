"""When the active pointer may move: hysteresis against marginal gains (§9). Pure."""

from __future__ import annotations

import math

from taskclf.model_registry.models import ActivePointer, ModelBundle, SelectionPolicy

TOLERANCE = 1e-9
"""Float slack so a candidate exactly at the threshold (0.81 vs 0.80 + 0.01) switches."""


def as_real_number(value: object) -> float | None:
    """``value`` as a finite float, or ``None`` when it is not a real number.

    Bools are not numbers; numeric strings are; NaN and infinities are not.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            # JSON integers are unbounded; one beyond float range is not a usable F1.
            return None
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def should_switch_active(
    current: ActivePointer | None, candidate: ModelBundle, policy: SelectionPolicy
) -> bool:
    """Decide whether ``candidate`` may replace the pointer ``current``.

    Args:
        current: The pointer in force, or ``None``.
        candidate: The bundle that ranks best now.
        policy: Supplies ``min_improvement``.

    Returns:
        True when there is no current pointer, hysteresis is off, or the
        candidate's macro F1 beats the current one by at least
        ``min_improvement`` (within 1e-9); also True when the current
        pointer records no usable macro F1.
    """
    if current is None or policy.min_improvement <= 0:
        return True
    if candidate.metrics is None:
        return False
    current_f1 = as_real_number((current.reason or {}).get("macro_f1"))
    if current_f1 is None:
        return True
    return candidate.metrics.macro_f1 >= current_f1 + policy.min_improvement - TOLERANCE
