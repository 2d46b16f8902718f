"""Inference-side use of the registry: resolve the model to load, and hot-reload it.

This module re-exports the public surface; ``ActiveModelWatcher`` needs the
optional ``watchfiles`` package (``pip install 'taskclf[watch]'``) only when
it starts.
"""

from __future__ import annotations

from taskclf.infer.resolve import ActiveModelReloader, ModelResolutionError, resolve_model_dir
from taskclf.infer.watch import ActiveModelWatcher

__all__ = [
    "ActiveModelReloader",
    "ActiveModelWatcher",
    "ModelResolutionError",
    "resolve_model_dir",
]
