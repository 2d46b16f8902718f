"""Inference-side resolution (§11): which bundle to load, and hot reload when the pointer moves.

The registry never imports a model library: callers pass a ``loader``
that turns a bundle directory into whatever object they serve.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import ValidationError

from taskclf.model_registry import (
    ActivePointer,
    BundleIntegrityError,
    ModelBundle,
    RegistryConfig,
    RegistryError,
    SelectionPolicy,
    SelectionReport,
    resolve_active_model,
)
from taskclf.model_registry._fs import absolute
from taskclf.model_registry.aliases import DEFAULT_ALIAS
from taskclf.model_registry.pointer import pointed_model_id
from taskclf.model_registry.storage import open_storage
from taskclf.model_registry.storage.chain import pointer_key

T = TypeVar("T")

log = logging.getLogger("taskclf.infer")

# What identifies one write of active.json. The stat fields alone are not
# enough: os.replace frees the old inode and the next temporary file may reuse
# it, and file timestamps are only as fine as the kernel's coarse clock, so two
# rewrites a few milliseconds apart can share inode, times and size. The bytes
# always differ between two pointer writes (``selected_at`` has microseconds).
_Signature = tuple[object, bytes]


class ModelResolutionError(RegistryError):
    """No model can be resolved for inference.

    Attributes:
        message: What is wrong and what to do, ready to print.
        report: The selection report when a scan found nothing eligible, else ``None``.
    """

    def __init__(self, message: str, report: SelectionReport | None = None) -> None:
        self.message = message
        self.report = report
        super().__init__(message)


def resolve_model_dir(
    model_dir: str | None,
    models_dir: str | os.PathLike[str],
    policy: SelectionPolicy | None = None,
    *,
    config: RegistryConfig | None = None,
    alias: str = DEFAULT_ALIAS,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The bundle directory an inference process should load.

    An explicit ``model_dir`` (the ``--model-dir`` option) wins and is only
    checked for existence; an empty string counts as not given. Otherwise
    the registry's active model is resolved with
    :func:`~taskclf.model_registry.resolve_active_model` (which may repair
    the pointer).

    Args:
        model_dir: Explicit bundle directory, or ``None``.
        models_dir: The registry directory.
        policy: Selection policy for the fallback scan.
        config: The registry's labels and schemas (default: its
            ``registry.toml``, ``$TASKCLF_LABELS``, else taskclf's own).
        alias: Which pointer to follow (default ``"active"``; e.g. ``"canary"``).
        cache_dir: For an ``s3://`` registry, where the active bundle is
            downloaded (default: the platform's user cache, or
            ``$TASKCLF_CACHE_DIR``).

    Returns:
        The bundle directory (absolute). For an ``s3://`` registry, a local,
        verified copy of the active bundle (see
        :mod:`taskclf.model_registry.bundle_cache`).

    Raises:
        ModelResolutionError: The explicit directory does not exist, the
            registry directory is missing, or no bundle is eligible (the
            message then starts with ``No eligible model found`` and, after
            a line ``Excluded bundles (N):``, lists every excluded bundle as
            ``  - <model_id>: <reason>``, one per line).
        RegistryConfigError: The registry's configuration is malformed.
    """
    if model_dir:
        if not os.path.isdir(model_dir):
            raise ModelResolutionError(f"Explicit --model-dir does not exist: {model_dir}")
        return absolute(model_dir)
    storage = open_storage(models_dir)
    root = storage.root_path
    if storage.registry_problem() is not None:
        what = "is not a directory" if os.path.lexists(root) else "does not exist"
        raise ModelResolutionError(
            f"Models directory {what}: {root}. Promote a bundle into it "
            f"(taskclf model promote CANDIDATE_DIR --models-dir {root}) or pass --model-dir."
        )
    bundle, report = resolve_active_model(root, policy, config=config, alias=alias)
    if bundle is None:
        raise ModelResolutionError(_nothing_eligible_message(root, report), report)
    # Files a loader can open: the bundle itself locally, a verified download remotely.
    return storage.local_copy(bundle, cache_dir, verify=False).path


def _nothing_eligible_message(root: Path, report: SelectionReport | None) -> str:
    # "No eligible model found" and "Excluded bundles" open the messages of the
    # original registry, which callers' log filters and tests match on.
    excluded = report.excluded if report is not None else []
    if not excluded:
        return (
            f"No eligible model found: no model bundles in {root}. Promote one "
            f"(taskclf model promote CANDIDATE_DIR --models-dir {root}) or pass --model-dir."
        )
    lines = [
        f"No eligible model found in {root}: every bundle is excluded.",
        f"Excluded bundles ({len(excluded)}):",
    ]
    lines += [f"  - {record.model_id}: {record.reason}" for record in excluded]
    return "\n".join(lines)


class ActiveModelReloader(Generic[T]):
    """Keep an inference process on the registry's active model, without restarts.

    Nothing is read or loaded by the constructor. The first
    :meth:`check_reload` (whatever the interval) resolves the active model
    and loads it; later calls do something at most once per
    ``check_interval_s``: they compare ``active.json`` with the write that
    produced :attr:`current` and, on any rewrite (even within the same
    second, with the same size, or to the same bundle), resolve and load
    again. The new model replaces :attr:`current` only once the loader has
    returned. A sealed bundle is checked against its ``manifest.json``
    (hashed) before the loader runs; a mismatch, like a loader that raises,
    is logged, :attr:`current` is kept, and the pointer is not marked as
    seen, so the next check retries.

    Thread-safe: a check that finds another check running (for example a
    slow load started by :class:`~taskclf.infer.watch.ActiveModelWatcher`)
    returns ``None`` at once instead of blocking the caller.

    Attributes:
        models_dir: The registry directory (absolute).
        alias: The alias followed (``"active"`` unless given).
        pointer_path: That alias's pointer file, the one compared between checks.
        check_interval_s: Least time between two checks.
        current: The last model loaded successfully, or ``None``.
        current_bundle: The bundle :attr:`current` was loaded from.
    """

    def __init__(
        self,
        models_dir: str | os.PathLike[str],
        loader: Callable[[Path], T],
        check_interval_s: float = 60.0,
        *,
        policy: SelectionPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        config: RegistryConfig | None = None,
        alias: str = DEFAULT_ALIAS,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """Set up the reloader; no I/O happens here.

        Args:
            models_dir: The registry directory.
            loader: Turns a bundle directory into a model; may raise.
            check_interval_s: Least time between two checks (finite, >= 0).
            policy: Selection policy for resolution.
            clock: Monotonic clock in seconds (injectable for tests).
            config: The registry's labels and schemas; by default each check
                reads the registry's own (so an edit of ``registry.toml``
                applies without a restart, and a broken one is logged and
                retried like any failed resolution).
            alias: Which pointer to follow (default ``"active"``; e.g. ``"canary"``
                for a canary host); only that alias's pointer file is watched.
            cache_dir: For an ``s3://`` registry, where bundles are downloaded
                (see :func:`resolve_model_dir`); the loader gets the local copy.

        Raises:
            ValueError: ``check_interval_s`` is negative or not finite, or
                ``alias`` is not a usable alias name (``AliasNameError``).
        """
        if not math.isfinite(check_interval_s) or check_interval_s < 0:
            raise ValueError(f"check_interval_s must be finite and >= 0, got {check_interval_s}")
        self.alias = alias
        self._cache_dir = cache_dir
        self._storage = open_storage(models_dir)
        self.models_dir = self._storage.root_path
        self._pointer_key = pointer_key(alias)
        self.pointer_path = self.models_dir / self._pointer_key
        self.check_interval_s = check_interval_s
        self.current: T | None = None
        self.current_bundle: ModelBundle | None = None
        self._loader = loader
        self._policy = policy
        self._config = config
        self._clock = clock
        self._last_check: float | None = None
        self._loaded = False
        self._seen: _Signature | None = None
        self._busy = threading.Lock()

    def check_reload(self) -> T | None:
        """Reload if the pointer moved, at most once per interval.

        Returns:
            The newly loaded model when this call swapped it in, else
            ``None`` (too soon, nothing changed, nothing eligible, the load
            failed, or another check is running). :attr:`current` always
            holds the model to serve.
        """
        if not self._busy.acquire(blocking=False):
            return None
        try:
            now = self._clock()
            if self._last_check is not None and now - self._last_check < self.check_interval_s:
                return None
            self._last_check = now
            return self._reload_if_changed()
        finally:
            self._busy.release()

    def check_now(self) -> T | None:
        """Like :meth:`check_reload`, ignoring the interval (for event-driven callers).

        Waits for a check already running in another thread.
        """
        with self._busy:
            self._last_check = self._clock()
            return self._reload_if_changed()

    def _reload_if_changed(self) -> T | None:
        # Taken before resolving, so a rewrite racing with this check is never
        # marked as seen without being loaded.
        before = self._storage.stamped_read(self._pointer_key)
        if self._loaded and before == self._seen:
            return None
        try:
            bundle, _ = resolve_active_model(
                self.models_dir, self._policy, config=self._config, alias=self.alias
            )
        except Exception:
            # A serving loop must survive a bad moment of the registry (lock timeout...).
            log.exception("Resolving the active model in %s failed; will retry", self.models_dir)
            return None
        if bundle is None:
            log.warning(
                "No eligible model in %s; keeping the current model, will retry", self.models_dir
            )
            return None
        try:
            # Before the loader runs: a model file changed since sealing is never served.
            bundle = self._storage.local_copy(bundle, self._cache_dir, verify=True)
        except OSError:
            log.exception("Fetching %s failed; will retry on a later check", bundle.model_id)
            return None
        except BundleIntegrityError as exc:
            log.error(
                "%s Keeping %s, will retry on a later check",
                exc,
                self.current_bundle.model_id if self.current_bundle else "no model",
            )
            return None
        try:
            model = self._loader(bundle.path)
        except Exception:
            log.exception(
                "Loading model %s failed; keeping %s, will retry on a later check",
                bundle.path,
                self.current_bundle.model_id if self.current_bundle else "no model",
            )
            return None
        self.current = model
        self.current_bundle = bundle
        self._seen = self._settled_signature(before, bundle)
        self._loaded = True
        log.info("Loaded model %s from %s", bundle.model_id, bundle.path)
        return model

    def _settled_signature(
        self, before: _Signature | None, bundle: ModelBundle
    ) -> _Signature | None:
        """The pointer write to remember as loaded.

        Resolution may itself rewrite the pointer (auto-repair). If the
        pointer now on disk locates the bundle just loaded, remember that
        write, so our own repair does not trigger a second load; otherwise
        keep ``before`` and let the next check pick up the newer write.
        """
        after = self._storage.stamped_read(self._pointer_key)
        if after is None or after == before:
            return before
        try:
            pointer = ActivePointer.model_validate_json(after[-1])
        except ValidationError:
            return before
        located = pointed_model_id(self.models_dir, pointer, warn=False)
        return after if located == bundle.model_id else before
