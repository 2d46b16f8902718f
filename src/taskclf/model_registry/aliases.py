"""Alias names and where each alias keeps its pointer and history (issue 14).

An alias is a named pointer with its own append-only history, written
with exactly the protocol of ``active.json``. The alias ``active`` *is*
``active.json`` / ``active_history.jsonl`` at the registry's top level,
byte for byte as before aliases existed; every other alias NAME lives in
the dot-directory ``.aliases/`` (``NAME.json`` and ``NAME_history.jsonl``),
which the scan never reads as a bundle.

:func:`alias_paths` is the one place that turns a name into paths; every
reader and writer goes through it, so a name can never form a path
outside ``.aliases/``: names are checked against :data:`ALIAS_PATTERN`
(lowercase letters, digits, ``_`` and ``-``, starting with a letter, at
most 64 characters), which admits no separator, dot or NUL.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

from taskclf.model_registry._fs import absolute, fsync_dir
from taskclf.model_registry.errors import AliasNameError, RegistryFileError

DEFAULT_ALIAS = "active"
ALIAS_DIR = ".aliases"
ACTIVE_FILE = "active.json"
HISTORY_FILE = "active_history.jsonl"
POINTER_SUFFIX = ".json"
HISTORY_SUFFIX = "_history.jsonl"
ALIAS_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,63}")
"""What an alias name must match, whole."""

RESERVED_ALIASES = frozenset({"index", "registry", "aliases", "taskclf", "history", "lock"})
"""Names refused although they match the pattern: they read as registry files or commands
(``index.json``, ``registry.toml``, ``.aliases/``, the lock), which would confuse people
reading the directory; names ending in ``_history`` are refused for the same reason."""


class AliasPaths(NamedTuple):
    """Where one alias's files live."""

    name: str
    pointer: Path
    history: Path


def alias_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an alias (a sentence fragment), or ``None`` when it can."""
    if not name:
        return "an alias name cannot be empty"
    if len(name) > 64:
        return f"alias name {name[:20]!r}... is {len(name)} characters long; the limit is 64"
    if ALIAS_PATTERN.fullmatch(name) is None:
        return (
            f"alias name {name!r} is not allowed: use lowercase letters, digits, '_' and '-', "
            "starting with a letter (no dots, slashes or uppercase)"
        )
    if name in RESERVED_ALIASES or name.endswith("_history"):
        return f"alias name {name!r} is reserved (it reads like a registry file); choose another"
    return None


def check_alias_name(name: str) -> str:
    """Return ``name`` if it is a usable alias name.

    Raises:
        AliasNameError: (a ``ValueError``) one sentence saying what is wrong.
    """
    problem = alias_name_problem(name)
    if problem is not None:
        raise AliasNameError(name, problem)
    return name


def alias_paths(models_dir: str | os.PathLike[str], alias: str = DEFAULT_ALIAS) -> AliasPaths:
    """The pointer and history files of ``alias`` in ``models_dir`` (no filesystem access).

    Args:
        models_dir: The registry directory.
        alias: The alias name; ``"active"`` is ``active.json`` itself.

    Returns:
        The alias's two paths.

    Raises:
        AliasNameError: The name does not match :data:`ALIAS_PATTERN` or is reserved.
    """
    root = absolute(models_dir)
    check_alias_name(alias)
    if alias == DEFAULT_ALIAS:
        return AliasPaths(alias, root / ACTIVE_FILE, root / HISTORY_FILE)
    directory = root / ALIAS_DIR
    return AliasPaths(
        alias, directory / f"{alias}{POINTER_SUFFIX}", directory / f"{alias}{HISTORY_SUFFIX}"
    )


def alias_dir_problem(models_dir: str | os.PathLike[str]) -> str | None:
    """Why ``.aliases`` cannot be used (``"is a symlink; ..."``), or ``None``.

    A missing ``.aliases`` is fine: it means no alias besides ``active`` exists yet.
    """
    path = absolute(models_dir) / ALIAS_DIR
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be inspected ({exc})"
    if stat.S_ISLNK(mode):
        return (
            "is a symlink; aliases are confined to the registry, so it is refused: "
            "replace it with a real directory"
        )
    if not stat.S_ISDIR(mode):
        return "is not a directory; move it away so aliases can be stored there"
    return None


def prepare_alias_dir(models_dir: str | os.PathLike[str], alias: str) -> None:
    """Make sure ``alias`` can be written: create ``.aliases`` on first use, refuse a symlink.

    Only writers call this (readers never create anything). The caller
    holds the registry lock.

    Raises:
        RegistryFileError: ``.aliases`` is a symlink or not a directory.
        OSError: It cannot be created.
    """
    if alias == DEFAULT_ALIAS:
        return
    root = absolute(models_dir)
    problem = alias_dir_problem(root)
    if problem is not None:
        raise RegistryFileError(root / ALIAS_DIR, problem, errno.ELOOP)
    directory = root / ALIAS_DIR
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:
        return
    fsync_dir(root)


def alias_names(models_dir: str | os.PathLike[str]) -> list[str]:
    """Every alias with a pointer file: ``active`` (if ``active.json`` exists) first, then sorted.

    Files in ``.aliases`` whose name is not a usable alias are ignored (they
    cannot have been written by taskclf). A symlinked ``.aliases`` lists nothing.
    """
    root = absolute(models_dir)
    names = [DEFAULT_ALIAS] if os.path.lexists(root / ACTIVE_FILE) else []
    if alias_dir_problem(root) is not None:
        return names
    try:
        entries = os.listdir(root / ALIAS_DIR)
    except OSError:
        return names
    found = {
        entry.removesuffix(POINTER_SUFFIX)
        for entry in entries
        if entry.endswith(POINTER_SUFFIX)
        and alias_name_problem(entry.removesuffix(POINTER_SUFFIX)) is None
        and entry.removesuffix(POINTER_SUFFIX) != DEFAULT_ALIAS
    }
    return names + sorted(found)
