"""Where taskclf keeps derived state, and how it knows that state is stale.

The one home of what every cache shares (the scan cache,
:mod:`~taskclf.model_registry.scan_cache`; the resolution cache,
:mod:`~taskclf.model_registry.resolve_cache`; remote bundle copies,
:mod:`~taskclf.model_registry.bundle_cache`):

* the directory: ``$TASKCLF_CACHE_DIR`` when set (empty: caching off), else the
  user's cache directory (``$XDG_CACHE_HOME/taskclf`` on Linux);
* a registry's file in it, named by a hash of the registry's absolute path,
  its device and inode (a registry deleted and recreated at the same path
  starts afresh) and the effective user id (a result that depends on who
  reads is never handed to another user);
* the code's identity (:func:`code_identity`): a result derived by other
  code is not reused;
* stat keys, in the manner of git's index: what ``stat`` says about a file
  (size, mtime and ctime in nanoseconds, inode, device, mode), and the
  "racily clean" rule: a file whose timestamps are not older than the start
  of the work that read it by more than the timestamp granularity could be
  rewritten with the same size in the same clock tick, which no stat could
  tell apart, so what was read from it is never stored.

Standard library only (``platformdirs`` is imported when first needed): the
fast path of ``taskclf model resolve`` imports this before anything else.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import operator
import os
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CACHE_DIR_ENV = "TASKCLF_CACHE_DIR"
"""Directory for taskclf's caches; empty: no scan or resolution cache. Default: the user's."""

# Timestamps of a sub-second filesystem come from the kernel's coarse clock (one
# tick, 1-10 ms, behind the clock the scan reads), so a file changed within a few
# ticks of the read is racy; 50 ms leaves a wide margin. A file whose timestamps
# are whole seconds sits on a filesystem with 1 s (or FAT's 2 s) granularity.
RACY_WINDOW_NS = 50_000_000
COARSE_RACY_WINDOW_NS = 2_000_000_000
_SECOND_NS = 1_000_000_000

ABSENT = 0
"""The stat key of a file that does not exist."""

Key = list[int] | int
"""A file's stat key: ``[size, mtime_ns, ctime_ns, inode, device, mode]``, or :data:`ABSENT`."""

stat_fields = operator.attrgetter(
    "st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_dev", "st_mode"
)
"""The stat fields a key holds, in order (one C call per file)."""

KEY_FORMAT = "qqqQQQ"
"""The :mod:`struct` codes of a packed stat key's fields (little-endian, 8 bytes each)."""
KEY_STRUCT = struct.Struct("<" + KEY_FORMAT)
"""A stat key packed into 48 bytes (:func:`packed_key`), in :data:`stat_fields` order."""
PACKED_ABSENT = bytes(KEY_STRUCT.size)
"""The packed key of an absent file (no file has mode 0)."""
PACKED_UNKNOWN = b"\xff" * KEY_STRUCT.size
"""What a file whose stat cannot tell is packed as (size -1: no stored key equals it)."""


def packed_key(key: Key) -> bytes | None:
    """``key`` in 48 bytes (:data:`KEY_STRUCT`); ``None``: a value out of its range."""
    if key == ABSENT:
        return PACKED_ABSENT
    assert isinstance(key, list)
    try:
        return KEY_STRUCT.pack(*key)
    except struct.error:
        return None


def user_cache_root() -> Path:
    """The user's cache directory for taskclf, whatever ``$TASKCLF_CACHE_DIR`` says."""
    import platformdirs  # only caches need it: keep it out of start-up

    return Path(platformdirs.user_cache_dir("taskclf", appauthor=False))


def cache_root() -> Path | None:
    """The directory taskclf keeps its caches in, or ``None`` when caching is off."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override is not None:
        return Path(os.path.abspath(override)) if override else None
    return user_cache_root()


def registry_cache_file(models_dir: str | os.PathLike[str], kind: str, suffix: str) -> Path | None:
    """``<cache dir>/<kind>/<registry identity><suffix>`` for this user.

    ``None``: caching is off, or there is no registry at ``models_dir``.
    """
    base = cache_root()
    if base is None:
        return None
    root = os.path.abspath(models_dir)
    try:
        info = os.stat(root)
    except (OSError, ValueError):
        return None
    euid = os.geteuid() if hasattr(os, "geteuid") else 0
    identity = f"{os.fsencode(root)!r}\0{info.st_dev}\0{info.st_ino}\0{euid}"
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    return base / kind / f"{digest}{suffix}"


def key_of(info: os.stat_result | bool | None) -> tuple[Key, int] | None:
    """The stat key of a file as read, and the time it must be older than to be stored.

    ``info`` is the file's ``fstat`` when it was read, ``None`` when it was
    absent, ``False`` (or ``True``) when it could not be read: ``None`` is
    returned then, since such a result is never stored. The time is the
    newest of its mtime and ctime, moved forward by the granularity on a
    filesystem with whole-second timestamps; see :func:`racy`.
    """
    if info is None:
        return ABSENT, 0
    if info is False or info is True:
        return None
    key = list(stat_fields(info))
    newest = max(info.st_mtime_ns, info.st_ctime_ns)
    if info.st_mtime_ns % _SECOND_NS == 0 and info.st_ctime_ns % _SECOND_NS == 0:
        newest += COARSE_RACY_WINDOW_NS - RACY_WINDOW_NS
    return key, newest


def racy(newest: int, started_ns: int) -> bool:
    """Whether a file (its ``newest`` from :func:`key_of`) is too recent to store what was read.

    ``started_ns`` is the wall clock (``time.time_ns()``) taken before the
    file was read.
    """
    return newest >= started_ns - RACY_WINDOW_NS


def stat_key(path: str, dir_fd: int | None = None) -> Key | None:
    """The stat key of ``path`` now (:data:`ABSENT` if there is none); ``None``: cannot tell."""
    try:
        info = os.stat(path, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    except (OSError, ValueError):
        return None
    return list(stat_fields(info))


@functools.cache
def code_identity() -> str:
    """What identifies the code that derived a cached result (a digest).

    Python's version, taskclf's, and the size, mtime and inode of every file of
    the installed ``taskclf``, ``pydantic`` and ``pydantic_core`` packages: an
    upgrade, or an edited source tree, may judge the same files differently.
    About a millisecond (~200 stats), once per process.
    """
    import taskclf

    trees = [sys.version, taskclf.__version__, *map(tree_key, _code_dirs())]
    return hashlib.sha256(json.dumps(trees).encode("utf-8", "surrogateescape")).hexdigest()


def _code_dirs() -> Iterator[str]:
    import importlib.util

    yield os.path.dirname(os.path.abspath(sys.modules["taskclf"].__file__ or ""))
    for name in ("pydantic", "pydantic_core"):
        spec = importlib.util.find_spec(name)
        locations = spec.submodule_search_locations if spec is not None else None
        yield next(iter(locations), "") if locations else ""


def tree_key(top: str) -> list[Any]:
    """``[relative path, size, mtime_ns, inode]`` of every file below ``top`` (bytecode aside)."""
    found: list[Any] = []
    for directory, subdirs, names in os.walk(top):
        subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
        for name in sorted(names):
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                info = os.stat(path)
                found.append(
                    [os.path.relpath(path, top), info.st_size, info.st_mtime_ns, info.st_ino]
                )
    return found
