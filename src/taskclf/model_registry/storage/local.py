"""The storage seam on a local directory: the registry's ``_fs`` helpers behind the verbs.

The same guarantees as the rest of the local registry: atomic replaces
(temporary file, fsync, ``os.replace``), exclusive creates
(``renameat2(RENAME_NOREPLACE)``), compare-and-swap under the registry
lock, bundles published and deleted by one rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from taskclf.model_registry._fs import (
    MAX_FILE_BYTES,
    absolute,
    atomic_write,
    fsync_dir,
    fsync_tree,
    read_capped,
    registry_lock,
    rename_noreplace,
)
from taskclf.model_registry.errors import RegistryConflictError
from taskclf.model_registry.storage.base import ObjectInfo, Storage

_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".trash-"


def _content_version(data: bytes) -> str:
    # Content, not stat fields: two rewrites within the clock's granularity can
    # share inode, times and size, and a compare-and-swap must tell them apart.
    return hashlib.sha256(data).hexdigest()[:32]


class LocalStorage(Storage):
    """A registry directory on a local (or mounted) filesystem."""

    remote = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Args: root: the registry directory (need not exist yet)."""
        self.root = absolute(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def list_files(self, prefix: str = "") -> list[ObjectInfo]:
        base = self.root / prefix if prefix else self.root
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                key = os.path.relpath(path, self.root).replace(os.sep, "/")
                version = f"{info.st_ino}-{info.st_mtime_ns}-{info.st_size}"
                found.append(ObjectInfo(key, info.st_size, version, info.st_mtime))
        return sorted(found)

    def list_bundle_names(self) -> list[str]:
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        return sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())

    def read(self, key: str, cap: int = MAX_FILE_BYTES) -> tuple[bytes, str]:
        data = read_capped(self._path(key), cap)
        return data, _content_version(data)

    def head(self, key: str) -> str | None:
        try:
            return self.read(key)[1]
        except OSError:
            return None

    def create(self, key: str, data: bytes) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            rename_noreplace(Path(temp), path)
        except FileExistsError:
            os.unlink(temp)
            raise RegistryConflictError(self.url, key) from None
        except BaseException:
            os.unlink(temp)
            raise
        fsync_dir(path.parent)
        return _content_version(data)

    def replace(self, key: str, data: bytes, *, expected: str | None) -> str:
        if expected is None:
            return self.create(key, data)
        self.root.mkdir(parents=True, exist_ok=True)
        with registry_lock(self.root):
            if self.head(key) != expected:
                raise RegistryConflictError(self.url, key)
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        return _content_version(data)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def delete_tree(self, prefix: str) -> None:
        source = self._path(prefix)
        if not os.path.lexists(source):
            return
        trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=self.root))
        os.rename(source, trash / source.name)
        shutil.rmtree(trash, ignore_errors=True)

    def upload_tree(self, source: Path, prefix: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.root))
        try:
            tree = staged / "bundle"
            shutil.copytree(source, tree, symlinks=True)
            fsync_tree(tree)
            try:
                rename_noreplace(tree, self._path(prefix))
            except FileExistsError:
                raise RegistryConflictError(self.url, prefix) from None
            fsync_dir(self.root)
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def download_tree(self, prefix: str, target: Path) -> None:
        shutil.copytree(self._path(prefix), target, symlinks=True)
