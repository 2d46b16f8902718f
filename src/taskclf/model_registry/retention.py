"""Retention: which bundles ``taskclf model prune`` may delete, and deleting them safely.

Plan, then execute. :func:`plan_prune` reads the registry and decides,
for every bundle, keep or delete and *every* reason why; it never
writes. :func:`execute_prune` re-plans under the registry lock (the
pointer or the ranking may have moved since the plan was shown) and
deletes only bundles that are "delete" in both the reviewed plan and the
fresh one.

A bundle is deleted by renaming it into a dot-prefixed trash directory
(``.trash-<random>``) inside the registry, which scans ignore, and only
then removing the trash: an interrupted prune never leaves a
half-deleted bundle visible to a scan, only a ``.trash-*`` directory
that ``verify`` reports. The renames happen under the lock; the slow
recursive removal happens after releasing it. ``rename`` never follows
a symlink, so a symlinked bundle loses its link, never its target.

Decisions where CLI.md is silent:

- "Ranked eligible" is ``find_best_model``'s ranking (newest schema
  version that has an eligible bundle), so valid bundles of other schema
  versions are deletable unless protected otherwise.
- A bundle "named in the last K history entries" is one that entry's
  ``old`` or ``new`` pointer locates; a torn history line names nothing.
- ``keep_history=0`` protects no history entry; ``keep=0`` protects no
  ranked bundle; the active bundle is always kept.
- ``size_bytes`` counts the regular files under the bundle without
  following symlinks (a symlinked bundle directory frees 0 bytes).
- Prune also removes what interrupted registry operations left behind and
  ``verify`` reports: temporary files of atomic writes and ``.trash-*``
  directories of interrupted prunes (in the registry and in ``.aliases``), once they are older than
  ``LEFTOVER_MIN_AGE_S`` (so an operation still running is never touched).
  ``.staging-*`` directories are never removed automatically: after a
  crash during ``promote --move`` one may hold the only copy of a
  candidate, so ``verify`` reports them for a person to look at.
- An existing ``index.json`` is rewritten after bundles are deleted (one
  more scan, under the lock), so the cache never lists a deleted bundle;
  a missing one is not created.
- Prune deletes only directories that look like bundles (at least one of
  ``metadata.json``, ``metrics.json``, ``manifest.json``) and never one
  that holds registry files (a nested registry); both are kept with the
  reason. It refuses a directory that is not a registry at all (no
  registry file, and either a subdirectory that is a registry or no
  subdirectory that looks like a bundle): ``--models-dir`` one level too
  high would otherwise offer the whole registry, or a home directory's
  folders, for deletion.
- Aliases (issue 14): the bundle every alias locates is kept like the
  active one, and the last K entries of *every* alias's history protect
  their bundles. A deleted alias's archived history protects nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from taskclf.model_registry._fs import is_temp_name
from taskclf.model_registry.aliases import ALIAS_DIR, DEFAULT_ALIAS
from taskclf.model_registry.config import RegistryConfig
from taskclf.model_registry.errors import BundleIntegrityError, PruneError
from taskclf.model_registry.index import INDEX_FILE, write_index_cache
from taskclf.model_registry.models import SelectionPolicy, SelectionReport
from taskclf.model_registry.pointer import (
    pointed_model_id,
    read_active,
    read_active_history,
    require_intact,
)
from taskclf.model_registry.promotion import STAGING_PREFIX
from taskclf.model_registry.resolution import find_best_model
from taskclf.model_registry.scan import (
    BUNDLE_FILES,
    bundle_names,
)
from taskclf.model_registry.selection import REASON_INVALID
from taskclf.model_registry.storage import Storage, open_storage

TRASH_PREFIX = ".trash-"
LEFTOVER_MIN_AGE_S = 3600.0
"""Age after which a temp file or trash directory is certainly not in use any more."""

Action = Literal["keep", "delete"]

log = logging.getLogger("taskclf.model_registry")


class PruneDecision(BaseModel):
    """What prune does with one bundle, and every reason why."""

    model_config = ConfigDict(frozen=True)

    model_id: str
    path: Path
    action: Action
    reasons: list[str]
    size_bytes: int


class PrunePlan(BaseModel):
    """A retention decision for every bundle of a registry."""

    model_config = ConfigDict(frozen=True)

    models_dir: Path
    keep: int
    keep_history: int
    include_invalid: bool
    decisions: list[PruneDecision]
    """One per bundle, sorted by ``model_id``."""
    policy: SelectionPolicy = SelectionPolicy()
    leftovers: list[Path] = []
    """Stale temp files and trash directories of interrupted operations, to remove."""
    config: RegistryConfig | None = Field(default=None, exclude=True)
    """The labels and schemas the ranking used (``None``: the registry's own); the
    re-plan under the lock and the index refresh use the same. Not part of the JSON."""

    @computed_field  # type: ignore[prop-decorator]
    @property
    def to_delete(self) -> list[PruneDecision]:
        """The decisions whose action is ``delete``."""
        return [d for d in self.decisions if d.action == "delete"]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def bytes_freed(self) -> int:
        """Total ``size_bytes`` of the bundles to delete."""
        return sum(d.size_bytes for d in self.decisions if d.action == "delete")


def plan_prune(
    models_dir: str | os.PathLike[str],
    *,
    keep: int,
    keep_history: int = 10,
    include_invalid: bool = False,
    policy: SelectionPolicy | None = None,
    config: RegistryConfig | None = None,
) -> PrunePlan:
    """Decide, for every bundle, whether ``prune`` keeps or deletes it; writes nothing.

    Never deleted: the bundle the active pointer (or any alias) locates; the
    top ``keep`` bundles of ``find_best_model``'s ranking; any bundle named
    (``old`` or ``new``) in the last ``keep_history`` entries of any alias's
    history; invalid bundles
    unless ``include_invalid``. A kept bundle lists all its reasons.

    Args:
        models_dir: The registry directory.
        keep: How many top-ranked eligible bundles to keep (>= 0).
        keep_history: How many recent history entries protect their bundles (>= 0).
        include_invalid: Also delete invalid bundles that nothing else protects.
        policy: Selection policy for the ranking (default ``SelectionPolicy()``).
        config: The registry's labels and schemas for the ranking (default:
            read from ``models_dir``).

    Returns:
        The plan.

    Raises:
        PruneError: (a ``ValueError``) a negative count, or a missing registry.
    """
    if keep < 0:
        raise PruneError(f"The number of bundles to keep must be 0 or more (got {keep}).")
    if keep_history < 0:
        raise PruneError(
            f"The number of history entries to keep must be 0 or more (got {keep_history})."
        )
    storage = open_storage(models_dir)
    root = storage.root_path
    missing = storage.registry_problem()
    if missing is not None:
        raise PruneError(f"{missing}.")
    _refuse_non_registry(storage)
    policy = policy if policy is not None else SelectionPolicy()

    report = find_best_model(root, policy, config=config)
    active_id = pointed_model_id(root, read_active(root))
    aliased: dict[str, list[str]] = {}
    named: set[str] = set()
    # ``active`` always: its history protects even when active.json was removed by hand.
    for alias in dict.fromkeys([DEFAULT_ALIAS, *storage.alias_names()]):
        if alias != DEFAULT_ALIAS:
            located = pointed_model_id(root, read_active(root, alias=alias))
            if located is not None:
                aliased.setdefault(located, []).append(alias)
        recent = read_active_history(root, alias=alias)[-keep_history:] if keep_history else []
        # Quietly: an old entry naming a since-deleted bundle is normal, not news.
        sides = (
            pointed_model_id(root, side, warn=False) for e in recent for side in (e.old, e.new)
        )
        named.update(model_id for model_id in sides if model_id is not None)
    retention = decide_retention(
        report,
        active_id,
        named,
        keep=keep,
        keep_history=keep_history,
        include_invalid=include_invalid,
        not_bundles=_not_bundles(storage, report),
        aliased=aliased,
        tampered=_tampered_top(storage, report, keep),
    )
    sizes = storage.tree_sizes([model_id for model_id, *_ in retention])
    decisions = [
        PruneDecision(
            model_id=model_id,
            path=path,
            action=action,
            reasons=reasons,
            size_bytes=sizes[model_id],
        )
        for model_id, path, action, reasons in retention
    ]
    return PrunePlan(
        models_dir=root,
        keep=keep,
        keep_history=keep_history,
        include_invalid=include_invalid,
        decisions=decisions,
        policy=policy,
        leftovers=storage.stale_leftovers(LEFTOVER_MIN_AGE_S),
        config=config,
    )


def _refuse_non_registry(storage: Storage) -> None:
    """Refuse a directory that is not a registry: deleting its subdirectories destroys data.

    A registry holds a registry file, or at least one subdirectory that looks
    like a bundle. The usual mistake is ``--models-dir`` one level too high
    (a home directory holding ``models/``), where every other subdirectory
    would read as an "invalid bundle".
    """
    root = storage.root_path
    if storage.registry_entry() is not None:
        return
    children = bundle_names(root)
    for name in children:
        entry = storage.registry_entry(name)
        if entry is not None:
            raise PruneError(
                f"{root} does not look like a model registry (it holds no registry file), but "
                f"its subdirectory {root / name} is one (it holds {entry}); the models directory "
                f"probably should be {root / name}. Nothing was deleted."
            )
    if children and not any(storage.looks_like_bundle(name) for name in children):
        raise PruneError(
            f"{root} does not look like a model registry: it holds no registry file and none "
            f"of its {len(children)} subdirectories holds {', '.join(BUNDLE_FILES)}; the models "
            "directory probably should be the one holding active.json and the bundles. "
            "Nothing was deleted."
        )


def _tampered_top(storage: Storage, report: SelectionReport, keep: int) -> dict[str, str]:
    """Sealed bundles at the top of the ranking whose files no longer match their manifest.

    Walks the ranking until ``keep`` matching bundles are found, so a bundle
    whose files changed never takes a "top N" place from a good one. Hashes
    (prune deletes, so it must not be fooled by a same-size edit), but only
    the top of the ranking: ``keep`` bundles plus the tampered ones. On an
    object store the sizes are compared instead of downloading them.
    """
    tampered: dict[str, str] = {}
    found = 0
    for bundle in report.ranked:
        if found >= keep:
            break
        try:
            # Hashed where the files are at hand; on an object store that would download
            # the top bundles on every plan, so there sizes are compared (a download for
            # inference hashes them anyway).
            require_intact(storage, bundle, deep=not storage.remote)
        except BundleIntegrityError as exc:
            tampered[bundle.model_id] = exc.problem
            continue
        found += 1
    return tampered


def _not_bundles(storage: Storage, report: SelectionReport) -> dict[str, str]:
    """Invalid entries that are not bundles at all, with why prune keeps them."""
    found: dict[str, str] = {}
    for record in report.excluded:
        if not record.reason.startswith(REASON_INVALID):
            continue
        entry = storage.registry_entry(record.model_id)
        if entry is not None:
            found[record.model_id] = (
                f"a registry, not a bundle (it holds {entry}); prune never deletes it"
            )
        elif not storage.looks_like_bundle(record.model_id):
            found[record.model_id] = (
                f"not a bundle (none of {', '.join(BUNDLE_FILES)}); prune never deletes it"
            )
    return found


def leftover_kind(name: str) -> Literal["temp", "staging", "trash"] | None:
    """What an entry of the registry directory is, if an interrupted operation left it."""
    if is_temp_name(name):
        return "temp"
    if name.startswith(STAGING_PREFIX):
        return "staging"
    if name.startswith(TRASH_PREFIX):
        return "trash"
    return None


def find_stale_leftovers(root: Path, min_age_s: float = LEFTOVER_MIN_AGE_S) -> list[Path]:
    """Temp files and trash directories older than ``min_age_s`` (never staging directories).

    Temp files of alias pointer writes are looked for in ``.aliases`` too
    (not through a symlinked ``.aliases``: scandir of the link's target is
    refused by the ``is_dir`` check below).
    """
    cutoff = time.time() - min_age_s
    stale: list[Path] = []
    aliases = root / ALIAS_DIR
    places = [root]
    if os.path.isdir(aliases) and not os.path.islink(aliases):
        places.append(aliases)
    for place in places:
        try:
            with os.scandir(place) as entries:
                for entry in entries:
                    kind = leftover_kind(entry.name)
                    if kind not in ("temp", "trash") or (place != root and kind != "temp"):
                        continue
                    with contextlib.suppress(OSError):
                        if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                            stale.append(Path(entry.path))
        except OSError:
            continue
    return sorted(stale)


def remove_leftover(path: Path) -> None:
    """Remove one leftover without ever following a symlink out of the registry."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def decide_retention(
    report: SelectionReport,
    active_id: str | None,
    named: Collection[str],
    *,
    keep: int,
    keep_history: int,
    include_invalid: bool,
    not_bundles: Mapping[str, str] | None = None,
    aliased: Mapping[str, Sequence[str]] | None = None,
    tampered: Mapping[str, str] | None = None,
) -> list[tuple[str, Path, Action, list[str]]]:
    """The retention rules, pure: keep or delete each bundle of ``report``, with every reason.

    Args:
        report: A selection report; its ranked and excluded bundles are all the bundles.
        active_id: The bundle the pointer locates, if any.
        named: Bundles named in the protected history entries.
        keep: How many top-ranked bundles are protected.
        keep_history: How many history entries ``named`` came from (quoted in reasons).
        include_invalid: Whether unprotected invalid bundles are deleted.
        not_bundles: Directories that are not bundles (a nested registry, a
            folder without bundle files), with why: always kept.
        aliased: For each bundle some alias other than ``active`` locates, those aliases.
        tampered: Sealed bundles whose files no longer match their manifest, with
            the problem: they take no "top N" place and are kept for inspection.

    Returns:
        ``(model_id, path, action, reasons)`` per bundle, sorted by ``model_id``.
    """
    tampered = tampered or {}
    intact = [bundle for bundle in report.ranked if bundle.model_id not in tampered]
    rank = {bundle.model_id: position for position, bundle in enumerate(intact, 1)}
    excluded = {record.model_id: record.reason for record in report.excluded}
    paths = {b.model_id: b.path for b in report.ranked} | {
        r.model_id: r.path for r in report.excluded
    }
    total = len(intact)
    history_note = f"named in the last {keep_history} history entries"

    decisions: list[tuple[str, Path, Action, list[str]]] = []
    for model_id in sorted(paths):
        exclusion = excluded.get(model_id)
        invalid = exclusion is not None and exclusion.startswith(REASON_INVALID)
        position = rank.get(model_id)
        reasons: list[str] = []
        if not_bundles and model_id in not_bundles:
            reasons.append(not_bundles[model_id])
        if model_id == active_id:
            reasons.append("active: the active pointer locates it")
        for alias in (aliased or {}).get(model_id, ()):
            reasons.append(f"alias: the alias {alias!r} locates it")
        if position is not None and position <= keep:
            reasons.append(f"top {keep}: ranked #{position} of {total} eligible")
        if model_id in named:
            reasons.append(f"history: {history_note} (a rollback target)")
        if model_id in tampered:
            reasons.append(
                f"does not match its manifest.json ({tampered[model_id]}): kept for "
                "inspection, not counted among the top bundles"
            )
        if invalid and not include_invalid and not (not_bundles and model_id in not_bundles):
            reasons.append(
                f"{exclusion} (kept: invalid bundles are deleted only with --include-invalid)"
            )
        action: Action = "keep" if reasons else "delete"
        if action == "delete":
            if position is not None:
                reasons.append(f"ranked #{position} of {total} eligible, below the top {keep}")
            elif invalid:
                reasons.append(f"{exclusion} (--include-invalid given)")
            else:
                reasons.append(f"not eligible: {exclusion}")
            reasons.append(f"not active; not {history_note}")
        decisions.append((model_id, paths[model_id], action, reasons))
    return decisions


def tree_size(path: Path) -> int:
    """Bytes of the regular files under ``path``, not following symlinks; 0 for a symlink."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            return 0
    except OSError:
        return 0
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for filename in filenames:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(dirpath, filename))
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
    return total


def execute_prune(plan: PrunePlan) -> PrunePlan:
    """Delete the bundles a reviewed plan marks "delete" and that still deserve it.

    Under the registry lock the registry is re-planned with the same
    options; a bundle is deleted only if both plans say "delete". Each is
    renamed into a ``.trash-<random>`` directory inside the registry, and
    the trash is removed after the lock is released.

    Args:
        plan: A plan from :func:`plan_prune` (typically shown to the user first).

    Returns:
        The plan actually executed: the fresh plan, where a bundle the
        reviewed plan kept is kept whatever the fresh plan says.

    Raises:
        PruneError: The registry is gone.
        RegistryLockTimeout: Another writer held the lock too long.
        OSError: A rename failed; bundles not yet moved are untouched.
    """
    approved = {decision.model_id for decision in plan.to_delete}
    if not approved and not plan.leftovers:
        return plan
    storage = open_storage(plan.models_dir)
    root = storage.root_path
    finish: Callable[[], None] = lambda: None  # noqa: E731
    try:
        with storage.exclusive():
            fresh = plan_prune(
                root,
                keep=plan.keep,
                keep_history=plan.keep_history,
                include_invalid=plan.include_invalid,
                policy=plan.policy,
                config=plan.config,
            )
            executed = _restrict_to(fresh, approved, set(plan.leftovers))
            for leftover in executed.leftovers:
                try:
                    storage.remove_leftover(leftover)
                except OSError as exc:
                    log.warning("Could not remove the leftover %s: %s", leftover, exc)
            doomed = [decision.model_id for decision in executed.to_delete]
            if doomed:
                # Just before the irreversible step, for backends without a lock: a bundle
                # the pointer moved to since the fresh plan is kept.
                active = pointed_model_id(root, read_active(root), warn=False)
                if active in doomed:
                    log.warning("Not pruning %s: it became the active model", active)
                    executed = _restrict_to(executed, approved - {active}, set(executed.leftovers))
                    doomed.remove(active)
                finish = storage.delete_bundles(doomed)
                _refresh_index(storage, plan.policy, plan.config)
        return executed
    finally:
        finish()


def _refresh_index(
    storage: Storage, policy: SelectionPolicy, config: RegistryConfig | None
) -> None:
    """Rewrite an existing ``index.json`` so it never lists a deleted bundle (lock held)."""
    root = storage.root_path
    if storage.head(INDEX_FILE) is None:
        return
    try:
        write_index_cache(root, find_best_model(root, policy, config=config))
    except OSError as exc:
        log.warning(
            "Could not refresh %s after the prune (it is only a cache; it may list deleted "
            "bundles until `taskclf model index` rewrites it): %s",
            root / INDEX_FILE,
            exc,
        )


def _restrict_to(fresh: PrunePlan, approved: set[str], leftovers: set[Path]) -> PrunePlan:
    decisions = [
        decision
        if decision.action == "keep" or decision.model_id in approved
        else decision.model_copy(
            update={
                "action": "keep",
                "reasons": [
                    "not in the reviewed plan's deletions (the registry changed); "
                    "run prune again to reconsider it"
                ],
            }
        )
        for decision in fresh.decisions
    ]
    kept_leftovers = [path for path in fresh.leftovers if path in leftovers]
    return fresh.model_copy(update={"decisions": decisions, "leftovers": kept_leftovers})
