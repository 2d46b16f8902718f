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
import contextlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple

from taskclf.model_registry._fs import MAX_FILE_BYTES

if TYPE_CHECKING:
    from pathlib import Path

    from taskclf.model_registry.manifest import ManifestCheck
    from taskclf.model_registry.models import ActiveHistoryEntry, ActivePointer, ModelBundle
    from taskclf.model_registry.verify import Finding

MANIFEST_KEY = "manifest.json"
FileKind = Literal["file", "symlink", "other"]
"""What an entry of a bundle is (an object store holds only files)."""
WRITE_ATTEMPTS = 8
"""Attempts of a pointer change that may be decided again on top of another (self-heal)."""


class PointerRead(NamedTuple):
    """One alias's pointer as read, with what a later compare-and-swap needs."""

    pointer: ActivePointer | None
    """``None``: absent, or present but unusable (then ``problem`` says why)."""
    problem: str | None
    """Why a present pointer is unusable: one sentence, already naming the file."""
    token: object = None
    """The backend's handle on the version read (opaque to callers)."""


Decide = Callable[[PointerRead], "ActiveHistoryEntry | None"]
"""Given the pointer as it is now, the change to make (its history entry), or ``None``."""


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
    root_path: Path
    """Where bundle paths are formed: ``ModelBundle.path`` is ``root_path / model_id``."""
    name: str
    """The registry's own name, recorded in pointers (``model_dir = "<name>/<id>"``)."""

    # -- bundles ------------------------------------------------------------------

    @abc.abstractmethod
    def scan_bundles(self) -> list[ModelBundle]:
        """Every bundle, parsed from its two JSON files, sorted by name (REGISTRY.md §3-§4).

        Locally the directory scan with its stat-keyed cache; on an object
        store one LIST, then the two files of each complete bundle fetched
        concurrently (bounded), or taken from a cache keyed by the ETags the
        LIST returned. Never raises for what is stored.
        """

    @abc.abstractmethod
    def bundle_files(self, model_id: str) -> list[tuple[str, int, FileKind]]:
        """Every entry of bundle ``model_id``: ``(relative path, size, kind)``.

        ``kind`` is ``"file"``, or locally ``"symlink"`` / ``"other"`` (links
        are never followed); an object store holds only files.
        """

    @abc.abstractmethod
    def has_bundle(self, model_id: str) -> bool:
        """Whether bundle ``model_id`` exists (a directory locally, a manifest remotely)."""

    @abc.abstractmethod
    def read_bundle(self, model_id: str) -> ModelBundle | None:
        """Bundle ``model_id`` parsed from its two JSON files; ``None`` when it does not exist.

        ``path`` is ``root_path / model_id``. Never raises for what is stored.
        """

    @abc.abstractmethod
    def check_manifest(self, model_id: str, *, deep: bool = True) -> ManifestCheck:
        """Bundle ``model_id`` against its ``manifest.json`` (REGISTRY.md §12).

        ``deep=False`` checks presence and sizes only (cheap: one listing);
        ``deep=True`` hashes every file as well (on an object store the
        files are downloaded to a scratch directory to be hashed).
        """

    def registry_problem(self) -> str | None:
        """Why this is not a registry at all (``"Registry directory X not found"``), else ``None``.

        An object store answers ``None``: a missing bucket is reported by the
        first request, as a :class:`~taskclf.model_registry.errors.StorageError`.
        """
        return None

    def normalise(self, path: str | os.PathLike[str]) -> Path:
        """A bundle path as this registry forms it (absolute locally), for comparisons."""
        from pathlib import Path

        return Path(path)

    # -- pointers (aliases) and their histories ----------------------------------
    #
    # The two backends differ most here: locally the registry lock orders
    # writers and the history is one append-only file per alias; an object
    # store has neither, so each change is a history object created before a
    # compare-and-swap of the pointer (see :mod:`.chain`). What is decided
    # (which bundle, whether to change at all) is the caller's, written once.

    @abc.abstractmethod
    def read_pointer(self, alias: str = "active") -> PointerRead:
        """``alias``'s pointer. Never raises for what is stored (a bad file is ``problem``).

        Raises:
            AliasNameError: ``alias`` is not a usable alias name.
            StorageError: The store could not be reached (object stores only).
        """

    @abc.abstractmethod
    def update_pointer(
        self, alias: str, decide: Decide, *, attempts: int = WRITE_ATTEMPTS
    ) -> tuple[PointerRead, ActiveHistoryEntry | None]:
        """Read the pointer, let ``decide`` make the change, commit it: all or nothing.

        The guarantee: every committed change has exactly one history entry,
        each entry's ``old`` is the pointer it replaced, and no change is
        lost. Locally ``decide`` runs under the registry lock, so it sees the
        pointer no other writer can move before the commit; the entry is
        appended (fsynced), then the pointer replaced atomically. On an
        object store the entry is created, then the pointer swapped on its
        version; a lost swap removes the entry and runs ``decide`` again on
        the fresh pointer, up to ``attempts`` times (``attempts=1``: a change
        that must not be re-decided, e.g. a reviewed rollback).

        Returns:
            ``(the pointer decide saw last, the entry committed or None)``.

        Raises:
            RegistryConflictError: Every attempt lost its compare-and-swap.
            Whatever ``decide`` raises; nothing is written then.
        """

    @abc.abstractmethod
    def read_history(self, alias: str = "active") -> list[ActiveHistoryEntry]:
        """``alias``'s committed changes, oldest first; unreadable entries are skipped (logged)."""

    @abc.abstractmethod
    def history_path(self, alias: str = "active") -> Path:
        """Where ``alias``'s history is, for messages (a file locally, a prefix remotely)."""

    @abc.abstractmethod
    def alias_names(self) -> list[str]:
        """Every alias with a pointer: ``active`` first (if it has one), then sorted."""

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
    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` whole, whatever is there: the last writer wins.

        For caches (``index.json``). Readers see the old or the new content,
        never a mix: locally an atomic replace under the registry lock, on an
        object store a compare-and-swap retried until it lands.

        Raises:
            RegistryConflictError: Other writers kept winning (object stores only).
            OSError: The write failed; the previous content is untouched.
        """

    @abc.abstractmethod
    def bundle_changes(self, cached: set[str], cutoff_ns: int) -> tuple[list[str], dict[str, str]]:
        """The bundles now, and which of ``cached`` changed after ``cutoff_ns``.

        Returns:
            ``(bundle names, {name: what changed})``. Locally the bundle's
            directory or its two JSON files (mtime or ctime, only ``stat``);
            on an object store any of its files (``Last-Modified``, one LIST).
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
    def staging_area(self) -> Path:
        """A new, empty local directory to build a bundle in before :meth:`publish`.

        Locally a ``.staging-*`` directory inside the registry (created if
        missing), so publishing is one rename on the same filesystem; for an
        object store a temporary directory. The caller removes it when done.
        """

    @abc.abstractmethod
    def publish(self, staged: Path, name: str) -> None:
        """Make the directory ``staged`` (from :meth:`staging_area`) bundle ``name``, whole.

        Locally: under the registry lock, one ``rename`` (refused if the name
        is taken meanwhile). On an object store, bundles are always sealed:
        an unsealed ``staged`` is sealed first (it is this process's scratch
        copy), then uploaded with its manifest last (:meth:`upload_tree`).

        Raises:
            RegistryConflictError: ``name`` exists already; nothing was published.
            OSError: The publish failed; nothing is visible.
        """

    @abc.abstractmethod
    def name_taken(self, name: str) -> bool:
        """Whether a new bundle could not be published as ``name`` (anything is there)."""

    # -- retention (prune) ----------------------------------------------------------

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Serialise a multi-step change against other writers, where the backend can.

        Locally the registry lock. An object store has no lock: its writers
        rely on compare-and-swap and on manifest-first deletes instead, so
        this is a no-op there (callers re-check what they can just before
        each irreversible step).
        """
        return contextlib.nullcontext()

    @abc.abstractmethod
    def registry_entry(self, name: str = "") -> str | None:
        """A registry-level file held by the root (``name=""``) or by entry ``name``, else ``None``.

        Prune's guard against a ``--models-dir`` one level too high. On an
        object store a prefix is a registry by construction (its bundles exist
        only by their manifests): the root always answers, an entry never does.
        """

    @abc.abstractmethod
    def looks_like_bundle(self, name: str) -> bool:
        """Whether entry ``name`` holds at least one bundle file (it may still be invalid)."""

    @abc.abstractmethod
    def tree_sizes(self, names: list[str]) -> dict[str, int]:
        """Bytes of the regular files of each bundle in ``names``."""

    @abc.abstractmethod
    def stale_leftovers(self, min_age_s: float) -> list[Path]:
        """What interrupted operations left behind, older than ``min_age_s``, as paths.

        Locally temp files and trash directories (never staging directories);
        on an object store incomplete uploads and uncommitted history entries.
        """

    @abc.abstractmethod
    def remove_leftover(self, path: Path) -> None:
        """Remove one of :meth:`stale_leftovers`, never following a link out of the registry."""

    @abc.abstractmethod
    def delete_bundles(self, names: list[str]) -> Callable[[], None]:
        """Remove bundles from the registry; each disappears in one step.

        Locally each is renamed into one ``.trash-*`` directory (call this
        inside :meth:`exclusive`); on an object store each loses its manifest
        first (:meth:`delete_tree`).

        Returns:
            What is left to do once :meth:`exclusive` is released (removing
            the trash), so the lock is not held while large files are deleted.
        """

    # -- verify: what only the backend's own formats can tell -----------------------

    @abc.abstractmethod
    def audit_history(self, alias: str, pointer: ActivePointer | None) -> list[Finding]:
        """``verify``'s findings about ``alias``'s history as stored (``pointer``: as read).

        The formats differ (one append-only file per alias locally, a chain of
        objects on an object store), so each backend audits its own; the
        checks themselves live in :mod:`taskclf.model_registry.verify`.
        """

    @abc.abstractmethod
    def audit_layout(self) -> list[Finding]:
        """``verify``'s findings about leftovers of interrupted operations and registry files."""

    # -- inference: loaders need files on a local disk --------------------------------

    @abc.abstractmethod
    def local_copy(
        self, bundle: ModelBundle, cache_dir: str | os.PathLike[str] | None, *, verify: bool
    ) -> ModelBundle:
        """``bundle`` with a ``path`` a loader can open, matching its manifest if ``verify``.

        Locally the bundle itself (hashed against its manifest when ``verify``).
        On an object store a verified copy in the download cache (``cache_dir``,
        else ``$TASKCLF_CACHE_DIR``, else the user cache): downloaded into a
        temporary directory, hashed, renamed into place, reused while the
        remote manifest is unchanged; always verified.

        Raises:
            BundleIntegrityError: The files do not match the manifest.
            OSError: The download failed.
        """

    @abc.abstractmethod
    def stamped_read(self, key: str) -> tuple[object, bytes] | None:
        """A small file's bytes with a stamp that differs on every rewrite; ``None`` if unreadable.

        What a reloader compares between checks: locally the file's stat fields
        (a rewrite gets a new inode or times, even with the same bytes) and its
        bytes; on an object store one GET (bytes and ETag).
        """

    @abc.abstractmethod
    def download_tree(self, prefix: str, target: Path) -> None:
        """Copy every file of bundle ``prefix`` into the new directory ``target``.

        ``target`` must not exist; callers download into a temporary
        directory and rename it, so a half-downloaded tree is never used.
        """
