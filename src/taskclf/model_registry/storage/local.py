"""The storage seam on a local directory: the registry's ``_fs`` helpers behind the verbs.

The same guarantees as the rest of the local registry: atomic replaces
(temporary file, fsync, ``os.replace``), exclusive creates
(``renameat2(RENAME_NOREPLACE)``), compare-and-swap under the registry
lock, bundles published and deleted by one rename.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from taskclf.model_registry._fs import (
    MAX_FILE_BYTES,
    absolute,
    append_line,
    atomic_write,
    fsync_dir,
    fsync_tree,
    read_capped,
    read_tail,
    registry_lock,
    rename_noreplace,
    truncate_to,
)
from taskclf.model_registry.aliases import (
    DEFAULT_ALIAS,
    AliasPaths,
    alias_dir_problem,
    alias_names,
    alias_paths,
    prepare_alias_dir,
)
from taskclf.model_registry.errors import RegistryConflictError
from taskclf.model_registry.models import ActiveHistoryEntry, ActivePointer, ModelBundle
from taskclf.model_registry.storage.base import (
    WRITE_ATTEMPTS,
    Decide,
    FileKind,
    ObjectInfo,
    PointerRead,
    Storage,
)

if TYPE_CHECKING:
    from taskclf.model_registry.manifest import ManifestCheck
    from taskclf.model_registry.verify import Finding

log = logging.getLogger("taskclf.model_registry")

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
        self.root_path = self.root
        self.name = self.root.name
        self._alias_paths: dict[str, AliasPaths] = {}

    def _paths_of(self, alias: str) -> AliasPaths:
        # Checked and joined once per alias: names are validated by alias_paths.
        found = self._alias_paths.get(alias)
        if found is None:
            found = self._alias_paths[alias] = alias_paths(self.root, alias)
        return found

    def _path(self, key: str) -> Path:
        return self.root / key

    def normalise(self, path: str | os.PathLike[str]) -> Path:
        return absolute(path)

    def registry_problem(self) -> str | None:
        from taskclf.model_registry.errors import registry_not_found

        return registry_not_found(self.root)

    def scan_bundles(self) -> list[ModelBundle]:
        from taskclf.model_registry.scan import list_bundles

        return list_bundles(self.root)

    def bundle_files(self, model_id: str) -> list[tuple[str, int, FileKind]]:
        return list(bundle_files(self.root / model_id))

    def has_bundle(self, model_id: str) -> bool:
        return os.path.isdir(self.root / model_id)

    def read_bundle(self, model_id: str) -> ModelBundle | None:
        from taskclf.model_registry.scan import read_bundle

        path = self.root / model_id
        return read_bundle(path) if os.path.isdir(path) else None

    def check_manifest(self, model_id: str, *, deep: bool = True) -> ManifestCheck:
        from taskclf.model_registry.manifest import check_manifest

        return check_manifest(self.root / model_id, deep=deep)

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

    def put(self, key: str, data: bytes) -> None:
        with registry_lock(self.root):
            atomic_write(self._path(key), data)

    def bundle_changes(self, cached: set[str], cutoff_ns: int) -> tuple[list[str], dict[str, str]]:
        from taskclf.model_registry.scan import METADATA_FILE, METRICS_FILE, bundle_names

        current = bundle_names(self.root)
        changed: dict[str, str] = {}
        for name in current:
            if name not in cached:
                continue
            # Plain strings, not Path objects: this runs three stats per bundle at 10k+ bundles.
            bundle = os.path.join(self.root, name)
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
                    changed[name] = label
                    break
        return current, changed

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

    def staging_area(self) -> Path:
        if not os.path.lexists(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.root.parent)
        return Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.root))

    def publish(self, staged: Path, name: str) -> None:
        with registry_lock(self.root):
            target = self.root / name
            # Checked under the lock: another promotion may have taken the name since
            # the caller's check, and rename() would silently replace an empty directory.
            if os.path.lexists(target):
                raise RegistryConflictError(self.url, name)
            os.rename(staged, target)
            fsync_dir(self.root)

    def name_taken(self, name: str) -> bool:
        return os.path.lexists(self.root / name)

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return registry_lock(self.root)

    def registry_entry(self, name: str = "") -> str | None:
        from taskclf.model_registry.scan import registry_entry

        return registry_entry(self.root / name if name else self.root)

    def looks_like_bundle(self, name: str) -> bool:
        from taskclf.model_registry.scan import looks_like_bundle

        return looks_like_bundle(self.root / name)

    def tree_sizes(self, names: list[str]) -> dict[str, int]:
        from taskclf.model_registry.retention import tree_size

        return {name: tree_size(self.root / name) for name in names}

    def stale_leftovers(self, min_age_s: float) -> list[Path]:
        from taskclf.model_registry.retention import find_stale_leftovers

        return find_stale_leftovers(self.root, min_age_s)

    def remove_leftover(self, path: Path) -> None:
        from taskclf.model_registry.retention import remove_leftover

        remove_leftover(path)

    def delete_bundles(self, names: list[str]) -> Callable[[], None]:
        if not names:
            return lambda: None
        trash = Path(tempfile.mkdtemp(prefix=_TRASH_PREFIX, dir=self.root))
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.root / name, trash / name)
        fsync_dir(self.root)

        def empty_trash() -> None:
            shutil.rmtree(trash, ignore_errors=True)
            if os.path.lexists(trash):
                log.warning(
                    "Could not remove the prune trash directory %s completely; the bundles in "
                    "it are no longer in the registry, delete it by hand",
                    trash,
                )

        return empty_trash

    def audit_history(self, alias: str, pointer: ActivePointer | None) -> list[Finding]:
        from taskclf.model_registry.verify import check_history_file

        return check_history_file(self.root, pointer, alias)

    def audit_layout(self) -> list[Finding]:
        from taskclf.model_registry.verify import check_leftovers

        return check_leftovers(self.root)

    def local_copy(
        self, bundle: ModelBundle, cache_dir: str | os.PathLike[str] | None, *, verify: bool
    ) -> ModelBundle:
        del cache_dir  # the bundle is already on this disk
        if verify:
            from taskclf.model_registry.manifest import require_sealed_match

            require_sealed_match(bundle)
        return bundle

    def stamped_read(self, key: str) -> tuple[object, bytes] | None:
        path = self._path(key)
        try:
            info = os.stat(path)
            data = read_capped(path)
        except OSError:
            return None
        return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size), data

    def download_tree(self, prefix: str, target: Path) -> None:
        shutil.copytree(self._path(prefix), target, symlinks=True)

    # -- pointers: the registry lock, an append-only history, an atomic replace -----------

    def read_pointer(self, alias: str = DEFAULT_ALIAS) -> PointerRead:
        path = self._paths_of(alias).pointer
        label = "Active pointer" if alias == DEFAULT_ALIAS else f"Pointer of alias {alias!r}"
        if alias != DEFAULT_ALIAS and (problem := alias_dir_problem(self.root)) is not None:
            return PointerRead(None, f"{path.parent} {problem}; ignoring alias {alias!r}")
        try:
            raw = read_capped(path)
        except (FileNotFoundError, NotADirectoryError):
            return PointerRead(None, None)
        except OSError as exc:
            return PointerRead(None, f"{label} {path} is unreadable: {exc}")
        try:
            return PointerRead(ActivePointer.model_validate_json(raw), None)
        except ValidationError as exc:
            from taskclf.model_registry.scan import describe_errors, is_json_error

            errors = exc.errors(include_url=False)
            kind = "not JSON" if is_json_error(errors) else "not a valid pointer"
            problem = f"{label} {path} is {kind}; ignoring it: {describe_errors(errors, 1)}"
            return PointerRead(None, problem)

    def update_pointer(
        self, alias: str, decide: Decide, *, attempts: int = WRITE_ATTEMPTS
    ) -> tuple[PointerRead, ActiveHistoryEntry | None]:
        # Under the lock nobody else moves the pointer: one pass, never a conflict.
        del attempts
        paths = self._paths_of(alias)
        with registry_lock(self.root):
            state = self.read_pointer(alias)
            entry = decide(state)
            if entry is None:
                return state, None
            prepare_alias_dir(self.root, alias)
            _commit_pointer(paths.pointer, paths.history, entry)
        return state, entry

    def read_history(self, alias: str = DEFAULT_ALIAS) -> list[ActiveHistoryEntry]:
        from taskclf.model_registry.pointer import parse_history_lines
        from taskclf.model_registry.scan import describe_errors

        path = alias_paths(self.root, alias).history
        if alias != DEFAULT_ALIAS and (problem := alias_dir_problem(self.root)) is not None:
            log.warning("%s %s; ignoring the history of alias %r", path.parent, problem, alias)
            return []
        try:
            raw, skipped, oversized = read_tail(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            log.warning("History %s is unreadable: %s", path, exc)
            return []
        if skipped:
            log.warning(
                "History %s is larger than the read limit; reading only its newest entries "
                "(the first %d bytes are skipped)",
                path,
                skipped,
            )
        for number, size in oversized:
            log.warning(
                "Skipping line %d of %s: it is %d bytes, larger than the %d byte read limit "
                "(a torn or corrupted write); the entries before and after it are still read",
                number,
                path,
                size,
                MAX_FILE_BYTES,
            )
        entries: list[ActiveHistoryEntry] = []
        for number, parsed in parse_history_lines(raw):
            if isinstance(parsed, ValidationError):
                log.warning(
                    "Skipping unparseable line %d of %s: %s",
                    number,
                    path,
                    describe_errors(parsed.errors(include_url=False), 1),
                )
            else:
                entries.append(parsed)
        return entries

    def history_path(self, alias: str = DEFAULT_ALIAS) -> Path:
        return alias_paths(self.root, alias).history

    def alias_names(self) -> list[str]:
        return alias_names(self.root)


def _commit_pointer(pointer: Path, history: Path, entry: ActiveHistoryEntry) -> None:
    """History first, then the pointer; undo the history append if the pointer fails."""
    existed = os.path.lexists(history)
    previous_size = append_line(history, entry.model_dump_json().encode())
    try:
        atomic_write(pointer, entry.new.model_dump_json(indent=2).encode() + b"\n")
    except BaseException as exc:
        try:
            if existed:
                truncate_to(history, previous_size)
            else:
                # Byte-for-byte as before means absent, not empty.
                os.unlink(history)
        except OSError as undo_exc:
            # Cannot happen on a healthy disk (shrinking needs no space). Leaves exactly
            # the crash-between-steps state, which verify reports; the caller still
            # gets the error that stopped the pointer change.
            log.error(
                "Could not remove the history entry for a pointer change that failed "
                "(%s): %s; `taskclf model verify` will report it",
                history,
                undo_exc,
            )
            exc.add_note(f"the history entry could not be undone: {undo_exc}")
        raise


def bundle_files(root: Path) -> Iterator[tuple[str, int, FileKind]]:
    """Every entry of a bundle directory: ``(relative path, size, kind)``, links not followed."""
    stack = [""]
    while stack:
        prefix = stack.pop()
        try:
            with os.scandir(root / prefix if prefix else root) as entries:
                listed = list(entries)
        except OSError:
            continue
        for entry in listed:
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(relative)
            elif stat.S_ISREG(info.st_mode):
                yield relative, info.st_size, "file"
            else:
                kind: FileKind = "symlink" if stat.S_ISLNK(info.st_mode) else "other"
                yield relative, info.st_size, kind
