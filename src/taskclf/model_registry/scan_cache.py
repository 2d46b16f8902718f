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
directory (``$XDG_CACHE_HOME/taskclf/scan`` on Linux), or
``$TASKCLF_CACHE_DIR/scan`` when that is set; an empty ``TASKCLF_CACHE_DIR``
turns the cache off (:mod:`taskclf.model_registry.caching`). Never in the registry:
finding the best model, ``verify`` and ``prune --dry-run`` write nothing
there, a read-only registry scans like any other, and a result that
depends on who reads (a file only some users may read) is never handed to
another user. Deleting the file (or the directory) only makes the next
scan read everything again.

Format (version 5; any other version is ignored and rebuilt): a header line
(JSON: format, version, registry path, device and inode, and the identity of the
code that wrote it, :func:`~taskclf.model_registry.caching.code_identity`); a
prelude line ``index <index length> <index crc32> <keys length> <keys crc32>
<payloads length> <payloads crc32> <count>`` (a scan checks it and reads the
index and the keys alone; the payloads are read, and their checksum checked,
only when a bundle first needs one); an index line (JSON: a table of label
classes, ``[schema_version, schema_hash, sorted labels]``, and per bundle a
record ``[name, payload start, payload length, invalid reason, label class
(-1: no metadata), has metrics, macro F1, weighted F1, created_at in
microseconds]``,
what selection reads, then what a ``train list`` row reads (``created_at`` as
written, macro and weighted F1 as they are, BreakIdle and lowest class
precision: :class:`~taskclf.model_registry.lazy_bundle.RowFacts`)); the stat
keys, binary: per record the metadata key then the metrics key, each packed
in 48 bytes (:data:`~taskclf.model_registry.caching.KEY_STRUCT`, little-endian),
so that an unchanged registry is told apart by comparing two byte strings;
one payload line per record, in order (``[metadata, unset metadata fields,
metrics]``, the models whole), nothing after them. No
pickle or marshal: the file is data, parsed and checked like a bundle
file. A bundle served from it is built from its record alone
(:mod:`taskclf.model_registry.lazy_bundle`); its payload is parsed when
its ``metadata``, ``metrics`` or ``created_at`` is first read. Unchanged
payloads are copied byte for byte into the next version of the file, and it is replaced atomically
(:func:`taskclf.model_registry._fs.atomic_write`), so concurrent scanners
never see a torn file; a damaged, truncated, foreign or unreadable one is
ignored and rebuilt (a payload that passes the checksum yet does not parse
is found on first access: that bundle is read from its files instead and
the file is dropped). It is rewritten only by a scan that found more than 1
bundle in :data:`REWRITE_EVERY` new, changed or gone, and only for a registry
scanned before: the first scan of a
registry (no cache file yet) leaves an empty ``.seen`` marker beside where
the cache would be, since serialising every bundle would cost it about half
of what reading them does.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from functools import partial
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from taskclf.model_registry._fs import PinnedFile, atomic_write
from taskclf.model_registry.caching import (
    KEY_FORMAT,
    PACKED_UNKNOWN,
    code_identity,
    key_of,
    packed_key,
    racy,
    registry_cache_file,
    stat_fields,
    stat_key,
)
from taskclf.model_registry.lazy_bundle import (
    ROW_FACTS_AT,
    BundleFacts,
    CacheContext,
    Parts,
    PayloadsGone,
    RowFacts,
    Source,
    cached_bundles,
    row_facts,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

    from taskclf.model_registry.models import ModelBundle

FORMAT = "taskclf-scan-cache"
VERSION = 5

# Rewriting the file costs about what reading 1 bundle in 25 does (10,000 bundles: 11 MB
# serialised and written, ~30 ms), so a scan leaves it as it is until more than 1 bundle
# in 32 is missing from it or outdated (those are read from their files until then):
# a registry that changes by a bundle at a time is not rewritten whole every time.
REWRITE_EVERY = 32

# An entry larger than this is not stored (a huge params blob): the file stays
# proportional to the bundle count, which bounds what a load may read.
MAX_ENTRY_BYTES = 8192
# Likewise a created_at longer than this (never a real timestamp) keeps its record out.
MAX_CREATED_AT_CHARS = 128
_HEADER_BYTES = 1 << 16
_PRELUDE_BYTES = 128
# An index record is ~180 bytes (the facts, the row facts, the name).
_INDEX_BYTES_PER_ENTRY = 1024
# Both stat keys of a bundle, packed (one call per bundle).
_PAIR = struct.Struct("<" + 2 * KEY_FORMAT)
_KEYS_BYTES = _PAIR.size

log = logging.getLogger("taskclf.model_registry")

ReadBundle = Callable[[str, "FileStats"], "ModelBundle | None"]
"""Reads the bundle ``name`` from its files (``None``: its directory is gone), appending
what it found of each file to the list given (:data:`FileStats`)."""


def cache_file(models_dir: str | os.PathLike[str]) -> Path | None:
    """The scan cache file of ``models_dir`` for this user; ``None``: caching off, or no registry.

    Named as every registry cache is (:func:`~taskclf.model_registry.caching.registry_cache_file`).
    """
    return registry_cache_file(models_dir, "scan", ".cache")


FileStats = list["os.stat_result | bool | None"]
"""What reading each bundle file found, in order: its ``fstat`` taken before the
read, ``None`` (absent) or ``False`` (unreadable: never cached)."""

_STAT_DIR_FD = os.stat in os.supports_dir_fd
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)


BuildParts = Callable[[bytes, bool], Parts]
"""Builds a bundle's parts from its cached payload (and whether it is valid).

The payload is unchecked JSON: it raises ``ValueError`` or ``TypeError`` for
one a scan could not have stored (a damaged cache)."""

Summarise = Callable[["ModelBundle"], BundleFacts]
"""The facts selection reads of a bundle just read (``selection.bundle_facts``)."""


class _Region(NamedTuple):
    """Where a cache file's payloads are, and what they must match when read."""

    file: PinnedFile
    """The file the index was read from, held open: another scan may replace the
    cache file (or a user delete it) before a bundle first needs its payload,
    and this scan's bundles must complete from the version they were indexed in."""
    offset: int
    length: int
    crc: int


MakeContext = Callable[["_Region | None"], CacheContext]
"""The context of a scan's cached bundles, given the region of the file it uses."""


class _Loaded(NamedTuple):
    """A usable cache file: its entries in index order, their stat keys, where its payloads are."""

    names: list[str]
    entries: list[Source]
    """The entry of each of ``names``, in the same order: the source of its cached bundle."""
    keys: bytes
    """Both packed stat keys of each entry, in the same order."""
    classes: list[Any]
    region: _Region | None
    """``None``: no usable file."""
    snapshot: str | None
    """What identifies the file's content (see :attr:`Scanned.snapshot`)."""
    context: CacheContext | None
    """What its cached bundles share (their payloads among it)."""


_NOTHING = _Loaded([], [], b"", [], None, None, None)


def scan_with_cache(
    root: Path,
    names: Sequence[str],
    read: ReadBundle,
    build: BuildParts,
    summarise: Summarise,
    metadata_file: str,
    metrics_file: str,
) -> Scanned:
    """Every bundle of ``names``, from the cache where its files' stats are unchanged.

    Args:
        root: The registry directory (absolute).
        names: The bundle directory names, in result order.
        read: Reads one bundle from its files.
        build: Makes a cached bundle's parts from its payload, on first access.
        summarise: The facts selection reads of a bundle just read.
        metadata_file: Name of the metadata file in a bundle.
        metrics_file: Name of the metrics file in a bundle.

    Returns:
        What reading every bundle would return, in ``names`` order
        (directories gone meanwhile left out); bundles from the cache build
        their ``metadata``, ``metrics``, ``path`` and ``created_at`` when
        first read (:mod:`taskclf.model_registry.lazy_bundle`). With them
        the snapshot, when every bundle came from the cache file unchanged.
        Never raises for anything in the cache: a cache that cannot be used
        is ignored.
    """
    path = cache_file(root)
    if path is None:
        return Scanned([bundle for name in names if (bundle := read(name, [])) is not None], None)
    # Taken before any stat: an entry is stored only if its files are older than this.
    started_ns = time.time_ns()
    header = _header(root)

    def make_context(region: _Region | None) -> CacheContext:
        return CacheContext(root, _payload_loader(path, region), build, _fallback(root, path, read))

    loaded = _load(path, header, len(names), make_context)
    # Serialising every bundle costs a first scan about half the floor, so a registry
    # gets a cache only once it is scanned again: a one-off scan leaves a marker only.
    caching = loaded.region is not None or _seen(path)

    def from_files(name: str, later: bool = False) -> tuple[ModelBundle, Any] | None:
        """The bundle read from its files, and its new entry (``None``: not to be cached).

        ``later``: the entry is made only if the file is rewritten (a ``partial``).
        """
        # Keyed by the fstat of each file as it was read, so the entry describes
        # exactly the bytes parsed (a change after that makes the next stat differ).
        stats: FileStats = []
        fresh = read(name, stats)
        if fresh is None:
            return None
        if not caching:
            return fresh, None
        if later:
            return fresh, partial(_entry, name, stats, fresh, started_ns, summarise)
        return fresh, _entry(name, stats, fresh, started_ns, summarise)

    bundles: list[Any]
    # What the next version of the file holds, per bundle: the number of its entry in
    # the file read (unchanged), a new entry (a partial: made only if written), or None.
    kept: list[Any] = []
    numbers: Sequence[int | None] = ()
    fresh: dict[int, Any] = {}
    snapshot = None
    if not loaded.names:  # a first scan (or a cache unusable): read every bundle
        bundles = []
        for name in names:
            if (read_now := from_files(name)) is not None:
                bundles.append(read_now[0])
                kept.append(read_now[1])
        outdated = len(names)
    else:
        bundles, numbers, stale, matched = _from_cache(
            names, loaded, root, suffixes=(f"/{metadata_file}", f"/{metrics_file}")
        )
        # Entries the file lacks or whose stat keys no longer hold, and those of bundles gone.
        outdated = len(stale) + len(loaded.names) - matched
        for position, name in stale:
            # Until the file is rewritten (1 bundle in REWRITE_EVERY), these are read
            # again by every scan: their entries are made only if it is.
            read_now = from_files(name, later=True)
            fresh[position] = None if read_now is None else read_now[1]
            if read_now is not None:
                bundles[position] = read_now[0]
        if stale:
            # Gone meanwhile (never read).
            bundles = [bundle for bundle in bundles if bundle is not None]
        elif matched == len(loaded.names) == len(names):
            snapshot = loaded.snapshot  # every bundle the file has, and only those, unchanged
    if not caching:
        _save(_marker(path), b"", [])
    elif outdated > (len(names) // REWRITE_EVERY if loaded.region else 0):
        if loaded.names:
            kept = [fresh.get(position, number) for position, number in enumerate(numbers)]
        kept = [entry() if type(entry) is partial else entry for entry in kept]
        body = _file_body([entry for entry in kept if entry is not None], loaded)
        if body is not None:
            _save(path, header, body)
    return Scanned(bundles, snapshot)


class Scanned(NamedTuple):
    """What :func:`scan_with_cache` found."""

    bundles: list[ModelBundle]
    snapshot: str | None
    """When every bundle came from the cache file, unchanged, and it holds no others: what
    identifies that file's content (a digest of its header and prelude, which hold the code
    that wrote it, the registry, and the lengths and checksums of everything after them).
    Two scans with the same snapshot found the same bundles with the same facts. ``None``
    otherwise."""


def _from_cache(
    names: Sequence[str],
    loaded: _Loaded,
    root: Path,
    suffixes: tuple[str, str],
) -> _Scanned:
    """Each bundle of ``names`` whose stat keys are unchanged since ``loaded`` was written."""
    try:
        dir_fd = os.open(root, _DIR_FLAGS) if _STAT_DIR_FD else None
    except OSError:
        dir_fd = None
    base = "" if dir_fd is not None else os.path.join(os.fspath(root), "")
    try:
        current = _current_keys(names, base, dir_fd, suffixes)
    finally:
        if dir_fd is not None:
            os.close(dir_fd)
    # The registry has exactly the bundles the file has (the usual repeat scan):
    # no look-up by name, and one comparison of two byte strings says whether any
    # file changed. Else each name's number in the file, or None.
    numbers: Sequence[int | None]
    if loaded.names == names:
        aligned: Sequence[Source | None] = loaded.entries
        numbers = range(len(names))
        changed = [] if current == loaded.keys else _changed(current, loaded.keys, numbers)
    else:
        numbers = list(map(dict(zip(loaded.names, count())).get, names))
        entries = loaded.entries
        aligned = [None if number is None else entries[number] for number in numbers]
        changed = _changed(current, loaded.keys, numbers)
    bundles: list[Any] = cached_bundles(names, aligned)
    for position in changed:
        bundles[position] = None
    matched = len(aligned) - aligned.count(None)
    return bundles, numbers, [(position, names[position]) for position in changed], matched


def _marker(path: Path) -> Path:
    return path.with_suffix(".seen")


def _seen(path: Path) -> bool:
    """True if this registry was scanned before (its cache file or its marker exists)."""
    return os.path.lexists(path) or os.path.lexists(_marker(path))


_Scanned = tuple[list[Any], Sequence[int | None], list[tuple[int, str]], int]
"""``(bundles, numbers, stale, matched)``: per name its cached bundle (``None`` at the
``(position, name)`` of each stale one, to be read from its files) and the number of its
entry in the file (``None``: not in it); and how many names had an entry."""


def _current_keys(
    names: Sequence[str], base: str, dir_fd: int | None, suffixes: tuple[str, str]
) -> bytes:
    """Both packed stat keys of every one of ``names`` now, in order (as the file keeps them).

    With the two stats, this loop is most of a repeat scan: no call per file
    beyond ``stat`` and ``pack``, and no Python object kept per file.
    """
    stat, fields, pack = os.stat, stat_fields, _PAIR.pack
    metadata_suffix, metrics_suffix = suffixes
    if base:
        # Without a directory fd (rare): a path each; else relative to the fd, no join.
        names = [base + name for name in names]
    keys: list[bytes] = []
    add = keys.append
    for name in names:
        try:
            add(
                pack(
                    *fields(stat(name + metadata_suffix, dir_fd=dir_fd)),
                    *fields(stat(name + metrics_suffix, dir_fd=dir_fd)),
                )
            )
        except (OSError, ValueError, struct.error):  # a file absent (or unreadable: see below)
            add(
                _packed_now(name + metadata_suffix, dir_fd)
                + _packed_now(name + metrics_suffix, dir_fd)
            )
    return b"".join(keys)


def _packed_now(path: str, dir_fd: int | None) -> bytes:
    """The packed stat key of ``path`` now; unreadable: one no stored key equals."""
    key = stat_key(path, dir_fd)
    packed = None if key is None else packed_key(key)
    return PACKED_UNKNOWN if packed is None else packed


def _changed(current: bytes, stored: bytes, numbers: Sequence[int | None]) -> list[int]:
    """The positions whose keys in ``current`` are not those of entry ``numbers[position]``
    in ``stored`` (``None``: no entry)."""
    size = _KEYS_BYTES
    changed: list[int] = []
    for position, number in enumerate(numbers):
        if number is None:
            changed.append(position)
            continue
        at, was = position * size, number * size
        if current[at : at + size] != stored[was : was + size]:
            changed.append(position)
    return changed


_NO_METADATA = (False, None, None, None)


def _class_facts(item: Any) -> tuple[bool, str | None, str | None, tuple[str, ...] | None] | None:
    """``(has metadata, schema_version, schema_hash, sorted labels)`` of a label class.

    The classes a file lists, then ``_NO_METADATA`` (number -1 in a record);
    ``None``: damaged.
    """
    try:
        version, schema_hash, labels = item
        if (
            isinstance(version, str)
            and isinstance(schema_hash, str)
            and isinstance(labels, list)
            and all(isinstance(label, str) for label in labels)
        ):
            return True, version, schema_hash, tuple(labels)
    except (TypeError, ValueError):
        pass
    return None


_STR_OR_NONE = (str, type(None))
# The record unpacking in _index names each of its items.
assert ROW_FACTS_AT == 9 and len(RowFacts._fields) == 5
# BundleFacts(*values) without the Python-level __new__ NamedTuple generates: a third the cost.
_new_tuple = tuple.__new__


def _fallback(root: Path, path: Path, read: ReadBundle) -> Callable[[str, bool], Parts]:
    """What a bundle whose cached payload cannot be used does: read its files.

    A damaged payload also drops the cache file (the next scan rebuilds it). The
    scan holds the file it indexed open, so a file replaced or deleted meanwhile
    is still read as indexed and never lands here.
    """
    dropped = False

    def from_files(name: str, damaged: bool) -> Parts:
        nonlocal dropped
        log.debug("Not using the scan cache entry of %r (damaged: %s)", name, damaged)
        if damaged and not dropped:
            dropped = True
            # The next scan rebuilds the cache from the files (the marker says it was seen).
            _save(_marker(path), b"", [])
            with contextlib.suppress(OSError):
                os.unlink(path)
        fresh = read(name, [])
        if fresh is None:  # gone meanwhile: nothing left to read
            return Parts(None, None, None)
        return Parts(fresh.metadata, fresh.metrics, fresh.created_at)

    return from_files


def _payload_loader(path: Path, region: _Region | None) -> Callable[[], bytes]:
    """Reads the payloads of the cache file a scan used (the version it indexed), once."""

    def load() -> bytes:
        if region is None:
            raise PayloadsGone("no cache file was used")
        try:
            data = region.file.read(region.offset, region.length)
        finally:
            region.file.close()  # the caller keeps the bytes: the file is not needed again
        if len(data) != region.length or _crc(data) != region.crc:
            raise ValueError(f"{path}: damaged payloads")
        return data

    return load


def _entry(
    name: str,
    stats: FileStats,
    bundle: ModelBundle,
    started_ns: int,
    summarise: Summarise,
) -> tuple[list[Any], bytes, bytes] | None:
    """The record, payload and packed keys for a bundle just read; ``None``: not to be cached."""
    if len(stats) != 2:
        return None
    metadata_key, metrics_key = key_of(stats[0]), key_of(stats[1])
    if metadata_key is None or metrics_key is None:
        return None
    if racy(max(metadata_key[1], metrics_key[1]), started_ns):
        return None  # racily clean: a same-size rewrite within the tick would look unchanged
    packed_metadata, packed_metrics = packed_key(metadata_key[0]), packed_key(metrics_key[0])
    if packed_metadata is None or packed_metrics is None:
        return None
    metadata = bundle.metadata
    if metadata is not None and "created_at" not in metadata.model_fields_set:
        return None  # its created_at defaults to the time of parsing: read it fresh each time
    payload = _payload(bundle)
    if payload is None or len(payload) > MAX_ENTRY_BYTES:
        return None
    facts = summarise(bundle)
    row = row_facts(bundle)
    if row.created_at is not None and len(row.created_at) > MAX_CREATED_AT_CHARS:
        return None  # keeps the index proportional to the bundle count (see _load)
    if (facts.sorted_labels is None) != (metadata is None):  # pragma: no cover - by construction
        return None
    label_class = (
        None
        if metadata is None
        else [facts.schema_version, facts.schema_hash, list(facts.sorted_labels or ())]
    )
    record = [
        name,
        0,  # its start, set when the file is written
        len(payload),
        facts.invalid_reason,
        label_class,  # replaced by its index in the file's table when written
        facts.has_metrics,
        facts.macro_f1,
        facts.weighted_f1,
        facts.instant_us,
        *row,
    ]
    return record, payload, packed_metadata + packed_metrics


# Metadata fields-sets are shared between bundles (scan._share_fields_set): the JSON
# of each one's unset fields is computed once. The set itself is kept to make the id safe.
_UNSET_JSON: dict[int, tuple[object, bytes]] = {}


def _payload(bundle: ModelBundle) -> bytes | None:
    """``[metadata, unset metadata fields, metrics]`` as JSON (the models whole), one line."""
    import pydantic_core

    metadata, metrics = bundle.metadata, bundle.metrics
    parts = []
    try:
        if metadata is None:
            parts += [b"null", b"null"]
        else:
            # The field values, not the model: a model's own serializer writes NaN and
            # Infinity (which params and the thresholds may hold) as null whatever
            # inf_nan_mode says, and the cached bundle must equal the one read. The
            # fields are plain values (no nested models, no custom serializers), so
            # the JSON is the model's own otherwise. The unset fields let the cached
            # model's fields-set match.
            parts.append(pydantic_core.to_json(metadata.__dict__, inf_nan_mode="constants"))
            parts.append(_unset_json(metadata))
        parts.append(
            b"null"
            if metrics is None
            else pydantic_core.to_json(metrics.__dict__, inf_nan_mode="constants")
        )
    except (ValueError, TypeError):  # pragma: no cover - parsed JSON always serialises
        return None
    return b"[" + b",".join(parts) + b"]\n"


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
        # Entries hold what this code concluded (invalid reasons, facts): other code
        # (an upgrade, an edited checkout) starts afresh.
        "code": code_identity(),
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"


def _file_body(kept: list[Any], loaded: _Loaded) -> list[bytes | memoryview] | None:
    """The index line, the keys and the payloads, label classes numbered afresh.

    ``kept`` holds the number of each entry kept from the file read (its
    payload and keys are written back as slices of it, never parsed) and
    ``(record, payload, keys)`` of each new one. ``None``: the file read
    cannot be read again (replaced or damaged), so nothing is written.
    """
    import pydantic_core

    old_classes, old_entries, old_keys, size = (
        loaded.classes,
        loaded.entries,
        loaded.keys,
        _KEYS_BYTES,
    )
    try:
        context = loaded.context
        view = memoryview(context.payloads() if context is not None else b"")
    except (OSError, ValueError):
        return None
    classes: list[Any] = []
    numbers: dict[str, int] = {}
    renumbered: dict[int, int] = {-1: -1}
    out: list[list[Any]] = []
    keys: list[bytes] = []
    body: list[bytes | memoryview] = [b"", b""]
    position = 0
    for item in kept:
        if type(item) is int:  # kept: its class's number in the file read
            record = old_entries[item][1]
            start, length, label_class = record[1], record[2], record[4]
            number = renumbered.get(label_class, -2)
            if number == -2:
                old = old_classes[label_class]
                number = renumbered[label_class] = _number(old, classes, numbers)
            body.append(view[start : start + length])  # the newline included
            keys.append(old_keys[item * size : (item + 1) * size])
        else:  # new: its class itself, or None (no metadata)
            record, payload, keyed = item
            length, label_class = record[2], record[4]
            number = -1 if label_class is None else _number(label_class, classes, numbers)
            body.append(payload)
            keys.append(keyed)
        # A copy: the file read's records are the sources of this scan's bundles.
        out.append([record[0], position, length, record[3], number, *record[5:]])
        position += length
    index = pydantic_core.to_json({"classes": classes, "bundles": out}, inf_nan_mode="constants")
    body[0] = index + b"\n"
    body[1] = b"".join(keys)
    return body


def _number(label_class: list[Any], classes: list[Any], numbers: dict[str, int]) -> int:
    key = json.dumps(label_class)
    number = numbers.get(key)
    if number is None:
        number = numbers[key] = len(classes)
        classes.append(label_class)
    return number


def _load(path: Path, header: bytes, count: int, make_context: MakeContext) -> _Loaded:
    """The cache file's entries and label classes (its payloads stay unread); empty if unusable.

    Usable: the header this registry writes, then ``index <index length>
    <index crc32> <payloads length> <payloads crc32> <count>``, then the index
    line and the payloads, nothing after them, and the index's checksum and
    records right.
    """
    try:
        file = PinnedFile(path)
    except FileNotFoundError:
        return _NOTHING
    except (OSError, ValueError) as exc:
        log.debug("Ignoring the scan cache %s: %s", path, exc)
        return _NOTHING
    loaded = _load_from(file, path, header, count, make_context)
    if loaded.region is None:
        file.close()
    return loaded


def _load_from(
    file: PinnedFile, path: Path, header: bytes, count: int, make_context: MakeContext
) -> _Loaded:
    """:func:`_load` on the open cache file (the region it returns keeps ``file``)."""
    info = file.info
    try:
        prefix = file.read(0, len(header) + _PRELUDE_BYTES)
        if not prefix.startswith(header):
            raise ValueError("not a cache of this registry and version")
        prelude_end = prefix.find(b"\n", len(header)) + 1
        word, *numbers = prefix[len(header) : prelude_end].split()
        index_length, index_crc, keys_length, keys_crc, payloads_length, payloads_crc, records = (
            int(numbers[0]),
            int(numbers[1], 16),
            int(numbers[2]),
            int(numbers[3], 16),
            int(numbers[4]),
            int(numbers[5], 16),
            int(numbers[6]),
        )
        keys_at = prelude_end + index_length
        region = _Region(file, keys_at + keys_length, payloads_length, payloads_crc)
        if (
            prelude_end <= 0
            or word != b"index"
            or region.offset + payloads_length != info.st_size
            or index_length > _HEADER_BYTES + _INDEX_BYTES_PER_ENTRY * (count + 16)
            or not 0 <= records <= index_length
            or keys_length != records * _KEYS_BYTES
        ):
            raise ValueError("not a complete cache file")
        # The index and the keys in one read.
        both = file.read(prelude_end, index_length + keys_length)
        index, keys = both[:index_length], both[index_length:]
        if _crc(index) != index_crc or len(keys) != keys_length or _crc(keys) != keys_crc:
            raise ValueError("damaged index")
        snapshot = hashlib.sha256(prefix[:prelude_end]).hexdigest()
        loaded = _index(index, keys, records, region, snapshot, make_context(region))
    except (OSError, ValueError, IndexError) as exc:
        log.debug("Ignoring the scan cache %s: %s", path, exc)
        return _NOTHING
    if loaded is None:
        log.debug("Ignoring the scan cache %s: not a complete cache of this registry", path)
        return _NOTHING
    return loaded


def _index(
    index_line: bytes,
    keys: bytes,
    count: int,
    region: _Region,
    snapshot: str,
    context: CacheContext,
) -> _Loaded | None:
    """Each entry of a cache file's index, or ``None`` if it is not what a scan writes.

    Payloads are located, not read (the file may be 100 MB) nor parsed (that
    waits for a bundle's first access).
    """
    import pydantic_core

    try:
        # Names are unique: caching their strings would only cost.
        index = pydantic_core.from_json(index_line, cache_strings="keys")
        classes, records = index["classes"], index["bundles"]
        if not isinstance(classes, list) or not isinstance(records, list):
            return None
        facts_of_class = [*(_class_facts(item) for item in classes), _NO_METADATA]
        names: list[str] = []
        entries: list[Source] = []
        add_name, add_entry = names.append, entries.append
        position = 0
        for record in records:
            # _record_facts, inlined: this loop runs over every bundle of a repeat scan.
            # Its RowFacts (the last 5) are checked when a row reads them (lazy_bundle.row_facts).
            # Unpacked whole, into names (no slice, no list): ValueError unless it has
            # the ROW_FACTS_AT items selection reads and the 5 of its RowFacts.
            (
                name,
                start,
                length,
                reason,
                class_id,
                has_metrics,
                macro,
                weighted,
                instant,
                _created,
                _macro,
                _weighted,
                _bi_prec,
                _min_prec,
            ) = record
            # -1: no metadata, the last item of ``facts_of_class``.
            known = facts_of_class[class_id] if type(class_id) is int and class_id >= -1 else None
            if (
                known is None
                or type(name) is not str
                or type(start) is not int
                or start != position
                or type(length) is not int
                or length <= 0
                or type(reason) not in _STR_OR_NONE
                or type(has_metrics) is not bool
                or type(macro) is not float
                or type(weighted) is not float
                or type(instant) is not int
                or (reason is None and not (known[0] and has_metrics))
            ):
                return None
            facts = _new_tuple(
                BundleFacts,
                (
                    reason is None,
                    reason,
                    known[0],
                    known[1],
                    known[2],
                    known[3],
                    has_metrics,
                    macro,
                    weighted,
                    instant,
                ),
            )
            add_name(name)
            add_entry((context, record, facts))
            position += length
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if position != region.length or len(records) != count or len(set(names)) != len(names):
        return None
    return _Loaded(names, entries, keys, classes, region, snapshot, context)


def _crc(body: bytes | memoryview) -> int:
    # Catches a damaged file (a flipped byte in a number parses fine); not a defence
    # against someone who can write the user's cache directory.
    return zlib.crc32(body)


def _save(path: Path, header: bytes, body: list[bytes | memoryview]) -> None:
    """Replace the cache file (or, with an empty header, the marker); a failure only costs speed.

    ``body``: the index line, the packed keys, then one payload line per record.
    """
    try:
        with contextlib.suppress(FileExistsError):
            path.parent.mkdir(mode=0o700, parents=True)
        if not header:
            atomic_write(path, b"", durable=False)
            return
        # One buffer: a write and a checksum over 10,000 slices cost more than this copy.
        sections = Sections(header, bytes(body[0]), bytes(body[1]), b"".join(body[2:]))
        prelude = _prelude(sections, len(body) - 2)
        atomic_write(path, [header, prelude, *sections[1:]], durable=False)
    except (OSError, ValueError) as exc:
        log.debug("Could not write the scan cache %s: %s", path, exc)


class Sections(NamedTuple):
    """A cache file's parts, as :func:`split_file` finds them (nothing checked)."""

    header: bytes
    """The header line, newline included."""
    index_line: bytes
    """The index line, newline included."""
    keys: bytes
    payloads: bytes
    """Every payload line."""


def split_file(data: bytes) -> Sections:
    """A cache file's parts by the lengths its prelude gives; for tools and tests that edit one.

    Raises:
        ValueError: ``data`` does not have the layout of a cache file.
    """
    header_end = data.index(b"\n") + 1
    prelude_end = data.index(b"\n", header_end) + 1
    numbers = data[header_end:prelude_end].split()[1:]
    index_end = prelude_end + int(numbers[0])
    keys_end = index_end + int(numbers[2])
    return Sections(
        data[:header_end], data[prelude_end:index_end], data[index_end:keys_end], data[keys_end:]
    )


def join_file(sections: Sections, count: int) -> bytes:
    """The cache file of ``sections`` holding ``count`` records, its prelude made afresh."""
    return b"".join([sections.header, _prelude(sections, count), *sections[1:]])


def _prelude(sections: Sections, count: int) -> bytes:
    return b"index %d %08x %d %08x %d %08x %d\n" % (
        len(sections.index_line),
        _crc(sections.index_line),
        len(sections.keys),
        _crc(sections.keys),
        len(sections.payloads),
        _crc(sections.payloads),
        count,
    )
