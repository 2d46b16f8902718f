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
import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry.activation import Activation, RollbackPlan
from taskclf.model_registry.errors import (
    ActivationError,
    PromotionError,
    RegistryConflictError,
    RollbackError,
)
from taskclf.model_registry.hysteresis import should_switch_active
from taskclf.model_registry.manifest import (
    Manifest,
    build_manifest,
    check_manifest,
    manifest_bytes,
)
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ExclusionRecord,
    IndexCache,
    ModelBundle,
    PromotionResult,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.retention import PruneDecision, PrunePlan
from taskclf.model_registry.scan import (
    METADATA_FILE,
    METRICS_FILE,
    bundle_from_files,
    is_bundle_name,
    read_bundle,
)
from taskclf.model_registry.selection import (
    declared_incompatibility,
    is_compatible,
)
from taskclf.model_registry.storage import MANIFEST_KEY, ObjectInfo, Storage, open_storage
from taskclf.model_registry.storage.s3 import bundle_names_from
from taskclf.model_registry.verify import BundleHealth, Finding, VerifyReport

if TYPE_CHECKING:
    from taskclf.model_registry.listing import BundleRow

log = logging.getLogger("taskclf.model_registry")

POINTER_KEY = "active.json"
HISTORY_PREFIX = "active_history"
INDEX_KEY = "index.json"
WRITE_ATTEMPTS = 8
"""Compare-and-swap attempts of a change that may be re-applied on top of another (self-heal)."""
STALE_AGE_S = 3600.0
"""Age after which an incomplete upload or an uncommitted history entry is certainly abandoned."""


def bundle_path(storage: Storage, model_id: str) -> Path:
    """How a remote bundle is named in ``ModelBundle.path`` (``s3:/bucket/prefix/<id>``)."""
    return Path(storage.url) / model_id


def _storage(models_dir: str | os.PathLike[str]) -> Storage:
    return open_storage(models_dir)


def _root_name(storage: Storage) -> str:
    return posixpath.basename(storage.url.rstrip("/")) or "models"


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


# -- the pointer protocol ----------------------------------------------------------


class PointerState(NamedTuple):
    """``active.json`` as read, with what a compare-and-swap needs."""

    pointer: ActivePointer | None
    """``None``: absent, or not a valid pointer (it can still be replaced)."""
    version: str | None
    """The ETag to swap against; ``None`` when the object is absent."""
    seq: int
    """Sequence number of the pointer's change (0: no change recorded yet)."""
    entry: str | None
    """Key of the history entry of the pointer's change."""
    problem: str | None = None
    """Why a present pointer is unusable."""


def read_pointer_state(storage: Storage) -> PointerState:
    """Read ``active.json`` once: pointer, ETag, sequence number and history link."""
    try:
        raw, version = storage.read(POINTER_KEY)
    except FileNotFoundError:
        return PointerState(None, None, 0, None)
    try:
        document = json.loads(raw)
        pointer = ActivePointer.model_validate(document)
    except (ValueError, ValidationError) as exc:
        problem = f"Active pointer {storage.url}/{POINTER_KEY} is not a valid pointer: {exc}"
        return PointerState(None, version, *_newest_entry(storage), problem.splitlines()[0])
    seq = document.get("seq")
    entry = document.get("history")
    if not isinstance(seq, int) or seq < 0 or not isinstance(entry, str):
        # Written by hand or by another tool: the next change continues the chain
        # from its newest entry, so no committed entry is cut off (verify reports the gap).
        return PointerState(pointer, version, *_newest_entry(storage))
    return PointerState(pointer, version, seq, entry)


def _newest_entry(storage: Storage) -> tuple[int, str | None]:
    """``(seq, key)`` of the newest history object, ``(0, None)`` when there is none."""
    numbered = [(_entry_seq(i.key), i.key) for i in storage.list_files(HISTORY_PREFIX)]
    valid = [(seq, key) for seq, key in numbered if seq is not None]
    if not valid:
        return 0, None
    return max(valid)


def _entry_seq(key: str) -> int | None:
    name = posixpath.basename(key)
    number = name.partition("-")[0]
    return int(number) if number.isdigit() else None


def located_id(pointer: ActivePointer | None) -> str | None:
    """The bundle a remote pointer names: the last component of ``model_dir``, a plain name.

    Confined like §6: anything but ``<id>`` or ``<name>/<id>`` (with a
    ``model_id``, if any, equal to ``<id>``) locates nothing.
    """
    if pointer is None:
        return None
    parts = pointer.model_dir.split("/")
    if len(parts) > 2 or not is_bundle_name(parts[-1]):
        return None
    if len(parts) == 2 and parts[0] in ("", ".", ".."):
        return None
    if pointer.model_id is not None and pointer.model_id != parts[-1]:
        return None
    return parts[-1]


def new_pointer(
    storage: Storage, bundle: ModelBundle, policy: SelectionPolicy | None, reason: str | None
) -> ActivePointer:
    """The pointer :func:`commit_pointer` would write for ``bundle`` (REGISTRY.md §6 fields)."""
    from taskclf.model_registry.pointer import utc_now_iso

    policy = policy if policy is not None else SelectionPolicy()
    assert bundle.metrics is not None
    details: dict[str, object] = {
        "metric": "macro_f1",
        "macro_f1": bundle.metrics.macro_f1,
        "weighted_f1": bundle.metrics.weighted_f1,
    }
    if reason is not None:
        details["note"] = reason
    return ActivePointer(
        model_dir=f"{_root_name(storage)}/{bundle.model_id}",
        selected_at=utc_now_iso(),
        policy_version=policy.version,
        model_id=bundle.model_id,
        reason=details,
    )


def commit_pointer(storage: Storage, state: PointerState, new: ActivePointer) -> PointerState:
    """Record the change ``state.pointer -> new`` and swap the pointer, or change nothing.

    1. create ``active_history/<seq+1>-<token>.json`` (create-if-absent);
    2. compare-and-swap ``active.json`` against ``state.version``.

    The swap is the commit point. A lost swap deletes the entry again; a
    crash between the steps, or a swap whose outcome is unknown (a dropped
    connection), leaves an uncommitted entry off the chain.

    Returns:
        The state after the change.

    Raises:
        RegistryConflictError: ``active.json`` changed since ``state`` was read.
        OSError: A request failed; if the swap's outcome is unknown (a
            connection dropped), the pointer is read back to decide.
    """
    seq = state.seq + 1
    key = f"{HISTORY_PREFIX}/{seq:012d}-{uuid.uuid4().hex[:16]}.json"
    entry = {
        "at": new.selected_at,
        "old": state.pointer.model_dump(mode="json") if state.pointer is not None else None,
        "new": new.model_dump(mode="json"),
        "seq": seq,
        "prev": state.entry,
    }
    storage.create(key, json.dumps(entry).encode() + b"\n")
    document = {**new.model_dump(mode="json"), "seq": seq, "history": key}
    data = json.dumps(document, indent=2).encode() + b"\n"
    try:
        version = storage.replace(POINTER_KEY, data, expected=state.version)
    except RegistryConflictError:
        _discard(storage, key)
        raise
    except OSError:
        if read_pointer_state(storage).entry != key:
            # The outcome is unknown (the request may still land): the entry stays. If the
            # swap never happens it is an uncommitted entry, which prune removes later.
            raise
        log.warning("The pointer swap of %s reported an error but committed", storage.url)
        return read_pointer_state(storage)
    return PointerState(new, version, seq, key)


def _discard(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except OSError as exc:
        log.warning("Could not remove the uncommitted history entry %s: %s", key, exc)


def update_pointer(
    storage: Storage,
    decide: Callable[[PointerState], ActivePointer | None],
    *,
    attempts: int = WRITE_ATTEMPTS,
) -> tuple[PointerState, ActivePointer | None]:
    """Read the pointer, let ``decide`` compute the new one, swap; re-run on a conflict.

    ``decide`` returns ``None`` when nothing should change. It is called
    again on the fresh state after every lost swap, so a change re-applied on
    top of another one is decided against what is really there.

    Returns:
        ``(state before the change, pointer written or None)``.

    Raises:
        RegistryConflictError: Every attempt lost its swap.
    """
    for attempt in range(attempts):
        state = read_pointer_state(storage)
        new = decide(state)
        if new is None:
            return state, None
        try:
            commit_pointer(storage, state, new)
        except RegistryConflictError:
            if attempt == attempts - 1:
                raise
            continue
        return state, new
    raise AssertionError("unreachable")


def read_active(models_dir: str | os.PathLike[str]) -> ActivePointer | None:
    """:func:`~taskclf.model_registry.read_active` for a remote registry."""
    state = read_pointer_state(_storage(models_dir))
    if state.problem is not None:
        log.warning("%s; ignoring it", state.problem)
    return state.pointer


class HistoryChain(NamedTuple):
    """The history objects, split into the committed chain and the rest."""

    committed: list[tuple[str, ActiveHistoryEntry]]
    """Oldest first, each with its key."""
    uncommitted: list[ObjectInfo]
    """Entries off the chain (lost swaps, crashes between the two steps)."""
    unreadable: list[str]
    """Entries that do not parse."""


def read_history_chain(storage: Storage, state: PointerState | None = None) -> HistoryChain:
    """Follow the history back from the pointer (one LIST, one GET per entry)."""
    state = state if state is not None else read_pointer_state(storage)
    infos = storage.list_files(HISTORY_PREFIX)
    raw = storage.read_many([info.key for info in infos])
    documents: dict[str, dict[str, Any]] = {}
    unreadable = []
    for key, data in raw.items():
        try:
            document = json.loads(data) if data is not None else None
            ActiveHistoryEntry.model_validate(document)
        except (ValueError, ValidationError):
            unreadable.append(key)
            continue
        assert isinstance(document, dict)
        documents[key] = document
    head = state.entry
    chain: list[tuple[str, ActiveHistoryEntry]] = []
    seen = set()
    while head is not None and head in documents and head not in seen:
        seen.add(head)
        chain.append((head, ActiveHistoryEntry.model_validate(documents[head])))
        previous = documents[head].get("prev")
        head = previous if isinstance(previous, str) else None
    chain.reverse()
    rest = [info for info in infos if info.key not in seen and info.key not in unreadable]
    return HistoryChain(chain, rest, unreadable)


def read_active_history(models_dir: str | os.PathLike[str]) -> list[ActiveHistoryEntry]:
    """:func:`~taskclf.model_registry.read_active_history` for a remote registry: the chain."""
    chain = read_history_chain(_storage(models_dir))
    for key in chain.unreadable:
        log.warning("Skipping unparseable history entry %s", key)
    return [entry for _, entry in chain.committed]


# -- activation, resolution -------------------------------------------------------


def _require_activatable(storage: Storage, model_id: str) -> ModelBundle:
    path = bundle_path(storage, model_id)
    bundle = read_one_bundle(storage, model_id) if is_bundle_name(model_id) else None
    if bundle is None:
        raise ActivationError(model_id, path, str(path), "not_found")
    if not bundle.valid:
        raise ActivationError(model_id, path, str(bundle.invalid_reason), "invalid")
    problem = declared_incompatibility(bundle, LABEL_SET_V1)
    if problem is not None:
        raise ActivationError(model_id, path, problem, "incompatible")
    problems = manifest_problems(storage, model_id)
    if problems:
        raise ActivationError(model_id, path, problems[0], "integrity")
    return bundle


def activate(
    models_dir: str | os.PathLike[str],
    model_id: str,
    *,
    policy: SelectionPolicy | None = None,
    reason: str = "manual set-active",
) -> Activation:
    """:func:`~taskclf.model_registry.activate` on a remote registry.

    A lost swap is retried on the fresh pointer: the intent ("this bundle")
    does not depend on which model was active before.
    """
    storage = _storage(models_dir)
    bundle = _require_activatable(storage, model_id)

    def decide(state: PointerState) -> ActivePointer | None:
        if located_id(state.pointer) == model_id:
            return None
        return new_pointer(storage, bundle, policy, reason)

    state, written = update_pointer(storage, decide)
    if written is None:
        assert state.pointer is not None
        return Activation(pointer=state.pointer, changed=False)
    return Activation(pointer=written, changed=True)


def write_active(
    models_dir: str | os.PathLike[str],
    bundle: ModelBundle,
    policy: SelectionPolicy | None = None,
    reason: str | None = None,
) -> ActivePointer:
    """:func:`~taskclf.model_registry.write_active_atomic` for a remote registry (one attempt)."""
    storage = _storage(models_dir)
    _require_activatable(storage, bundle.model_id)
    new = new_pointer(storage, bundle, policy, reason)
    commit_pointer(storage, read_pointer_state(storage), new)
    return new


def _pointer_bundle(
    storage: Storage,
    state: PointerState,
    required_schema_hash: str | None,
    labels: Collection[str],
) -> tuple[ModelBundle | None, str]:
    if state.pointer is None:
        return None, state.problem or f"No active pointer in {storage.url}"
    model_id = located_id(state.pointer)
    if model_id is None:
        return None, f"Active pointer model_dir {state.pointer.model_dir!r} locates no bundle"
    bundle = read_one_bundle(storage, model_id)
    if bundle is None:
        return None, f"Active pointer names {model_id}, which is not in {storage.url}"
    if not bundle.valid:
        return None, f"Active bundle {model_id} is invalid: {bundle.invalid_reason}"
    if required_schema_hash is not None:
        ok = is_compatible(bundle, required_schema_hash, labels)
    else:
        ok = declared_incompatibility(bundle, labels) is None
    if not ok:
        return None, f"Active bundle {model_id} is incompatible"
    return bundle, ""


def resolve_active_model(
    models_dir: str | os.PathLike[str],
    policy: SelectionPolicy | None = None,
    required_schema_hash: str | None = None,
    required_label_set: Collection[str] | None = None,
) -> tuple[ModelBundle | None, SelectionReport | None]:
    """:func:`~taskclf.model_registry.resolve_active_model` for a remote registry.

    A healthy pointer costs four requests (the pointer, the bundle's
    manifest, metadata and metrics, the last three concurrently), whatever
    the number of bundles. A repair is a compare-and-swap; if another
    writer repaired first, its pointer is followed.
    """
    storage = _storage(models_dir)
    labels = required_label_set if required_label_set is not None else LABEL_SET_V1
    state = read_pointer_state(storage)
    bundle, problem = _pointer_bundle(storage, state, required_schema_hash, labels)
    if bundle is not None:
        return bundle, None
    log.warning("%s; selecting the best bundle by scanning", problem)
    report = find_best_model(models_dir, policy, required_schema_hash, labels)
    best = report.best
    if best is None:
        return None, report
    for _ in range(WRITE_ATTEMPTS):
        try:
            commit_pointer(storage, state, new_pointer(storage, best, policy, "auto-repair"))
        except RegistryConflictError:
            state = read_pointer_state(storage)
            repaired, _ = _pointer_bundle(storage, state, required_schema_hash, labels)
            if repaired is not None:
                return repaired, None
            continue
        except OSError as exc:
            log.warning("Could not repair the active pointer in %s: %s", storage.url, exc)
        break
    return best, report


# -- promotion -------------------------------------------------------------------------


def promote_bundle(
    candidate_dir: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    *,
    policy: SelectionPolicy | None = None,
    move: bool = False,
    name: str | None = None,
    max_bytes: int | None = None,
) -> PromotionResult:
    """:func:`~taskclf.model_registry.promote_bundle` into a remote registry.

    The candidate is copied into a local scratch directory exactly as a
    local promotion stages it (regular files and directories only, within
    ``max_bytes``), checked there, sealed if it is not (the candidate itself
    is never modified), uploaded with its manifest last (create-if-absent),
    then the pointer moves by compare-and-swap if the new best differs and
    hysteresis allows.
    """
    from taskclf.model_registry.promotion import (
        DEFAULT_MAX_BUNDLE_BYTES,
        check_candidate_files,
        copy_candidate_files,
    )

    storage = _storage(models_dir)
    policy = policy if policy is not None else SelectionPolicy()
    candidate = Path(os.path.abspath(candidate_dir))
    target = name if name is not None else candidate.name
    limit = DEFAULT_MAX_BUNDLE_BYTES if max_bytes is None else max_bytes
    if not candidate.is_dir():
        raise PromotionError(target, candidate, "it is not a directory")
    if not is_bundle_name(target):
        raise PromotionError(target, candidate, f"{target!r} is not a bundle name")
    check_candidate_files(candidate, target, candidate, limit)
    with tempfile.TemporaryDirectory(prefix="taskclf-upload-") as scratch:
        staged = Path(scratch) / target
        copy_candidate_files(candidate, staged, target, limit)
        bundle = read_bundle(staged)
        if bundle is None or not bundle.valid:
            reason = bundle.invalid_reason if bundle is not None else "it vanished"
            raise PromotionError(target, candidate, f"bundle is invalid: {reason}")
        problem = declared_incompatibility(bundle, LABEL_SET_V1)
        if problem is not None:
            raise PromotionError(target, candidate, f"bundle is incompatible: {problem}")
        check = check_manifest(staged)
        if check.status == "mismatch":
            raise PromotionError(
                target,
                candidate,
                f"it does not match its manifest.json: {check.problems[0].problem}",
            )
        if check.status == "unsealed":
            (staged / MANIFEST_KEY).write_bytes(manifest_bytes(build_manifest(staged)))
        try:
            storage.upload_tree(staged, target)
        except RegistryConflictError:
            raise PromotionError(
                target, candidate, f"a bundle named {target!r} already exists in {storage.url}"
            ) from None
    if move:
        shutil.rmtree(candidate)
    promoted = read_one_bundle(storage, target)
    assert promoted is not None
    reports: list[SelectionReport] = []

    def decide(state: PointerState) -> ActivePointer | None:
        report = find_best_model(models_dir, policy)
        reports.append(report)
        best = report.best
        if best is None or located_id(state.pointer) == best.model_id:
            return None
        if not should_switch_active(state.pointer, best, policy):
            return None
        return new_pointer(storage, best, policy, "promotion")

    state, written = update_pointer(storage, decide)
    _write_index(storage, reports[-1])
    return PromotionResult(
        bundle=promoted,
        report=reports[-1],
        active_updated=written is not None,
        previous=state.pointer,
        active=written if written is not None else state.pointer,
    )


# -- rollback -----------------------------------------------------------------------------


def plan_rollback(
    models_dir: str | os.PathLike[str], *, to: str | None = None, steps: int | None = None
) -> RollbackPlan:
    """:func:`~taskclf.model_registry.plan_rollback` on a remote registry; writes nothing.

    Raises:
        RollbackError: Bad arguments, or nothing usable to roll back to.
    """
    if to is not None and steps is not None:
        raise RollbackError("Give either a target model or a number of steps, not both.")
    if steps is not None and steps < 1:
        raise RollbackError(f"The number of steps must be at least 1 (got {steps}).")
    storage = _storage(models_dir)
    state = read_pointer_state(storage)
    current = located_id(state.pointer)
    considered: list[str] = []
    for _, entry in reversed(read_history_chain(storage, state).committed):
        for pointer in (entry.new, entry.old):
            model_id = located_id(pointer)
            if model_id is not None and model_id != current and model_id not in considered:
                considered.append(model_id)
    skipped: list[ExclusionRecord] = []
    distance: int | None = None
    if to is not None:
        if to == current:
            raise RollbackError(f"{to} is already the active model; nothing to roll back.", to)
        try:
            _require_activatable(storage, to)
        except ActivationError as exc:
            raise RollbackError(f"Cannot roll back to {to}: {exc}", to) from None
        target = to
    else:
        distance = steps if steps is not None else 1
        usable: list[str] = []
        for model_id in considered:
            try:
                _require_activatable(storage, model_id)
            except ActivationError as exc:
                skipped.append(
                    ExclusionRecord(
                        model_id=model_id, path=bundle_path(storage, model_id), reason=str(exc)
                    )
                )
                continue
            usable.append(model_id)
            if len(usable) == distance:
                break
        if len(usable) < distance:
            raise RollbackError(
                f"Nothing to roll back to in {storage.url}: {len(usable)} usable previously "
                f"active model(s), {distance} step(s) asked."
            )
        target = usable[-1]
    return RollbackPlan(
        current=state.pointer,
        current_model_id=current,
        target_model_id=target,
        target_path=bundle_path(storage, target),
        steps=distance,
        considered=considered,
        skipped=skipped,
    )


def execute_rollback(
    models_dir: str | os.PathLike[str],
    plan: RollbackPlan,
    *,
    policy: SelectionPolicy | None = None,
) -> ActivePointer:
    """:func:`~taskclf.model_registry.execute_rollback` on a remote registry.

    One compare-and-swap, never retried: the target was chosen against the
    pointer the plan saw.

    Raises:
        RollbackError: The pointer moved since the plan (or during the swap);
            nothing was written.
    """
    storage = _storage(models_dir)
    bundle = _require_activatable(storage, plan.target_model_id)
    state = read_pointer_state(storage)
    moved = RollbackError(
        f"The active model changed since the rollback was planned (planned from "
        f"{plan.current_model_id}, now {located_id(state.pointer)}); plan the rollback again.",
        plan.target_model_id,
    )
    if located_id(state.pointer) != plan.current_model_id:
        raise moved
    new = new_pointer(storage, bundle, policy, "rollback")
    try:
        commit_pointer(storage, state, new)
    except RegistryConflictError:
        raise moved from None
    return new


# -- index -----------------------------------------------------------------------------------


def _write_index(storage: Storage, report: SelectionReport) -> IndexCache | None:
    """:func:`write_index_cache` for promotion: the index is a cache, so a failure is logged."""
    try:
        return write_index_cache(storage.url, report)
    except OSError as exc:
        log.warning("Could not write %s/%s: %s", storage.url, INDEX_KEY, exc)
    return None


def write_index_cache(models_dir: str | os.PathLike[str], report: SelectionReport) -> IndexCache:
    """:func:`~taskclf.model_registry.write_index_cache` for a remote registry.

    A cache, so the last writer wins; the write is still a compare-and-swap,
    retried, so two writers never interleave within one object.
    """
    from taskclf.model_registry.index import index_of

    storage = _storage(models_dir)
    cache = index_of(report)
    data = cache.model_dump_json(indent=2).encode() + b"\n"
    for _ in range(WRITE_ATTEMPTS):
        try:
            storage.replace(INDEX_KEY, data, expected=storage.head(INDEX_KEY))
        except RegistryConflictError:
            continue
        return cache
    raise RegistryConflictError(storage.url, INDEX_KEY)


def read_index_cache(models_dir: str | os.PathLike[str]) -> IndexCache | None:
    """:func:`~taskclf.model_registry.read_index_cache` for a remote registry."""
    try:
        raw, _ = _storage(models_dir).read(INDEX_KEY)
        return IndexCache.model_validate_json(raw)
    except (OSError, ValidationError):
        return None


# -- integrity ---------------------------------------------------------------------------------


def manifest_problems(
    storage: Storage, model_id: str, listing: list[ObjectInfo] | None = None
) -> list[str]:
    """A remote bundle against its manifest, by presence and size (what a LIST shows).

    Contents are hashed where they are used: on download, into the local
    cache (see :mod:`taskclf.model_registry.bundle_cache`).
    """
    prefix = f"{model_id}/"
    if listing is None:
        listing = storage.list_files(model_id)
    files = {i.key[len(prefix) :]: i.size for i in listing if i.key.startswith(prefix)}
    try:
        manifest = Manifest.model_validate_json(storage.read(prefix + MANIFEST_KEY)[0])
    except FileNotFoundError:
        return [f"{model_id} has no manifest.json (an incomplete upload)"]
    except (OSError, ValidationError) as exc:
        return [f"manifest.json of {model_id} is unreadable or malformed: {exc}"]
    problems = []
    for file, entry in manifest.files.items():
        if file not in files:
            problems.append(f"{file} is listed in manifest.json but missing")
        elif files[file] != entry.size:
            problems.append(f"{file} is {files[file]} bytes, manifest.json says {entry.size}")
    problems += [
        f"{file} is not listed in manifest.json"
        for file in sorted(files)
        if file != MANIFEST_KEY and file not in manifest.files
    ]
    return problems


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


# -- prune ------------------------------------------------------------------------------------


def plan_prune(
    models_dir: str | os.PathLike[str],
    *,
    keep: int,
    keep_history: int = 10,
    include_invalid: bool = False,
    policy: SelectionPolicy | None = None,
    now: float | None = None,
) -> PrunePlan:
    """:func:`~taskclf.model_registry.plan_prune` on a remote registry; writes nothing.

    ``leftovers`` holds incomplete uploads (``<url>/<name>``) and uncommitted
    history entries (``<url>/active_history/...``) older than an hour.
    """
    policy = policy if policy is not None else SelectionPolicy()
    storage = _storage(models_dir)
    now = time.time() if now is None else now
    infos = storage.list_files()
    bundles = scan_listing(storage, infos)
    report = find_best_model(models_dir, policy, bundles=bundles)
    state = read_pointer_state(storage)
    chain = read_history_chain(storage, state)
    active = located_id(state.pointer)
    top = {b.model_id for b in report.ranked[:keep]}
    recent: set[str] = set()
    for _, entry in chain.committed[len(chain.committed) - keep_history :] if keep_history else []:
        recent.update(filter(None, (located_id(entry.old), located_id(entry.new))))
    sizes: dict[str, int] = {}
    for info in infos:
        name = info.key.partition("/")[0]
        sizes[name] = sizes.get(name, 0) + info.size
    decisions = []
    for bundle in bundles:
        reasons = []
        if bundle.model_id == active:
            reasons.append("active")
        if bundle.model_id in top:
            reasons.append(f"top {keep} ranked")
        if bundle.model_id in recent:
            reasons.append(f"in the last {keep_history} history entries")
        if not bundle.valid and not include_invalid:
            reasons.append("invalid (kept without --include-invalid)")
        decisions.append(
            PruneDecision(
                model_id=bundle.model_id,
                path=bundle.path,
                action="keep" if reasons else "delete",
                reasons=reasons or ["not retained"],
                size_bytes=sizes.get(bundle.model_id, 0),
            )
        )
    root = Path(storage.url)
    leftovers = [
        root / name
        for name, modified in incomplete_uploads(infos).items()
        if now - modified > STALE_AGE_S
    ]
    leftovers += [root / i.key for i in chain.uncommitted if now - i.modified > STALE_AGE_S]
    return PrunePlan(
        models_dir=root,
        keep=keep,
        keep_history=keep_history,
        include_invalid=include_invalid,
        decisions=decisions,
        policy=policy,
        leftovers=sorted(leftovers),
    )


def execute_prune(plan: PrunePlan) -> PrunePlan:
    """:func:`~taskclf.model_registry.execute_prune` on a remote registry.

    Each bundle disappears with its manifest (the first delete); the
    pointer is read again just before each delete, and a bundle it now
    names is kept.

    Returns:
        The plan, restricted to what was deleted.
    """
    storage = _storage(plan.models_dir)
    deleted = []
    for decision in plan.to_delete:
        if located_id(read_pointer_state(storage).pointer) == decision.model_id:
            log.warning("Not pruning %s: it became the active model", decision.model_id)
            continue
        storage.delete_tree(decision.model_id)
        deleted.append(decision.model_id)
    prefix = len(os.fspath(plan.models_dir)) + 1
    for leftover in plan.leftovers:
        key = os.fspath(leftover)[prefix:]
        if key.startswith(f"{HISTORY_PREFIX}/"):
            storage.delete(key)
        else:
            storage.delete_tree(key)
    kept = [d for d in plan.decisions if d.action == "keep" or d.model_id in deleted]
    return plan.model_copy(update={"decisions": kept})


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
    state = read_pointer_state(storage)
    active = located_id(state.pointer)
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
    state: PointerState,
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
    model_id = located_id(state.pointer)
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


def _history_findings(storage: Storage, state: PointerState) -> list[Finding]:
    chain = read_history_chain(storage, state)
    findings = [
        Finding(
            severity="error",
            code="history-line-invalid",
            message=f"history entry {key} does not parse",
            path=f"{storage.url}/{key}",
        )
        for key in chain.unreadable
    ]
    if state.pointer is not None and state.entry is not None and not chain.committed:
        findings.append(
            Finding(
                severity="error",
                code="history-missing",
                message=f"active.json's history entry {state.entry} is missing",
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
        pending = _entry_seq(info.key) == state.seq + 1
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


def list_rows(
    models_dir: str | os.PathLike[str],
    *,
    sort: str = "macro_f1",
    schema_hash: str | None = None,
    eligible_only: bool = False,
) -> list[BundleRow]:
    """:func:`~taskclf.model_registry.list_rows` (``train list``) for a remote registry."""
    from taskclf.model_registry.listing import build_rows

    storage = _storage(models_dir)
    bundles = list_bundles(models_dir)
    active = located_id(read_pointer_state(storage).pointer)
    return build_rows(
        bundles,
        active_path=bundle_path(storage, active) if active is not None else None,
        sort=sort,
        schema_hash=schema_hash,
        eligible_only=eligible_only,
    )


def index_staleness(models_dir: str | os.PathLike[str], cache: IndexCache) -> list[str]:
    """:func:`~taskclf.model_registry.index_staleness` for a remote registry.

    A bundle changed when one of its files was modified after ``generated_at``
    (the object store's ``Last-Modified``, from one LIST).
    """
    from taskclf.model_registry.scan import parse_timestamp

    try:
        generated = parse_timestamp(cache.generated_at).timestamp()
    except ValueError:
        return [f"generated_at {cache.generated_at!r} is not an ISO-8601 timestamp"]
    infos = _storage(models_dir).list_files()
    current = bundle_names_from(infos)
    cached = {s.model_id for s in cache.ranked} | {r.model_id for r in cache.excluded}
    reasons = [f"bundle {name} was added" for name in current if name not in cached]
    reasons += [f"bundle {name} was removed" for name in sorted(cached - set(current))]
    changed = {
        info.key.partition("/")[0]
        for info in infos
        if info.modified > generated and info.key.partition("/")[0] in cached
    }
    reasons += [f"bundle {name} was changed" for name in sorted(changed)]
    return reasons


def _describe(pointer: ActivePointer | None) -> str:
    return "no model" if pointer is None else repr(located_id(pointer) or pointer.model_dir)


def require_default_alias(alias: str) -> None:
    """Refuse an alias other than ``active`` on a remote registry (not supported there yet).

    Raises:
        AliasError: ``alias`` is not ``active``.
    """
    from taskclf.model_registry.aliases import DEFAULT_ALIAS
    from taskclf.model_registry.errors import AliasError

    if alias != DEFAULT_ALIAS:
        raise AliasError(
            alias,
            f"Alias {alias!r}: an s3:// registry has only the active pointer so far; "
            "use the default alias there",
        )
