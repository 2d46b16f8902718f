"""The stat-keyed scan cache: repeat scans without re-reading unchanged bundles.

Derived state in the manner of git's index. For each bundle it keeps what
:func:`taskclf.model_registry.scan.read_bundle` found (the invalid reason,
the parsed ``metadata.json`` and ``metrics.json``), keyed by what ``stat``
says about both files (size, mtime and ctime in nanoseconds, inode, device
and mode; or that the file is absent). A cached result is used only when
both keys are unchanged; anything else is read from the files, so the
cache is never trusted over them.

"Racily clean" entries are never stored: a file whose mtime or ctime is not
older than the scan's start by more than the timestamp granularity could be
rewritten later with the same size and the same timestamps (same size, same
clock tick), which no stat could tell apart. Like git, such a bundle is read
again by the next scan, which stores it once its files are old enough.

Where it lives: one file per registry (and user) in the user's cache
directory (``$XDG_CACHE_HOME/taskclf/scan`` on Linux, see
:func:`cache_file`), or ``$TASKCLF_CACHE_DIR/scan`` when that is set; an
empty ``TASKCLF_CACHE_DIR`` turns the cache off. Never in the registry:
finding the best model, ``verify`` and ``prune --dry-run`` write nothing
there, a read-only registry scans like any other, and a result that
depends on who reads (a file only some users may read) is never handed to
another user. Deleting the file (or the directory) only makes the next
scan read everything again.

Format: a header line (JSON), one line per bundle
(``name<TAB>metadata key<TAB>metrics key<TAB>[reason, metadata, metrics]``,
the name ``unicode_escape``-d so no line holds a newline or tab, the last
field JSON) and an ``end <count> <crc32>`` line. No pickle or marshal: the file is
data, parsed and validated like a bundle file. Unchanged lines are copied
byte for byte into the next version of the file, and it is replaced
atomically (:func:`taskclf.model_registry._fs.atomic_write`), so concurrent
scanners never see a torn file; a damaged, truncated, foreign or
unreadable one is ignored and rebuilt. It is written only after a scan that
found something new or gone, and only for a registry scanned before: the
first scan of a registry (no cache file yet) leaves an empty ``.seen``
marker beside where the cache would be, since serialising every bundle
would cost it about half of what reading them does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskclf.model_registry._fs import absolute, atomic_write, read_capped

if TYPE_CHECKING:
    from pydantic import BaseModel

    from taskclf.model_registry.models import ModelBundle

CACHE_DIR_ENV = "TASKCLF_CACHE_DIR"
"""Directory for taskclf's caches; empty: no scan cache. Default: the user's cache directory."""

FORMAT = "taskclf-scan-cache"
VERSION = 1

# Timestamps of a sub-second filesystem come from the kernel's coarse clock (one
# tick, 1-10 ms, behind the clock the scan reads), so a file changed within a few
# ticks of the read is racy; 50 ms leaves a wide margin. A file whose timestamps
# are whole seconds sits on a filesystem with 1 s (or FAT's 2 s) granularity.
RACY_WINDOW_NS = 50_000_000
COARSE_RACY_WINDOW_NS = 2_000_000_000
_SECOND_NS = 1_000_000_000

# An entry larger than this is not stored (a huge params blob): the file stays
# proportional to the bundle count, which bounds what a load may read.
MAX_ENTRY_BYTES = 8192
_HEADER_BYTES = 1 << 16
_ABSENT = b"-"

log = logging.getLogger("taskclf.model_registry")

BuildBundle = Callable[[str, Any, Any, Any, Any], "ModelBundle"]
"""Makes the bundle ``name`` from a cached ``(reason, metadata, unset fields, metrics)``.

The parts are parsed JSON, unchecked: it raises ``ValueError`` or ``TypeError``
for parts a scan could not have stored (a damaged cache)."""

ReadBundle = Callable[[str, "FileStats"], "ModelBundle | None"]
"""Reads the bundle ``name`` from its files (``None``: its directory is gone), appending
what it found of each file to the list given (:data:`FileStats`)."""


def cache_root() -> Path | None:
    """The directory taskclf keeps its caches in, or ``None`` when caching is off."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override is not None:
        return absolute(override) if override else None
    import platformdirs  # only scans need it: keep it out of start-up

    return Path(platformdirs.user_cache_dir("taskclf", appauthor=False))


def cache_file(models_dir: str | os.PathLike[str]) -> Path | None:
    """The scan cache file of ``models_dir`` for this user; ``None``: caching off, or no registry.

    The name is a hash of the registry's absolute path, its device and inode
    (a registry deleted and recreated at the same path starts afresh) and the
    effective user id.
    """
    root = absolute(models_dir)
    base = cache_root()
    if base is None:
        return None
    try:
        info = os.stat(root)
    except (OSError, ValueError):
        return None
    return base / "scan" / f"{_identity_hash(root, info)}.cache"


def _identity_hash(root: Path, info: os.stat_result) -> str:
    euid = os.geteuid() if hasattr(os, "geteuid") else 0
    identity = f"{os.fsencode(root)!r}\0{info.st_dev}\0{info.st_ino}\0{euid}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]


FileStats = list["os.stat_result | bool | None"]
"""What reading each bundle file found, in order: its ``fstat`` taken before the
read, ``None`` (absent) or ``False`` (unreadable: never cached)."""

_Key = tuple[bytes, int] | None
"""A file's stat key and its newest timestamp (``_ABSENT``, 0 when absent); ``None``: unknown."""


def _key_of(info: os.stat_result | bool | None) -> _Key:
    if info is None:
        return _ABSENT, 0
    if info is False or info is True:
        return None
    key = b"%d,%d,%d,%d,%d,%d" % (
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_ino,
        info.st_dev,
        info.st_mode,
    )
    newest = max(info.st_mtime_ns, info.st_ctime_ns)
    if info.st_mtime_ns % _SECOND_NS == 0 and info.st_ctime_ns % _SECOND_NS == 0:
        # Whole-second timestamps: widen the racy window to that granularity.
        newest += COARSE_RACY_WINDOW_NS - RACY_WINDOW_NS
    return key, newest


def _stat_key(path: str) -> bytes | None:
    """The stat key of ``path`` now (``_ABSENT`` if there is none); ``None``: cannot tell."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return _ABSENT
    except (OSError, ValueError):
        return None
    return b"%d,%d,%d,%d,%d,%d" % (
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_ino,
        info.st_dev,
        info.st_mode,
    )


def scan_with_cache(
    root: Path,
    names: Sequence[str],
    read: ReadBundle,
    build: BuildBundle,
    metadata_file: str,
    metrics_file: str,
) -> list[ModelBundle]:
    """Every bundle of ``names``, from the cache where its files' stats are unchanged.

    Args:
        root: The registry directory (absolute).
        names: The bundle directory names, in result order.
        read: Reads one bundle from its files.
        build: Makes a bundle from a cached ``(reason, metadata, unset, metrics)``.
        metadata_file: Name of the metadata file in a bundle.
        metrics_file: Name of the metrics file in a bundle.

    Returns:
        What reading every bundle would return, in ``names`` order
        (directories gone meanwhile left out). Never raises for anything in
        the cache: a cache that cannot be used is ignored.
    """
    path = cache_file(root)
    if path is None:
        return [bundle for name in names if (bundle := read(name, [])) is not None]
    # Taken before any stat: an entry is stored only if its files are older than this.
    started_ns = time.time_ns()
    header = _header(root)
    data, index = _load(path, header, len(names))
    # Serialising every bundle costs a first scan about half the floor, so a registry
    # gets a cache only once it is scanned again: a one-off scan leaves a marker only.
    caching = bool(data) or _seen(path)
    view = memoryview(data)
    prefix = os.path.join(os.fspath(root), "")
    # Unchanged entries are written back as slices of the file read: never copied.
    lines: list[bytes | memoryview] = []
    bundles: list[ModelBundle] = []
    changed = False
    for name in names:
        escaped = name.encode("unicode_escape")
        entry = index.pop(escaped, None) if index else None
        if entry is not None:
            base = prefix + name
            if entry[0] == _stat_key(f"{base}/{metadata_file}") and entry[1] == _stat_key(
                f"{base}/{metrics_file}"
            ):
                bundle = _cached_bundle(name, data[entry[3] : entry[4]], build)
                if bundle is not None:
                    bundles.append(bundle)
                    lines.append(view[entry[2] : entry[4]])
                    continue
                # A line that does not parse: the file is damaged, trust none of the rest.
                index.clear()
            changed = True
        # Keyed by the fstat of each file as it was read, so the entry describes
        # exactly the bytes parsed (a change after that makes the next stat differ).
        stats: FileStats = []
        fresh = read(name, stats)
        if fresh is None:
            continue
        bundles.append(fresh)
        if caching and (line := _entry_line(escaped, stats, fresh, started_ns)) is not None:
            lines.append(line)
            changed = True
    changed = changed or bool(index)  # entries of bundles no longer there
    if not caching:
        _save(_marker(path), b"", [])
    elif changed:
        _save(path, header, lines)
    return bundles


def _marker(path: Path) -> Path:
    return path.with_suffix(".seen")


def _seen(path: Path) -> bool:
    """True if this registry was scanned before (its cache file or its marker exists)."""
    return os.path.lexists(path) or os.path.lexists(_marker(path))


def _cached_bundle(name: str, payload: bytes, build: BuildBundle) -> ModelBundle | None:
    """The bundle a cache line holds, or ``None`` if the line is damaged."""
    import pydantic_core

    try:
        reason, metadata, unset, metrics = pydantic_core.from_json(payload)
        return build(name, reason, metadata, unset, metrics)
    except (ValueError, TypeError, RecursionError):
        log.debug("Ignoring a damaged scan cache entry for %r", name, exc_info=True)
        return None


def _entry_line(
    escaped: bytes, stats: FileStats, bundle: ModelBundle, started_ns: int
) -> bytes | None:
    """The cache line for a bundle just read, or ``None`` when it must not be cached."""
    if len(stats) != 2:
        return None
    metadata_key, metrics_key = _key_of(stats[0]), _key_of(stats[1])
    if metadata_key is None or metrics_key is None:
        return None
    if max(metadata_key[1], metrics_key[1]) >= started_ns - RACY_WINDOW_NS:
        return None  # racily clean: a same-size rewrite within the tick would look unchanged
    metadata = bundle.metadata
    if metadata is not None and "created_at" not in metadata.model_fields_set:
        return None  # its created_at defaults to the time of parsing: read it fresh each time
    payload = _payload(bundle)
    if payload is None:
        return None
    line = b"\t".join((escaped, metadata_key[0], metrics_key[0], payload)) + b"\n"
    return line if len(line) <= MAX_ENTRY_BYTES else None


# Metadata fields-sets are shared between bundles (scan._share_fields_set): the JSON
# of each one's unset fields is computed once. The set itself is kept to make the id safe.
_UNSET_JSON: dict[int, tuple[object, bytes]] = {}


def _payload(bundle: ModelBundle) -> bytes | None:
    """``[reason, metadata, unset metadata fields, metrics]`` as JSON (the models whole)."""
    import pydantic_core

    metadata, metrics = bundle.metadata, bundle.metrics
    reason = bundle.invalid_reason
    parts = [b"null" if reason is None else json.dumps(reason).encode("ascii")]
    try:
        if metadata is None:
            parts += [b"null", b"null"]
        else:
            # "constants" keeps NaN and Infinity in params as themselves (the default
            # writes null); the unset fields let the cached model's fields-set match.
            parts.append(pydantic_core.to_json(metadata, inf_nan_mode="constants"))
            parts.append(_unset_json(metadata))
        parts.append(
            b"null" if metrics is None else pydantic_core.to_json(metrics, inf_nan_mode="constants")
        )
    except (ValueError, TypeError):  # pragma: no cover - parsed JSON always serialises
        return None
    return b"[" + b",".join(parts) + b"]"


def _unset_json(model: BaseModel) -> bytes:
    fields_set = model.model_fields_set
    known = _UNSET_JSON.get(id(fields_set))
    if known is not None and known[0] is fields_set:
        return known[1]
    unset = json.dumps(sorted(set(type(model).model_fields) - fields_set)).encode("ascii")
    if len(_UNSET_JSON) < 256:
        _UNSET_JSON[id(fields_set)] = (fields_set, unset)
    return unset


def _header(root: Path) -> bytes:
    try:
        info = os.stat(root)
        device, inode = info.st_dev, info.st_ino
    except (OSError, ValueError):
        device = inode = -1
    header = {
        "format": FORMAT,
        "version": VERSION,
        "registry": os.fsencode(root).decode("utf-8", "backslashreplace"),
        "device": device,
        "inode": inode,
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"


_Entry = tuple[bytes, bytes, int, int, int]
"""A cache line: metadata key, metrics key, offsets of its start, its payload, its end."""


def _load(path: Path, header: bytes, count: int) -> tuple[bytes, dict[bytes, _Entry]]:
    """The cache file's bytes and its entries by escaped name; ``b"", {}`` if unusable."""
    try:
        data = read_capped(path, len(header) + _HEADER_BYTES + MAX_ENTRY_BYTES * (count + 16))
    except FileNotFoundError:
        return b"", {}
    except (OSError, ValueError) as exc:
        log.debug("Ignoring the scan cache %s: %s", path, exc)
        return b"", {}
    entries = _index(data, header)
    if entries is None:
        log.debug("Ignoring the scan cache %s: not a complete cache of this registry", path)
        return b"", {}
    return data, entries


def _index(data: bytes, header: bytes) -> dict[bytes, _Entry] | None:
    """Where each entry of a whole cache file is, or ``None`` if the file is not whole.

    Whole: the header this registry writes, the lines, and ``end <count> <crc>``
    matching them. Lines are located, not copied (the file may be 100 MB).
    """
    if not data.startswith(header) or not data.endswith(b"\n"):
        return None
    trailer_start = data.rfind(b"\n", 0, len(data) - 1) + 1
    if trailer_start < len(header):
        return None
    entries: dict[bytes, _Entry] = {}
    find = data.find
    position = len(header)
    while position < trailer_start:
        end = find(b"\n", position, trailer_start) + 1
        first = find(b"\t", position, end)
        second = find(b"\t", first + 1, end)
        third = find(b"\t", second + 1, end)
        if end <= 0 or min(first, second, third) < 0:
            return None
        entries[data[position:first]] = (
            data[first + 1 : second],
            data[second + 1 : third],
            position,
            third + 1,
            end,
        )
        position = end
    expected = _trailer(len(entries), _crc(memoryview(data)[len(header) : trailer_start]))
    if data[trailer_start:-1] != expected:
        return None
    return entries


def _crc(body: bytes | memoryview) -> int:
    # Catches a damaged file (a flipped byte in a number parses fine); not a defence
    # against someone who can write the user's cache directory.
    return zlib.crc32(body)


def _trailer(count: int, crc: int) -> bytes:
    return b"end %d %08x" % (count, crc)


def _save(path: Path, header: bytes, lines: list[bytes | memoryview]) -> None:
    """Replace the cache file (or, with an empty header, the marker); a failure only costs speed."""
    try:
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700, parents=True)
        if not header:
            atomic_write(path, b"", durable=False)
            return
        crc = 0
        for line in lines:
            crc = zlib.crc32(line, crc)
        atomic_write(path, [header, *lines, _trailer(len(lines), crc) + b"\n"], durable=False)
    except (OSError, ValueError) as exc:
        log.debug("Could not write the scan cache %s: %s", path, exc)
