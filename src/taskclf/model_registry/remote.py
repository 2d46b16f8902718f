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

import itertools
import logging
import os
from collections.abc import Collection, Sequence
from pathlib import Path

from taskclf.core.types import LABEL_SET_V1
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
from taskclf.model_registry.selection import (
    declared_incompatibility,
)
from taskclf.model_registry.storage import MANIFEST_KEY, ObjectInfo, Storage, open_storage
from taskclf.model_registry.storage.base import PointerRead
from taskclf.model_registry.storage.chain import (
    HISTORY_PREFIX,
    chain_state,
    entry_seq,
    read_history_chain,
)
from taskclf.model_registry.storage.s3 import bundle_names_from, size_problems
from taskclf.model_registry.verify import BundleHealth, Finding, VerifyReport

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


# -- verify ---------------------------------------------------------------------------------------


def verify_registry(
    models_dir: str | os.PathLike[str],
    *,
    bundles: Sequence[ModelBundle] | None = None,
    deep: bool = False,
) -> VerifyReport:
    """:func:`~taskclf.model_registry.verify_registry` for a remote registry; writes nothing.

    Bundles are checked against their manifests by presence and size (a
    LIST shows both); contents are hashed on download. Besides the local
    checks: incomplete uploads and uncommitted history entries (a writer
    that lost its swap or crashed between creating its entry and swapping).
    ``deep`` is accepted for the local signature; remote contents are hashed
    when a bundle is downloaded (:func:`~taskclf.model_registry.bundle_cache.fetch_bundle`).
    ``bundles`` (a scan the caller already made) saves the scan.
    """
    del deep
    storage = _storage(models_dir)
    findings: list[Finding] = []
    try:
        infos = storage.list_files()
    except OSError as exc:
        finding = Finding(severity="error", code="registry-missing", message=str(exc))
        return VerifyReport(
            models_dir=storage.url,
            healthy=False,
            active_model_id=None,
            index_state="missing",
            bundles=[],
            findings=[finding],
        )
    if bundles is None:
        bundles = scan_listing(storage, infos)
    state = storage.read_pointer()
    active = located_id(storage, state.pointer)
    health = []
    for bundle in bundles:
        problem = None if bundle.valid else f"invalid: {bundle.invalid_reason}"
        if problem is None:
            incompatible = declared_incompatibility(bundle, LABEL_SET_V1)
            problem = f"incompatible: {incompatible}" if incompatible else None
        if problem is not None:
            code = "bundle-invalid" if not bundle.valid else "bundle-incompatible"
            findings.append(_finding("warning", code, f"{bundle.model_id}: {problem}", bundle))
        mismatch = manifest_problems(storage, bundle.model_id, infos)
        for text in mismatch:
            findings.append(
                _finding("error", "bundle-manifest-mismatch", f"{bundle.model_id}: {text}", bundle)
            )
        health.append(
            BundleHealth(
                model_id=bundle.model_id,
                valid=bundle.valid,
                compatible=bundle.valid and problem is None,
                eligible=bundle.valid and problem is None,
                reason=problem,
                active=bundle.model_id == active,
                manifest="mismatch" if mismatch else "match",
            )
        )
    findings += _pointer_findings(storage, state, {b.model_id: b for b in bundles}, health)
    findings += _history_findings(storage, state)
    for name in sorted(incomplete_uploads(infos)):
        findings.append(
            Finding(
                severity="warning",
                code="leftover-staging-dir",
                message=(
                    f"{name}: files without a manifest.json (an incomplete or interrupted "
                    "upload); invisible to readers, `taskclf model prune` removes it after an hour"
                ),
                path=f"{storage.url}/{name}",
            )
        )
    index_state = "missing" if storage.head(INDEX_KEY) is None else "fresh"
    from taskclf.model_registry.index import read_index_cache

    if index_state == "fresh" and read_index_cache(models_dir) is None:
        index_state = "invalid"
        findings.append(
            Finding(severity="warning", code="index-invalid", message="index.json is malformed")
        )
    return VerifyReport(
        models_dir=storage.url,
        healthy=not any(f.severity == "error" for f in findings),
        active_model_id=active if active in {b.model_id for b in bundles} else None,
        index_state=index_state,  # type: ignore[arg-type]
        bundles=health,
        findings=findings,
    )


def _finding(severity: str, code: str, message: str, bundle: ModelBundle) -> Finding:
    return Finding(
        severity=severity,  # type: ignore[arg-type]
        code=code,
        message=message,
        path=str(bundle.path),
        model_id=bundle.model_id,
    )


def _pointer_findings(
    storage: Storage,
    state: PointerRead,
    bundles: dict[str, ModelBundle],
    health: list[BundleHealth],
) -> list[Finding]:
    where = f"{storage.url}/{POINTER_KEY}"
    if state.problem is not None:
        return [
            Finding(severity="error", code="pointer-invalid", message=state.problem, path=where)
        ]
    if state.pointer is None:
        if any(h.eligible for h in health):
            return [
                Finding(
                    severity="warning",
                    code="pointer-missing",
                    message="No active.json; run `taskclf model set-active --model-id ID`",
                    path=where,
                )
            ]
        return []
    model_id = located_id(storage, state.pointer)
    if model_id is None:
        message = f"active.json model_dir {state.pointer.model_dir!r} locates no bundle"
        return [Finding(severity="error", code="pointer-escapes", message=message, path=where)]
    if model_id not in bundles:
        message = f"active.json names {model_id}, which is not a complete bundle"
        return [
            Finding(severity="error", code="pointer-target-missing", message=message, path=where)
        ]
    status = next(h for h in health if h.model_id == model_id)
    if not status.eligible:
        message = f"active.json names {model_id}, which is not usable: {status.reason}"
        return [
            Finding(severity="error", code="pointer-target-invalid", message=message, path=where)
        ]
    return []


def _history_findings(storage: Storage, state: PointerRead) -> list[Finding]:
    chain = read_history_chain(storage, state)
    head = chain_state(state)
    findings = [
        Finding(
            severity="error",
            code="history-line-invalid",
            message=f"history entry {key} does not parse",
            path=f"{storage.url}/{key}",
        )
        for key in chain.unreadable
    ]
    if state.pointer is not None and head.entry is not None and not chain.committed:
        findings.append(
            Finding(
                severity="error",
                code="history-missing",
                message=f"active.json's history entry {head.entry} is missing",
            )
        )
    for (_, before), (key, entry) in itertools.pairwise(chain.committed):
        if entry.old != before.new:
            findings.append(
                Finding(
                    severity="warning",
                    code="history-chain-broken",
                    message=(
                        f"history entry {key} switches from {_describe(entry.old)} but the "
                        f"entry before it switched to {_describe(before.new)}: active.json "
                        "was replaced or corrupted outside taskclf in between; the audit trail "
                        "has a gap there (keep active.json under taskclf's control)"
                    ),
                    path=f"{storage.url}/{key}",
                )
            )
    if (
        chain.committed
        and state.pointer is not None
        and chain.committed[-1][1].new != state.pointer
    ):
        findings.append(
            Finding(
                severity="error",
                code="history-pointer-mismatch",
                message="the newest history entry does not match active.json",
            )
        )
    for info in chain.uncommitted:
        pending = entry_seq(info.key) == head.seq + 1
        findings.append(
            Finding(
                severity="warning",
                code="history-uncommitted-entry",
                message=(
                    f"history entry {info.key} is not on the committed chain ("
                    + (
                        "a change being written now, or a writer that crashed between "
                        "creating its entry and swapping the pointer"
                        if pending
                        else "a writer that lost its compare-and-swap and could not remove it"
                    )
                    + "); readers ignore it, `taskclf model prune` removes it after an hour"
                ),
                path=f"{storage.url}/{info.key}",
            )
        )
    return findings


def _describe(pointer: ActivePointer | None) -> str:
    from taskclf.model_registry.pointer import pointer_bundle_name

    return (
        "no model" if pointer is None else repr(pointer_bundle_name(pointer) or pointer.model_dir)
    )
