"""taskclf: a model registry that decides which trained classifier a machine runs."""

from __future__ import annotations

__version__ = "0.1.0"
