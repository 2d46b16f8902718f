"""Local copies of remote registry data: whole bundles for loaders, and scanned files.

The one place that keeps local copies of what an ``s3://`` registry holds,
under ``<cache dir>/<registry digest>/``:

* ``<model id>-<manifest digest>/``: a bundle for a model library to load
  (:func:`fetch_bundle`);
* ``.scan.json``: each bundle's ``metadata.json`` and ``metrics.json`` keyed
  by the object's ETag (:class:`ScanCache`), so a repeat scan of an
  unchanged registry costs only its LIST requests.

Bundles:

* A copy is downloaded into a temporary directory next to its final place,
  checked against the bundle's ``manifest.json`` (every file hashed), and
  only then renamed into place: a half-downloaded or corrupt copy is never
  returned.
* A copy is reused while its manifest is unchanged, and checked again
  (hashed) every time it is handed out; a copy whose files changed on
  disk is discarded and downloaded again.
* Each registry keeps at most :data:`KEEP_BUNDLES` copies (least recently
  used go first; the one being returned never does).

The cache is derived state: deleting it at any time is safe.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from taskclf.model_registry._fs import atomic_write, read_capped, rename_noreplace
from taskclf.model_registry.caching import cache_root, user_cache_root
from taskclf.model_registry.errors import BundleIntegrityError
from taskclf.model_registry.manifest import check_manifest
from taskclf.model_registry.models import ModelBundle
from taskclf.model_registry.storage import MANIFEST_KEY, open_storage

if TYPE_CHECKING:
    from taskclf.model_registry.storage import ObjectInfo, Storage

KEEP_BUNDLES = 3
"""Copies kept per registry: the active bundle, and room for a rollback or two."""

log = logging.getLogger("taskclf.model_registry")


def default_cache_dir() -> Path:
    """``$TASKCLF_CACHE_DIR``, else the user's cache directory for taskclf, + ``bundles``.

    Unlike the scan cache, copies cannot be turned off (a remote bundle is loaded
    from its copy): an empty ``$TASKCLF_CACHE_DIR`` means the default.
    """
    return (cache_root() or user_cache_root()) / "bundles"


def registry_cache_dir(storage: Storage, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where one registry's copies live: ``<cache dir>/<digest of its URL>``."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / hashlib.sha256(storage.url.encode()).hexdigest()[:16]


def fetch_bundle(
    models_dir: str | os.PathLike[str],
    bundle: ModelBundle,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ModelBundle:
    """A verified local copy of a remote bundle, as a bundle whose ``path`` is that copy.

    Args:
        models_dir: The remote registry (``s3://bucket/prefix``).
        bundle: One of its bundles (from a scan or resolution).
        cache_dir: Where copies live (default :func:`default_cache_dir`).

    Returns:
        ``bundle`` with ``path`` set to the local copy.

    Raises:
        BundleIntegrityError: The downloaded files do not match the manifest
            (the copy is discarded; nothing is left in the cache).
        StorageError: The store failed.
        OSError: The cache directory cannot be written.
    """
    storage = open_storage(models_dir)
    manifest = storage.read(f"{bundle.model_id}/{MANIFEST_KEY}")[0]
    registry = registry_cache_dir(storage, cache_dir)
    registry.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(manifest).hexdigest()[:16]
    local = registry / f"{bundle.model_id}-{digest}"
    if local.is_dir():
        if _matches(local, manifest):
            os.utime(local)
            _evict(registry, keep=local)
            return bundle.model_copy(update={"path": local})
        log.warning("Cached copy %s does not match its manifest; downloading it again", local)
        _discard(registry, local)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=registry))
    try:
        copy = scratch / "bundle"
        storage.download_tree(bundle.model_id, copy)
        check = check_manifest(copy)
        if not _matches(copy, manifest):
            first = check.problems[0] if check.problems else None
            raise BundleIntegrityError(
                bundle.model_id,
                bundle.path,
                first.file if first else MANIFEST_KEY,
                first.problem if first else "the downloaded manifest.json differs",
                max(1, len(check.problems)),
            )
        # FileExistsError: another process downloaded it meanwhile, verified the same way.
        with contextlib.suppress(FileExistsError):
            rename_noreplace(copy, local)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _evict(registry, keep=local)
    return bundle.model_copy(update={"path": local})


def _matches(local: Path, manifest: bytes) -> bool:
    try:
        if (local / MANIFEST_KEY).read_bytes() != manifest:
            return False
    except OSError:
        return False
    return check_manifest(local).status == "match"


def _discard(registry: Path, local: Path) -> None:
    trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=registry))
    try:
        os.rename(local, trash / "bundle")
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
    shutil.rmtree(trash, ignore_errors=True)


def _evict(registry: Path, *, keep: Path) -> None:
    copies = []
    for entry in os.scandir(registry):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        copies.append((entry.stat(follow_symlinks=False).st_mtime, entry.path))
    copies.sort(reverse=True)
    for _, path in copies[KEEP_BUNDLES:]:
        if Path(path) != keep:
            _discard(registry, Path(path))


SCAN_CACHE_FILE = ".scan.json"


class ScanCache:
    """Scanned file contents of one remote registry, keyed by object key and ETag.

    Derived state: an entry is used only when the LIST of this very scan
    shows the same ETag for the key (S3 gives every overwrite a new ETag);
    an unreadable or malformed cache file is ignored and rebuilt, and a
    cache that cannot be written is simply not kept.
    """

    def __init__(self, storage: Storage, cache_dir: str | os.PathLike[str] | None = None) -> None:
        """Load the cache file of ``storage``'s registry (nothing if absent or unusable)."""
        self.path = registry_cache_dir(storage, cache_dir) / SCAN_CACHE_FILE
        self.entries: dict[str, tuple[str, bytes]] = {}
        try:
            document = json.loads(read_capped(self.path, cap=1 << 30))
            self.entries = {
                key: (etag, text.encode("latin-1")) for key, (etag, text) in document.items()
            }
        except (OSError, ValueError, TypeError, AttributeError):
            self.entries = {}

    def read(
        self, storage: Storage, wanted: list[str], listing: list[ObjectInfo]
    ) -> dict[str, bytes | None]:
        """The contents of ``wanted``: cached where the listing's ETag matches, fetched otherwise.

        Fetched files are remembered; keys no longer listed are forgotten; the
        cache file is rewritten (atomically) only when something changed.
        """
        etags = {info.key: info.version for info in listing}
        found: dict[str, bytes | None] = {}
        missing = []
        for key in wanted:
            cached = self.entries.get(key)
            if key not in etags:
                found[key] = None
            elif cached is not None and cached[0] == etags[key]:
                found[key] = cached[1]
            else:
                missing.append(key)
        fetched = storage.read_many_versioned(missing)
        fresh = {key: value for key, value in self.entries.items() if key in etags}
        changed = len(fresh) != len(self.entries)
        for key, value in fetched.items():
            found[key] = value[0] if value is not None else None
            if value is not None:
                fresh[key] = (value[1], value[0])
                changed = True
        self.entries = fresh
        if changed:
            self._save()
        return found

    def _save(self) -> None:
        document = {
            key: [etag, data.decode("latin-1")] for key, (etag, data) in self.entries.items()
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(document).encode())
        except OSError as exc:
            log.debug("Not keeping the scan cache %s: %s", self.path, exc)
