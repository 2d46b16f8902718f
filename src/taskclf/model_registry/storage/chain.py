"""Pointers and their histories on a store without locks: a chain of immutable entries.

An object store has no rename, no lock and no append, so a pointer cannot
be written like ``active.json`` is locally (history appended under the
lock, then the pointer replaced). What it has is create-if-absent and
compare-and-swap (:meth:`Storage.create`, :meth:`Storage.replace`), and
that is enough:

1. read the pointer and its version; it carries ``seq`` (the number of
   the change that wrote it) and ``history`` (the key of that change's entry);
2. create the entry ``<history prefix>/<seq+1>-<token>.json`` (create-if-absent),
   holding the entry's fields plus ``seq`` and ``prev`` (the key of step 1's entry);
3. replace the pointer if it is still at step 1's version, carrying
   ``seq+1`` and the key of step 2. This is the commit point.

The committed history is the chain followed back from the pointer
through ``prev``: each committed change has exactly one entry and each
entry's ``old`` is the previous entry's ``new``, whatever the number of
writers on however many hosts. An entry off the chain is uncommitted (the
writer lost the swap, or crashed between the steps): readers ignore it,
``verify`` reports it, ``prune`` removes it after an hour.

Where each alias keeps its files: ``active`` is ``active.json`` with
entries under ``active_history/``; alias NAME is ``.aliases/NAME.json``
with entries under ``.aliases/NAME_history/``.

Written against the :class:`Storage` verbs only, so it runs on a
:class:`LocalStorage` too (the property tests drive it there); the
object-store backend uses it for its pointer verbs.
"""

from __future__ import annotations

import json
import logging
import posixpath
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from taskclf.model_registry.aliases import (
    ACTIVE_FILE,
    ALIAS_DIR,
    DEFAULT_ALIAS,
    POINTER_SUFFIX,
    alias_name_problem,
    check_alias_name,
)
from taskclf.model_registry.errors import RegistryConflictError
from taskclf.model_registry.models import ActiveHistoryEntry, ActivePointer
from taskclf.model_registry.storage.base import WRITE_ATTEMPTS, Decide, PointerRead

if TYPE_CHECKING:
    from taskclf.model_registry.storage.base import ObjectInfo, Storage

log = logging.getLogger("taskclf.model_registry")

HISTORY_PREFIX = "active_history"
"""Where the entries of ``active`` live (``active_history/<seq>-<token>.json``)."""
HISTORY_DIR_SUFFIX = "_history"


def pointer_key(alias: str = DEFAULT_ALIAS) -> str:
    """The key of ``alias``'s pointer.

    Raises:
        AliasNameError: ``alias`` is not a usable alias name.
    """
    check_alias_name(alias)
    return ACTIVE_FILE if alias == DEFAULT_ALIAS else f"{ALIAS_DIR}/{alias}{POINTER_SUFFIX}"


def history_prefix(alias: str = DEFAULT_ALIAS) -> str:
    """The prefix under which ``alias``'s history entries are created."""
    check_alias_name(alias)
    if alias == DEFAULT_ALIAS:
        return HISTORY_PREFIX
    return f"{ALIAS_DIR}/{alias}{HISTORY_DIR_SUFFIX}"


def history_prefixes(infos: list[ObjectInfo]) -> set[str]:
    """Every history prefix a listing shows (``active_history``, ``.aliases/x_history``)."""
    found = {HISTORY_PREFIX}
    for info in infos:
        directory = posixpath.dirname(info.key)
        if directory.startswith(f"{ALIAS_DIR}/") and directory.endswith(HISTORY_DIR_SUFFIX):
            found.add(directory)
    return found


def alias_of(prefix: str) -> str:
    """The alias whose history lives under ``prefix`` (the inverse of :func:`history_prefix`)."""
    if prefix == HISTORY_PREFIX:
        return DEFAULT_ALIAS
    return prefix[len(ALIAS_DIR) + 1 : -len(HISTORY_DIR_SUFFIX)]


class ChainState(NamedTuple):
    """What a compare-and-swap of the pointer needs (``PointerRead.token``)."""

    version: str | None
    """The version to swap against; ``None`` when the pointer is absent."""
    seq: int
    """Sequence number of the pointer's change (0: no change recorded yet)."""
    entry: str | None
    """Key of the history entry of the pointer's change."""


def chain_state(read: PointerRead) -> ChainState:
    """The :class:`ChainState` of a :func:`read_pointer` result."""
    token = read.token
    assert isinstance(token, ChainState), "a PointerRead of another backend"
    return token


def _label(alias: str) -> str:
    return "Active pointer" if alias == DEFAULT_ALIAS else f"Pointer of alias {alias!r}"


def read_pointer(storage: Storage, alias: str = DEFAULT_ALIAS) -> PointerRead:
    """Read ``alias``'s pointer once: the pointer, its version, sequence number and history link."""
    key = pointer_key(alias)
    try:
        raw, version = storage.read(key)
    except FileNotFoundError:
        return PointerRead(None, None, ChainState(None, 0, None))
    try:
        document = json.loads(raw)
        pointer = ActivePointer.model_validate(document)
    except (ValueError, ValidationError) as exc:
        problem = f"{_label(alias)} {storage.url}/{key} is not a valid pointer: {exc}"
        seq, entry = _newest_entry(storage, alias)
        return PointerRead(None, problem.splitlines()[0], ChainState(version, seq, entry))
    seq = document.get("seq")
    entry = document.get("history")
    if not isinstance(seq, int) or seq < 0 or not isinstance(entry, str):
        # Written by hand or by another tool: the next change continues the chain
        # from its newest entry, so no committed entry is cut off (verify reports the gap).
        seq, entry = _newest_entry(storage, alias)
    return PointerRead(pointer, None, ChainState(version, seq, entry))


def _newest_entry(storage: Storage, alias: str) -> tuple[int, str | None]:
    """``(seq, key)`` of the newest history object, ``(0, None)`` when there is none."""
    numbered = [(entry_seq(i.key), i.key) for i in storage.list_files(history_prefix(alias))]
    valid = [(seq, key) for seq, key in numbered if seq is not None]
    if not valid:
        return 0, None
    return max(valid)


def entry_seq(key: str) -> int | None:
    """The sequence number in a history entry's key (``.../000000000007-<token>.json``)."""
    number = posixpath.basename(key).partition("-")[0]
    return int(number) if number.isdigit() else None


def commit_pointer(
    storage: Storage, state: PointerRead, entry: ActiveHistoryEntry, alias: str = DEFAULT_ALIAS
) -> PointerRead:
    """Record ``entry`` and swap the pointer to ``entry.new``, or change nothing.

    A lost swap deletes the entry again; a crash between the steps, or a
    swap whose outcome is unknown (a dropped connection), leaves an
    uncommitted entry off the chain.

    Returns:
        The state after the change.

    Raises:
        RegistryConflictError: The pointer changed since ``state`` was read.
        OSError: A request failed; if the swap's outcome is unknown (a
            connection dropped), the pointer is read back to decide.
    """
    chain = chain_state(state)
    seq = chain.seq + 1
    key = f"{history_prefix(alias)}/{seq:012d}-{uuid.uuid4().hex[:16]}.json"
    document = {**entry.model_dump(mode="json"), "seq": seq, "prev": chain.entry}
    storage.create(key, json.dumps(document).encode() + b"\n")
    pointer = {**entry.new.model_dump(mode="json"), "seq": seq, "history": key}
    data = json.dumps(pointer, indent=2).encode() + b"\n"
    try:
        version = storage.replace(pointer_key(alias), data, expected=chain.version)
    except RegistryConflictError:
        _discard(storage, key)
        raise
    except OSError:
        after = read_pointer(storage, alias)
        if chain_state(after).entry != key:
            # The outcome is unknown (the request may still land): the entry stays. If the
            # swap never happens it is an uncommitted entry, which prune removes later.
            raise
        log.warning("The pointer swap of %s reported an error but committed", storage.url)
        return after
    return PointerRead(entry.new, None, ChainState(version, seq, key))


def _discard(storage: Storage, key: str) -> None:
    try:
        storage.delete(key)
    except OSError as exc:
        log.warning("Could not remove the uncommitted history entry %s: %s", key, exc)


def update_pointer(
    storage: Storage, alias: str, decide: Decide, *, attempts: int = WRITE_ATTEMPTS
) -> tuple[PointerRead, ActiveHistoryEntry | None]:
    """:meth:`Storage.update_pointer` by :func:`commit_pointer`, re-deciding after a lost swap."""
    for attempt in range(attempts):
        state = read_pointer(storage, alias)
        entry = decide(state)
        if entry is None:
            return state, None
        try:
            commit_pointer(storage, state, entry, alias)
        except RegistryConflictError:
            if attempt == attempts - 1:
                raise
            continue
        return state, entry
    raise RegistryConflictError(storage.url, pointer_key(alias))


class HistoryChain(NamedTuple):
    """The history objects, split into the committed chain and the rest."""

    committed: list[tuple[str, ActiveHistoryEntry]]
    """Oldest first, each with its key."""
    uncommitted: list[ObjectInfo]
    """Entries off the chain (lost swaps, crashes between the two steps)."""
    unreadable: list[str]
    """Entries that do not parse."""


def read_history_chain(
    storage: Storage, state: PointerRead | None = None, alias: str = DEFAULT_ALIAS
) -> HistoryChain:
    """Follow the history back from the pointer (one LIST, one GET per entry)."""
    state = state if state is not None else read_pointer(storage, alias)
    infos = storage.list_files(history_prefix(alias))
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
    head = chain_state(state).entry
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


def read_history(storage: Storage, alias: str = DEFAULT_ALIAS) -> list[ActiveHistoryEntry]:
    """:meth:`Storage.read_history`: the committed chain, oldest first."""
    chain = read_history_chain(storage, alias=alias)
    for key in chain.unreadable:
        log.warning("Skipping unparseable history entry %s", key)
    return [entry for _, entry in chain.committed]


def alias_names(storage: Storage) -> list[str]:
    """:meth:`Storage.alias_names` from one small LIST of ``.aliases/`` (and a HEAD)."""
    names = [DEFAULT_ALIAS] if storage.head(ACTIVE_FILE) is not None else []
    found = set()
    for info in storage.list_files(ALIAS_DIR):
        rest = info.key[len(ALIAS_DIR) + 1 :]
        name = rest.removesuffix(POINTER_SUFFIX)
        if "/" not in rest and rest.endswith(POINTER_SUFFIX) and alias_name_problem(name) is None:
            found.add(name)
    found.discard(DEFAULT_ALIAS)
    return names + sorted(found)
