"""Shared fixtures: real bundle trees in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskclf.samples import write_bundle

BundleFactory = Callable[..., Path]


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
