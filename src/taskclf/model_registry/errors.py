"""The registry's exceptions.

Each one also inherits the builtin a caller would naturally catch
(``ValueError`` for a refused bundle, ``OSError`` for a filesystem
problem) and carries the data its message was built from.
"""

from __future__ import annotations

import errno
from pathlib import Path


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""


class BundleRejectedError(RegistryError, ValueError):
    """A bundle cannot be used for the requested operation.

    Attributes:
        model_id: The bundle's directory name.
        path: The bundle directory.
        reason: Why it was refused.
    """

    def __init__(self, model_id: str, path: Path, reason: str) -> None:
        self.model_id = model_id
        self.path = path
        self.reason = reason
        super().__init__(f"Bundle '{model_id}' ({path}) cannot be used: {reason}")


class PromotionError(RegistryError, ValueError):
    """A candidate bundle was refused by ``promote_bundle``; nothing was written.

    Attributes:
        model_id: The candidate's (target) name.
        path: The candidate directory.
        reason: Why it was refused.
    """

    def __init__(self, model_id: str, path: Path, reason: str) -> None:
        self.model_id = model_id
        self.path = path
        self.reason = reason
        super().__init__(f"Cannot promote '{model_id}' from {path}: {reason}")


class RegistryFileError(RegistryError, OSError):
    """A registry file cannot be written or read safely (symlinked, too large...).

    Attributes:
        path: The offending file.
        reason: What is wrong with it and what to do.
    """

    def __init__(self, path: Path, reason: str, err: int = errno.EPERM) -> None:
        self.path = path
        self.reason = reason
        super().__init__(err, f"{path}: {reason}")

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class RegistryLockTimeout(RegistryError, TimeoutError):
    """Another process held the registry lock for too long.

    Attributes:
        path: The lock file.
        timeout_s: How long we waited.
    """

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.timeout_s = timeout_s
        super().__init__(
            f"Timed out after {timeout_s:g}s waiting for the registry lock {path}; "
            "another taskclf process is writing the registry"
        )
