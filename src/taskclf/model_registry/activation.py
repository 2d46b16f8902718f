"""Choosing the active bundle by hand: ``set-active`` and ``rollback`` (CLI.md).

Both end in :func:`~taskclf.model_registry.pointer.write_active_atomic`;
what lives here is deciding *which* bundle, and refusing with a message
a user can act on. The checks are repeated under the registry lock right
before the write, so a concurrent prune or promotion cannot slip an
unusable bundle under the pointer between the check and the write.

Decisions where CLI.md is silent:

- A model id is a bare directory name: empty, containing ``/`` (or the
  platform separator or NUL), or starting with ``.`` is reported as
  "Bundle directory not found" (reserved names are never bundles).
- "Compatible" means compatible with the bundle's own declared schema
  version and the registry's label set (``LABEL_SET_V1`` unless
  ``registry.toml`` or an override says otherwise;
  ``declared_incompatibility``), exactly as for ``set-active``; the
  incompatibility reason is shown without the ``incompatible:`` prefix and
  with the hashes, or the missing and extra labels, involved.
- Rollback candidates ("previously active models") come from the
  history, newest first: a model counts when an entry records switching
  *away* from it (the entry's ``old``, read under the lock, so it really
  was active), and the last entry's ``new`` counts when the pointer has
  since left it outside taskclf (deleted or edited by hand). Ids are made
  distinct and the current model is left out. Otherwise an entry's
  ``new`` alone does not count: after a crash between the history append
  and the pointer replace (the last entry's ``old`` is still the pointer)
  it never became active.
- Candidates that are no longer valid and compatible are skipped (and
  listed in ``RollbackPlan.skipped``), both by default and with
  ``steps``: ``steps=N`` is the N-th previously active model that is
  still usable, so ``steps=1`` is the default.
- ``to`` must name a valid, compatible bundle; that implies the CLI's
  "in the history or a valid bundle", so a bundle never active before is
  accepted. ``to`` naming the current model is an error (nothing would
  change).
- ``execute_rollback`` refuses if the pointer moved since the plan was
  made: the plan was reviewed against the old state.
- Aliases (issue 14): every function here takes ``alias`` (default
  ``"active"``) and works on that alias's pointer and history only. A
  manual move (set-active, rollback) keeps the alias's pin state; only
  ``pin=True``/``pin=False`` changes it. Pins stop *automatic* moves.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from taskclf.model_registry.aliases import DEFAULT_ALIAS, check_alias_name
from taskclf.model_registry.config import RegistryConfig, load_registry_config
from taskclf.model_registry.errors import (
    ActivationError,
    AliasError,
    BundleIntegrityError,
    RegistryConflictError,
    RollbackError,
    argument_phrase,
)
from taskclf.model_registry.locations import shown_path
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ExclusionRecord,
    ModelBundle,
    SelectionPolicy,
)
from taskclf.model_registry.pointer import (
    pointed_model_id,
    pointer_change,
    read_active,
    read_active_history,
    require_intact,
)
from taskclf.model_registry.scan import is_bundle_name
from taskclf.model_registry.selection import declared_incompatibility, explain_incompatibility
from taskclf.model_registry.storage import open_storage
from taskclf.model_registry.storage.base import PointerRead

log = logging.getLogger("taskclf.model_registry")

_INCOMPATIBLE_PREFIX = "incompatible: "


def check_activatable(
    models_dir: str | os.PathLike[str],
    model_id: str,
    *,
    deep: bool = True,
    config: RegistryConfig | None = None,
) -> ModelBundle:
    """Run the ``set-active`` checks, in CLI.md's order, without writing anything.

    After CLI.md's three checks comes a fourth: a sealed bundle must match
    its ``manifest.json`` (unsealed bundles pass).

    Args:
        models_dir: The registry directory.
        model_id: The bundle directory name.
        deep: Hash the bundle's files for the manifest check; ``False``
            checks presence, type and sizes only (the re-check under the lock).
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        The parsed bundle: it exists as a direct child, is valid, is
        compatible with its declared schema and the registry's label set,
        and matches its manifest if it has one.

    Raises:
        ActivationError: The first failing check, as CLI.md's sentence.
        RegistryConfigError: The registry's configuration is malformed.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    config = config if config is not None else load_registry_config(root)
    path = root / model_id
    missing = storage.registry_problem()
    if missing is not None:
        raise ActivationError(model_id, root, missing, "registry_missing")
    if not is_bundle_name(model_id):
        reason = (
            f"{shown_path(path)} ({model_id!r} is not a bundle name: empty, dot-prefixed or a path)"
        )
        raise ActivationError(model_id, path, reason, "not_found")
    bundle = storage.read_bundle(model_id)
    if bundle is None:
        raise ActivationError(model_id, path, shown_path(path), "not_found")
    if not bundle.valid:
        raise ActivationError(model_id, path, str(bundle.invalid_reason), "invalid")
    schemas = config.schema_hashes
    problem = declared_incompatibility(bundle, config.labels, schemas)
    if problem is not None:
        detail = explain_incompatibility(bundle, problem, config.labels, schemas)
        raise ActivationError(
            model_id, path, detail.removeprefix(_INCOMPATIBLE_PREFIX), "incompatible"
        )
    try:
        require_intact(storage, bundle, deep=deep)
    except BundleIntegrityError as exc:
        raise ActivationError(model_id, path, _describe_integrity(exc), "integrity") from exc
    return bundle


def _describe_integrity(exc: BundleIntegrityError) -> str:
    more = f" (and {exc.problems - 1} more problem(s))" if exc.problems > 1 else ""
    return exc.problem + more


class Activation(BaseModel):
    """What :func:`activate` did."""

    model_config = ConfigDict(frozen=True)

    pointer: ActivePointer
    """The pointer now in force."""
    changed: bool
    """False when the bundle was already active: nothing was written."""


def activate(
    models_dir: str | os.PathLike[str],
    model_id: str,
    *,
    policy: SelectionPolicy | None = None,
    reason: str = "manual set-active",
    alias: str = DEFAULT_ALIAS,
    message: str | None = None,
    actor: str | None = None,
    pin: bool | None = None,
    config: RegistryConfig | None = None,
) -> Activation:
    """Point ``active.json`` (or ``alias``) at ``models_dir/model_id``, unless it already does.

    Re-activating the active bundle writes nothing, not even a history
    entry: the history records changes of the active model, and a pointer
    written under another registry name that already locates the bundle
    (§13) stays as it is. A change of pin state is a change: it is written.

    Args:
        models_dir: The registry directory.
        model_id: The bundle directory name.
        policy: Supplies ``policy_version`` (default ``SelectionPolicy()``).
        reason: Stored as the pointer's ``reason["note"]``.
        alias: Which pointer to move (default ``"active"``).
        message: Why, recorded in the history entry.
        actor: Who, recorded in the history entry (default ``user@host``).
        pin: Pin (``True``) or unpin (``False``) the alias; ``None`` keeps its pin state.
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        The pointer in force and whether it was written.

    Raises:
        ActivationError: (a ``ValueError``) the bundle is missing, invalid,
            incompatible or does not match its manifest; nothing is written.
        AliasNameError: ``alias`` is not a usable alias name.
        RegistryConfigError: The registry's configuration is malformed.
        RegistryFileError: A registry file is a symlink.
        RegistryLockTimeout: Another writer held the lock too long.
        OSError: The write failed; the pointer and history are unchanged.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    check_alias_name(alias)
    config = config if config is not None else load_registry_config(root)
    # Checked before the commit too, so a missing registry gets the "not found"
    # sentence rather than a failure to create the lock file, and so the bundle's
    # files are hashed without holding the lock (sizes are re-checked at the commit).
    check_activatable(root, model_id, config=config)

    def decide(state: PointerRead) -> ActiveHistoryEntry | None:
        bundle = check_activatable(root, model_id, deep=False, config=config)
        if state.problem is not None:
            log.warning("%s", state.problem)
        if _already(root, state.pointer, model_id, pin):
            return None
        return pointer_change(
            storage,
            state,
            bundle,
            policy,
            reason,
            message=message,
            actor=actor,
            pinned=pin,
        )

    # On an object store a lost swap is decided again on the fresh pointer: the
    # intent ("this bundle") does not depend on which model was active before.
    state, entry = storage.update_pointer(alias, decide)
    if entry is None:
        assert state.pointer is not None
        return Activation(pointer=state.pointer, changed=False)
    return Activation(pointer=entry.new, changed=True)


def _already(root: Path, current: ActivePointer | None, model_id: str, pin: bool | None) -> bool:
    """True when ``current`` already locates ``model_id`` with the wanted pin state."""
    return (
        current is not None
        and current.model_id in (None, model_id)
        and pointed_model_id(root, current) == model_id
        and (pin is None or pin == current.pinned)
    )


def activate_bundle(
    models_dir: str | os.PathLike[str],
    model_id: str,
    *,
    policy: SelectionPolicy | None = None,
    reason: str = "manual set-active",
    alias: str = DEFAULT_ALIAS,
    message: str | None = None,
    actor: str | None = None,
    pin: bool | None = None,
    config: RegistryConfig | None = None,
) -> ActivePointer:
    """Point ``active.json`` (or ``alias``) at ``models_dir/model_id`` (``set-active``).

    :func:`activate`, returning only the pointer in force (when the bundle
    was already active, the existing pointer: nothing is written).

    Args:
        models_dir: The registry directory.
        model_id: The bundle directory name.
        policy: Supplies ``policy_version`` (default ``SelectionPolicy()``).
        reason: Stored as the pointer's ``reason["note"]``.
        alias: Which pointer to move (default ``"active"``).
        message: Why, recorded in the history entry.
        actor: Who, recorded in the history entry (default ``user@host``).
        pin: Pin (``True``) or unpin (``False``) the alias; ``None`` keeps its pin state.
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        The pointer written (its history entry is appended too).

    Raises:
        ActivationError: (a ``ValueError``) the bundle is missing, invalid or
            incompatible; nothing is written.
        AliasNameError: ``alias`` is not a usable alias name.
        RegistryFileError: A registry file is a symlink.
        RegistryLockTimeout: Another writer held the lock too long.
        OSError: The write failed; the pointer and history are unchanged.
    """
    return activate(
        models_dir,
        model_id,
        policy=policy,
        reason=reason,
        alias=alias,
        message=message,
        actor=actor,
        pin=pin,
        config=config,
    ).pointer


def set_alias_pin(
    models_dir: str | os.PathLike[str],
    pinned: bool,
    *,
    alias: str = DEFAULT_ALIAS,
    policy: SelectionPolicy | None = None,
    message: str | None = None,
    actor: str | None = None,
    config: RegistryConfig | None = None,
) -> Activation:
    """Pin or unpin an alias where it points now (``set-active --pin`` without ``--model-id``).

    The pointer is rewritten to the same bundle with the new pin state (note
    ``"pin"`` or ``"unpin"``), recorded in the history like any change. The
    bundle must still pass the ``set-active`` checks: to unpin an alias whose
    bundle became unusable, move it with ``model_id`` and ``pin=False``.
    Pinning an alias that is already pinned writes nothing. ``config`` is the
    registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        The pointer in force and whether it was written.

    Raises:
        AliasError: The alias has no pointer, or it locates no bundle.
        ActivationError: Its bundle is missing, invalid or incompatible.
        RegistryConfigError: The registry's configuration is malformed.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    check_alias_name(alias)
    verb = "pin" if pinned else "unpin"
    missing = storage.registry_problem()
    if missing is not None:
        raise AliasError(alias, f"{missing}.")
    config = config if config is not None else load_registry_config(root)

    def decide(state: PointerRead) -> ActiveHistoryEntry | None:
        if state.problem is not None:
            log.warning("%s", state.problem)
        model_id = pointed_model_id(root, state.pointer)
        if model_id is None:
            raise AliasError(
                alias,
                f"Alias {alias!r} has no usable pointer in {shown_path(root)}, so there is nothing "
                f"to {verb}; "
                f"point it at a bundle with `taskclf model set-active --alias {alias} "
                f"--model-id ID{' --pin' if pinned else ''}`.",
            )
        # Hashed here, at the commit (under the lock locally): the bundle is the one
        # the pointer names now, which only this read can tell.
        bundle = check_activatable(root, model_id, config=config)
        if _already(root, state.pointer, model_id, pinned):
            return None
        return pointer_change(
            storage, state, bundle, policy, verb, message=message, actor=actor, pinned=pinned
        )

    state, entry = storage.update_pointer(alias, decide)
    if entry is None:
        assert state.pointer is not None
        return Activation(pointer=state.pointer, changed=False)
    return Activation(pointer=entry.new, changed=True)


class RollbackPlan(BaseModel):
    """Which bundle a rollback would activate, and how it was chosen."""

    model_config = ConfigDict(frozen=True)

    alias: str = DEFAULT_ALIAS
    """The alias whose pointer and history the plan is for."""
    current: ActivePointer | None
    """The pointer when the plan was made."""
    current_model_id: str | None
    """The bundle that pointer locates (``None``: no pointer, or it escapes the registry)."""
    target_model_id: str
    target_path: Path
    steps: int | None
    """How many usable previously active models back (``None`` when ``to`` was given)."""
    considered: list[str]
    """Distinct previously active model ids, newest first, without the current one."""
    skipped: list[ExclusionRecord] = []
    """Candidates newer than the target that were passed over, with why (no longer usable)."""


def plan_rollback(
    models_dir: str | os.PathLike[str],
    *,
    to: str | None = None,
    steps: int | None = None,
    config: RegistryConfig | None = None,
    alias: str = DEFAULT_ALIAS,
) -> RollbackPlan:
    """Decide which bundle ``taskclf model rollback`` re-activates; writes nothing.

    Args:
        models_dir: The registry directory.
        to: A bundle id to roll back to (valid and compatible).
        steps: Go this many usable previously active models back (default 1).
        config: The registry's labels and schemas (default: read from ``models_dir``).
        alias: Whose pointer and history (default ``"active"``).

    Returns:
        The plan, for review (``--dry-run``) or :func:`execute_rollback`.

    Raises:
        RollbackError: (a ``ValueError``) both ``to`` and ``steps``; ``steps`` < 1;
            ``to`` unusable or already active; nothing (or not enough) to roll back to.
    """
    if to is not None and steps is not None:
        raise RollbackError(
            f"Give either a target model ({argument_phrase('to')}) or a number of steps "
            f"({argument_phrase('steps')}), not both."
        )
    if steps is not None and steps < 1:
        raise RollbackError(f"The number of steps must be at least 1 (got {steps}).")
    check_alias_name(alias)
    storage = open_storage(models_dir)
    root = storage.root_path
    missing = storage.registry_problem()
    if missing is not None:
        raise RollbackError(f"{missing}.")
    config = config if config is not None else load_registry_config(root)
    current = read_active(root, alias=alias)
    current_id = pointed_model_id(root, current)
    history = read_active_history(root, alias=alias)
    considered = _previously_active(root, current_id, history)

    skipped: list[ExclusionRecord] = []
    distance: int | None = None
    if to is not None:
        target = _named_target(root, to, current_id, config)
    else:
        distance = steps if steps is not None else 1
        target, skipped = _target_steps_back(root, considered, distance, config)
    return RollbackPlan(
        alias=alias,
        current=current,
        current_model_id=current_id,
        target_model_id=target.model_id,
        target_path=target.path,
        steps=distance,
        considered=considered,
        skipped=skipped,
    )


def _named_target(
    root: Path, to: str, current_id: str | None, config: RegistryConfig
) -> ModelBundle:
    if to == current_id:
        raise RollbackError(f"{to} is already the active model; nothing to roll back.", to)
    return _check_rollback_target(root, to, config)


def _check_rollback_target(
    root: Path, model_id: str, config: RegistryConfig, *, deep: bool = True
) -> ModelBundle:
    """:func:`check_activatable`, its refusal worded as a rollback's."""
    try:
        return check_activatable(root, model_id, deep=deep, config=config)
    except ActivationError as exc:
        raise RollbackError(f"Cannot roll back to {model_id}: {exc}", model_id) from exc


def _target_steps_back(
    root: Path, considered: list[str], wanted: int, config: RegistryConfig
) -> tuple[ModelBundle, list[ExclusionRecord]]:
    """The ``wanted``-th still usable candidate, and the unusable ones passed over on the way."""
    usable: list[ModelBundle] = []
    skipped: list[ExclusionRecord] = []
    for model_id in considered:
        try:
            usable.append(check_activatable(root, model_id, config=config))
        except ActivationError as exc:
            skipped.append(ExclusionRecord(model_id=model_id, path=exc.path, reason=_why(exc)))
            continue
        if len(usable) == wanted:
            return usable[-1], skipped
    raise RollbackError(_nothing_to_roll_back(root, considered, skipped, len(usable), wanted))


def _previously_active(
    root: Path, current_id: str | None, entries: list[ActiveHistoryEntry]
) -> list[str]:
    """Distinct ids the history shows were active, newest first, without the current one."""
    ids: list[str | None] = []
    if entries:
        last = entries[-1]
        if pointed_model_id(root, last.old, warn=False) != current_id:
            # The pointer left the last entry's ``new`` without taskclf (deleted or
            # edited by hand), so that ``new`` was active. When ``old`` is still
            # current instead, the entry is a crash trace and ``new`` never was.
            ids.append(pointed_model_id(root, last.new, warn=False))
    ids += [pointed_model_id(root, entry.old, warn=False) for entry in reversed(entries)]
    seen: list[str] = []
    for model_id in ids:
        if model_id is not None and model_id != current_id and model_id not in seen:
            seen.append(model_id)
    return seen


def _why(exc: ActivationError) -> str:
    if exc.check == "not_found":
        return "missing: bundle directory not found"
    return f"{exc.check}: {exc.reason}"


def _nothing_to_roll_back(
    root: Path, considered: list[str], skipped: list[ExclusionRecord], found: int, wanted: int
) -> str:
    advice = "choose a bundle with `taskclf model set-active --model-id ID`"
    if not considered:
        return (
            f"Nothing to roll back to: the history of {shown_path(root)} names no model other "
            "than the "
            f"current one; {advice}."
        )
    passed = ", ".join(f"{record.model_id} ({record.reason})" for record in skipped)
    if found == 0:
        return (
            "Nothing to roll back to: no previously active model is still valid and "
            f"compatible ({passed}); {advice}."
        )
    return (
        f"Cannot go {wanted} models back: only {found} previously active model(s) are still "
        "valid and compatible" + (f" ({passed} skipped)" if passed else "") + "; use fewer "
        "steps or --to ID."
    )


def execute_rollback(
    models_dir: str | os.PathLike[str],
    plan: RollbackPlan,
    *,
    policy: SelectionPolicy | None = None,
    config: RegistryConfig | None = None,
    message: str | None = None,
    actor: str | None = None,
) -> ActivePointer:
    """Carry out a rollback plan: point the plan's alias at its target (note ``"rollback"``).

    The alias keeps its pin state (a rollback is a manual move). ``message``
    and ``actor`` are recorded in the history entry.

    Under the registry lock, the pointer must still locate the plan's
    ``current_model_id`` and the target must still be valid and compatible.

    Returns:
        The pointer written.

    Raises:
        RollbackError: (a ``ValueError``) the plan is for another registry, the
            pointer moved since it was made, or the target became unusable;
            nothing is written.
        RegistryFileError: A registry file is a symlink.
        RegistryLockTimeout: Another writer held the lock too long.
        OSError: The write failed; the pointer and history are unchanged.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    if storage.normalise(plan.target_path).parent != root:
        raise RollbackError(
            f"The rollback plan targets {plan.target_path}, which is not in {root}; "
            "plan the rollback again for this registry.",
            plan.target_model_id,
        )
    missing = storage.registry_problem()
    if missing is not None:
        raise RollbackError(f"{missing}.")
    config = config if config is not None else load_registry_config(root)
    # Hashed before the commit; at it, presence, type and sizes are checked again.
    _check_rollback_target(root, plan.target_model_id, config)

    def moved(current_id: str | None) -> RollbackError:
        return RollbackError(
            f"The active model changed since the rollback was planned (planned from "
            f"{plan.current_model_id}, now {current_id}); plan the rollback again.",
            plan.target_model_id,
        )

    def decide(state: PointerRead) -> ActiveHistoryEntry:
        if state.problem is not None:
            log.warning("%s", state.problem)
        current_id = pointed_model_id(root, state.pointer)
        if current_id != plan.current_model_id:
            raise moved(current_id)
        bundle = _check_rollback_target(root, plan.target_model_id, config, deep=False)
        return pointer_change(
            storage, state, bundle, policy, "rollback", message=message, actor=actor
        )

    try:
        # Never decided again: the target was chosen against the pointer the plan saw.
        _, entry = storage.update_pointer(plan.alias, decide, attempts=1)
    except RegistryConflictError:
        raise moved(pointed_model_id(root, read_active(root, alias=plan.alias))) from None
    assert entry is not None
    return entry.new
