"""The resolution cache: a health check of an unchanged registry without validating again.

Services and cron jobs run ``taskclf model resolve`` again and again on a
registry whose pointer has not moved. Following the pointer is cheap; what
costs is the process: importing pydantic and building its validators takes
most of the command's time. So when a resolution follows a healthy pointer
(nothing repaired, nothing warned), its answer is kept with the stat key of
every file it depends on, and the next identical request whose files all
still have those keys gets the answer without importing pydantic.

What an answer depends on, and so what it is keyed by:

* the request: the registry's absolute path, the alias, ``--labels`` and
  every ``$TASKCLF_*`` variable (``$TASKCLF_LABELS`` among them);
* the code: taskclf's version and the stat of every file of the installed
  ``taskclf`` package, of pydantic and of pydantic-core (an upgrade, or an
  edited source tree, is a different resolver), and the Python version;
* the files: ``registry.toml`` (or that it is absent), the alias's pointer
  file, the bundle's ``metadata.json`` and ``metrics.json`` (stat keys as
  the scan cache's: size, mtime and ctime in nanoseconds, inode, device,
  mode), and the identity and type of the registry directory, of the
  bundle's directory and of ``.aliases`` (device, inode, mode: a symlink
  put in its place is a change).

An answer is stored only if none of those files changed in the racy
window before the resolution started (see
:mod:`taskclf.model_registry.caching`), so a later rewrite, even with the
same size in the same second, changes a stat key; and only for a local
registry (an object store has no stat). Anything unusable in the cache file
(missing, damaged, foreign, too large) is a miss, never an error: the full
resolution runs and reports what it finds.

The file lives beside the scan cache (``<cache dir>/resolve/``, one per
registry and user); an empty ``$TASKCLF_CACHE_DIR`` turns it off, and
deleting it only makes the next resolution validate again. Standard library
only: the CLI's fast path imports this module before deciding whether it
needs pydantic.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskclf.model_registry.caching import (
    code_identity,
    key_of,
    racy,
    registry_cache_file,
    stat_key,
)

FORMAT = "taskclf-resolve-cache"
VERSION = 1
ENV_PREFIX = "TASKCLF_"
"""Every variable of taskclf's (``$TASKCLF_LABELS`` among them) is part of a request."""
MAX_ENTRIES = 16
"""Requests remembered per registry (aliases x label overrides); the oldest go first."""
MAX_FILE_BYTES = 1 << 20

_FILE, _DIR, _LINK = "file", "dir", "lstat"
"""How a dependency is keyed: a file's full stat key; a directory's identity and
type (following symlinks: its timestamps move with every bundle promoted);
``lstat`` identity and type (the path itself must not become a symlink)."""

log = logging.getLogger("taskclf.model_registry")


def cache_path(root: Path) -> Path | None:
    """The resolution cache file of the registry ``root``; ``None``: caching is off."""
    return registry_cache_file(root, "resolve", ".json")


def lookup(root: Path, alias: str, labels: str | None) -> Any:
    """The stored answer for this request, if every file it depends on is unchanged.

    Args:
        root: The registry directory (absolute, local).
        alias: The alias resolved.
        labels: The ``--labels`` override, or ``None``.

    Returns:
        The JSON value given to :meth:`Recorder.store`, or ``None``.
    """
    path = cache_path(root)
    if path is None:
        return None
    try:
        document = _read(path, check_owner=True)
        if document is None:
            return None
        request, code = _request(root, alias, labels), code_identity()
        for entry in document["entries"]:
            if entry["request"] == request and entry["code"] == code:
                unchanged = all(_key(name, how) == key for name, how, key in entry["files"])
                return entry["answer"] if unchanged else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass  # no file, or not one this version wrote: resolve as if there were none
    return None


class Recorder:
    """Records a resolution so that its answer can be stored afterwards.

    Used as a context manager around the resolution: it takes the time before
    any file is read and notes whether the library warned about anything
    (an answer that came with a warning is never replayed without it).
    """

    def __init__(self, root: Path, alias: str, labels: str | None) -> None:
        self._root, self._alias, self._labels = root, alias, labels
        self._started_ns = 0
        self._handler = _WarningSeen()

    def __enter__(self) -> Recorder:
        self._started_ns = time.time_ns()
        logging.getLogger("taskclf").addHandler(self._handler)
        return self

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger("taskclf").removeHandler(self._handler)

    def store(self, pointer_file: Path, config_file: Path, bundle_dir: Path, answer: Any) -> bool:
        """Keep ``answer`` for the next identical request, if it may be replayed.

        Args:
            pointer_file: The alias's pointer file that was followed.
            config_file: The registry's ``registry.toml`` (present or not).
            bundle_dir: The bundle the pointer led to.
            answer: A JSON value (what the caller needs to answer again).

        Returns:
            Whether it was stored. Not when the library warned, when a file it
            depends on changed in the racy window or cannot be examined, or
            when the cache cannot be written (logged at debug level only: a
            resolution never fails for its cache).
        """
        path = cache_path(self._root)
        if path is None or self._handler.seen:
            return False
        files = _dependencies(self._root, self._alias, pointer_file, config_file, bundle_dir)
        keyed: list[list[Any]] = []
        for name, how in files:
            key = _key(name, how, started_ns=self._started_ns)
            if key is None:
                return False
            keyed.append([name, how, key])
        entry = {
            "request": _request(self._root, self._alias, self._labels),
            "code": code_identity(),
            "files": keyed,
            "answer": answer,
        }
        try:
            self._write(path, entry)
        except (OSError, ValueError, TypeError) as exc:
            log.debug("Could not store the resolution in %s: %s", path, exc)
            return False
        return True

    @staticmethod
    def _write(path: Path, entry: dict[str, Any]) -> None:
        from taskclf.model_registry._fs import atomic_write

        others: list[Any] = []
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError, AttributeError):
            document = _read(path, check_owner=False)
            if document is not None:
                others = [e for e in document["entries"] if e["request"] != entry["request"]]
        entries = [*others[-(MAX_ENTRIES - 1) :], entry]
        data = json.dumps({"format": FORMAT, "version": VERSION, "entries": entries})
        encoded = data.encode("utf-8", "surrogateescape")
        if len(encoded) > MAX_FILE_BYTES:
            encoded = json.dumps({"format": FORMAT, "version": VERSION, "entries": [entry]}).encode(
                "utf-8", "surrogateescape"
            )
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700, parents=True)
        atomic_write(path, encoded, durable=False)


def _read(path: Path, *, check_owner: bool) -> Any:
    """The cache file's document if it is one this version wrote, else ``None``.

    With ``check_owner``, a file another user could have written is refused:
    its answers would decide which model a service runs.

    Raises:
        OSError, ValueError: The file cannot be read, or is not JSON.
    """
    with open(path, "rb") as file:
        if check_owner:
            info = os.fstat(file.fileno())
            if info.st_uid != _euid() or info.st_mode & 0o022:
                return None
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        return None
    document = json.loads(raw)
    if not isinstance(document, dict):
        return None
    if document.get("format") != FORMAT or document.get("version") != VERSION:
        return None
    return document


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


class _WarningSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = False

    def emit(self, record: logging.LogRecord) -> None:
        self.seen = True


def _request(root: Path, alias: str, labels: str | None) -> list[Any]:
    settings = sorted([k, v] for k, v in os.environ.items() if k.startswith(ENV_PREFIX))
    return [os.fsdecode(root), alias, labels, settings]


def _dependencies(
    root: Path, alias: str, pointer_file: Path, config_file: Path, bundle_dir: Path
) -> Sequence[tuple[str, str]]:
    files = [
        (os.fsdecode(root), _DIR),
        (os.fsdecode(config_file), _FILE),
        (os.fsdecode(pointer_file), _FILE),
        (os.fsdecode(bundle_dir), _DIR),
    ]
    if alias != "active":
        files.append((os.fsdecode(pointer_file.parent), _LINK))
    # Imported here: the bundle's file names live with the code that reads them.
    from taskclf.model_registry.scan import METADATA_FILE, METRICS_FILE

    files += [
        (os.path.join(os.fsdecode(bundle_dir), n), _FILE) for n in (METADATA_FILE, METRICS_FILE)
    ]
    return files


def _key(name: str, how: str, *, started_ns: int | None = None) -> Any:
    """The key of one dependency now; ``None``: unusable (or, with ``started_ns``, racy)."""
    if how == _FILE:
        if started_ns is None:
            return stat_key(name)
        try:
            info: os.stat_result | None = os.stat(name)
        except (FileNotFoundError, NotADirectoryError):
            info = None
        except (OSError, ValueError):
            return None
        keyed = key_of(info)
        if keyed is None or racy(keyed[1], started_ns):
            return None
        return keyed[0]
    try:
        info = os.lstat(name) if how == _LINK else os.stat(name)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    except (OSError, ValueError):
        return None
    return [info.st_dev, info.st_ino, info.st_mode]
