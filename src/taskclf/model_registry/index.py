"""The informational ranking cache ``index.json`` (§8). Selection never reads it."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from taskclf.model_registry._fs import (
    absolute,
    atomic_write,
    read_capped,
    registry_lock,
    require_utf8,
)
from taskclf.model_registry.models import IndexCache, IndexCacheBundleSummary, SelectionReport
from taskclf.model_registry.pointer import utc_now_iso
from taskclf.model_registry.scan import METADATA_FILE, METRICS_FILE, bundle_names, parse_timestamp
from taskclf.model_registry.storage import is_remote

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
    if is_remote(models_dir):
        from taskclf.model_registry import remote

        return remote.write_index_cache(models_dir, report)
    root = absolute(models_dir)
    # The cache records absolute bundle paths.
    require_utf8(root)
    cache = index_of(report)
    with registry_lock(root):
        atomic_write(root / INDEX_FILE, cache.model_dump_json(indent=2).encode() + b"\n")
    return cache


def read_index_cache(models_dir: str | os.PathLike[str]) -> IndexCache | None:
    """Read ``index.json``; ``None`` when missing, unreadable, not JSON or invalid. Never raises."""
    if is_remote(models_dir):
        from taskclf.model_registry import remote

        return remote.read_index_cache(models_dir)
    path = absolute(models_dir) / INDEX_FILE
    try:
        return IndexCache.model_validate_json(read_capped(path))
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
    if is_remote(models_dir):
        from taskclf.model_registry import remote

        return remote.index_staleness(models_dir, cache)
    root = absolute(models_dir)
    try:
        generated = parse_timestamp(cache.generated_at)
    except ValueError:
        return [f"generated_at {cache.generated_at!r} is not an ISO-8601 timestamp"]
    cutoff_ns = (generated - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    cached = {s.model_id for s in cache.ranked} | {r.model_id for r in cache.excluded}
    current = bundle_names(root)
    reasons = [f"bundle {name} was added" for name in current if name not in cached]
    reasons += [f"bundle {name} was removed" for name in sorted(cached - set(current))]
    for name in current:
        if name not in cached:
            continue
        # Plain strings, not Path objects: this runs three stats per bundle at 10k+ bundles.
        bundle = os.path.join(root, name)
        for label, path in (
            ("directory", bundle),
            (METADATA_FILE, os.path.join(bundle, METADATA_FILE)),
            (METRICS_FILE, os.path.join(bundle, METRICS_FILE)),
        ):
            try:
                info = os.stat(path)
            except OSError:
                continue
            if max(info.st_mtime_ns, info.st_ctime_ns) > cutoff_ns:
                reasons.append(f"bundle {name} changed ({label} modified after generated_at)")
                break
    return reasons
