"""Reading bundles off disk (§3): the only module that parses bundle files.

Nothing found on disk makes these functions raise: every problem becomes
the bundle's ``invalid_reason``, using the first failing check in the
order the spec fixes. Memory is bounded too: a file is read only up to
16 MiB, and one with more JSON objects and arrays than its size justifies
is refused before it is parsed (a ``parse error``), so a scan holds at
most ~9x the bytes it reads (the densest files it accepts), never the ~25x
that millions of ``{}`` cost (bench/README.md, "Scan memory bound").
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import re
import resource
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from taskclf.core.model_io import ModelMetadata
from taskclf.model_registry._fs import LOCK_FILE, absolute, read_capped, read_capped_stat
from taskclf.model_registry.lazy_bundle import (
    BundleFacts,
    Parts,
    RootSource,
    instance_dict,
    path_lazy_bundle,
)
from taskclf.model_registry.models import BundleMetrics, ModelBundle
from taskclf.model_registry.scan_cache import FileStats, Scanned, scan_with_cache
from taskclf.model_registry.storage import is_remote

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

METADATA_FILE = "metadata.json"
METRICS_FILE = "metrics.json"

_M = TypeVar("_M", bound=BaseModel)

ValidFacts = Callable[[ModelMetadata, BundleMetrics, datetime], BundleFacts]
"""``selection.valid_facts``: the facts of a valid bundle made of these parts."""

# The memory bound (docs/reliability.md): parsed JSON costs ~250 bytes per object or
# array but a file can spend as little as 2 bytes on one (`{},{},...`), so a 16 MiB
# file could take gigabytes. Containers are therefore limited by the file's size:
# one per 64 bytes on average, plus a few hundred for any file (a metrics.json
# needs one per label). Scalars cost at most ~12x their text, so they need no limit.
_FREE_CONTAINERS = 256
_BYTES_PER_CONTAINER = 32
# pydantic-core aborts the process (a Rust allocation failure) instead of raising
# MemoryError when an address-space limit (RLIMIT_AS) runs out mid-parse. A large
# file is therefore parsed only if the limit leaves room for a generous estimate
# of what parsing it takes; small files (every normal one) skip the check.
_CHECK_ROOM_FROM_BYTES = 1 << 20
_PARSE_BYTES_PER_BYTE = 12
_PARSE_BYTES_PER_CONTAINER = 320
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')

log = logging.getLogger("taskclf.model_registry")


class _Missing:
    """Marker for a file that does not exist."""


_MISSING = _Missing()


class FastConstructor(Generic[_M]):
    """``model.model_construct`` of complete, valid values, without its per-field loop if safe.

    The fast way sets the four attributes ``model_construct`` ends with,
    without its per-field alias and default loop (which cost as much as
    parsing a bundle's metadata); every instance shares one fields-set (all
    fields are set; pydantic stores the given set as is, frozen models never
    add to it and ``model_copy`` copies it first). Checked on first use (not
    at import: that would build the model's schema), on ``sample`` (every
    field given): a pydantic that stores more state, or a field added to
    ``model`` whose default the callers do not pass, makes the two differ
    and selects ``model_construct`` itself.
    """

    def __init__(self, model: type[_M], sample: dict[str, Any]) -> None:
        self._model = model
        self._sample = sample
        self._fields_set = set(model.model_fields)
        self._chosen: Callable[[dict[str, Any]], _M] | None = None

    def __call__(self, values: dict[str, Any]) -> _M:
        chosen = self._chosen
        if chosen is None:
            chosen = self._choose()
        return chosen(values)

    @property
    def fast(self) -> bool:
        """True if the fast way builds exactly what ``model_construct`` does."""
        return (self._chosen or self._choose()) == self.fast_way

    def fast_way(self, values: dict[str, Any]) -> _M:
        instance = self._model.__new__(self._model)
        object.__setattr__(instance, "__dict__", values)
        object.__setattr__(instance, "__pydantic_fields_set__", self._fields_set)
        object.__setattr__(instance, "__pydantic_extra__", None)
        object.__setattr__(instance, "__pydantic_private__", None)
        return instance

    def pydantic_way(self, values: dict[str, Any]) -> _M:
        return self._model.model_construct(self._fields_set, **values)

    def _choose(self) -> Callable[[dict[str, Any]], _M]:
        sample = self._sample
        try:
            made, reference = self.fast_way(dict(sample)), self.pydantic_way(dict(sample))
            same = made == reference and all(
                getattr(made, name) == getattr(reference, name)
                for name in (
                    "__pydantic_fields_set__",
                    "__pydantic_extra__",
                    "__pydantic_private__",
                )
            )
            same = same and made.model_dump() == reference.model_dump()
        except Exception:  # a future pydantic: never worse than model_construct
            same = False
        chosen = self._chosen = self.fast_way if same else self.pydantic_way
        return chosen


_construct = FastConstructor(
    ModelBundle,
    {
        "model_id": "x",
        "path": Path("/x"),
        "valid": False,
        "invalid_reason": "r",
        "metadata": None,
        "metrics": None,
        "created_at": None,
    },
)
"""``ModelBundle.model_construct`` for complete values (every field given)."""

_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
_MAX_FIELDS_SETS = 256


def _share_fields_set(model: BaseModel) -> None:
    """Swap the model's fields-set for an equal one shared by every bundle that has it.

    Thousands of bundles carry the same few combinations of keys; a set each
    is a fifth of what a scan keeps per bundle, and retained memory is what
    makes a scan slower than reading the files (bench/README.md). The
    attribute is the one ``model_fields_set`` returns; frozen models never
    add to it and ``model_copy`` copies it first.
    """
    fields = model.__pydantic_fields_set__
    shared = _shared_fields_set(fields)
    if shared is not fields:
        object.__setattr__(model, "__pydantic_fields_set__", shared)


def _shared_fields_set(fields: set[str]) -> set[str]:
    """The fields-set equal to ``fields`` that bundles share (``fields`` itself if none yet)."""
    key = frozenset(fields)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        if len(_FIELDS_SETS) >= _MAX_FIELDS_SETS:
            return fields
        shared = _FIELDS_SETS[key] = fields
    return shared


def _with_shared_keys(model: _M) -> _M:
    """An equal copy of ``model`` whose instance dict shares its keys with its class's others.

    pydantic-core builds each model's ``__dict__`` as a dict of its own (464
    bytes for ``ModelMetadata``'s 13 fields); attributes set one by one on a
    fresh instance go into CPython's key-sharing dict of the class instead
    (the values only, about half of that). Same fields, same order, an equal
    fields-set (the shared one, as :func:`_share_fields_set` gives): ``==``,
    dumps and copies cannot tell the two apart.
    """
    cls = type(model)
    copy = cls.__new__(cls)
    values = instance_dict(model)
    # object.__setattr__ bound to the copy, mapped in C: this runs for two models of
    # every bundle a scan reads, and a Python loop of unbound calls cost twice as much.
    # (Updating the copy's __dict__ instead would be cheaper still, but it makes
    # CPython keep a dict object for each instance: 64 bytes more per model.)
    set_attribute = _bind_setattr(copy)
    any(map(set_attribute, values, values.values()))
    set_attribute("__pydantic_fields_set__", _shared_fields_set(model.__pydantic_fields_set__))
    set_attribute("__pydantic_extra__", model.__pydantic_extra__)
    set_attribute("__pydantic_private__", model.__pydantic_private__)
    return copy


_bind_setattr = object.__setattr__.__get__


def list_bundles(models_dir: str | os.PathLike[str]) -> list[ModelBundle]:
    """Scan every immediate subdirectory of ``models_dir`` as a bundle.

    Args:
        models_dir: The registry directory.

    Returns:
        One bundle per subdirectory (dot-prefixed ones are reserved and
        skipped), sorted by ``model_id``; ``[]`` when ``models_dir`` is
        missing or not a directory. Never raises for anything on disk.

    A bundle whose two files' stats are unchanged since an earlier scan is
    taken from the scan cache (:mod:`taskclf.model_registry.scan_cache`)
    instead of being parsed again; the result is the same either way.
    """
    return scan_registry(models_dir).bundles


def scan_registry(models_dir: str | os.PathLike[str]) -> Scanned:
    """:func:`list_bundles`, and the scan cache's snapshot when it served every bundle unchanged.

    The snapshot (:attr:`~taskclf.model_registry.scan_cache.Scanned.snapshot`) is
    ``None`` for an object store, without a cache, and whenever a bundle was read
    from its files.
    """
    if is_remote(models_dir):
        from taskclf.model_registry.storage import open_storage

        return Scanned(open_storage(models_dir).scan_bundles(), None)
    root = absolute(models_dir)
    prefix = os.path.join(os.fspath(root), "")

    # selection imports this module; the facts are its business.
    from taskclf.model_registry.selection import bundle_facts, valid_facts

    lazy_path = (RootSource(root), valid_facts)

    def read(name: str, stats: FileStats) -> ModelBundle | None:
        return _read_bundle(root, name, prefix + name, stats, lazy_path=lazy_path)

    with gc_paused():
        return scan_with_cache(
            root,
            bundle_names(root),
            read,
            _parts_from_payload,
            bundle_facts,
            METADATA_FILE,
            METRICS_FILE,
        )


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Keep the cyclic garbage collector off while a scan builds (or ranks) its result.

    A scan allocates about 25 long-lived, acyclic containers per bundle;
    with the collector on, allocation bursts trigger collections that
    re-traverse everything built so far and free nothing. At the end the
    new objects are moved to the oldest generation (``freeze`` then
    ``unfreeze``: two list splices, no traversal), so the first young
    collection after the scan does not walk them all either; they are
    examined by the next full collection like any long-lived object.
    Together that was about a third of ``find_best_model`` at 10,000
    bundles (see bench/README.md, "Profile notes"). Reference counting
    still frees acyclic garbage at once.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Another thread may have paused it too; only the one that paused it resumes it.
        if was_enabled:
            # An application that froze objects itself (pre-fork servers do) keeps them frozen.
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


def bundle_names(root: Path) -> list[str]:
    """Sorted names of the bundle directories directly inside ``root`` (no parsing)."""
    try:
        with os.scandir(root) as scanned:
            entries = [e for e in scanned if not e.name.startswith(".")]
    except (OSError, ValueError):  # ValueError: a path with an embedded NUL
        return []
    try:
        # is_dir() raises only when it must stat (a symlink, an unknown type) and that fails.
        names = [e.name for e in entries if e.is_dir()]
    except OSError:
        names = [e.name for e in entries if _is_dir(e)]
    # ASCII names (nearly all) are UTF-8 without encoding them.
    names = [name for name in names if name.isascii() or _is_utf8_name(root, name)]
    names.sort()
    return names


REGISTRY_ENTRIES = (
    "active.json",
    "active_history.jsonl",
    "index.json",
    LOCK_FILE,
    "registry.toml",
    ".aliases",
)
"""Names only a registry holds (pointer, history, index, lock, config, alias pointers).

A directory holding one is a registry, never a bundle: prune keeps it and
verify suggests it as the models directory instead of calling it invalid."""

BUNDLE_FILES = (METADATA_FILE, METRICS_FILE, "manifest.json")
"""At least one of these makes a directory look like a bundle, valid or not."""


def registry_entry(directory: str | os.PathLike[str]) -> str | None:
    """The first registry-level name ``directory`` holds, or ``None`` (it is no registry)."""
    for name in REGISTRY_ENTRIES:
        if os.path.lexists(os.path.join(directory, name)):
            return name
    return None


def looks_like_bundle(directory: str | os.PathLike[str]) -> bool:
    """True if ``directory`` holds at least one bundle file (it may still be invalid)."""
    return any(os.path.lexists(os.path.join(directory, name)) for name in BUNDLE_FILES)


def is_bundle_name(name: str) -> bool:
    """True if ``name`` can be a bundle directory name: a non-reserved direct child.

    Empty names, dot-prefixed (reserved: staging, trash, locks) names and
    anything containing a path separator or NUL are not.
    """
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and os.sep not in name
        and (os.altsep is None or os.altsep not in name)
        and "\x00" not in name
    )


def _is_utf8_name(root: Path, name: str) -> bool:
    """False (logged) for a name that is not UTF-8: no registry JSON file could name it."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        log.warning(
            "Ignoring directory %r in %s: its name is not valid UTF-8, so active.json and "
            "index.json could not refer to it; rename it to use it as a bundle",
            os.fsencode(name),
            root,
        )
        return False
    return True


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        # Follows symlinks on purpose: a symlinked bundle directory is readable.
        return entry.is_dir()
    except OSError:
        return False


def read_bundle(path: Path) -> ModelBundle | None:
    """Parse one bundle directory.

    Args:
        path: Absolute path of the bundle directory.

    Returns:
        The bundle, valid or with its first failing check as
        ``invalid_reason``; ``None`` if the directory itself is gone (it
        was deleted or renamed while we looked). Never raises for
        anything on disk.
    """
    return _read_bundle(path.parent, path.name, os.fspath(path), path=path)


def _read_bundle(
    root: Path,
    name: str,
    base: str,
    stats: FileStats | None = None,
    *,
    path: Path | None = None,
    lazy_path: tuple[RootSource, ValidFacts] | None = None,
) -> ModelBundle | None:
    """:func:`read_bundle` of ``root/name``, whose string path ``base`` is already computed.

    ``stats``, if given, receives what each file's read found, metadata first
    (see :data:`FileStats`). ``path`` is the bundle's ``Path`` if the caller
    has one; with ``lazy_path`` a valid bundle builds it on first access
    instead (a scan of 100,000 bundles would keep 29 MB of them).
    """
    # Plain string paths: pathlib joins would cost a third as much as the reads.
    metadata_raw = _read(f"{base}/{METADATA_FILE}", stats)
    metrics_raw = _read(f"{base}/{METRICS_FILE}", stats)
    if path is None and lazy_path is None:
        path = root / name
    if metadata_raw is _MISSING:
        if not _still_a_dir(base):
            return None
        return _invalid(path or root / name, f"missing {METADATA_FILE}")
    if metrics_raw is _MISSING:
        return _invalid(path or root / name, f"missing {METRICS_FILE}")

    metadata, problem = _parse(ModelMetadata, metadata_raw, METADATA_FILE)
    if metadata is None:
        return _invalid(path or root / name, problem)
    metrics, problem = _parse(BundleMetrics, metrics_raw, METRICS_FILE)
    if metrics is None:
        return _invalid(path or root / name, problem, metadata=metadata)
    try:
        created_at = parse_timestamp(metadata.created_at)
    except ValueError as exc:
        _share_fields_set(metadata)
        _share_fields_set(metrics)
        return _invalid(
            path or root / name,
            f"created_at parse error: {exc}",
            metadata=metadata,
            metrics=metrics,
        )
    if lazy_path is not None:
        # What a scan keeps of 100,000 bundles bounds its memory (bench/README.md).
        # Its facts are computed while its objects are fresh in the CPU's caches.
        metadata, metrics = _with_shared_keys(metadata), _with_shared_keys(metrics)
        source, facts_of = lazy_path
        facts = facts_of(metadata, metrics, created_at)
        return path_lazy_bundle(name, metadata, metrics, created_at, source, facts)
    _share_fields_set(metadata)
    _share_fields_set(metrics)
    return _construct(
        {
            "model_id": name,
            "path": path,
            "valid": True,
            "invalid_reason": None,
            "metadata": metadata,
            "metrics": metrics,
            "created_at": created_at,
        }
    )


def read_metadata_document(bundle_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A bundle's ``metadata.json`` as a JSON object, extension keys included.

    ``ModelMetadata`` drops keys §2 does not define; the loaders and
    ``model show`` need ``save_bundle``'s extensions (``model_format``,
    ``model_files``, ``test_date_from``/``test_date_to``).

    Raises:
        FileNotFoundError: No ``metadata.json``.
        OSError: It cannot be read (or is over the read cap).
        ValueError: It is not UTF-8 JSON, or not a JSON object.
    """
    document = json.loads(read_capped(os.path.join(bundle_dir, METADATA_FILE)))
    if not isinstance(document, dict):
        raise ValueError(f"{METADATA_FILE} is not a JSON object")
    return document


_METADATA_FIELDS = tuple(ModelMetadata.model_fields)
_METRICS_FIELDS = tuple(BundleMetrics.model_fields)
_METRICS_FIELDS_SET = set(_METRICS_FIELDS)


def _parts_from_payload(payload: bytes, valid: bool) -> Parts:
    """A cached bundle's models, from the payload the scan cache stored when it was read.

    The cache stores only models a scan validated, whole; they are rebuilt
    without validating again (that would cost as much as reading the files),
    checking only that each has exactly its model's fields.

    Raises:
        ValueError: The payload is not what the cache stores (a damaged cache).
        TypeError: Likewise.
    """
    import pydantic_core

    metadata, unset, metrics = pydantic_core.from_json(payload)
    metadata_model = metrics_model = None
    if metadata is not None:
        if tuple(metadata) != _METADATA_FIELDS:
            raise ValueError("cached metadata does not have ModelMetadata's fields")
        metadata_model = _construct_model(
            ModelMetadata, metadata, set(_METADATA_FIELDS).difference(unset)
        )
    if metrics is not None:
        if tuple(metrics) != _METRICS_FIELDS:
            raise ValueError("cached metrics do not have BundleMetrics's fields")
        metrics_model = _construct_model(BundleMetrics, metrics, _METRICS_FIELDS_SET)
    if not valid:
        return Parts(metadata_model, metrics_model, None)
    if metadata_model is None or metrics_model is None:
        raise ValueError("a valid bundle without metadata or metrics")
    return Parts(metadata_model, metrics_model, parse_timestamp(metadata_model.created_at))


def _construct_model(model: type[_M], values: dict[str, Any], fields_set: set[str]) -> _M:
    """A model from values it was validated with before (the scan cache), fields-set shared."""
    if _construct.fast:
        instance = model.__new__(model)
        object.__setattr__(instance, "__dict__", values)
        object.__setattr__(instance, "__pydantic_fields_set__", fields_set)
        object.__setattr__(instance, "__pydantic_extra__", None)
        object.__setattr__(instance, "__pydantic_private__", None)
    else:
        instance = model.model_construct(fields_set, **values)
    _share_fields_set(instance)
    return instance


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp; one without an offset is taken as UTC.

    Raises:
        ValueError: ``text`` is not ISO-8601.
    """
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _still_a_dir(path: str) -> bool:
    try:
        return os.path.isdir(path)
    except (OSError, ValueError):
        return False


def _read(path: str, stats: FileStats | None = None) -> bytes | _Missing | str:
    """The file's bytes, ``_MISSING``, or a one-line description of why it is unreadable."""
    try:
        data, info = read_capped_stat(path)
    except (FileNotFoundError, NotADirectoryError):
        if stats is not None:
            stats.append(None)
        return _MISSING
    except OSError as exc:
        if stats is not None:
            stats.append(False)
        # read_capped reports a path no file can have (an embedded NUL) as an OSError too.
        return str(exc) if exc.strerror is None else f"unreadable ({exc.strerror})"
    if stats is not None:
        stats.append(info)
    return data


def _parse(model: type[_M], raw: bytes | _Missing | str, file_name: str) -> tuple[_M | None, str]:
    if isinstance(raw, str):
        return None, f"{file_name} parse error: {raw}"
    assert isinstance(raw, bytes)
    size = len(raw)
    # _too_many_containers's upper bound, inlined: all a normal bundle file needs, and a
    # scan parses two per bundle.
    if (
        raw.count(b"{") + raw.count(b"[") > _FREE_CONTAINERS + size // _BYTES_PER_CONTAINER
        or size >= _CHECK_ROOM_FROM_BYTES
    ):
        problem = _too_many_containers(raw)
        if problem is None and size >= _CHECK_ROOM_FROM_BYTES:
            problem = _no_room_to_parse(raw)
        if problem is not None:
            return None, f"{file_name} parse error: {problem}"
    try:
        # The validator itself (what model_validate_json calls, with the same defaults):
        # one Python frame less per file of a scan.
        return model.__pydantic_validator__.validate_json(raw), ""
    except MemoryError:
        # The bound above keeps a scan within a few times the bytes it reads; a process
        # whose memory is nearly exhausted anyway still gets a reason, not a crash.
        return None, f"{file_name} parse error: out of memory parsing {len(raw)} bytes"
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        if is_json_error(errors):
            return None, f"{file_name} parse error: {errors[0]['msg']}"
        return None, f"{file_name} validation error: {describe_errors(errors)}"
    except (ValueError, RecursionError) as exc:
        return None, f"{file_name} parse error: {exc}"


def _too_many_containers(raw: bytes) -> str | None:
    """Why parsing ``raw`` could take far more memory than its size, or None.

    Counts JSON objects and arrays, outside strings, without parsing: first an
    upper bound (every bracket byte, two fast ``bytes.count`` calls: all a
    normal bundle file needs), then, only when that exceeds the limit, the exact
    count with strings blanked out.
    """
    limit = _FREE_CONTAINERS + len(raw) // _BYTES_PER_CONTAINER
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return None
    outside_strings = _JSON_STRING.sub(b'""', raw)
    containers = outside_strings.count(b"{") + outside_strings.count(b"[")
    if containers <= limit:
        return None
    return (
        f"{containers} JSON objects and arrays in {len(raw)} bytes, more than the {limit} "
        f"allowed for its size (one per {_BYTES_PER_CONTAINER} bytes plus {_FREE_CONTAINERS}); "
        "refused unparsed to bound the scan's memory"
    )


def _no_room_to_parse(raw: bytes) -> str | None:
    """Why the address-space limit leaves too little room to parse ``raw``, or None."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm", "rb") as statm:
            in_use = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux: no way to tell, parse as before
    containers = raw.count(b"{") + raw.count(b"[")
    need = _PARSE_BYTES_PER_BYTE * len(raw) + _PARSE_BYTES_PER_CONTAINER * containers
    if in_use + need <= soft:
        return None
    return (
        f"not enough memory to parse its {len(raw)} bytes under this process's "
        f"address-space limit (RLIMIT_AS, {soft} bytes)"
    )


def is_json_error(errors: Sequence[ErrorDetails]) -> bool:
    """True when pydantic's ``errors`` say the bytes were not JSON at all."""
    return any(err["type"] == "json_invalid" for err in errors)


def describe_errors(errors: Sequence[ErrorDetails], limit: int = 3) -> str:
    """pydantic's ``errors`` as ``loc: msg`` parts, the first ``limit`` of them, on one line."""
    parts = []
    for err in errors[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(errors) - limit
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def _invalid(
    path: Path,
    reason: str,
    *,
    metadata: ModelMetadata | None = None,
    metrics: BundleMetrics | None = None,
) -> ModelBundle:
    return ModelBundle.model_construct(
        model_id=path.name,
        path=path,
        valid=False,
        invalid_reason=reason,
        metadata=metadata,
        metrics=metrics,
        created_at=None,
    )


def bundle_from_files(
    model_id: str, path: Path, metadata_raw: bytes | None, metrics_raw: bytes | None
) -> ModelBundle:
    """Parse a bundle from its two files' bytes (``None``: the file is missing).

    The same checks, order and reason strings as :func:`read_bundle`, for a
    bundle whose files were fetched from elsewhere (an object store).
    """
    if metadata_raw is None:
        return _invalid(path, f"missing {METADATA_FILE}")
    if metrics_raw is None:
        return _invalid(path, f"missing {METRICS_FILE}")
    metadata, problem = _parse(ModelMetadata, metadata_raw, METADATA_FILE)
    if metadata is None:
        return _invalid(path, problem)
    metrics, problem = _parse(BundleMetrics, metrics_raw, METRICS_FILE)
    if metrics is None:
        return _invalid(path, problem, metadata=metadata)
    try:
        created_at = parse_timestamp(metadata.created_at)
    except ValueError as exc:
        return _invalid(path, f"created_at parse error: {exc}", metadata=metadata, metrics=metrics)
    return ModelBundle(
        model_id=model_id,
        path=path,
        valid=True,
        metadata=metadata,
        metrics=metrics,
        created_at=created_at,
    )
