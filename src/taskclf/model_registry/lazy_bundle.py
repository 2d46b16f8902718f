"""Bundles from the scan cache whose parts are built on first access (issue 13).

A repeat scan of an unchanged registry must cost less than reading its
files, so a bundle served by the scan cache
(:mod:`taskclf.model_registry.scan_cache`) starts with only its identity
(``model_id``, ``valid``, ``invalid_reason``) and a *source*: where its
cached line is, plus the few facts selection reads
(:class:`BundleFacts`). ``metadata``, ``metrics``, ``path`` and
``created_at`` are absent from the instance dict until first read, when
``__getattr__`` builds them from the line.

To every caller the object is a ``ModelBundle`` (``isinstance``, ``repr``,
``==`` with an eagerly read one, dumps, copies, pickling): pydantic and
pydantic-core read an instance's fields through ``__dict__``, which this
subclass turns into a property that completes the instance first and then
returns the real instance dict (through ``BaseModel``'s own slot
descriptor). Pickling yields a plain ``ModelBundle``.

A scan's bundles read from their files are ``CachedBundle`` instances too,
with only their ``path`` waiting (:class:`RootSource`), so that 100,000 of
them do not each keep a ``Path``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import BaseModel, ConfigDict

from taskclf.model_registry.models import ModelBundle

if TYPE_CHECKING:
    from taskclf.core.model_io import ModelMetadata
    from taskclf.model_registry.models import BundleMetrics

# BaseModel declares "__dict__" in __slots__: this is the descriptor of the real
# instance dict, which the subclass's __dict__ property hides from everyone else.
_DICT = BaseModel.__dict__["__dict__"]
instance_dict: Callable[[BaseModel], dict[str, Any]] = _DICT.__get__
_set_instance_dict: Callable[[BaseModel, dict[str, Any]], None] = _DICT.__set__

SOURCE_KEY = "<source>"
"""Key of the source in the instance dict of an incomplete bundle; no field can be named so."""

_LAZY_FIELDS = frozenset(("path", "metadata", "metrics", "created_at"))
_FIELD_ORDER = tuple(ModelBundle.model_fields)
_ALL_FIELDS = set(_FIELD_ORDER)

NO_INSTANT_US = -(2**62)
"""``instant_us`` of a bundle without a usable ``created_at`` (ranks last)."""


class BundleFacts(NamedTuple):
    """What selection reads of a bundle (compatibility, constraints, rank), nothing else."""

    valid: bool
    invalid_reason: str | None
    has_metadata: bool
    schema_version: str | None
    schema_hash: str | None
    sorted_labels: tuple[str, ...] | None
    has_metrics: bool
    macro_f1: float
    """``-inf`` when there are no metrics (or the value is not finite)."""
    weighted_f1: float
    instant_us: int
    """``created_at`` as integer microseconds since the epoch, or :data:`NO_INSTANT_US`."""


def finite_or_lowest(value: float) -> float:
    """``value`` if finite, else ``-inf`` (ranks last)."""
    return value if math.isfinite(value) else -math.inf


class Parts(NamedTuple):
    """A bundle's parts built from its cached line."""

    metadata: ModelMetadata | None
    metrics: BundleMetrics | None
    created_at: Any


class CacheContext:
    """What every bundle of one cached scan shares: the cache's payloads and how to use them.

    The payloads (most of the file) are read only when the first bundle needs
    one: a scan that only ranks never reads them.
    """

    __slots__ = ("_data", "build", "fallback", "load", "root")

    def __init__(
        self,
        root: Path,
        load: Callable[[], bytes],
        build: Callable[[bytes, bool], Parts],
        fallback: Callable[[str, bool], Parts],
    ) -> None:
        self.root = root
        self.load = load
        """Reads the payload region of the file the scan used (the version it indexed,
        held open, even if another scan replaced it since); ``ValueError`` if it is
        damaged, :class:`PayloadsGone` if the scan used no cache file."""
        self.build = build
        """Parts from a cached payload (and whether the bundle is valid); raises if damaged."""
        self.fallback = fallback
        """Parts read from the bundle's files, when its payload cannot be used
        (``True``: it is damaged)."""
        self._data: bytes | None = None

    def payloads(self) -> bytes:
        """The payload region (read once, on first need)."""
        data = self._data
        if data is None:
            data = self._data = self.load()
        return data


class PayloadsGone(ValueError):
    """The scan used no cache file, so there are no payloads to read."""


Source = tuple[CacheContext, list[Any], BundleFacts]
"""The scan's cache, the bundle's index record (which says where its payload is in
the cache's payloads, and whose tail holds its :class:`RowFacts`, read only by
``train list``), and its facts.

A plain tuple, made once per bundle when the index is read; the cached bundle
keeps that same tuple as its source."""


class RootSource:
    """What the bundles a scan read from their files share: the registry's ``Path``.

    The ``Path`` of each (``root/model_id``) is built when first read, so a
    scan does not keep one per bundle.
    """

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root


ReadSource = tuple[RootSource, BundleFacts]
"""The source of a bundle read from its files: only its ``path`` waits; and its facts,
computed while its objects were fresh in the CPU's caches (ranking 100,000 bundles
later reads them at a fifth of the cost of computing them again)."""


def _parts(source: Source, model_id: str, valid: bool) -> Parts:
    context, record = source[0], source[1]
    start = record[1]
    try:
        payload = context.payloads()[start : start + record[2] - 1]  # without its newline
    except PayloadsGone:
        return context.fallback(model_id, False)
    except (OSError, ValueError):
        return context.fallback(model_id, True)
    try:
        return context.build(payload, valid)
    except (ValueError, TypeError, RecursionError):
        # The payload passed the file's checksum yet does not hold what a scan stores
        # (another writer): its files are the truth.
        return context.fallback(model_id, True)


class CachedBundle(ModelBundle):
    """A ``ModelBundle`` whose ``path``, ``metadata``, ``metrics`` and ``created_at`` wait.

    Built only by :func:`cached_bundles` (from the scan cache) and
    :func:`path_lazy_bundle` (read by a scan, only its ``path`` waits);
    behaves as the complete bundle in every respect callers can observe.
    """

    # A JSON schema of these bundles is the public model's (title and description).
    model_config = ConfigDict(
        title="ModelBundle",
        json_schema_extra={"description": inspect.cleandoc(ModelBundle.__doc__ or "")},
    )

    @property
    def __dict__(self) -> dict[str, Any]:
        values = instance_dict(self)
        return values if SOURCE_KEY not in values else _complete(self, values)

    @__dict__.setter
    def __dict__(self, values: dict[str, Any]) -> None:
        # copy, model_copy and unpickling set the whole dict (complete by then).
        _set_instance_dict(self, values)

    if not TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:
            values = instance_dict(self)
            source = values.get(SOURCE_KEY)
            if source is not None and name in _LAZY_FIELDS:
                if name == "path":
                    # Exclusion records need only the path: no need to parse the line.
                    path = values["path"] = child_path(_root(source), values["model_id"])
                    return path
                return _complete(self, values)[name]
            return super().__getattr__(name)

    def __eq__(self, other: object) -> bool:
        # pydantic's __eq__ requires the same class; this one equals the ModelBundle it stands for.
        if not isinstance(other, ModelBundle):
            return NotImplemented
        return (
            self.__dict__ == other.__dict__
            and self.__pydantic_private__ == other.__pydantic_private__
            and self.__pydantic_extra__ == other.__pydantic_extra__
        )

    __hash__ = ModelBundle.__hash__

    @classmethod
    def __repr_name__(cls) -> str:
        return "ModelBundle"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Unpickles as the plain ModelBundle it stands for.
        return _plain_bundle, (self.__getstate__(),)


def _plain_bundle(state: dict[Any, Any]) -> ModelBundle:
    """The ``ModelBundle`` a pickled cached bundle stands for (pickle's reconstructor)."""
    bundle = ModelBundle.__new__(ModelBundle)
    bundle.__setstate__(state)
    return bundle


def _join(root: Path, name: str) -> Path:
    return root / name


def _pick_child_path() -> Callable[[Path, str], Path]:
    """``root / name`` for a directory entry's name, without parsing ``name`` if it is safe.

    ``/`` parses its argument for separators and ``.`` parts (4 µs here); a
    directory entry's name has neither, so CPython's own shortcut for them
    (``_make_child_relpath``, used by ``iterdir``) builds the same path. Checked
    on this Python (absent, or a different result: ``/``).
    """
    shortcut = getattr(Path, "_make_child_relpath", None)
    if shortcut is None:
        return _join
    try:
        sample = Path("/registry/models")
        made = shortcut(sample, "2026-01-01_run-1")
        same = made == sample / "2026-01-01_run-1" and type(made) is type(sample)
        same = same and str(made) == "/registry/models/2026-01-01_run-1"
    except Exception:  # a future pathlib: never worse than /
        same = False
    return shortcut if same else _join


child_path: Callable[[Path, str], Path] = _pick_child_path()
"""``root / name`` for a bundle directory ``name`` directly inside ``root`` (see above)."""


def _root(source: Source | ReadSource) -> Path:
    return source[0].root


def _complete(bundle: CachedBundle, values: dict[str, Any]) -> dict[str, Any]:
    """Build the missing parts, install the complete dict (in field order), return it."""
    source: Source | ReadSource = values[SOURCE_KEY]
    model_id = values["model_id"]
    path = values.get("path")
    if path is None:
        path = child_path(_root(source), model_id)
    if len(source) == 2:
        parts = Parts(values["metadata"], values["metrics"], values["created_at"])
    else:
        parts = _parts(source, model_id, values["valid"])
    complete = {
        "model_id": model_id,
        "path": path,
        "valid": values["valid"],
        "invalid_reason": values["invalid_reason"],
        "metadata": parts.metadata,
        "metrics": parts.metrics,
        "created_at": parts.created_at,
    }
    # A concurrent reader may complete it too: both build equal values, and the old
    # dict is never left without its source, so nobody sees half a bundle.
    _set_instance_dict(bundle, complete)
    return complete


_new = CachedBundle.__new__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def cached_bundles(
    names: Sequence[str], sources: Sequence[Source | None]
) -> list[CachedBundle | None]:
    """An incomplete bundle per name: identity now, the rest from its source on first access.

    ``None`` where the source is ``None``. One loop without a call per bundle: a
    repeat scan builds one per bundle of the registry.
    """
    made: list[CachedBundle | None] = []
    append, new, set_dict = made.append, _new, _set_instance_dict
    set_fields, set_extra, set_private, all_fields = (
        _set_fields_set,
        _set_extra,
        _set_private,
        _ALL_FIELDS,
    )
    for name, source in zip(names, sources, strict=True):
        if source is None:
            append(None)
            continue
        reason = source[2][1]
        bundle = new(CachedBundle)
        set_dict(
            bundle,
            {
                "model_id": name,
                "valid": reason is None,
                "invalid_reason": reason,
                SOURCE_KEY: source,
            },
        )
        # What model_construct with every field given leaves (see scan.FastConstructor).
        set_fields(bundle, all_fields)
        set_extra(bundle, None)
        set_private(bundle, None)
        append(bundle)
    return made


def path_lazy_bundle(
    model_id: str,
    metadata: ModelMetadata,
    metrics: BundleMetrics,
    created_at: Any,
    root: RootSource,
    facts: BundleFacts,
) -> CachedBundle:
    """A valid bundle just read from its files, whose ``path`` waits (see :class:`RootSource`).

    ``facts`` are its ``selection.bundle_facts`` (``selection.valid_facts`` of these parts).
    """
    bundle = _new(CachedBundle)
    # Set one by one, in the same order for every bundle: CPython then keeps the values
    # in a dict sharing its keys with the others' (half the memory of a dict of its own).
    # object.__setattr__ bound once and mapped in C: a scan does this for every bundle.
    any(
        map(
            _bind_setattr(bundle),
            _READ_KEYS,
            (model_id, True, None, metadata, metrics, created_at, (root, facts)),
        )
    )
    _set_fields_set(bundle, _ALL_FIELDS)
    _set_extra(bundle, None)
    _set_private(bundle, None)
    return bundle


_READ_KEYS = (
    *(name for name in _FIELD_ORDER if name != "path"),
    SOURCE_KEY,
)
"""Every field but ``path`` (it waits), in field order, then the source."""
_bind_setattr = object.__setattr__.__get__


class RowFacts(NamedTuple):
    """What a ``train list`` row reads of a bundle beyond its :class:`BundleFacts`."""

    created_at: str | None
    """``metadata.created_at`` as written (``None``: no metadata)."""
    macro_f1: float | None
    """``metrics.macro_f1`` as is, NaN included (``None``: no metrics); likewise ``weighted_f1``."""
    weighted_f1: float | None
    bi_prec: float | None
    """Precision of ``BreakIdle`` (``None``: no metrics, empty matrix, or no such class)."""
    min_prec: float | None
    """Lowest per-class precision (``None``: no metrics or an empty matrix)."""


BREAK_IDLE = "BreakIdle"
ROW_FACTS_AT = 9
"""Where a scan cache index record's :class:`RowFacts` start (after the selection facts)."""
_FLOAT_OR_NONE = (float, type(None))
_STR_OR_NONE = (str, type(None))


def row_facts(bundle: ModelBundle) -> RowFacts:
    """Everything a ``train list`` row reads of ``bundle`` beyond :func:`bundle_facts`.

    A bundle served by the scan cache carries these in its index record, so a
    row does not build its ``metadata`` and ``metrics``; any other bundle's
    (or one whose record does not hold them as a scan writes them) are read
    off its models. Both give the same values: the cache stores what this
    function computed when the bundle was read.
    """
    if type(bundle) is CachedBundle:
        source = instance_dict(bundle).get(SOURCE_KEY)
        if source is not None and len(source) == 3:
            created, macro, weighted, bi_prec, min_prec = source[1][ROW_FACTS_AT:]
            if (
                type(created) in _STR_OR_NONE
                and type(macro) in _FLOAT_OR_NONE
                and type(weighted) in _FLOAT_OR_NONE
                and type(bi_prec) in _FLOAT_OR_NONE
                and type(min_prec) in _FLOAT_OR_NONE
            ):
                return RowFacts(created, macro, weighted, bi_prec, min_prec)
    from taskclf.core.metrics import class_precisions

    metadata, metrics = bundle.metadata, bundle.metrics
    bi_prec = min_prec = None
    if metrics is not None and metrics.confusion_matrix:
        precisions = class_precisions(metrics.confusion_matrix)
        min_prec = min(precisions)
        if BREAK_IDLE in metrics.label_names:
            bi_prec = precisions[metrics.label_names.index(BREAK_IDLE)]
    return RowFacts(
        created_at=None if metadata is None else metadata.created_at,
        macro_f1=None if metrics is None else metrics.macro_f1,
        weighted_f1=None if metrics is None else metrics.weighted_f1,
        bi_prec=bi_prec,
        min_prec=min_prec,
    )


def directory_name(bundle: ModelBundle) -> str:
    """``bundle.path.name``, without building the ``Path`` of a bundle whose path waits."""
    if type(bundle) is CachedBundle:
        values = instance_dict(bundle)
        if "path" not in values:
            # A waiting path is always its registry's root / model_id.
            return str(values["model_id"])
    return bundle.path.name


def cached_facts(bundle: ModelBundle) -> BundleFacts | None:
    """The facts an incomplete bundle from the scan cache carries; ``None`` for any other."""
    if type(bundle) is not CachedBundle:
        return None
    source = instance_dict(bundle).get(SOURCE_KEY)
    return None if source is None else source[-1]
