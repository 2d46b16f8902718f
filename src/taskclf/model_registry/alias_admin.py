"""Listing and deleting aliases (``taskclf model aliases``, ``taskclf model alias delete``).

Deleting an alias keeps its audit trail: under the registry lock its
history is renamed to ``.aliases/NAME_history.deleted-<UTC stamp>.jsonl``,
a last line ``{"at", "deleted", "actor", "message"}`` recording who
deleted it, why, and the pointer it had is appended there, and only then
is the pointer removed (the commit point). A crash before the pointer is
removed leaves the alias in place with its history archived: it still
resolves, and deleting it again finishes the job. A later alias of the
same name starts a fresh history. Archives are never read by taskclf
(no rollback, no prune protection): deleting an alias releases its bundles.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from taskclf.model_registry._fs import (
    absolute,
    append_line,
    fsync_dir,
    refuse_symlink,
    registry_lock,
)
from taskclf.model_registry.aliases import (
    ALIAS_DIR,
    DEFAULT_ALIAS,
    alias_dir_problem,
    alias_paths,
    check_alias_name,
)
from taskclf.model_registry.config import RegistryConfig, load_registry_config
from taskclf.model_registry.errors import AliasError, RegistryFileError
from taskclf.model_registry.models import ActivePointer
from taskclf.model_registry.pointer import default_actor, read_active, utc_now_iso
from taskclf.model_registry.resolution import follow_pointer
from taskclf.model_registry.storage import open_storage
from taskclf.model_registry.storage.chain import pointer_key

ARCHIVE_INFIX = ".deleted-"


class AliasInfo(BaseModel):
    """One alias as ``taskclf model aliases`` shows it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    pointer_path: Path
    history_path: Path
    pointer: ActivePointer | None
    """The pointer, or ``None`` when it is unreadable or not a valid pointer."""
    model_id: str | None
    """The bundle directory the pointer locates (whether or not it is usable)."""
    pinned: bool
    last_moved_at: str | None
    """When the pointer was last written (its ``selected_at``)."""
    broken: bool
    """The pointer does not lead to a valid, compatible bundle."""
    problem: str | None
    """Why it is broken, else ``None``."""


def list_aliases(
    models_dir: str | os.PathLike[str], *, config: RegistryConfig | None = None
) -> list[AliasInfo]:
    """Every alias of the registry: ``active`` first (when ``active.json`` exists), then by name.

    Reads only; never creates ``.aliases``. Compatibility is checked against
    each bundle's declared schema version and the registry's label set, as
    for ``set-active``.

    Args:
        models_dir: The registry directory.
        config: The registry's labels and schemas (default: read from ``models_dir``).

    Returns:
        One entry per alias pointer file.

    Raises:
        RegistryConfigError: The registry's configuration is malformed.
    """
    storage = open_storage(models_dir)
    root = storage.root_path
    config = config if config is not None else load_registry_config(root)
    labels, schemas = config.labels, config.schema_hashes
    infos: list[AliasInfo] = []
    for name in storage.alias_names():
        pointer = read_active(root, alias=name)
        target = follow_pointer(root, pointer, None, labels, schemas, alias=name)
        infos.append(
            AliasInfo(
                name=name,
                pointer_path=root / pointer_key(name),
                history_path=storage.history_path(name),
                pointer=pointer,
                model_id=target.path.name if target.path is not None else None,
                pinned=pointer is not None and pointer.pinned,
                last_moved_at=pointer.selected_at if pointer is not None else None,
                broken=target.bundle is None,
                problem=target.problem or None,
            )
        )
    return infos


def aliases_by_bundle(
    models_dir: str | os.PathLike[str], *, config: RegistryConfig | None = None
) -> dict[str, list[str]]:
    """For each bundle id some alias locates, the aliases that locate it (``active`` first)."""
    carried: dict[str, list[str]] = {}
    for info in list_aliases(models_dir, config=config):
        if info.model_id is not None:
            carried.setdefault(info.model_id, []).append(info.name)
    return carried


def delete_alias(
    models_dir: str | os.PathLike[str],
    name: str,
    *,
    message: str | None = None,
    actor: str | None = None,
) -> ActivePointer | None:
    """Delete an alias, archiving its history with a record of the deletion.

    Args:
        models_dir: The registry directory.
        name: The alias; ``"active"`` is refused.
        message: Why, recorded in the archived history.
        actor: Who (default ``user@host`` or ``$TASKCLF_ACTOR``).

    Returns:
        The pointer the alias had (``None`` if its file was not a valid pointer).

    Raises:
        AliasError: ``name`` is ``active`` or no such alias exists.
        AliasNameError: ``name`` is not a usable alias name.
        RegistryFileError: ``.aliases`` or the history is a symlink.
        OSError: A rename or write failed; the pointer is still in place.
    """
    check_alias_name(name)
    storage = open_storage(models_dir)
    if storage.remote:
        # The archive is a renamed local file; an object store would need its own protocol.
        raise AliasError(
            name,
            f"Deleting an alias of an object-store registry ({storage.url}) is not supported "
            f"yet; point it elsewhere with `taskclf model set-active --alias {name} --model-id "
            "ID` instead.",
        )
    root = absolute(models_dir)
    if name == DEFAULT_ALIAS:
        raise AliasError(
            name,
            "The alias 'active' is active.json itself and cannot be deleted; point it "
            "elsewhere with `taskclf model set-active --model-id ID` instead.",
        )
    paths = alias_paths(root, name)
    missing = AliasError(
        name, f"No alias {name!r} in {root}; `taskclf model aliases` lists the aliases."
    )
    if not root.is_dir():
        raise missing
    with registry_lock(root):
        problem = alias_dir_problem(root)
        if problem is not None:
            raise RegistryFileError(root / ALIAS_DIR, problem)
        if not os.path.lexists(paths.pointer):
            raise missing
        refuse_symlink(paths.history)
        pointer = read_active(root, alias=name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        archive = paths.history.with_name(f"{paths.history.stem}{ARCHIVE_INFIX}{stamp}.jsonl")
        if os.path.lexists(paths.history):
            os.rename(paths.history, archive)
        record = {
            "at": utc_now_iso(),
            "deleted": pointer.model_dump(mode="json") if pointer is not None else None,
            "actor": actor if actor is not None else default_actor(),
            "message": message,
        }
        append_line(archive, json.dumps(record, ensure_ascii=False).encode())
        os.unlink(paths.pointer)
        fsync_dir(paths.pointer.parent)
    return pointer


def archived_histories(models_dir: str | os.PathLike[str], name: str) -> list[Path]:
    """The archived histories of deleted aliases called ``name``, oldest first."""
    directory = alias_paths(models_dir, name).history.parent
    prefix = f"{name}_history{ARCHIVE_INFIX}"
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    return sorted(directory / entry for entry in entries if entry.startswith(prefix))
