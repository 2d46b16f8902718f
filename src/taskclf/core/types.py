"""The task label set the classifier predicts."""

from __future__ import annotations

from enum import StrEnum


class CoreLabel(StrEnum):
    """Task labels, in their canonical order (value == name)."""

    Build = "Build"
    Debug = "Debug"
    Review = "Review"
    Write = "Write"
    ReadResearch = "ReadResearch"
    Communicate = "Communicate"
    Meet = "Meet"
    BreakIdle = "BreakIdle"


LABEL_SET_V1: frozenset[str] = frozenset(label.value for label in CoreLabel)
