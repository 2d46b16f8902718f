"""The storage seam: the few verbs the registry needs from wherever its files live.

Modelled on Rust's ``object_store``: keys are ``/``-separated paths relative
to the registry root (``active.json``, ``run_001/metrics.json``); every verb
states its atomicity. :class:`~taskclf.model_registry.storage.local.LocalStorage`
implements them on a directory with the registry's ``_fs`` helpers,
:class:`~taskclf.model_registry.storage.s3.S3Storage` on an S3-compatible
bucket with conditional writes. ``open_storage`` picks one.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, NamedTuple

from taskclf.model_registry._fs import MAX_FILE_BYTES

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST_KEY = "manifest.json"


class ObjectInfo(NamedTuple):
    """One stored file, as a listing returns it."""

    key: str
    """Path relative to the registry root, ``/`` separators."""
    size: int
    version: str
    """Changes whenever the content may have changed (an ETag, or stat fields locally)."""
    modified: float
    """Last modification, seconds since the epoch."""


class Storage(abc.ABC):
    """Where a registry's files live. Registry logic above this never asks which backend it has.

    Attributes:
        url: How messages name the registry (a directory path or ``s3://bucket/prefix``).
        remote: True when bundle files must be downloaded before a model can load them.
    """

    url: str
    remote: bool

    @abc.abstractmethod
    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        """Every file below ``prefix`` (recursive), sorted by key.

        Not a snapshot: files written or deleted meanwhile may or may not appear.
        A missing registry lists as empty.
        """

    @abc.abstractmethod
    def list_bundle_names(self) -> list[str]:
        """The registry's complete bundles, sorted.

        Locally, every immediate non-dot subdirectory (REGISTRY.md §3). On an
        object store a bundle is complete once its ``manifest.json`` exists
        (it is uploaded last), so a half-uploaded bundle is never listed.
        """

    @abc.abstractmethod
    def read(self, key: str, cap: int = MAX_FILE_BYTES) -> tuple[bytes, str]:
        """The file's bytes and version, read whole; atomic (one version, never a mix).

        Raises:
            FileNotFoundError: No such file.
            OSError: Larger than ``cap`` (never read whole), or the read failed.
        """

    def read_many(self, keys: list[str], cap: int = MAX_FILE_BYTES) -> dict[str, bytes | None]:
        """Read many small files (concurrently where the backend can); ``None`` for a missing one.

        Raises:
            OSError: A read failed for another reason than absence.
        """
        return {
            key: found[0] if found is not None else None
            for key, found in self.read_many_versioned(keys, cap).items()
        }

    def read_many_versioned(
        self, keys: list[str], cap: int = MAX_FILE_BYTES
    ) -> dict[str, tuple[bytes, str] | None]:
        """:meth:`read_many`, each file with the version it was read at."""
        found: dict[str, tuple[bytes, str] | None] = {}
        for key in keys:
            try:
                found[key] = self.read(key, cap)
            except FileNotFoundError:
                found[key] = None
        return found

    @abc.abstractmethod
    def head(self, key: str) -> str | None:
        """The file's current version, ``None`` if absent: one cheap request."""

    @abc.abstractmethod
    def create(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` only if nothing is there; atomic and exclusive.

        Readers see no file or the whole file. Of concurrent creators exactly
        one succeeds.

        Returns:
            The new version.

        Raises:
            RegistryConflictError: ``key`` already exists; nothing was written.
        """

    @abc.abstractmethod
    def replace(self, key: str, data: bytes, *, expected: str | None) -> str:
        """Compare-and-swap: write ``data`` only if ``key`` is still at version ``expected``.

        ``expected=None`` means "only if absent" (like :meth:`create`).
        Readers see the old or the new content, whole; of concurrent writers
        holding the same ``expected`` exactly one succeeds.

        Returns:
            The new version.

        Raises:
            RegistryConflictError: ``key`` changed since ``expected``; nothing was written.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove one file; a missing one is not an error. Atomic per file."""

    @abc.abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Remove a bundle (every file below ``prefix/``), ``manifest.json`` first.

        Not atomic on an object store, but the bundle disappears from
        :meth:`list_bundle_names` with the first delete, so no reader sees a
        half-deleted bundle; an interrupted delete leaves an incomplete
        upload that prune removes. Locally the directory is renamed into a
        trash directory first (one step), then removed.
        """

    @abc.abstractmethod
    def upload_tree(self, source: Path, prefix: str) -> None:
        """Publish the directory ``source`` as bundle ``prefix``, whole or not at all.

        Every regular file but ``manifest.json`` first, then ``manifest.json``
        with :meth:`create`: the bundle becomes visible in one step. A
        failure part-way leaves an incomplete upload, invisible to readers.

        Raises:
            RegistryConflictError: A bundle ``prefix`` already exists.
            OSError: The upload failed.
        """

    @abc.abstractmethod
    def download_tree(self, prefix: str, target: Path) -> None:
        """Copy every file of bundle ``prefix`` into the new directory ``target``.

        ``target`` must not exist; callers download into a temporary
        directory and rename it, so a half-downloaded tree is never used.
        """
