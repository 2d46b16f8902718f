"""The registry's exceptions.

Each one also inherits the builtin a caller would naturally catch
(``ValueError`` for a refused bundle, ``OSError`` for a filesystem
problem) and carries the data its message was built from.
"""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from taskclf.model_registry.locations import shown_path


def mismatch_advice(model_id: str, path: object) -> str:
    """What to do about a bundle whose files no longer match its ``manifest.json``.

    A local bundle can be re-sealed when the change was intended; an
    object-store bundle cannot (bundles there are sealed on upload and never
    change), so the changed files are promoted again as a new bundle instead.
    """
    if shown_path(path).startswith("s3://"):
        return (
            "restore the changed files on the store, or promote the intended files again "
            "under a new name (bundles on an object store are sealed on upload and cannot "
            "be re-sealed)"
        )
    return (
        "restore the bundle's files, or re-seal it with "
        f"`taskclf model seal {model_id} --force` if the change is intended"
    )


class RegistryError(Exception):
    """Root of every error the registry raises on purpose."""


class BundleError(RegistryError, ValueError):
    """A bundle was refused for an operation; nothing was written.

    Subclasses differ only in how the message reads.

    Attributes:
        model_id: The bundle's (or candidate's target) name.
        path: The bundle directory.
        reason: Why it was refused.
    """

    def __init__(self, model_id: str, path: Path, reason: str) -> None:
        self.model_id = model_id
        self.path = path
        self.reason = reason
        super().__init__(self._message())

    def _message(self) -> str:
        return f"Bundle '{self.model_id}' ({shown_path(self.path)}) cannot be used: {self.reason}"


class BundleRejectedError(BundleError):
    """A bundle cannot be pointed at (invalid, no metrics, not a direct child)."""


class BundleNotFoundError(BundleError):
    """No bundle directory of that id (``model show``, ``model diff``)."""

    def _message(self) -> str:
        return (
            f"Bundle directory not found: {shown_path(self.path)} ({self.reason}); "
            "run `taskclf train list` to see the bundle ids"
        )


class PromotionError(BundleError):
    """A candidate bundle was refused by ``promote_bundle``; nothing was written."""

    def _message(self) -> str:
        return f"Cannot promote '{self.model_id}' from {shown_path(self.path)}: {self.reason}"


class BundleIntegrityError(BundleError):
    """A sealed bundle does not match its ``manifest.json``; nothing was written.

    Attributes:
        file: The first offending file, relative to the bundle (``/`` separators).
        problem: What is wrong with it, as a sentence naming the file.
        problems: How many problems the check found in all.
    """

    def __init__(
        self, model_id: str, path: Path, file: str, problem: str, problems: int = 1
    ) -> None:
        self.file = file
        self.problem = problem
        self.problems = problems
        super().__init__(model_id, path, problem)

    def _message(self) -> str:
        more = (
            f" (and {self.problems - 1} more problem(s): `taskclf model verify --deep` lists them)"
            if self.problems > 1
            else ""
        )
        return (
            f"Bundle '{self.model_id}' ({shown_path(self.path)}) does not match its manifest.json: "
            f"{self.problem}{more}; {mismatch_advice(self.model_id, self.path)}."
        )


class AuthoringError(BundleError):
    """``save_bundle`` refused its input or its destination; nothing was written."""

    def _message(self) -> str:
        return f"Cannot save bundle '{self.model_id}' at {shown_path(self.path)}: {self.reason}"


class SealError(BundleError):
    """A bundle cannot be sealed (a symlink or special file in it, already sealed...)."""

    def _message(self) -> str:
        return f"Cannot seal bundle '{self.model_id}' ({shown_path(self.path)}): {self.reason}"


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


_ACTIVATION_SENTENCES: dict[str, tuple[str, str]] = {
    "registry_missing": ("{reason}", "check the registry path"),
    "not_found": (
        "Bundle directory not found: {reason}",
        "run `taskclf train list` to see the bundle ids",
    ),
    "invalid": (
        "Bundle is invalid: {reason}",
        "fix the bundle or choose another one (`taskclf train list`)",
    ),
    "incompatible": (
        "Bundle is incompatible with the current schema/labels: {reason}",
        "choose an eligible bundle (`taskclf train list --eligible`)",
    ),
    "integrity": ("Bundle does not match its manifest.json: {reason}", "{mismatch_advice}"),
}
"""CLI.md's sentence for each ``set-active`` check, and what to do about it."""


class ActivationError(BundleError):
    """``set-active`` refused a bundle; nothing was written.

    ``str(exc)`` is the sentence CLI.md fixes for the failed check
    (``Bundle directory not found: ...``, ``Bundle is invalid: ...``,
    ``Bundle is incompatible with the current schema/labels: ...``, and
    for a sealed bundle whose files changed ``Bundle does not match its
    manifest.json: ...``), followed by what to do.

    Attributes:
        reason: The detail after the colon (the path, the invalid or incompatibility reason).
        check: Which check failed: ``"registry_missing"`` (the registry directory
            itself), ``"not_found"``, ``"invalid"``, ``"incompatible"`` or ``"integrity"``.
    """

    def __init__(
        self,
        model_id: str,
        path: Path,
        reason: str,
        check: Literal["registry_missing", "not_found", "invalid", "incompatible", "integrity"],
    ) -> None:
        self.check = check
        super().__init__(model_id, path, reason)

    def _message(self) -> str:
        sentence, advice = _ACTIVATION_SENTENCES[self.check]
        what_to_do = advice.format(
            model_id=self.model_id, mismatch_advice=mismatch_advice(self.model_id, self.path)
        )
        return f"{sentence.format(reason=self.reason)}; {what_to_do}."


class RegistryConfigError(RegistryError, ValueError):
    """The registry configuration (``registry.toml``, ``TASKCLF_LABELS``, ``--labels``) is unusable.

    Raised instead of falling back to the defaults: a registry whose
    declared labels cannot be read must not be judged against taskclf's.

    Attributes:
        source: Where the bad value came from: the file's path, or the
            environment variable or option name.
        key: The offending key (``labels``, ``schemas[1].hash``...), or
            ``None`` when the source as a whole is unusable (not TOML...).
        reason: What is wrong with it.
        advice: What to do about it.
    """

    def __init__(
        self, source: str, key: str | None, reason: str, advice: str = "fix it or remove it"
    ) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        self.advice = advice
        where = f"{source}, key {key!r}" if key else source
        super().__init__(f"Invalid registry configuration ({where}): {reason}; {advice}.")


class RollbackError(RegistryError, ValueError):
    """A rollback cannot be planned or executed; nothing was written.

    Attributes:
        reason: One sentence saying why and what to do (also ``str(exc)``).
        model_id: The rollback target concerned, if any.
    """

    def __init__(self, reason: str, model_id: str | None = None) -> None:
        self.reason = reason
        self.model_id = model_id
        super().__init__(reason)


class PruneError(RegistryError, ValueError):
    """A prune cannot be planned (bad option value, missing registry); nothing was deleted.

    Attributes:
        reason: One sentence saying why and what to do (also ``str(exc)``).
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class ReportExtraMissingError(RegistryError, ImportError):
    """``taskclf report`` needs plotly, which the ``report`` extra installs."""

    def __init__(self) -> None:
        super().__init__(
            "The HTML report needs plotly; install it with: pip install 'taskclf[report]'"
        )


def registry_not_found(models_dir: Path) -> str | None:
    """The sentence for a registry directory that is not there, or ``None`` if it is.

    Every error about a missing registry (library exceptions, ``verify``'s
    ``registry-missing`` finding, the CLI) starts with this sentence, so it
    reads the same everywhere; callers add what to do in their own terms.

    Args:
        models_dir: The registry directory.

    Returns:
        ``Registry not found: <dir> does not exist`` (or ``... is not a directory``),
        or ``None`` when ``models_dir`` is a directory.
    """
    if models_dir.is_dir():
        return None
    if models_dir.exists() or models_dir.is_symlink():
        kind = "a file" if models_dir.is_file() else "not a directory"
        return f"Registry not found: {models_dir} is {kind}, not a registry directory"
    return f"Registry not found: {models_dir} does not exist"


def argument_phrase(argument: str) -> str:
    """How a library message names a caller's argument: ``the name= argument``.

    The CLI replaces this phrase with its own flag (``--name``), so library
    messages never mention command-line options.
    """
    return f"the {argument}= argument"


class ModelLoadError(RegistryError, ValueError):
    """A bundle's model cannot be loaded: no or an unknown ``model_format``, a
    missing or unusable artifact, a file its library rejects, or untrusted types.

    Attributes:
        path: The bundle directory.
        reason: What is wrong and what to do.
        untrusted: For a skops file, the types it holds that were not trusted.
    """

    def __init__(self, path: Path, reason: str, untrusted: Sequence[str] = ()) -> None:
        self.path = path
        self.reason = reason
        self.untrusted = list(untrusted)
        super().__init__(f"Cannot load the model of bundle {path.name} ({path}): {reason}")


class MissingExtraError(RegistryError, ImportError):
    """The library a model format needs is not installed.

    Attributes:
        model_format: The format being loaded (``lightgbm-text``...).
        extra: The taskclf extra that installs it (``lightgbm``, ``sklearn``).
    """

    def __init__(self, model_format: str, extra: str, missing: str) -> None:
        self.model_format = model_format
        self.extra = extra
        super().__init__(
            f"Loading {model_format} models needs {missing}, which is not installed; "
            f"run pip install 'taskclf[{extra}]'"
        )


class AliasNameError(RegistryError, ValueError):
    """A name cannot be an alias (pattern or reserved name); nothing was read or written.

    Attributes:
        name: The refused name.
        reason: What is wrong with it (also ``str(exc)``, as a sentence).
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{reason[:1].upper()}{reason[1:]}.")


class AliasError(RegistryError, ValueError):
    """An alias operation was refused (unknown alias, deleting ``active``, pinning nothing).

    Attributes:
        alias: The alias concerned.
        reason: One sentence saying why and what to do (also ``str(exc)``).
    """

    def __init__(self, alias: str, reason: str) -> None:
        self.alias = alias
        self.reason = reason
        super().__init__(reason)


class StorageError(RegistryError, OSError):
    """A remote registry's object store refused or failed a request.

    Attributes:
        url: The registry (``s3://bucket/prefix``).
        reason: One sentence: what failed and what to do.
    """

    def __init__(self, url: str, reason: str, err: int = errno.EIO) -> None:
        self.url = url
        self.reason = reason
        super().__init__(err, f"{url}: {reason}")

    def __str__(self) -> str:
        return f"Registry {self.url}: {self.reason}"


class RegistryConflictError(RegistryError, OSError):
    """Another writer changed a registry object between our read and our write.

    Raised by the compare-and-swap of a remote pointer (and a create-if-absent
    that finds the object already there); nothing of ours was committed.

    Attributes:
        url: The registry.
        key: The object that changed (``active.json``...).
    """

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        super().__init__(
            errno.EBUSY,
            f"Registry {url}: {key} was changed by another writer while this change was "
            "being made; nothing was written. Re-run the command to apply it on top.",
        )

    def __str__(self) -> str:
        return str(self.args[1])


class StorageExtraMissingError(RegistryError, ImportError):
    """An ``s3://`` registry needs obstore, which the ``s3`` extra installs."""

    def __init__(self) -> None:
        super().__init__(
            "An s3:// registry needs obstore; install it with: pip install 'taskclf[s3]'"
        )
