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
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from taskclf.model_registry._fs import (
    MAX_FILE_BYTES,
    absolute,
    append_line,
    atomic_write,
    read_capped,
    read_tail,
    registry_lock,
    require_utf8,
    truncate_to,
)

# ACTIVE_FILE and HISTORY_FILE are re-exported: most modules know them from here.
from taskclf.model_registry.aliases import ACTIVE_FILE as ACTIVE_FILE
from taskclf.model_registry.aliases import (
    DEFAULT_ALIAS,
    alias_dir_problem,
    alias_paths,
    prepare_alias_dir,
)
from taskclf.model_registry.aliases import HISTORY_FILE as HISTORY_FILE
from taskclf.model_registry.errors import BundleRejectedError
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
)
from taskclf.model_registry.scan import describe_errors, is_json_error
from taskclf.model_registry.storage import is_remote

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
    if is_remote(models_dir):
        from taskclf.model_registry import remote

        remote.require_default_alias(alias)
        return remote.read_active(models_dir)
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
    """
    path = alias_paths(models_dir, alias).pointer
    label = "Active pointer" if alias == DEFAULT_ALIAS else f"Pointer of alias {alias!r}"
    if alias != DEFAULT_ALIAS and (problem := alias_dir_problem(models_dir)) is not None:
        return None, f"{path.parent} {problem}; ignoring alias {alias!r}"
    try:
        raw = read_capped(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    except OSError as exc:
        return None, f"{label} {path} is unreadable: {exc}"
    try:
        return ActivePointer.model_validate_json(raw), None
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        kind = "not JSON" if is_json_error(errors) else "not a valid pointer"
        return None, f"{label} {path} is {kind}; ignoring it: {describe_errors(errors, 1)}"


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
    located, problem = find_pointed_bundle(absolute(models_dir), model_dir, model_id)
    if located is None:
        log.warning(
            "Active pointer model_dir %r %s; treating the pointer as absent", model_dir, problem
        )
    return located


def find_pointed_bundle(
    root: Path, model_dir: str, model_id: str | None = None
) -> tuple[Path | None, str]:
    """:func:`locate_pointed_bundle` without logging: the path, or ``None`` and why.

    The one implementation of the §6 and §13 rules; ``root`` must be absolute.
    The reason completes the sentence "Active pointer model_dir <model_dir> ...".
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
        if os.path.isdir(candidate):
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
        path, _ = find_pointed_bundle(absolute(models_dir), pointer.model_dir, pointer.model_id)
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
    located, _ = find_pointed_bundle(absolute(models_dir), pointer.model_dir, pointer.model_id)
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
    if is_remote(models_dir):
        from taskclf.model_registry import remote

        remote.require_default_alias(alias)
        return remote.write_active(models_dir, bundle, policy, reason)
    root = absolute(models_dir)
    alias_paths(root, alias)  # a bad name is refused before any hashing
    _check_writable_bundle(root, bundle)
    from taskclf.model_registry.manifest import require_sealed_match  # only writers hash

    # Hashing a 200 MB model takes a while, so the full check runs before the lock:
    # other writers are not held up, and under the lock a cheap re-check (presence,
    # type and sizes) catches a bundle pruned or truncated in the meantime.
    require_sealed_match(bundle)
    return write_active_verified(
        root, bundle, policy, reason, alias=alias, message=message, actor=actor, pinned=pinned
    )


def write_active_verified(
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
    """:func:`write_active_atomic` for a bundle whose manifest the caller has just hashed.

    For callers that checked ``require_sealed_match(bundle)`` themselves
    before taking the registry lock (set-active, rollback, promotion): under
    the lock only presence, type and sizes are checked again, so the lock
    is never held while a large model is hashed.

    Raises:
        The same as :func:`write_active_atomic`.
    """
    from taskclf.model_registry.manifest import require_sealed_match  # only writers hash

    root = absolute(models_dir)
    paths = alias_paths(root, alias)
    policy = policy if policy is not None else SelectionPolicy()
    _check_writable_bundle(root, bundle)
    # The pointer records the registry's own name: it must be UTF-8 like the file.
    require_utf8(Path(root.name))
    assert bundle.metrics is not None
    details: dict[str, object] = {
        "metric": "macro_f1",
        "macro_f1": bundle.metrics.macro_f1,
        "weighted_f1": bundle.metrics.weighted_f1,
    }
    if reason is not None:
        details["note"] = reason
    with registry_lock(root):
        # Again under the lock: a prune in another process may have removed the
        # bundle since the check above, and the pointer must never name a deleted one.
        _check_writable_bundle(root, bundle)
        require_sealed_match(bundle, deep=False)
        prepare_alias_dir(root, alias)
        # Quietly: an unusable old pointer is recorded as null, and whoever is replacing
        # it (set-active, a repair) has already said what was wrong with it.
        old = read_active(root, warn=False, alias=alias)
        keep_pin = old is not None and old.pinned
        new = ActivePointer(
            model_dir=posixpath.join(root.name, bundle.path.name),
            selected_at=utc_now_iso(),
            policy_version=policy.version,
            model_id=bundle.model_id,
            reason=details,
            pinned=keep_pin if pinned is None else pinned,
        )
        _commit_pointer(paths.pointer, paths.history, _entry(old, new, actor, message))
    return new


def _check_writable_bundle(root: Path, bundle: ModelBundle) -> None:
    path = absolute(bundle.path)
    problem = None
    if not bundle.valid:
        problem = f"bundle is invalid: {bundle.invalid_reason}"
    elif bundle.metrics is None:
        problem = "bundle has no metrics"
    elif path.parent != root or path.name.startswith(".") or path.name != bundle.model_id:
        problem = f"bundle is not a direct child of the registry {root}"
    elif not path.is_dir():
        problem = "bundle directory does not exist"
    if problem is not None:
        raise BundleRejectedError(bundle.model_id, path, problem)


def _commit_pointer(pointer: Path, history: Path, entry: ActiveHistoryEntry) -> None:
    """History first, then the pointer; undo the history append if the pointer fails."""
    existed = os.path.lexists(history)
    previous_size = append_line(history, entry.model_dump_json().encode())
    try:
        atomic_write(pointer, entry.new.model_dump_json(indent=2).encode() + b"\n")
    except BaseException as exc:
        try:
            if existed:
                truncate_to(history, previous_size)
            else:
                # Byte-for-byte as before means absent, not empty.
                os.unlink(history)
        except OSError as undo_exc:
            # Cannot happen on a healthy disk (shrinking needs no space). Leaves exactly
            # the crash-between-steps state, which verify reports; the caller still
            # gets the error that stopped the pointer change.
            log.error(
                "Could not remove the history entry for a pointer change that failed "
                "(%s): %s; `taskclf model verify` will report it",
                history,
                undo_exc,
            )
            exc.add_note(f"the history entry could not be undone: {undo_exc}")
        raise


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
    entry = _entry(old, new, actor, message)
    with registry_lock(root):
        prepare_alias_dir(root, alias)
        append_line(paths.history, entry.model_dump_json().encode())


def _entry(
    old: ActivePointer | None, new: ActivePointer, actor: str | None, message: str | None
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
    if is_remote(models_dir):
        from taskclf.model_registry import remote

        remote.require_default_alias(alias)
        return remote.read_active_history(models_dir)
    path = alias_paths(models_dir, alias).history
    if alias != DEFAULT_ALIAS and (problem := alias_dir_problem(models_dir)) is not None:
        log.warning("%s %s; ignoring the history of alias %r", path.parent, problem, alias)
        return []
    try:
        raw, skipped, oversized = read_tail(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        log.warning("History %s is unreadable: %s", path, exc)
        return []
    if skipped:
        log.warning(
            "History %s is larger than the read limit; reading only its newest entries "
            "(the first %d bytes are skipped)",
            path,
            skipped,
        )
    for number, size in oversized:
        log.warning(
            "Skipping line %d of %s: it is %d bytes, larger than the %d byte read limit "
            "(a torn or corrupted write); the entries before and after it are still read",
            number,
            path,
            size,
            MAX_FILE_BYTES,
        )
    entries: list[ActiveHistoryEntry] = []
    for number, parsed in parse_history_lines(raw):
        if isinstance(parsed, ValidationError):
            log.warning(
                "Skipping unparseable line %d of %s: %s",
                number,
                path,
                describe_errors(parsed.errors(include_url=False), 1),
            )
        else:
            entries.append(parsed)
    return entries


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
