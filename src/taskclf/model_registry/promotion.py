"""Promotion, the overthrow flow (§10): a new bundle enters, and may take the pointer.

The candidate is copied (or moved) into a dot-prefixed staging directory
inside the registry, which scans ignore, and renamed into place in one
step, so no reader ever sees a half-written bundle. The name check, the
rename, the ranking, the index and the pointer move all happen under the
registry lock, so concurrent promotions serialise cleanly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry._fs import absolute, fsync_dir, registry_lock
from taskclf.model_registry.errors import PromotionError
from taskclf.model_registry.hysteresis import should_switch_active
from taskclf.model_registry.index import write_index_cache
from taskclf.model_registry.models import ActivePointer, PromotionResult, SelectionPolicy
from taskclf.model_registry.pointer import locate_pointed_bundle, read_active, write_active_atomic
from taskclf.model_registry.resolution import find_best_model
from taskclf.model_registry.scan import read_bundle
from taskclf.model_registry.selection import declared_incompatibility

STAGING_PREFIX = ".staging-"


def promote_bundle(
    candidate_dir: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    *,
    policy: SelectionPolicy | None = None,
    move: bool = False,
    name: str | None = None,
) -> PromotionResult:
    """Add a bundle to the registry and move the pointer to it if it is now the best.

    Args:
        candidate_dir: The bundle to promote (left in place unless ``move``).
        models_dir: The registry; created if missing.
        policy: Selection policy, including hysteresis (``min_improvement``).
        move: Move the candidate instead of copying it.
        name: Bundle name in the registry (default: the candidate's directory name).

    Returns:
        What happened: the promoted bundle, the new ranking, and whether the
        pointer moved.

    Raises:
        PromotionError: (a ``ValueError``) the candidate is missing, invalid,
            incompatible, or its name is taken or unusable; nothing is written.
        OSError: Copying or writing failed; no staging directory is left behind.
    """
    policy = policy if policy is not None else SelectionPolicy()
    candidate = absolute(candidate_dir)
    root = absolute(models_dir)
    target_name = name if name is not None else candidate.name
    _check_candidate(candidate, target_name, root)

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        staged = staging / target_name
        moved_source = _stage(candidate, staged, move)
        with registry_lock(root):
            target = root / target_name
            if os.path.lexists(target):
                raise _name_taken(target_name, candidate, root)
            os.rename(staged, target)
            fsync_dir(root)
            moved_source = False
            if move:
                _remove_source(candidate)
            return _activate_if_best(root, target_name, policy)
    except BaseException:
        if moved_source:
            # The candidate was renamed into staging; give it back untouched.
            with contextlib.suppress(OSError):
                os.rename(staging / target_name, candidate)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_candidate(candidate: Path, target_name: str, root: Path) -> None:
    if (
        not target_name
        or target_name in (".", "..")
        or target_name.startswith(".")
        or "/" in target_name
        or "\x00" in target_name
        or (os.sep != "/" and os.sep in target_name)
    ):
        raise PromotionError(target_name, candidate, f"'{target_name}' is not a usable bundle name")
    if not candidate.is_dir():
        raise PromotionError(target_name, candidate, "candidate directory does not exist")
    bundle = read_bundle(candidate)
    if bundle is None:
        raise PromotionError(target_name, candidate, "candidate directory does not exist")
    problem = declared_incompatibility(bundle, LABEL_SET_V1)
    if problem is not None:
        raise PromotionError(target_name, candidate, problem)
    if os.path.lexists(root / target_name):
        raise _name_taken(target_name, candidate, root)


def _name_taken(target_name: str, candidate: Path, root: Path) -> PromotionError:
    return PromotionError(
        target_name, candidate, f"a bundle named '{target_name}' already exists in {root}"
    )


def _stage(candidate: Path, staged: Path, move: bool) -> bool:
    """Put the candidate's files at ``staged``; True when the candidate itself was renamed there."""
    if move:
        try:
            os.rename(candidate, staged)
            return True
        except OSError:
            pass  # another filesystem: copy now, delete the source once the bundle is in place
    shutil.copytree(candidate, staged, symlinks=False)
    _fsync_tree(staged)
    return False


def _fsync_tree(directory: Path) -> None:
    for dirpath, _, filenames in os.walk(directory):
        for filename in filenames:
            fd = os.open(os.path.join(dirpath, filename), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def _remove_source(candidate: Path) -> None:
    if candidate.exists():
        shutil.rmtree(candidate, ignore_errors=True)


def _activate_if_best(root: Path, target_name: str, policy: SelectionPolicy) -> PromotionResult:
    report = find_best_model(root, policy)
    write_index_cache(root, report)
    previous = read_active(root)
    current = _usable_pointer(root, previous)
    best = report.best
    active: ActivePointer | None = previous
    updated = False
    current_id = _pointed_id(root, current)
    if (
        best is not None
        and best.model_id != current_id
        and should_switch_active(current, best, policy)
    ):
        active = write_active_atomic(root, best, policy, reason="promotion")
        updated = True
    bundle = next((b for b in report.ranked if b.model_id == target_name), None)
    if bundle is None:
        bundle = read_bundle(root / target_name)
    assert bundle is not None
    return PromotionResult(
        bundle=bundle, report=report, active_updated=updated, previous=previous, active=active
    )


def _usable_pointer(root: Path, pointer: ActivePointer | None) -> ActivePointer | None:
    """The pointer if it locates a valid, compatible bundle; a broken one gets no hysteresis."""
    if pointer is None:
        return None
    path = locate_pointed_bundle(root, pointer.model_dir)
    bundle = read_bundle(path) if path is not None else None
    if bundle is None or declared_incompatibility(bundle) is not None:
        return None
    return pointer


def _pointed_id(root: Path, pointer: ActivePointer | None) -> str | None:
    if pointer is None:
        return None
    path = locate_pointed_bundle(root, pointer.model_dir)
    return path.name if path is not None else None
