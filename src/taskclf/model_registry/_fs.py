"""The registry's filesystem mechanisms, each in exactly one place.

Every registry write goes through here: the atomic replace used for
``active.json`` and ``index.json``, the line append used for the
history, the directory and tree fsyncs, the capped read used for every
registry and bundle file, and the inter-process lock. None of them ever
writes through a symlink.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from taskclf.model_registry.errors import RegistryFileError, RegistryLockTimeout

# ctypes and filelock are imported inside the functions that use them: a process that
# only follows the pointer never renames without replacing or locks, and starts ~25 ms
# sooner without them (issue 13).

MAX_FILE_BYTES = 16 * 1024 * 1024
"""Largest registry or bundle JSON file we read; a larger one is reported, never read whole."""

LOCK_FILE = ".taskclf.lock"
LOCK_TIMEOUT_S = 120.0
TEMP_SUFFIX = ".tmp"
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)

log = logging.getLogger("taskclf.model_registry")


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute, lexically normalised path; symlinks are deliberately not resolved.

    An object-store location (``s3://bucket/prefix``) is returned as it is (as a
    ``Path``, which folds its ``//``): it is never relative to the working directory.
    """
    from taskclf.model_registry.locations import is_remote

    if is_remote(path):
        return Path(path)
    return Path(os.path.abspath(path))


def _open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    """Open ``path`` for reading and ``fstat`` it; ``RegistryFileError`` unless a regular file."""
    fd = _open_for_read(path)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RegistryFileError(Path(path), "is not a regular file", errno.EINVAL)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def _open_for_read(path: str | os.PathLike[str]) -> int:
    # O_NONBLOCK keeps a FIFO planted where a JSON file belongs from hanging the scan.
    try:
        return os.open(path, _READ_FLAGS)
    except ValueError as exc:
        # An embedded NUL or text the filesystem cannot encode (a hand-edited pointer, a
        # hostile path): a path no file can have, reported like any unreadable file so
        # that readers never raise.
        why = (
            "characters the filesystem cannot encode"
            if isinstance(exc, UnicodeError)
            else ("an embedded NUL byte")
        )
        shown = os.fsdecode(path).replace("\x00", "\\0").encode("utf-8", "backslashreplace")
        raise RegistryFileError(
            Path(shown.decode("ascii", "backslashreplace")),
            f"is not a valid path ({why})",
            errno.EINVAL,
        ) from None


def read_capped(path: str | os.PathLike[str], cap: int = MAX_FILE_BYTES) -> bytes:
    """Read a regular file, refusing (without reading it whole) one larger than ``cap``.

    Args:
        path: File to read; a symlink to a regular file is followed.
        cap: Largest accepted size in bytes.

    Returns:
        The file's bytes.

    Raises:
        FileNotFoundError: The file (or its directory) does not exist.
        RegistryFileError: Not a regular file, or larger than ``cap``.
        OSError: Any other read failure.
    """
    return read_capped_stat(path, cap)[0]


def read_capped_stat(
    path: str | os.PathLike[str], cap: int = MAX_FILE_BYTES
) -> tuple[bytes, os.stat_result]:
    """:func:`read_capped`, with the ``fstat`` of the file taken before reading it.

    The stat describes the file the bytes came from (no second lookup of
    the path); the scan cache keys what it stores by it.

    Returns:
        The file's bytes and its stat.

    Raises:
        FileNotFoundError: The file (or its directory) does not exist.
        RegistryFileError: Not a regular file, or larger than ``cap``.
        OSError: Any other read failure.
    """
    # _open_regular inlined: a scan reads two files per bundle, and each Python call
    # here is a measurable part of a first scan (bench/README.md, "Profile notes").
    try:
        fd = os.open(path, _READ_FLAGS)
    except ValueError:
        fd = _open_for_read(path)  # raises the RegistryFileError that describes the path
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RegistryFileError(Path(path), "is not a regular file", errno.EINVAL)
        size = info.st_size
        if size > cap:
            raise RegistryFileError(Path(path), f"is larger than the {cap} byte limit", errno.EFBIG)
        # One read of one byte more than fstat reported: a short read that delivered all
        # it promised is the end of a regular file (a scan reads 2 per bundle), without
        # the read() that would only confirm it. Anything else (the file grew) reads on.
        chunk = os.read(fd, size + 1)
        if len(chunk) == size:
            return chunk, info
        parts: list[bytes] = [chunk]
        total = len(chunk)
        want = size + 1
        while chunk and total <= cap:
            request = min(max(want - total, 65536), cap + 1 - total)
            chunk = os.read(fd, request)
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
            if len(chunk) < request and total >= size:
                break
        if total > cap:
            raise RegistryFileError(Path(path), f"is larger than the {cap} byte limit", errno.EFBIG)
        return (parts[0] if len(parts) == 1 else b"".join(parts)), info
    finally:
        os.close(fd)


class PinnedFile:
    """A regular file held open, so that later reads see the file as it was opened.

    Renaming another file over it, or deleting it, leaves an open file's
    bytes readable: a reader that reads a file in parts, some much later
    (the scan cache reads its index first and its payloads only when a bundle
    needs them), gets parts of one version of it. Closed by :meth:`close`,
    or when the object is collected.

    Raises (on construction):
        FileNotFoundError: The file (or its directory) does not exist.
        RegistryFileError: Not a regular file.
        OSError: Any other failure to open it.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import weakref

        fd, self.info = _open_regular(path)
        self._fd = fd
        self._close = weakref.finalize(self, os.close, fd)

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end of the file as opened).

        Raises:
            ValueError: The file was closed (its descriptor may name another file now).
            OSError: The read failed.
        """
        if not self._close.alive:
            raise ValueError("read from a closed PinnedFile")
        length = max(0, min(length, self.info.st_size - offset))
        parts: list[bytes] = []
        total = 0
        while total < length:
            chunk = os.pread(self._fd, length - total, offset + total)
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        """Close the file (again: nothing)."""
        self._close()


HASH_CHUNK_BYTES = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """Size and SHA-256 of a regular file, read in chunks (model files can be hundreds of MB).

    Never follows a symlink and never blocks on a FIFO.

    Returns:
        ``(bytes read, lowercase hex digest)``; the size is what was hashed,
        which differs from an earlier ``stat`` if the file changed meanwhile.

    Raises:
        FileNotFoundError: The file does not exist.
        RegistryFileError: It is a symlink or not a regular file.
        OSError: Any other read failure.
    """
    try:
        fd = os.open(path, _READ_FLAGS | _NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RegistryFileError(Path(path), "is a symlink", errno.ELOOP) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RegistryFileError(Path(path), "is not a regular file", errno.EINVAL)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray(HASH_CHUNK_BYTES)
        view = memoryview(buffer)
        while count := os.readv(fd, [buffer]):
            digest.update(view[:count])
            size += count
        return size, digest.hexdigest()
    finally:
        os.close(fd)


class TailRead(NamedTuple):
    """What :func:`read_tail` returns."""

    data: bytes
    """The lines read, oldest first; an oversized line is left as an empty line."""
    skipped: int
    """How many leading bytes were not read (0: the file was read from its start)."""
    oversized: list[tuple[int, int]]
    """``(line number in data, length in bytes)`` of each line left out for its size."""


_TAIL_BLOCK = 1 << 20
TAIL_SCAN_LIMIT = 1 << 30
"""Most bytes :func:`read_tail` reads backwards past oversized lines before giving up."""


def read_tail(path: Path, cap: int = MAX_FILE_BYTES) -> TailRead:
    """Read the newest whole lines of an append-only log, at most ``cap`` bytes of them.

    Meant for line logs, which may legitimately outgrow the cap: the newest
    lines matter most. A file within the cap is read whole. A larger one is
    read backwards, line by line, until the lines kept would exceed ``cap``.
    A line longer than ``cap`` (a torn or hostile write) is never held in
    memory: it is replaced by an empty line and reported in ``oversized``,
    and the lines before it are still read, so one huge line cannot hide the
    rest of the log. Reading backwards stops after ``TAIL_SCAN_LIMIT`` bytes.

    Args:
        path: File to read; a symlink to a regular file is followed.
        cap: Largest number of bytes of lines returned, and largest line kept.

    Returns:
        The lines, how many leading bytes were not read, and the oversized lines.

    Raises:
        FileNotFoundError: The file (or its directory) does not exist.
        RegistryFileError: Not a regular file.
        OSError: Any other read failure.
    """
    fd, info = _open_regular(path)
    try:
        if info.st_size <= cap:
            return TailRead(_pread_all(fd, 0, info.st_size), 0, [])
        return _read_lines_backwards(fd, info.st_size, cap)
    finally:
        os.close(fd)


def _pread_all(fd: int, offset: int, size: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    # Bounded by ``size`` even if the file grows while we read it.
    while total < size:
        chunk = os.pread(fd, min(_TAIL_BLOCK, size - total), offset + total)
        if not chunk:
            break
        parts.append(chunk)
        total += len(chunk)
    return b"".join(parts)


def _read_lines_backwards(fd: int, size: int, cap: int) -> TailRead:
    # A kept line and its newline must fit the window, so a longer one is oversized.
    max_line = cap - 1
    kept: list[bytes] = []  # newest first
    oversized_at: list[tuple[int, int]] = []  # (index in kept, length)
    total = 0
    line: list[bytes] = []  # the line being assembled, its pieces newest first
    line_len = 0
    line_end = size  # offset just past the line being assembled
    position = size
    while position > 0 and size - position < TAIL_SCAN_LIMIT:
        block_start = max(0, position - _TAIL_BLOCK)
        block = _pread_all(fd, block_start, position - block_start)
        position = block_start
        end = len(block)
        while True:
            newline = block.rfind(b"\n", 0, end)
            piece = block[newline + 1 : end]
            line_len += len(piece)
            if line_len <= max_line:
                line.append(piece)
            else:
                line.clear()  # never hold an oversized line
            if newline < 0:
                break
            # The line is complete: it starts right after this newline.
            if line_len > max_line:
                oversized_at.append((len(kept), line_len))
                kept.append(b"")
            elif total + line_len + 1 > cap:
                return _tail_result(kept, oversized_at, line_end + 1 if line_end < size else size)
            else:
                kept.append(b"".join(reversed(line)))
                total += line_len + 1
            line, line_len = [], 0
            line_end = block_start + newline
            end = newline
    if position > 0:
        # Gave up scanning: everything before the last complete line is skipped.
        return _tail_result(kept, oversized_at, line_end + 1 if line_end < size else size)
    # The file's first line, which no newline precedes.
    if line_len > max_line:
        oversized_at.append((len(kept), line_len))
        kept.append(b"")
    elif total + line_len > cap:
        return _tail_result(kept, oversized_at, line_end + 1 if line_end < size else size)
    else:
        kept.append(b"".join(reversed(line)))
    return _tail_result(kept, oversized_at, 0)


def _tail_result(kept: list[bytes], oversized_at: list[tuple[int, int]], skipped: int) -> TailRead:
    count = len(kept)
    # kept is newest first; line numbers count from the oldest line kept.
    oversized = sorted((count - index, length) for index, length in oversized_at)
    return TailRead(b"\n".join(reversed(kept)), skipped, oversized)


def require_utf8(path: Path) -> None:
    """Raise if ``path`` cannot be recorded in the registry's UTF-8 JSON files.

    Raises:
        RegistryFileError: (an ``OSError``) ``path`` holds bytes that are not UTF-8.
    """
    try:
        os.fspath(path).encode("utf-8")
    except UnicodeEncodeError:
        raise RegistryFileError(
            path,
            "is not valid UTF-8, so the registry's JSON files cannot record it; rename it",
            errno.EILSEQ,
        ) from None


def refuse_symlink(path: Path) -> None:
    """Raise if ``path`` exists as a symlink: registry files are never written through one."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise RegistryFileError(
            path,
            "is a symlink; the registry never writes through symlinks. Replace it with a "
            "regular file (or remove it) and retry",
            errno.ELOOP,
        )


def fsync_dir(directory: Path) -> None:
    """Make a rename or create inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        # Some filesystems (and platforms) cannot fsync a directory; the rename
        # itself is still atomic there, only its durability is weaker.
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(directory: Path) -> None:
    """Make every regular file and directory below ``directory`` durable.

    Symlinks and special files are skipped, never opened: a tree moved in
    from elsewhere may hold links out of it, or FIFOs that would block.
    """
    for dirpath, _, filenames in os.walk(directory):
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            if not stat.S_ISREG(os.lstat(path).st_mode):
                continue
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


_RENAME_NOREPLACE = 1
_AT_FDCWD = -100


def rename_noreplace(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, failing if ``target`` exists (even an empty directory).

    Plain ``rename`` silently replaces an empty directory created at
    ``target`` meanwhile; Linux's ``renameat2(RENAME_NOREPLACE)`` makes the
    check and the rename one step. Elsewhere (or on a filesystem without
    it) the check runs just before the rename, which narrows but cannot
    close the race; callers that can should hold the registry lock too.

    Raises:
        FileExistsError: ``target`` exists.
        OSError: The rename failed.
    """
    renameat2 = _renameat2()
    if renameat2 is not None:
        result = renameat2(
            _AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE
        )
        if result == 0:
            return
        import ctypes

        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise FileExistsError(err, os.strerror(err), os.fspath(target))
        if err not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(err, os.strerror(err), os.fspath(source), None, os.fspath(target))
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target))
    os.rename(source, target)


@functools.cache
def _renameat2() -> Any:
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    function.restype = ctypes.c_int
    return function


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of ``data`` to ``fd``, however many ``write()`` calls that takes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def is_temp_name(name: str) -> bool:
    """True for the names :func:`atomic_write` gives its temporary files."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def atomic_write(
    path: Path, data: bytes | Iterable[bytes | memoryview], *, durable: bool = True
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or new content, whole.

    Writes a uniquely named temporary file beside ``path``, fsyncs it,
    ``os.replace``-s it into place and fsyncs the directory. On any
    failure the temporary file is removed and ``path`` is untouched.

    Args:
        path: The file to replace.
        data: The new content, or its chunks in order (written without joining
            them, so a large derived file is never held twice in memory).
        durable: ``False`` skips both fsyncs, for derived state (the scan cache)
            that is rebuilt when lost: the replace stays atomic, only a power
            loss may leave the old content or a damaged file, which readers of
            derived state must detect anyway.

    Raises:
        RegistryFileError: ``path`` is a symlink.
        OSError: The write failed (disk full, file-size limit, permissions...).
    """
    refuse_symlink(path)
    # A unique name (mkstemp: O_EXCL | O_NOFOLLOW) lets concurrent writers never
    # collide even where the registry lock is a no-op (some NFS set-ups).
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tmp = Path(tmp_name)
    try:
        try:
            os.fchmod(fd, 0o644)
            for chunk in (data,) if isinstance(data, bytes) else data:
                write_all(fd, chunk)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        refuse_symlink(path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # The replace is the commit point: every reader now sees the new content, so
    # raising here would report a failure for a change that happened (and make the
    # pointer's caller undo its history entry while the pointer stays new). A
    # failed directory fsync only weakens durability against power loss.
    if not durable:
        return
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        log.warning(
            "%s was replaced, but fsyncing its directory failed (%s); the change is "
            "visible and may not survive a power loss",
            path,
            exc,
        )


def append_line(path: Path, line: bytes) -> int:
    """Append one line to ``path`` in a single write, fsynced, creating the file if needed.

    If the file's last line is torn (a crash mid-append), the new line
    starts on a line of its own. If the write fails, the file is cut back
    to its previous length.

    Args:
        path: The append-only log.
        line: One line, without its trailing newline.

    Returns:
        The file's length before the append, for :func:`truncate_to`.

    Raises:
        RegistryFileError: ``path`` is a symlink or not a regular file.
        OSError: The append failed; the file is as it was.
    """
    created = True
    try:
        fd = _open_no_follow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        created = False
        fd = _open_no_follow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        prefix = b""
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            prefix = b"\n"
        try:
            write_all(fd, prefix + line + b"\n")
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, size)
            os.fsync(fd)
            if created:
                # "As it was" means absent, not empty.
                with contextlib.suppress(OSError):
                    os.unlink(path)
            raise
        return size
    finally:
        os.close(fd)


def truncate_to(path: Path, size: int) -> None:
    """Cut ``path`` back to ``size`` bytes (undoing an :func:`append_line`), fsynced."""
    fd = _open_no_follow(path, os.O_RDWR)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def _open_no_follow(path: Path, flags: int) -> int:
    try:
        fd = os.open(path, flags | _NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_symlink(path)
        raise
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise RegistryFileError(path, "is not a regular file", errno.EINVAL)
    if info.st_nlink > 1:
        # A hard link, like a symlink, would make an in-place write land in another
        # file too (a `cp -al` backup, or a planted link to a system file).
        os.close(fd)
        raise RegistryFileError(
            path,
            f"has {info.st_nlink} hard links; the registry never writes in place to a "
            "file shared with another path. Replace it with a copy (cp, then mv) and retry",
            errno.EMLINK,
        )
    return fd


_held = threading.local()
_DIR_LOCK_POLL_S = 0.05
_dir_lock_unsupported: set[str] = set()


@contextlib.contextmanager
def registry_lock(models_dir: Path, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the registry's exclusive inter-process lock.

    Two locks, always taken in this order: a ``filelock.FileLock`` on
    ``models_dir/.taskclf.lock`` (what every taskclf version takes), then
    ``flock`` on the registry directory itself. The second is what makes
    the lock survive its file being deleted or replaced while held (tmp
    cleaners do that): a new file is a new inode, which a second writer
    would lock at once, but the directory cannot be unlinked while it
    holds bundles. Where directories cannot be flocked (NFS emulates
    ``flock`` with POSIX locks, which need a descriptor open for writing)
    the lock file alone is the lock, as before (docs/reliability.md §6).

    Re-entrant within a thread, so a lock holder (promotion) may call
    functions that lock again (``write_active_atomic``) without
    deadlocking itself. Other threads and processes wait.

    Raises:
        RegistryFileError: The lock file is a symlink.
        RegistryLockTimeout: The lock was not acquired within ``timeout_s``.
        OSError: The lock file cannot be created (read-only registry...).
    """
    lock_path = models_dir / LOCK_FILE
    key = str(lock_path)
    depths: dict[str, int] = _held.__dict__.setdefault("depths", {})
    if depths.get(key, 0) > 0:
        depths[key] += 1
        try:
            yield
        finally:
            depths[key] -= 1
        return
    from filelock import FileLock, Timeout

    refuse_symlink(lock_path)
    deadline = time.monotonic() + timeout_s
    lock = FileLock(key, timeout=timeout_s)
    try:
        lock.acquire()
    except Timeout:
        raise RegistryLockTimeout(lock_path, timeout_s) from None
    try:
        dir_fd = _lock_directory(models_dir, deadline)
    except BaseException:
        lock.release()
        raise
    if dir_fd == _TIMED_OUT:
        lock.release()
        raise RegistryLockTimeout(lock_path, timeout_s)
    depths[key] = 1
    try:
        yield
    finally:
        depths[key] = 0
        try:
            if dir_fd != _UNSUPPORTED:
                os.close(dir_fd)  # drops the flock (this process holds the only copy)
        finally:
            lock.release()


_TIMED_OUT = -1
_UNSUPPORTED = -2
# What flock on a directory raises where it cannot work (NFS: EBADF, no write access).
_DIR_LOCK_ERRNOS = frozenset({errno.EBADF, errno.ENOLCK, errno.EINVAL, errno.ENOTSUP, errno.ENOSYS})


def _lock_directory(models_dir: Path, deadline: float) -> int:
    """``flock`` the registry directory: its descriptor, ``_TIMED_OUT`` or ``_UNSUPPORTED``."""
    fd = os.open(models_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                pass
            except OSError as exc:
                if exc.errno not in _DIR_LOCK_ERRNOS:
                    raise
                if os.fspath(models_dir) not in _dir_lock_unsupported:
                    _dir_lock_unsupported.add(os.fspath(models_dir))
                    log.warning(
                        "Cannot lock the registry directory %s (%s); the lock file alone "
                        "guards it, so deleting that file while it is held is not detected",
                        models_dir,
                        exc.strerror,
                    )
                os.close(fd)
                return _UNSUPPORTED
            if time.monotonic() >= deadline:
                os.close(fd)
                return _TIMED_OUT
            # filelock waits the same way: flock itself has no timeout.
            time.sleep(_DIR_LOCK_POLL_S)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
