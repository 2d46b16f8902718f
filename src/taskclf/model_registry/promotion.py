"""Promotion, the overthrow flow (§10): a new bundle enters, and may take the pointer.

The candidate is checked first, before anything is written, so a refused
candidate leaves the registry exactly as it was. It is then copied (or
moved) into a dot-prefixed staging directory inside the registry, which
scans ignore, checked again there (the source may have changed while we
copied), and renamed into place in one step, so no reader ever sees a
half-written bundle. The final name check, the rename, the ranking, the
index and the pointer move all happen under the registry lock, so
concurrent promotions serialise cleanly and the history stays a chain.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path

from taskclf.core.types import LABEL_SET_V1
from taskclf.model_registry._fs import absolute, fsync_dir, fsync_tree, registry_lock
from taskclf.model_registry.errors import BundleIntegrityError, PromotionError, argument_phrase
from taskclf.model_registry.hysteresis import should_switch_active
from taskclf.model_registry.index import INDEX_FILE, write_index_cache
from taskclf.model_registry.manifest import require_sealed_match
from taskclf.model_registry.models import (
    ModelBundle,
    PromotionResult,
    SelectionPolicy,
)
from taskclf.model_registry.pointer import (
    ACTIVE_FILE,
    HISTORY_FILE,
    read_active,
    write_active_atomic,
    write_active_verified,
)
from taskclf.model_registry.resolution import find_best_model, follow_pointer
from taskclf.model_registry.scan import is_bundle_name, read_bundle
from taskclf.model_registry.selection import declared_incompatibility

STAGING_PREFIX = ".staging-"
PROMOTION_NOTE = "promotion"

# Names a bundle may not take: a directory there would shadow a registry file.
_RESERVED_NAMES = frozenset({ACTIVE_FILE, HISTORY_FILE, INDEX_FILE})
_MAX_NAME_BYTES = 255

log = logging.getLogger("taskclf.model_registry")


def promote_bundle(
    candidate_dir: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    *,
    policy: SelectionPolicy | None = None,
    move: bool = False,
    name: str | None = None,
) -> PromotionResult:
    """Add a bundle to the registry and move the pointer to it if it is now the best.

    The pointer moves only when the best bundle after the promotion differs
    from the one the pointer locates and :func:`should_switch_active`
    allows it. A pointer that does not locate a valid, compatible bundle
    gets no hysteresis protection: it is replaced by the best bundle.
    ``index.json`` is rewritten on every successful promotion; since it is
    only a cache, failing to write it is logged, not raised.

    Args:
        candidate_dir: The bundle to promote (left in place unless ``move``).
        models_dir: The registry; created if missing.
        policy: Selection policy, including hysteresis (``min_improvement``).
        move: Move the candidate instead of copying it. Across filesystems
            it is copied, and the source is deleted once the bundle is in place.
        name: Bundle name in the registry (default: the candidate's directory name).

    Returns:
        What happened: the promoted bundle, the new ranking, the pointer
        before and after, and whether it moved.

    A sealed candidate must match its ``manifest.json``, before anything is
    written and again as staged (the copy is what lands).

    Raises:
        PromotionError: (a ``ValueError``) the candidate is missing, invalid,
            incompatible, does not match its manifest, a symlink given with
            ``move``, or its name is taken, reserved or unusable. The registry
            is left unchanged.
        BundleIntegrityError: (a ``ValueError``) the new best is another,
            sealed bundle that no longer matches its manifest; the promoted
            bundle is in the registry, the pointer did not move.
        OSError: Copying or a registry write failed. No staging directory is
            left behind; a moved candidate is put back. If the pointer write
            fails, the bundle is already in the registry (the error says which
            file failed) and the pointer and history are unchanged.
    """
    policy = policy if policy is not None else SelectionPolicy()
    candidate = absolute(candidate_dir)
    root = absolute(models_dir)
    target_name = name if name is not None else candidate.name
    _check_candidate(candidate, target_name, root, move)

    created_root = not os.path.lexists(root)
    root.mkdir(parents=True, exist_ok=True)
    if created_root:
        fsync_dir(root.parent)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    staged = staging / target_name
    moved_source = False
    landed = False
    keep_staging = False
    try:
        moved_source = _stage(candidate, staged, move)
        # Moved files too: whoever wrote them may never have fsynced them, and after
        # the final rename a power loss must not leave a visible bundle of empty files.
        fsync_tree(staged)
        bundle = _check_staged(staged, target_name, candidate)
        with registry_lock(root):
            target = root / target_name
            # Checked again under the lock: another promotion may have taken the
            # name since the first check, and rename() would silently replace an
            # empty directory.
            if os.path.lexists(target):
                raise _name_taken(target_name, candidate, root)
            os.rename(staged, target)
            landed = True
            fsync_dir(root)
            bundle = bundle.model_copy(update={"path": target})
            result = _activate_if_best(root, bundle, policy)
    except BaseException:
        if moved_source and not landed:
            keep_staging = not _restore_source(staged, candidate)
        raise
    finally:
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
        if created_root and not landed:
            with contextlib.suppress(OSError):
                os.rmdir(root)  # only succeeds if we left nothing in it
        if move and landed and not moved_source:
            _remove_source(candidate)
    return result


def _check_candidate(candidate: Path, target_name: str, root: Path, move: bool) -> None:
    """Refuse a candidate before anything is written."""
    problem = _name_problem(target_name)
    if problem is not None:
        raise PromotionError(target_name, candidate, problem)
    if root == candidate or root.is_relative_to(candidate):
        raise PromotionError(target_name, candidate, f"the registry {root} is inside the candidate")
    if move and os.path.islink(candidate):
        raise PromotionError(
            target_name,
            candidate,
            "candidate is a symlink; promote it without --move (its target is copied)",
        )
    if move and candidate.is_relative_to(root):
        raise PromotionError(target_name, candidate, f"candidate is already inside {root}")
    if not os.path.lexists(candidate):
        raise PromotionError(target_name, candidate, "candidate directory does not exist")
    if not candidate.is_dir():
        raise PromotionError(target_name, candidate, "candidate is not a directory")
    bundle = read_bundle(candidate)
    if bundle is None:
        raise PromotionError(target_name, candidate, "candidate directory does not exist")
    problem = declared_incompatibility(bundle, LABEL_SET_V1)
    if problem is not None:
        raise PromotionError(target_name, candidate, problem)
    _check_integrity(bundle, target_name, candidate, "")
    if os.path.lexists(root / target_name):
        raise _name_taken(target_name, candidate, root)


def _name_problem(target_name: str) -> str | None:
    if not is_bundle_name(target_name):
        return f"'{target_name}' is not a usable bundle name (empty, dot-prefixed or a path)"
    if target_name in _RESERVED_NAMES:
        return (
            f"'{target_name}' is reserved for a registry file; pass another name with "
            f"{argument_phrase('name')}"
        )
    try:
        target_name.encode("utf-8")
    except UnicodeEncodeError:
        # Scans ignore such a directory (no registry JSON file could name it).
        return f"bundle name is not valid UTF-8; pass a UTF-8 name with {argument_phrase('name')}"
    if len(target_name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        return f"bundle name is longer than {_MAX_NAME_BYTES} bytes"
    return None


def _name_taken(target_name: str, candidate: Path, root: Path) -> PromotionError:
    return PromotionError(
        target_name,
        candidate,
        f"a bundle named '{target_name}' already exists in {root}; pass another name with "
        f"{argument_phrase('name')}",
    )


def _stage(candidate: Path, staged: Path, move: bool) -> bool:
    """Put the candidate's files at ``staged``; True when the candidate itself was renamed there."""
    moved = False
    if move:
        try:
            os.rename(candidate, staged)
            moved = True
        except OSError as exc:
            # Another filesystem: copy now, delete the source once the bundle is
            # in place. Any other failure (permissions...) would doom the delete
            # too, so it is raised instead of half-moving the candidate.
            if exc.errno != errno.EXDEV:
                raise
    if not moved:
        shutil.copytree(candidate, staged, symlinks=False)
    return moved


def _check_staged(staged: Path, target_name: str, candidate: Path) -> ModelBundle:
    """Validate what was actually copied: the source may have changed since the first check."""
    bundle = read_bundle(staged)
    if bundle is None:
        raise PromotionError(target_name, candidate, "candidate vanished while it was copied")
    problem = declared_incompatibility(bundle, LABEL_SET_V1)
    if problem is not None:
        raise PromotionError(target_name, candidate, f"{problem} (changed while it was copied)")
    # The staged copy is what lands: hash it (outside the lock), not only the source.
    _check_integrity(bundle, target_name, candidate, " (changed while it was copied)")
    return bundle


def _check_integrity(bundle: ModelBundle, target_name: str, candidate: Path, when: str) -> None:
    try:
        require_sealed_match(bundle)
    except BundleIntegrityError as exc:
        more = f" (and {exc.problems - 1} more problem(s))" if exc.problems > 1 else ""
        raise PromotionError(
            target_name,
            candidate,
            f"candidate does not match its manifest.json: {exc.problem}{more}{when}; restore "
            "its files, or re-seal it with `taskclf model seal` if the change is intended",
        ) from exc


def _restore_source(staged: Path, candidate: Path) -> bool:
    """Give a moved candidate back; False (logged) if it has to stay in staging."""
    try:
        os.rename(staged, candidate)
        return True
    except OSError as exc:
        # Never delete the only copy of someone's bundle to keep the registry tidy.
        log.error(
            "Could not move the candidate back to %s (%s); it is kept at %s", candidate, exc, staged
        )
        return False


def _remove_source(candidate: Path) -> None:
    try:
        shutil.rmtree(candidate)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Promoted a copy of %s but could not delete the source: %s", candidate, exc)


def _activate_if_best(root: Path, bundle: ModelBundle, policy: SelectionPolicy) -> PromotionResult:
    """Rank, refresh the index and move the pointer if allowed; the caller holds the lock."""
    report = find_best_model(root, policy)
    try:
        write_index_cache(root, report)
    except OSError as exc:
        log.warning("Could not write %s in %s (it is only a cache): %s", INDEX_FILE, root, exc)
    previous = read_active(root)
    target = follow_pointer(root, previous)
    current = previous if target.bundle is not None else None
    best = report.best
    active = previous
    updated = False
    if (
        best is not None
        and (target.path is None or best.model_id != target.path.name)
        and should_switch_active(current, best, policy)
    ):
        if best.model_id == bundle.model_id:
            # Just hashed in staging and renamed under this lock: sizes suffice.
            active = write_active_verified(root, best, policy, reason=PROMOTION_NOTE)
        else:
            # Another bundle (the pointer was off the best): hashed here, under the lock.
            active = write_active_atomic(root, best, policy, reason=PROMOTION_NOTE)
        updated = True
    return PromotionResult(
        bundle=bundle, report=report, active_updated=updated, previous=previous, active=active
    )
