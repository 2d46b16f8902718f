"""The informational ranking cache ``index.json`` (§8). Selection never reads it."""

from __future__ import annotations

import logging
import os

from pydantic import ValidationError

from taskclf.model_registry._fs import absolute, atomic_write, read_capped, registry_lock
from taskclf.model_registry.models import IndexCache, IndexCacheBundleSummary, SelectionReport
from taskclf.model_registry.pointer import utc_now_iso

INDEX_FILE = "index.json"

log = logging.getLogger("taskclf.model_registry")


def write_index_cache(models_dir: str | os.PathLike[str], report: SelectionReport) -> IndexCache:
    """Write a snapshot of ``report`` to ``index.json`` atomically.

    Returns:
        The cache written.

    Raises:
        RegistryFileError: ``index.json`` is a symlink.
        OSError: The write failed; the previous ``index.json`` is untouched.
    """
    root = absolute(models_dir)
    cache = IndexCache(
        generated_at=utc_now_iso(),
        schema_hash=report.required_schema_hash,
        policy_version=report.policy.version,
        ranked=[
            IndexCacheBundleSummary(
                model_id=bundle.model_id,
                path=str(bundle.path),
                macro_f1=bundle.metrics.macro_f1 if bundle.metrics else None,
                weighted_f1=bundle.metrics.weighted_f1 if bundle.metrics else None,
                created_at=bundle.metadata.created_at if bundle.metadata else None,
                eligible=True,
            )
            for bundle in report.ranked
        ],
        excluded=list(report.excluded),
        best_model_id=report.best.model_id if report.best else None,
    )
    with registry_lock(root):
        atomic_write(root / INDEX_FILE, cache.model_dump_json(indent=2).encode() + b"\n")
    return cache


def read_index_cache(models_dir: str | os.PathLike[str]) -> IndexCache | None:
    """Read ``index.json``; ``None`` when missing, unreadable, not JSON or invalid. Never raises."""
    path = absolute(models_dir) / INDEX_FILE
    try:
        return IndexCache.model_validate_json(read_capped(path))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValidationError) as exc:
        log.warning("Index cache %s is unusable; ignoring it: %s", path, exc)
        return None
