"""The active pointer ``active.json`` and its audit log ``active_history.jsonl`` (§6).

Write order (all under the registry lock): the history entry is appended
and fsynced first, then the pointer is replaced atomically. If the
pointer replace fails, the history is cut back to its previous length,
so both files are exactly as before. A hard crash (SIGKILL, power loss)
between the two steps can leave one history entry whose ``new`` is not
the current pointer: ``verify`` reports exactly that, and the pointer
itself is always the old or the new one, whole.
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
    absolute,
    append_line,
    atomic_write,
    read_capped,
    read_tail,
    registry_lock,
    require_utf8,
    truncate_to,
)
from taskclf.model_registry.errors import BundleRejectedError
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
)
from taskclf.model_registry.scan import describe_errors, is_json_error

ACTIVE_FILE = "active.json"
HISTORY_FILE = "active_history.jsonl"

log = logging.getLogger("taskclf.model_registry")


def utc_now_iso() -> str:
    """Now, in UTC, ISO-8601 with its offset."""
    return datetime.now(UTC).isoformat()


def read_active(models_dir: str | os.PathLike[str]) -> ActivePointer | None:
    """Read ``active.json``.

    Returns:
        The pointer, or ``None`` when the file is missing, unreadable, not
        JSON or not a valid pointer (the last three are logged). Never raises.
    """
    path = absolute(models_dir) / ACTIVE_FILE
    try:
        raw = read_capped(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        log.warning("Active pointer %s is unreadable: %s", path, exc)
        return None
    try:
        return ActivePointer.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        kind = "not JSON" if is_json_error(errors) else "not a valid pointer"
        log.warning(
            "Active pointer %s is %s; ignoring it: %s", path, kind, describe_errors(errors, 1)
        )
        return None


def locate_pointed_bundle(models_dir: str | os.PathLike[str], model_dir: str) -> Path | None:
    """Find the bundle directory a pointer's ``model_dir`` names, confined to the registry.

    Candidates, in order: ``models_dir.parent / model_dir`` (what
    :func:`write_active_atomic` writes), then ``models_dir / model_dir``
    (a bare bundle name written by hand); an absolute ``model_dir`` is its
    own single candidate. After lexical normalisation the first candidate
    that is a direct, non-reserved child of ``models_dir`` wins. No
    filesystem access: whether the bundle exists is the caller's question.

    Returns:
        The bundle path, or ``None`` (logged) when the pointer escapes the registry.
    """
    root = absolute(models_dir)
    if not _is_representable_path(model_dir):
        log.warning(
            "Active pointer model_dir %r is not a usable path; treating the pointer as absent",
            model_dir,
        )
        return None
    if os.path.isabs(model_dir):
        candidates = [Path(model_dir)]
    else:
        candidates = [root.parent / model_dir, root / model_dir]
    for candidate in candidates:
        normal = Path(os.path.normpath(candidate))
        if normal.parent == root and normal.name and not normal.name.startswith("."):
            return normal
    log.warning(
        "Active pointer model_dir %r escapes the registry %s; treating the pointer as absent",
        model_dir,
        root,
    )
    return None


def pointed_model_id(
    models_dir: str | os.PathLike[str], pointer: ActivePointer | None
) -> str | None:
    """The id of the bundle a pointer locates, or ``None`` (no pointer, or it escapes)."""
    if pointer is None:
        return None
    path = locate_pointed_bundle(models_dir, pointer.model_dir)
    return path.name if path is not None else None


def locate_active_bundle(models_dir: str | os.PathLike[str]) -> Path | None:
    """The bundle directory ``active.json`` locates; ``None`` when absent, unusable or escaping.

    Like :func:`locate_pointed_bundle`, it does not check that the bundle exists.
    """
    pointer = read_active(models_dir)
    return locate_pointed_bundle(models_dir, pointer.model_dir) if pointer is not None else None


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
) -> ActivePointer:
    """Point ``active.json`` at ``bundle`` and record the change in the history.

    Args:
        models_dir: The registry directory.
        bundle: A valid bundle that is a direct child of ``models_dir``.
        policy: Supplies ``policy_version`` (default ``SelectionPolicy()``).
        reason: Optional note stored as ``reason["note"]``.

    Returns:
        The pointer written.

    Raises:
        BundleRejectedError: (a ``ValueError``) the bundle is invalid, has no
            metrics, or is not a direct child of ``models_dir``; nothing is written.
        RegistryFileError: A registry file is a symlink, or the registry's name
            is not UTF-8.
        OSError: The write failed; ``active.json`` and the history are unchanged.
    """
    root = absolute(models_dir)
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
        new = ActivePointer(
            model_dir=posixpath.join(root.name, bundle.path.name),
            selected_at=utc_now_iso(),
            policy_version=policy.version,
            model_id=bundle.model_id,
            reason=details,
        )
        old = read_active(root)
        _commit_pointer(root, old, new)
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


def _commit_pointer(root: Path, old: ActivePointer | None, new: ActivePointer) -> None:
    """History first, then the pointer; undo the history append if the pointer fails."""
    history = root / HISTORY_FILE
    existed = os.path.lexists(history)
    previous_size = append_line(history, _history_line(old, new))
    try:
        atomic_write(root / ACTIVE_FILE, new.model_dump_json(indent=2).encode() + b"\n")
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


def _history_line(old: ActivePointer | None, new: ActivePointer) -> bytes:
    return ActiveHistoryEntry(at=new.selected_at, old=old, new=new).model_dump_json().encode()


def append_active_history(
    models_dir: str | os.PathLike[str], old: ActivePointer | None, new: ActivePointer
) -> None:
    """Append one history entry (``at = new.selected_at``), whole, on its own line, fsynced.

    Raises:
        RegistryFileError: The history file is a symlink.
        OSError: The append failed; the file is as it was.
    """
    root = absolute(models_dir)
    with registry_lock(root):
        append_line(root / HISTORY_FILE, _history_line(old, new))


def read_active_history(models_dir: str | os.PathLike[str]) -> list[ActiveHistoryEntry]:
    """The pointer's transitions, oldest first.

    A line that does not parse (a torn write, a hand edit) is skipped with
    a warning. A history larger than the 16 MiB read cap is read from its
    last 16 MiB (whole lines only; the skip is logged): the newest entries
    are the ones rollback and verify need. Never raises: an unreadable file
    reads as no history.
    """
    path = absolute(models_dir) / HISTORY_FILE
    try:
        raw, skipped = read_tail(path)
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
