"""Copy bundles between two registries, local or remote, in either direction.

Everything goes through the storage seam: a bundle is fetched into a local
scratch directory (downloaded, or copied from a directory), checked
against its manifest, sealed if it was not and the destination is an
object store (remote bundles are always sealed), and published with
``upload_tree`` (one rename locally, the manifest last remotely). The
pointer is copied only when asked, as an ordinary ``set-active`` on the
destination (checked, recorded in its history).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from taskclf.model_registry.errors import RegistryConflictError, RegistryError, SealError
from taskclf.model_registry.manifest import build_manifest, check_manifest, manifest_bytes
from taskclf.model_registry.storage import MANIFEST_KEY, Storage, open_storage


class SyncError(RegistryError, ValueError):
    """A sync cannot start (same registry twice, a source that is not a registry)."""


class SyncResult(BaseModel):
    """What :func:`sync_registry` did."""

    model_config = ConfigDict(frozen=True)

    source: str
    destination: str
    copied: list[str]
    """Bundles copied, sorted."""
    present: list[str]
    """Bundles already in the destination with the same manifest (or both unsealed)."""
    skipped: dict[str, str]
    """Bundles not copied, with why (a different bundle of the same name, a mismatch)."""
    pointer: str | None = None
    """The bundle the destination's pointer was set to (``with_pointer``), if it moved."""


def sync_registry(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    *,
    with_pointer: bool = False,
) -> SyncResult:
    """Copy every bundle of ``source`` that ``destination`` lacks; optionally the pointer too.

    Args:
        source: A registry directory or ``s3://bucket/prefix``.
        destination: Another one (created if it is a missing directory).
        with_pointer: Afterwards, point ``destination`` at the bundle the
            source's pointer locates (if it is not already).

    Returns:
        What was copied, already there, or skipped and why.

    Raises:
        SyncError: ``source`` and ``destination`` are the same, or ``source``
            is a missing directory.
        StorageError, OSError: A transfer failed; bundles copied so far stay
            (each one whole), the rest are not visible.
    """
    from taskclf.model_registry.activation import activate

    src = open_storage(source)
    dst = open_storage(destination)
    if src.url == dst.url:
        raise SyncError(f"Source and destination are the same registry ({src.url}).")
    if src.registry_problem() is not None:
        raise SyncError(f"Registry not found: {src.url} does not exist.")
    existing = set(dst.list_bundle_names())
    copied: list[str] = []
    present: list[str] = []
    skipped: dict[str, str] = {}
    for name in src.list_bundle_names():
        if name in existing:
            if _same_manifest(src, dst, name):
                present.append(name)
            else:
                skipped[name] = "the destination has a different bundle of this name"
            continue
        problem = _copy_bundle(src, dst, name, seal=dst.remote)
        if problem is None:
            copied.append(name)
        else:
            skipped[name] = problem
    pointer = None
    if with_pointer:
        wanted = _active_id(source)
        if wanted is not None and wanted not in skipped:
            done = activate(destination, wanted, reason="sync")
            pointer = wanted if done.changed else None
    return SyncResult(
        source=src.url,
        destination=dst.url,
        copied=copied,
        present=present,
        skipped=skipped,
        pointer=pointer,
    )


def _active_id(models_dir: str | os.PathLike[str]) -> str | None:
    from taskclf.model_registry.pointer import locate_active_bundle

    located = locate_active_bundle(models_dir)
    return located.name if located is not None else None


def _same_manifest(src: Storage, dst: Storage, name: str) -> bool:
    try:
        theirs = dst.read(f"{name}/{MANIFEST_KEY}")[0]
    except FileNotFoundError:
        return False
    try:
        return src.read(f"{name}/{MANIFEST_KEY}")[0] == theirs
    except FileNotFoundError:
        pass
    # An unsealed source whose sealed copy is already there: the same files make
    # the same (canonical) manifest.
    with tempfile.TemporaryDirectory(prefix="taskclf-sync-") as scratch:
        staged = Path(scratch) / name
        src.download_tree(name, staged)
        try:
            return manifest_bytes(build_manifest(staged)) == theirs
        except SealError:
            return False


def _copy_bundle(src: Storage, dst: Storage, name: str, *, seal: bool) -> str | None:
    with tempfile.TemporaryDirectory(prefix="taskclf-sync-") as scratch:
        staged = Path(scratch) / name
        src.download_tree(name, staged)
        check = check_manifest(staged)
        if check.status == "mismatch":
            first = check.problems[0].problem if check.problems else "mismatch"
            return f"its files do not match its manifest.json ({first}); not copied"
        if check.status == "unsealed" and seal:
            try:
                manifest = build_manifest(staged)
            except SealError as exc:
                return f"it cannot be sealed for the destination: {exc.reason}"
            (staged / MANIFEST_KEY).write_bytes(manifest_bytes(manifest))
        try:
            dst.upload_tree(staged, name)
        except RegistryConflictError:
            return "a bundle of this name appeared in the destination meanwhile"
    return None
