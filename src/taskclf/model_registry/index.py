"""The informational ranking cache ``index.json`` (§8). Selection never reads it."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from taskclf.model_registry._fs import require_utf8
from taskclf.model_registry.models import IndexCache, IndexCacheBundleSummary, SelectionReport
from taskclf.model_registry.pointer import utc_now_iso
from taskclf.model_registry.scan import parse_timestamp
from taskclf.model_registry.storage import open_storage

INDEX_FILE = "index.json"

log = logging.getLogger("taskclf.model_registry")


def index_of(report: SelectionReport) -> IndexCache:
    """The ``index.json`` contents describing ``report`` (``generated_at`` now)."""
    return IndexCache(
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


def write_index_cache(models_dir: str | os.PathLike[str], report: SelectionReport) -> IndexCache:
    """Write a snapshot of ``report`` to ``index.json`` atomically.

    Returns:
        The cache written.

    Raises:
        RegistryFileError: ``index.json`` is a symlink, or the registry path is
            not UTF-8.
        OSError: The write failed; the previous ``index.json`` is untouched.
    """
    storage = open_storage(models_dir)
    # The cache records absolute bundle paths.
    require_utf8(storage.root_path)
    cache = index_of(report)
    storage.put(INDEX_FILE, cache.model_dump_json(indent=2).encode() + b"\n")
    return cache


def read_index_cache(models_dir: str | os.PathLike[str]) -> IndexCache | None:
    """Read ``index.json``; ``None`` when missing, unreadable, not JSON or invalid. Never raises."""
    storage = open_storage(models_dir)
    path = f"{storage.url}/{INDEX_FILE}"
    try:
        return IndexCache.model_validate_json(storage.read(INDEX_FILE)[0])
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValidationError) as exc:
        log.warning("Index cache %s is unusable; ignoring it: %s", path, exc)
        return None


def index_staleness(models_dir: str | os.PathLike[str], cache: IndexCache) -> list[str]:
    """Why ``cache`` no longer describes the registry: bundles added, removed or changed.

    A bundle has changed when its directory, ``metadata.json`` or
    ``metrics.json`` was modified (mtime or ctime, so a bundle renamed into
    place with old mtimes counts) after ``generated_at``. Only names and
    ``stat`` are read, never bundle contents. Filesystem timestamps come
    from a coarse clock, so a change within a few milliseconds after the
    cache was written can go unnoticed.

    Args:
        models_dir: The registry directory.
        cache: The cache, e.g. from :func:`read_index_cache`.

    Returns:
        One human-readable reason per stale bundle (added, removed, changed),
        sorted by model id within each kind; ``[]`` when the cache is fresh.
    """
    try:
        generated = parse_timestamp(cache.generated_at)
    except ValueError:
        return [f"generated_at {cache.generated_at!r} is not an ISO-8601 timestamp"]
    cutoff_ns = (generated - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    cached = {s.model_id for s in cache.ranked} | {r.model_id for r in cache.excluded}
    current, changed = open_storage(models_dir).bundle_changes(cached, cutoff_ns)
    reasons = [f"bundle {name} was added" for name in current if name not in cached]
    reasons += [f"bundle {name} was removed" for name in sorted(cached - set(current))]
    reasons += [
        f"bundle {name} changed ({changed[name]} modified after generated_at)"
        for name in current
        if name in changed
    ]
    return reasons
