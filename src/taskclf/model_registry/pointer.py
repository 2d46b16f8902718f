"""The active pointer ``active.json`` and its audit log ``active_history.jsonl`` (§6).

Write order (all under the registry lock): the history entry is appended
and fsynced first, then the pointer is replaced atomically. If the
pointer replace fails, the history is cut back to its previous length,
so both files are exactly as before. A hard crash (SIGKILL, power loss)
between the two steps can leave one history entry whose ``new`` is not
the current pointer: ``verify`` reports exactly that, and the pointer
itself is always the old or the new one, whole.

Every function takes a keyword ``alias`` (default ``"active"``): an alias
is a pointer of its own, with its own history, written with exactly this
protocol under the same registry lock (see :mod:`.aliases` for where its
files live). Each history entry also records who made the change
(``actor``, default ``user@host`` or ``$TASKCLF_ACTOR``) and, optionally,
why (``message``).
"""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from taskclf.model_registry._fs import (
    absolute,
    append_line,
    registry_lock,
    require_utf8,
)

# ACTIVE_FILE and HISTORY_FILE are re-exported: most modules know them from here.
from taskclf.model_registry.aliases import ACTIVE_FILE as ACTIVE_FILE
from taskclf.model_registry.aliases import (
    DEFAULT_ALIAS,
    alias_paths,
    check_alias_name,
    prepare_alias_dir,
)
from taskclf.model_registry.aliases import HISTORY_FILE as HISTORY_FILE
from taskclf.model_registry.errors import BundleIntegrityError, BundleRejectedError
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
)
from taskclf.model_registry.storage import Storage, open_storage
from taskclf.model_registry.storage.base import PointerRead

ACTOR_ENV = "TASKCLF_ACTOR"

log = logging.getLogger("taskclf.model_registry")


def utc_now_iso() -> str:
    """Now, in UTC, ISO-8601 with its offset."""
    return datetime.now(UTC).isoformat()


def default_actor() -> str:
    """Who is changing a pointer: ``$TASKCLF_ACTOR`` if set, else ``user@host``."""
    from_env = os.environ.get(ACTOR_ENV)
    if from_env:
        return from_env
    import getpass  # only writers record an actor; readers start without these
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        # No login name and no password entry (a container running as a bare uid).
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def read_active(
    models_dir: str | os.PathLike[str], *, warn: bool = True, alias: str = DEFAULT_ALIAS
) -> ActivePointer | None:
    """Read ``active.json``, or the pointer of another alias.

    Args:
        models_dir: The registry directory.
        warn: Log why an existing pointer is unusable. Callers that already
            reported it in this operation pass ``False``, so one corrupt
            pointer is one warning, not one per read.
        alias: Which pointer (default ``"active"``, i.e. ``active.json``).

    Returns:
        The pointer, or ``None`` when the file is missing, unreadable, not
        JSON or not a valid pointer (the last three are logged), or when
        ``.aliases`` is a symlink (logged). Never raises for a file problem.

    Raises:
        AliasNameError: ``alias`` is not a usable alias name.
    """
    pointer, problem = read_active_checked(models_dir, alias=alias)
    if problem is not None and warn:
        log.warning("%s", problem)
    return pointer


def read_active_checked(
    models_dir: str | os.PathLike[str], *, alias: str = DEFAULT_ALIAS
) -> tuple[ActivePointer | None, str | None]:
    """:func:`read_active` without logging: the pointer, or ``None`` and why.

    Returns:
        ``(pointer, None)``; ``(None, None)`` when there is no pointer file;
        ``(None, sentence)`` when it is unreadable, not JSON or not a pointer,
        or when ``.aliases`` is a symlink or not a directory.

    Raises:
        AliasNameError: ``alias`` is not a usable alias name.
        StorageError: An object store could not be reached.
    """
    state = open_storage(models_dir).read_pointer(alias)
    return state.pointer, state.problem


def locate_pointed_bundle(
    models_dir: str | os.PathLike[str], model_dir: str, *, model_id: str | None = None
) -> Path | None:
    """Find the bundle directory a pointer's ``model_dir`` names, confined to the registry.

    Candidates, in order (§6): ``models_dir.parent / model_dir`` (what
    :func:`write_active_atomic` writes), then ``models_dir / model_dir``
    (a bare bundle name written by hand); an absolute ``model_dir`` is its
    own single candidate. After lexical normalisation the first candidate
    that is a direct, non-reserved child of ``models_dir`` wins, whether or
    not it exists (the caller reports a missing bundle).

    When no candidate is a direct child and ``model_dir`` is ``<name>/<id>``
    (two plain names), the registry is being reached under another name
    than the one it was written under (renamed, a symlink, a bind mount,
    a copy): the bundle is ``models_dir/<id>`` if that directory exists
    and, when ``model_id`` is given, ``<id>`` equals it (§13).

    Args:
        models_dir: The registry directory.
        model_dir: The pointer's ``model_dir``, as written.
        model_id: The pointer's ``model_id``; checked only by the §13 fallback.

    Returns:
        The bundle path, always a direct child of ``models_dir``, or ``None``
        (logged) when the pointer names nothing in this registry.
    """
    storage = open_storage(models_dir)
    located, problem = find_pointed_bundle(
        storage.root_path, model_dir, model_id, has_bundle=storage.has_bundle
    )
    if located is None:
        log.warning(
            "Active pointer model_dir %r %s; treating the pointer as absent", model_dir, problem
        )
    return located


def find_pointed_bundle(
    root: Path,
    model_dir: str,
    model_id: str | None = None,
    *,
    has_bundle: Callable[[str], bool] | None = None,
) -> tuple[Path | None, str]:
    """:func:`locate_pointed_bundle` without logging: the path, or ``None`` and why.

    The one implementation of the §6 and §13 rules; ``root`` must be absolute
    (a storage's ``root_path``). ``has_bundle`` says whether a bundle name
    exists (the storage's :meth:`~taskclf.model_registry.storage.Storage.has_bundle`;
    default: a directory below ``root``). The reason completes the sentence
    "Active pointer model_dir <model_dir> ...".
    """
    if not _is_representable_path(model_dir):
        return None, "is not a usable path"
    if os.path.isabs(model_dir):
        candidates = [Path(model_dir)]
    else:
        candidates = [root.parent / model_dir, root / model_dir]
    for candidate in candidates:
        normal = Path(os.path.normpath(candidate))
        if normal.parent == root and normal.name and not normal.name.startswith("."):
            return normal, ""
    parts = model_dir.split("/")
    renamed = (
        not os.path.isabs(model_dir)
        and len(parts) == 2
        and all(part not in ("", ".", "..") for part in parts)
        # A dot-prefixed name is reserved (staging, trash), never a bundle.
        and not parts[1].startswith(".")
    )
    if renamed:
        bundle_id = parts[1]
        candidate = root / bundle_id
        if model_id is not None and model_id != bundle_id:
            return None, (
                f"names bundle {bundle_id!r} in a registry called {parts[0]!r}, but the "
                f"pointer's model_id is {model_id!r}; it locates no bundle of {root}"
            )
        exists = has_bundle(bundle_id) if has_bundle is not None else candidate.is_dir()
        if exists:
            return candidate, ""
        return None, (
            f"was written in a registry called {parts[0]!r}; {root} has no bundle {bundle_id!r}"
        )
    return None, f"escapes the registry {root}"


def pointed_model_id(
    models_dir: str | os.PathLike[str], pointer: ActivePointer | None, *, warn: bool = True
) -> str | None:
    """The id of the bundle a pointer locates, or ``None`` (no pointer, or it escapes).

    Args:
        models_dir: The registry directory.
        pointer: The pointer (``active.json`` or one side of a history entry).
        warn: Log a pointer that locates nothing. Off for history entries: old
            entries naming since-deleted bundles are normal, not news.
    """
    if pointer is None:
        return None
    if warn:
        path = locate_pointed_bundle(models_dir, pointer.model_dir, model_id=pointer.model_id)
    else:
        storage = open_storage(models_dir)
        path, _ = find_pointed_bundle(
            storage.root_path, pointer.model_dir, pointer.model_id, has_bundle=storage.has_bundle
        )
    return path.name if path is not None else None


def pointer_bundle_name(pointer: ActivePointer) -> str | None:
    """The bundle a pointer names, as resolution reads it: the last component of ``model_dir``.

    Resolution follows ``model_dir``, never ``model_id``, so this is what every
    message naming "the active model" shows; ``model_id`` is only the fallback
    for a ``model_dir`` that ends in no plain name.
    """
    name = posixpath.basename(posixpath.normpath(pointer.model_dir.replace(os.sep, "/")))
    if name in ("", ".", "..") or name.startswith("."):
        return pointer.model_id
    return name


def locate_active_bundle(
    models_dir: str | os.PathLike[str], *, warn: bool = True, alias: str = DEFAULT_ALIAS
) -> Path | None:
    """The bundle directory ``active.json`` (or ``alias``) locates; ``None`` when absent,
    unusable or escaping.

    Like :func:`locate_pointed_bundle`, it does not check that the bundle exists.
    With ``warn=False`` nothing is logged (the caller already reported the pointer).
    """
    pointer = read_active(models_dir, warn=warn, alias=alias)
    if pointer is None:
        return None
    if warn:
        return locate_pointed_bundle(models_dir, pointer.model_dir, model_id=pointer.model_id)
    storage = open_storage(models_dir)
    located, _ = find_pointed_bundle(
        storage.root_path, pointer.model_dir, pointer.model_id, has_bundle=storage.has_bundle
    )
    return located


def _is_representable_path(model_dir: str) -> bool:
    """False for text no filesystem call accepts (NUL, lone surrogates), which would raise."""
    if "\x00" in model_dir:
        return False
    try:
        os.fsencode(model_dir)
    except UnicodeError:
        return False
    return True


def write_active_atomic(
    models_dir: str | os.PathLike[str],
    bundle: ModelBundle,
    policy: SelectionPolicy | None = None,
    reason: str | None = None,
    *,
    alias: str = DEFAULT_ALIAS,
    message: str | None = None,
    actor: str | None = None,
    pinned: bool | None = None,
) -> ActivePointer:
    """Point ``active.json`` (or ``alias``) at ``bundle`` and record the change in the history.

    A sealed bundle (one with ``manifest.json``) must match its manifest:
    its files are hashed before the registry lock is taken, and checked
    again for presence, type and size under it. Unsealed bundles are
    accepted as before.

    Args:
        models_dir: The registry directory.
        bundle: A valid bundle that is a direct child of ``models_dir``.
        policy: Supplies ``policy_version`` (default ``SelectionPolicy()``).
        reason: Optional note stored as ``reason["note"]``.
        alias: Which pointer to move (default ``"active"``).
        message: Why, recorded in the history entry.
        actor: Who, recorded in the history entry (default :func:`default_actor`).
        pinned: Pin or unpin the alias; ``None`` keeps the current pointer's pin state.

    Returns:
        The pointer written.

    Raises:
        BundleRejectedError: (a ``ValueError``) the bundle is invalid, has no
            metrics, or is not a direct child of ``models_dir``; nothing is written.
        BundleIntegrityError: (a ``ValueError``) the bundle does not match its
            ``manifest.json``; nothing is written.
        RegistryFileError: A registry file (or ``.aliases``) is a symlink, or the
            registry's name is not UTF-8.
        AliasNameError: ``alias`` is not a usable alias name; nothing is written.
        OSError: The write failed; ``active.json`` and the history are unchanged.
    """
    storage = open_storage(models_dir)
    check_alias_name(alias)  # a bad name is refused before any hashing
    _check_writable_bundle(storage, bundle)
    # Hashing a 200 MB model takes a while, so the full check runs before the lock:
    # other writers are not held up, and under the lock a cheap re-check (presence,
    # type and sizes) catches a bundle pruned or truncated in the meantime.
    require_intact(storage, bundle, deep=True)
    return write_active_verified(
        storage, bundle, policy, reason, alias=alias, message=message, actor=actor, pinned=pinned
    )


def write_active_verified(
    models_dir: str | os.PathLike[str] | Storage,
    bundle: ModelBundle,
    policy: SelectionPolicy | None = None,
    reason: str | None = None,
    *,
    alias: str = DEFAULT_ALIAS,
    message: str | None = None,
    actor: str | None = None,
    pinned: bool | None = None,
    attempts: int = 1,
) -> ActivePointer:
    """:func:`write_active_atomic` for a bundle whose manifest the caller has just hashed.

    For callers that checked ``require_sealed_match(bundle)`` themselves
    before taking the registry lock (set-active, rollback, promotion): under
    the lock only presence, type and sizes are checked again, so the lock
    is never held while a large model is hashed.

    ``models_dir`` may be an open storage. ``attempts`` only matters on an
    object store, where a lost compare-and-swap re-applies the same change
    on the fresh pointer (the default, 1, reports the conflict instead).

    Raises:
        The same as :func:`write_active_atomic`, and ``RegistryConflictError``
        when every attempt lost its compare-and-swap (object stores only).
    """
    storage = models_dir if isinstance(models_dir, Storage) else open_storage(models_dir)
    check_alias_name(alias)

    def decide(state: PointerRead) -> ActiveHistoryEntry:
        return pointer_change(
            storage,
            state,
            bundle,
            policy,
            reason,
            message=message,
            actor=actor,
            pinned=pinned,
        )

    _, entry = storage.update_pointer(alias, decide, attempts=attempts)
    assert entry is not None
    return entry.new


def pointer_change(
    storage: Storage,
    state: PointerRead,
    bundle: ModelBundle,
    policy: SelectionPolicy | None = None,
    reason: str | None = None,
    *,
    message: str | None = None,
    actor: str | None = None,
    pinned: bool | None = None,
) -> ActiveHistoryEntry:
    """The history entry of pointing ``state``'s alias at ``bundle`` (REGISTRY.md §6 fields).

    For the ``decide`` of :meth:`~taskclf.model_registry.storage.Storage.update_pointer`:
    it runs at the commit (under the lock locally), so the bundle's presence,
    type and sizes are checked again there; the caller hashed it before.

    Raises:
        BundleRejectedError: The bundle is invalid, has no metrics, or is not
            a bundle of this registry (any more).
        BundleIntegrityError: Its files no longer match its manifest's sizes.
        RegistryFileError: The registry's name is not UTF-8.
    """
    policy = policy if policy is not None else SelectionPolicy()
    # A prune in another process may have removed the bundle since the caller's
    # check, and the pointer must never name a deleted one.
    _check_writable_bundle(storage, bundle)
    require_intact(storage, bundle, deep=False)
    # The pointer records the registry's own name: it must be UTF-8 like the file.
    require_utf8(Path(storage.name))
    assert bundle.metrics is not None
    details: dict[str, object] = {
        "metric": "macro_f1",
        "macro_f1": bundle.metrics.macro_f1,
        "weighted_f1": bundle.metrics.weighted_f1,
    }
    if reason is not None:
        details["note"] = reason
    # An unusable old pointer is recorded as null, and whoever is replacing it
    # (set-active, a repair) has already said what was wrong with it.
    old = state.pointer
    keep_pin = old is not None and old.pinned
    new = ActivePointer(
        model_dir=posixpath.join(storage.name, bundle.model_id),
        selected_at=utc_now_iso(),
        policy_version=policy.version,
        model_id=bundle.model_id,
        reason=details,
        pinned=keep_pin if pinned is None else pinned,
    )
    return history_entry(old, new, actor, message)


def _check_writable_bundle(storage: Storage, bundle: ModelBundle) -> None:
    path = storage.normalise(bundle.path)
    problem = None
    if not bundle.valid:
        problem = f"bundle is invalid: {bundle.invalid_reason}"
    elif bundle.metrics is None:
        problem = "bundle has no metrics"
    elif (
        path.parent != storage.root_path
        or path.name.startswith(".")
        or path.name != bundle.model_id
    ):
        problem = f"bundle is not a direct child of the registry {storage.root_path}"
    elif not storage.has_bundle(bundle.model_id):
        problem = "bundle directory does not exist"
    if problem is not None:
        raise BundleRejectedError(bundle.model_id, path, problem)


def require_intact(storage: Storage, bundle: ModelBundle, *, deep: bool = True) -> None:
    """:func:`~taskclf.model_registry.manifest.require_sealed_match`, through the storage.

    Raises:
        BundleIntegrityError: A sealed bundle does not match its manifest.
    """
    result = storage.check_manifest(bundle.model_id, deep=deep)
    if result.status == "mismatch":
        first = result.problems[0]
        raise BundleIntegrityError(
            bundle.model_id, bundle.path, first.file, first.problem, len(result.problems)
        )


def append_active_history(
    models_dir: str | os.PathLike[str],
    old: ActivePointer | None,
    new: ActivePointer,
    *,
    alias: str = DEFAULT_ALIAS,
    message: str | None = None,
    actor: str | None = None,
) -> None:
    """Append one history entry (``at = new.selected_at``), whole, on its own line, fsynced.

    Args:
        models_dir: The registry directory.
        old: The pointer before the change (``None``: there was none).
        new: The pointer after it.
        alias: Whose history (default ``"active"``).
        message: Why, recorded in the entry.
        actor: Who (default :func:`default_actor`).

    Raises:
        RegistryFileError: The history file (or ``.aliases``) is a symlink.
        AliasNameError: ``alias`` is not a usable alias name.
        OSError: The append failed; the file is as it was.
    """
    root = absolute(models_dir)
    paths = alias_paths(root, alias)
    entry = history_entry(old, new, actor, message)
    with registry_lock(root):
        prepare_alias_dir(root, alias)
        append_line(paths.history, entry.model_dump_json().encode())


def history_entry(
    old: ActivePointer | None,
    new: ActivePointer,
    actor: str | None = None,
    message: str | None = None,
) -> ActiveHistoryEntry:
    """The history entry of a change from ``old`` to ``new``, who made it (default: us) and why."""
    return ActiveHistoryEntry(
        at=new.selected_at,
        old=old,
        new=new,
        actor=actor if actor is not None else default_actor(),
        message=message,
    )


def read_active_history(
    models_dir: str | os.PathLike[str], *, alias: str = DEFAULT_ALIAS
) -> list[ActiveHistoryEntry]:
    """The pointer's (or ``alias``'s) transitions, oldest first.

    A line that does not parse (a torn write, a hand edit) is skipped with
    a warning, and so is a line larger than the 16 MiB read cap (never read
    into memory): the entries before it are still returned. A history larger
    than the cap is read from its newest 16 MiB of lines (the skip is
    logged): the newest entries are the ones rollback and verify need.
    Never raises for a file problem: an unreadable file (or a symlinked
    ``.aliases``) reads as no history.

    Raises:
        AliasNameError: ``alias`` is not a usable alias name.
    """
    return open_storage(models_dir).read_history(alias)


def parse_history_lines(
    raw: bytes,
) -> Iterator[tuple[int, ActiveHistoryEntry | ValidationError]]:
    """Each non-blank line of ``active_history.jsonl`` content, numbered from 1.

    Yields:
        ``(line number, entry)``, or ``(line number, error)`` for a line
        that does not parse (a torn write, a hand edit).
    """
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, ActiveHistoryEntry.model_validate_json(line)
        except ValidationError as exc:
            yield number, exc
