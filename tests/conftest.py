"""Shared fixtures: real bundle trees in ``tmp_path``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskclf.samples import write_bundle

BundleFactory = Callable[..., Path]


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (symlinks not followed) with its mode, size and mtime (ns).

    Equal before and after an operation means it created, removed, renamed
    or modified nothing there.
    """
    state: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            state[os.path.relpath(path, root)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """An empty registry directory named ``models`` (so pointers read ``models/<id>``)."""
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def make_bundle(models_dir: Path) -> BundleFactory:
    """Write a valid bundle ``models_dir/<name>``; keyword arguments go to ``write_bundle``."""

    def factory(name: str, *, parent: Path | None = None, **kwargs: Any) -> Path:
        return write_bundle((parent or models_dir) / name, **kwargs)

    return factory
