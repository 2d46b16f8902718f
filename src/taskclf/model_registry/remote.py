"""Registry operations on an object-store registry (``s3://bucket/prefix``), over the storage seam.

Same contract as the local registry (REGISTRY.md), different mechanics,
because an object store has no rename and no lock:

* A **bundle** is visible once its ``manifest.json`` exists. Promotion
  uploads every other file first and the manifest last with
  create-if-absent, so a half-uploaded bundle is never listed, and two
  promotions of one name cannot both win. Remote bundles are always sealed.
* The **pointer** ``active.json`` changes only by compare-and-swap on its
  ETag. Its history is one immutable object per change,
  ``active_history/<seq>-<token>.json``, created *before* the swap; the
  pointer carries its ``seq`` and the key of its entry (``history``), and
  each entry the key of the one before (``prev``). The committed history
  is the chain followed back from the pointer: every committed change has
  exactly one entry, ``entry[i].old == entry[i-1].new``, whatever the number
  of writers on however many hosts. An entry off the chain is uncommitted
  (the writer lost the swap, or crashed between the two steps): readers
  ignore it, ``verify`` reports it, ``prune`` deletes it after an hour.

See docs/object-storage.md for the protocol and its crash states.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection
from pathlib import Path

from taskclf.model_registry.aliases import ACTIVE_FILE
from taskclf.model_registry.models import (
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.scan import (
    METADATA_FILE,
    METRICS_FILE,
    bundle_from_files,
)
from taskclf.model_registry.storage import MANIFEST_KEY, ObjectInfo, Storage, open_storage
from taskclf.model_registry.storage.chain import (
    HISTORY_PREFIX,
)
from taskclf.model_registry.storage.s3 import bundle_names_from, size_problems

log = logging.getLogger("taskclf.model_registry")

POINTER_KEY = ACTIVE_FILE
INDEX_KEY = "index.json"
STALE_AGE_S = 3600.0
"""Age after which an incomplete upload or an uncommitted history entry is certainly abandoned."""


def bundle_path(storage: Storage, model_id: str) -> Path:
    """How a remote bundle is named in ``ModelBundle.path`` (``s3:/bucket/prefix/<id>``)."""
    return Path(storage.url) / model_id


def _storage(models_dir: str | os.PathLike[str]) -> Storage:
    return open_storage(models_dir)


# -- scanning -------------------------------------------------------------------


def scan_listing(storage: Storage, infos: list[ObjectInfo]) -> list[ModelBundle]:
    """Parse every complete bundle of a listing.

    Each bundle's two files come from the ETag-keyed scan cache when the
    listing shows them unchanged, else are fetched (concurrently, bounded).
    """
    from taskclf.model_registry.bundle_cache import ScanCache

    names = bundle_names_from(infos)
    keys = [f"{name}/{file}" for name in names for file in (METADATA_FILE, METRICS_FILE)]
    raw = ScanCache(storage).read(storage, keys, infos)
    return [
        bundle_from_files(
            name,
            bundle_path(storage, name),
            raw[f"{name}/{METADATA_FILE}"],
            raw[f"{name}/{METRICS_FILE}"],
        )
        for name in names
    ]


def list_bundles(models_dir: str | os.PathLike[str]) -> list[ModelBundle]:
    """:func:`~taskclf.model_registry.list_bundles` for a remote registry (LIST, 2 GETs each)."""
    storage = _storage(models_dir)
    return scan_listing(storage, storage.list_files())


def read_one_bundle(storage: Storage, model_id: str) -> ModelBundle | None:
    """One complete bundle, or ``None`` if it does not exist (no manifest)."""
    keys = [
        f"{model_id}/{MANIFEST_KEY}",
        f"{model_id}/{METADATA_FILE}",
        f"{model_id}/{METRICS_FILE}",
    ]
    raw = storage.read_many(keys)
    if raw[keys[0]] is None:
        return None
    return bundle_from_files(model_id, bundle_path(storage, model_id), raw[keys[1]], raw[keys[2]])


def find_best_model(
    models_dir: str | os.PathLike[str],
    policy: SelectionPolicy | None = None,
    required_schema_hash: str | None = None,
    required_label_set: Collection[str] | None = None,
    *,
    bundles: list[ModelBundle] | None = None,
) -> SelectionReport:
    """:func:`~taskclf.model_registry.find_best_model` for a remote registry."""
    from taskclf.model_registry.resolution import rank_scanned

    if bundles is None:
        bundles = list_bundles(models_dir)
    return rank_scanned(bundles, policy, required_schema_hash, required_label_set)


# -- the pointer ----------------------------------------------------------------------


def located_id(storage: Storage, pointer: ActivePointer | None) -> str | None:
    """The bundle a pointer locates in ``storage`` (REGISTRY.md §6 and §13), quietly."""
    from taskclf.model_registry.pointer import pointed_model_id

    return pointed_model_id(storage.root_path, pointer, warn=False)


# -- activation, resolution -------------------------------------------------------


# -- integrity ---------------------------------------------------------------------------------


def manifest_problems(
    storage: Storage, model_id: str, listing: list[ObjectInfo] | None = None
) -> list[str]:
    """A remote bundle against its manifest, by presence and size (what a LIST shows)."""
    return [problem.problem for problem in size_problems(storage, model_id, listing)]


def incomplete_uploads(infos: list[ObjectInfo]) -> dict[str, float]:
    """Bundle prefixes holding files but no manifest: ``{name: newest file's mtime}``."""
    complete = set(bundle_names_from(infos))
    found: dict[str, float] = {}
    for info in infos:
        name, slash, _ = info.key.partition("/")
        if not slash or name in complete or name.startswith(".") or name == HISTORY_PREFIX:
            continue
        found[name] = max(found.get(name, 0.0), info.modified)
    return found
