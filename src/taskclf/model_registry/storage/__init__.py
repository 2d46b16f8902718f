"""Where a registry's files live: one interface, a backend per kind of storage.

``open_storage`` is the one place that picks the backend: an ``s3://`` URL
is an object-store registry (:class:`S3Storage`, the ``s3`` extra), anything
else a local directory (:class:`LocalStorage`).
"""

from __future__ import annotations

import functools
import os

from taskclf.model_registry.locations import REMOTE_SCHEME, is_remote
from taskclf.model_registry.storage.base import MANIFEST_KEY, ObjectInfo, Storage
from taskclf.model_registry.storage.local import LocalStorage

__all__ = [
    "MANIFEST_KEY",
    "REMOTE_SCHEME",
    "LocalStorage",
    "ObjectInfo",
    "Storage",
    "is_remote",
    "open_storage",
    "remote_url",
]


def remote_url(models_dir: str | os.PathLike[str]) -> str:
    """The ``s3://`` URL of a remote registry location, restoring a slash a ``Path`` folded."""
    text = os.fspath(models_dir)
    return text if text.startswith(REMOTE_SCHEME) else REMOTE_SCHEME + text[len("s3:/") :]


def open_storage(models_dir: str | os.PathLike[str]) -> Storage:
    """The storage backend for a registry location.

    Args:
        models_dir: A directory, or ``s3://bucket/prefix``.

    Returns:
        An :class:`S3Storage` for an ``s3://`` URL, else a :class:`LocalStorage`.

    Raises:
        StorageExtraMissingError: An ``s3://`` URL without the ``s3`` extra installed.
        StorageError: The URL names no bucket.
    """
    if is_remote(models_dir):
        settings = tuple(os.environ.get(name) for name in _CLIENT_SETTINGS)
        return _remote_storage(remote_url(models_dir), settings)
    return _local_storage(os.path.abspath(models_dir))


@functools.lru_cache(maxsize=256)
def _local_storage(root: str) -> Storage:
    # A LocalStorage holds only its (absolute) root, so one per directory is shared:
    # the registry logic opens the storage in several places of one call (the pointer
    # path of `resolve` is measured in microseconds).
    return LocalStorage(root)


# What configures an S3 client: a change (a test, a re-configured process) gets a new one.
_CLIENT_SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
)


@functools.lru_cache(maxsize=16)
def _remote_storage(url: str, settings: tuple[str | None, ...]) -> Storage:
    # One client per registry and configuration: its connection pool is reused
    # across calls, and the conditional-write probe runs once per process.
    del settings  # part of the cache key only
    from taskclf.model_registry.storage.s3 import S3Storage

    return S3Storage(url)
