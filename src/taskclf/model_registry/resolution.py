"""Finding the best bundle and the active one (§5, §7): the scanning entry points."""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import NamedTuple

from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry import ranking_cache
from taskclf.model_registry.aliases import DEFAULT_ALIAS, check_alias_name
from taskclf.model_registry.config import RegistryConfig, load_registry_config
from taskclf.model_registry.errors import BundleIntegrityError
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.pointer import find_pointed_bundle, pointer_change
from taskclf.model_registry.scan import gc_paused, scan_registry
from taskclf.model_registry.selection import (
    compatibility_problem,
    eligible_schema_hashes,
    explain_incompatibility,
    facts_columns,
    facts_of,
    outcome_of,
    report_of,
    select_with_facts,
)
from taskclf.model_registry.storage import Storage, open_storage
from taskclf.model_registry.storage.base import PointerRead

log = logging.getLogger("taskclf.model_registry")


def rank_scanned(
    bundles: list[ModelBundle],
    policy: SelectionPolicy | None = None,
    required_schema_hash: str | None = None,
    required_label_set: Collection[str] | None = None,
    *,
    config: RegistryConfig | None = None,
) -> SelectionReport:
    """:func:`find_best_model` on bundles already scanned (from any backend); pure.

    ``config`` supplies the default labels and the schemas tried (default:
    taskclf's own, ``RegistryConfig()``).
    """
    policy = policy if policy is not None else SelectionPolicy()
    config = config if config is not None else RegistryConfig()
    labels = required_label_set if required_label_set is not None else config.labels
    # Ranking allocates a few objects per bundle while every bundle is alive: with the
    # collector on, the survivors (sort keys) trigger a full collection over all of them
    # (1.5 s at 100,000 bundles).
    with gc_paused():
        # A scanned bundle carries its facts (list_bundles computes them while reading, or
        # takes them from the scan cache); others' are computed here, once.
        facts = facts_of(bundles)
        columns = facts_columns(facts)
        if required_schema_hash is None:
            hashes = [schema.hash for schema in config.schemas]
            # One pass for every version tried: the hashes some bundle would be ranked under.
            ranked_under = eligible_schema_hashes(facts, policy, labels, columns=columns)
            required_schema_hash = next((h for h in hashes if h in ranked_under), hashes[-1])
        return select_with_facts(
            bundles, facts, policy, required_schema_hash, labels, columns=columns
        )


def find_best_model(
    models_dir: str | os.PathLike[str],
    policy: SelectionPolicy | None = None,
    required_schema_hash: str | None = None,
    required_label_set: Collection[str] | None = None,
    *,
    config: RegistryConfig | None = None,
) -> SelectionReport:
    """Rank every bundle in ``models_dir``; never writes.

    Args:
        models_dir: The registry directory.
        policy: Default ``SelectionPolicy()``.
        required_schema_hash: Rank against this hash only. Without it, each
            schema version the registry knows is tried newest-first and the
            first pass with an eligible bundle is returned (else the oldest's
            pass).
        required_label_set: Default: the registry's labels (``LABEL_SET_V1``
            unless its configuration says otherwise).
        config: The registry's labels and schemas; default
            :func:`~taskclf.model_registry.config.load_registry_config`.

    Returns:
        The report; every scanned bundle is either ranked or excluded. The
        directory is scanned once, however many versions are tried.

    Raises:
        RegistryConfigError: ``registry.toml`` (or ``$TASKCLF_LABELS``) is malformed.
    """
    config = config if config is not None else load_registry_config(models_dir)
    # scan_registry reads either backend; the ranking is the same pure code for both.
    scanned = scan_registry(models_dir)
    if scanned.snapshot is None:
        return rank_scanned(
            scanned.bundles, policy, required_schema_hash, required_label_set, config=config
        )
    # Every bundle came from the scan cache unchanged: a ranking kept for this request
    # on this snapshot is this ranking (ranking_cache).
    policy = policy if policy is not None else SelectionPolicy()
    labels = required_label_set if required_label_set is not None else config.labels
    root = Path(os.path.abspath(models_dir))
    request = ranking_cache.request_key(policy, required_schema_hash, labels, config)
    kept = ranking_cache.lookup(root, scanned.snapshot, request, len(scanned.bundles))
    if kept is not None:
        return report_of(scanned.bundles, kept, policy)
    report = rank_scanned(scanned.bundles, policy, required_schema_hash, labels, config=config)
    ranking_cache.store(root, scanned.snapshot, request, outcome_of(scanned.bundles, report))
    return report


def resolve_active_model(
    models_dir: str | os.PathLike[str],
    policy: SelectionPolicy | None = None,
    required_schema_hash: str | None = None,
    required_label_set: Collection[str] | None = None,
    *,
    config: RegistryConfig | None = None,
    alias: str = DEFAULT_ALIAS,
) -> tuple[ModelBundle | None, SelectionReport | None]:
    """The bundle inference should run, following the pointer and repairing it if needed.

    A valid pointer to a valid, compatible bundle is followed without
    scanning the directory. Otherwise the registry is ranked and, if a
    best bundle exists, the pointer is rewritten to it
    (``reason="auto-repair"``); when that write fails (read-only
    deployment) the answer is still returned. The followed pointer is never
    checked against a manifest (this path must stay cheap); a repair does
    not point at a sealed bundle whose files changed (logged; the answer is
    still returned, and ``ActiveModelReloader`` refuses to load it).

    A *pinned* pointer is never repaired to another bundle: if its bundle
    is no longer usable, resolution still refuses that bundle, logs an
    error saying the pin holds an unusable bundle, and returns the best
    eligible bundle of the scan, leaving the pointer as it is.

    Args:
        models_dir: The registry directory.
        policy: Default ``SelectionPolicy()``.
        required_schema_hash: As for :func:`find_best_model`; without it the
            pointed bundle must match the hash of its own declared version.
        required_label_set: Default: the registry's labels.
        config: The registry's labels and schemas; default
            :func:`~taskclf.model_registry.config.load_registry_config`.
        alias: Which pointer to follow (default ``"active"``).

    Returns:
        ``(bundle, None)`` from the pointer, ``(best, report)`` after a
        scan, or ``(None, report)`` when nothing is eligible.

    Raises:
        AliasNameError: ``alias`` is not a usable alias name.
        RegistryConfigError: ``registry.toml`` (or ``$TASKCLF_LABELS``) is malformed.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    check_alias_name(alias)
    config = config if config is not None else load_registry_config(root)
    labels = required_label_set if required_label_set is not None else config.labels
    schemas = config.schema_hashes
    target = _follow_active_pointer(storage, required_schema_hash, labels, schemas, alias)
    if target.bundle is not None:
        return target.bundle, None
    # The one warning of this call: the reads below are quiet, so a corrupt or
    # escaping pointer is reported once, not once per look at it.
    log.warning("%s; selecting the best bundle by scanning", target.problem)
    report = find_best_model(root, policy, required_schema_hash, labels, config=config)
    # Hashed before the commit (a repair writes the pointer, which refuses a sealed bundle
    # whose files changed): a tampered top bundle is passed over, never served.
    best = _first_intact(report)
    if best is None:
        return None, report
    if _pinned_elsewhere(storage.read_pointer(alias).pointer, alias, target, best):
        return best, report
    answer: tuple[ModelBundle | None, SelectionReport | None] = (best, report)

    def decide(state: PointerRead) -> ActiveHistoryEntry | None:
        nonlocal answer, report, best
        # Another process may have repaired (or pinned) the pointer while we scanned.
        if state.problem is None:
            target = follow_pointer(
                root, state.pointer, required_schema_hash, labels, schemas, alias
            )
        else:
            target = PointerTarget(None, None, state.problem)
        if target.bundle is not None:
            answer = (target.bundle, None)
            return None
        assert best is not None
        if _pinned_elsewhere(state.pointer, alias, target, best):
            return None
        if not storage.has_bundle(best.model_id):
            # Pruned (or deleted) between our scan and the commit; writing the pointer
            # would raise BundleRejectedError from a reader. Rank again: under the
            # lock (locally), prune cannot remove bundles.
            report = find_best_model(root, policy, required_schema_hash, labels, config=config)
            best = _first_intact(report)
            answer = (best, report)
            if best is None:
                return None
        if target.path == best.path:
            # Ranked by its schema hash, yet refused by the pointer check because its
            # declared schema_version disagrees: rewriting the same pointer would only
            # append a history entry on every call.
            return None
        return pointer_change(storage, state, best, policy, "auto-repair")

    try:
        storage.update_pointer(alias, decide)
    except OSError as exc:
        log.warning("Could not repair the %s in %s: %s", pointer_label(alias).lower(), root, exc)
    except BundleIntegrityError as exc:
        # Resolution itself never checks manifests (it must stay cheap); the pointer
        # just does not move to a bundle whose files changed, and loaders that check
        # (ActiveModelReloader) refuse it.
        log.warning("Not repairing the %s in %s: %s", pointer_label(alias).lower(), root, exc)
    return answer


def _first_intact(report: SelectionReport) -> ModelBundle | None:
    """The best ranked bundle whose files match its manifest (unsealed ones count)."""
    # Imported here: a healthy pointer is followed without hashing anything.
    from taskclf.model_registry.manifest import intact_bundles

    return next(iter(intact_bundles(report.ranked)), None)


def _pinned_elsewhere(
    pointer: ActivePointer | None, alias: str, target: PointerTarget, best: ModelBundle
) -> bool:
    """True (and logged loudly) when a pinned pointer forbids repairing it to ``best``."""
    if pointer is None or not pointer.pinned or target.path == best.path:
        return False
    log.error(
        "%s is pinned to a bundle that cannot be used (%s); serving the best eligible bundle "
        "%s instead WITHOUT moving the pinned pointer: set it to a usable bundle with "
        "`taskclf model set-active%s --model-id ID`, or unpin it",
        pointer_label(alias),
        target.problem,
        best.model_id,
        "" if alias == DEFAULT_ALIAS else f" --alias {alias}",
    )
    return True


def pointer_label(alias: str) -> str:
    """How messages name an alias's pointer: ``Active pointer`` or ``Pointer of alias 'x'``."""
    return "Active pointer" if alias == DEFAULT_ALIAS else f"Pointer of alias {alias!r}"


class PointerTarget(NamedTuple):
    """Where a pointer leads, and whether a process may load what it finds there."""

    path: Path | None
    """The bundle directory the pointer locates (``None``: no pointer, or it escapes)."""
    bundle: ModelBundle | None
    """The bundle there, when it exists, is valid and is compatible; else ``None``."""
    problem: str
    """Why ``bundle`` is ``None`` (empty when it is not)."""


def follow_pointer(
    root: Path,
    pointer: ActivePointer | None,
    required_schema_hash: str | None = None,
    labels: Collection[str] = LABEL_SET_V1,
    schemas: Mapping[str, str] | None = None,
    alias: str = DEFAULT_ALIAS,
) -> PointerTarget:
    """Locate and read the bundle ``pointer`` names, and check it can be loaded.

    Args:
        root: The registry directory (absolute).
        pointer: The pointer, e.g. from :func:`read_active`.
        required_schema_hash: Check compatibility against this hash; by
            default against the bundle's own declared schema version.
        labels: The required label set.
        schemas: ``{version: hash}`` of the accepted schemas (default v1/v2/v3).
        alias: Which alias the pointer belongs to (only for the messages).

    Returns:
        The located path, the usable bundle (or ``None``) and, when it is
        ``None``, why.
    """
    label = pointer_label(alias)
    if pointer is None:
        return PointerTarget(None, None, f"No valid {label.lower()} in {root}")
    storage = open_storage(root)
    path, why = find_pointed_bundle(
        storage.root_path, pointer.model_dir, pointer.model_id, has_bundle=storage.has_bundle
    )
    if path is None:
        return PointerTarget(None, None, f"{label} model_dir {pointer.model_dir!r} {why}")
    bundle = storage.read_bundle(path.name)
    if bundle is None:
        return PointerTarget(path, None, f"{label} targets missing bundle {path}")
    problem = compatibility_problem(bundle, required_schema_hash, labels, schemas)
    if problem is not None:
        problem = explain_incompatibility(bundle, problem, labels, schemas)
        why = f"{label} targets unusable bundle {bundle.model_id} ({problem})"
        return PointerTarget(path, None, why)
    return PointerTarget(path, bundle, "")


def _follow_active_pointer(
    storage: Storage,
    required_schema_hash: str | None,
    labels: Collection[str],
    schemas: Mapping[str, str],
    alias: str,
) -> PointerTarget:
    """:func:`follow_pointer` for the registry's current ``active.json`` (or ``alias``)."""
    root = storage.root_path
    if storage.registry_problem() is not None:
        return PointerTarget(None, None, f"Registry directory {root} does not exist")
    state = storage.read_pointer(alias)
    if state.problem is not None:
        return PointerTarget(None, None, state.problem)
    return follow_pointer(root, state.pointer, required_schema_hash, labels, schemas, alias)
