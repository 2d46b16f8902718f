"""Event-driven hot reload: react to ``active.json`` changes at once (optional ``watch`` extra).

:class:`ActiveModelWatcher` runs a background thread that waits on file
system events (``watchfiles``: inotify, FSEvents, ...) for the registry
directory and asks an :class:`~taskclf.infer.resolve.ActiveModelReloader`
to check as soon as ``active.json`` is replaced. Events can be missed
(the watch starts a moment after the thread, queues can overflow), so the
thread also checks every ``fallback_interval_s`` on its own.

``watchfiles`` is imported only when a watcher starts, so this module is
importable without it; install ``taskclf[watch]`` to use it.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from taskclf.infer.resolve import ActiveModelReloader

T = TypeVar("T")

log = logging.getLogger("taskclf.infer")

_WatchFunction = Callable[..., Iterator[set[tuple[Any, str]]]]


def _import_watch() -> _WatchFunction:
    try:
        from watchfiles import watch
    except ImportError as exc:
        raise ImportError(
            "ActiveModelWatcher needs the optional 'watchfiles' package; "
            "install it with: pip install 'taskclf[watch]'"
        ) from exc
    return watch


def _pointer_filter(pointer: str) -> Callable[[object, str], bool]:
    """A watch filter for one pointer file (``active.json`` or ``.aliases/NAME.json``)."""
    name = os.path.basename(pointer)

    def is_pointer_change(_change: object, path: str) -> bool:
        # os.replace shows up as a rename onto the pointer; temp files are ignored.
        return os.path.basename(path) == name

    return is_pointer_change


class ActiveModelWatcher(Generic[T]):
    """Reload the active model as soon as the pointer moves, on a background thread.

    Use as a context manager, or call :meth:`start` and :meth:`stop`::

        reloader = ActiveModelReloader(models_dir, load_model)
        with ActiveModelWatcher(reloader, on_reload=lambda m: log.info("now serving %s", m)):
            serve(lambda: reloader.current)

    The thread checks once when it starts, then on every change to
    ``active.json`` and every ``fallback_interval_s``. Checks go through
    :meth:`ActiveModelReloader.check_now`, so the same rules hold: swap only
    after a successful load, keep the current model and retry when a load fails.

    Attributes:
        reloader: The reloader whose :attr:`~ActiveModelReloader.current` is kept fresh.
    """

    def __init__(
        self,
        reloader: ActiveModelReloader[T],
        *,
        on_reload: Callable[[T], None] | None = None,
        fallback_interval_s: float = 30.0,
    ) -> None:
        """Prepare the watcher; nothing runs until :meth:`start`.

        Args:
            reloader: Does the resolving and loading.
            on_reload: Called on the watcher thread with each newly loaded model.
            fallback_interval_s: Longest time between two checks when no event
                arrives (> 0, finite).

        Raises:
            ValueError: ``fallback_interval_s`` is not positive and finite, or the
                reloader's registry is on object storage (no file events there).
        """
        from taskclf.model_registry.storage import is_remote

        if is_remote(reloader.models_dir):
            raise ValueError(
                f"{reloader.models_dir} is on object storage, which sends no file events; "
                "poll it with ActiveModelReloader.check_reload (one small GET per check)"
            )
        if not math.isfinite(fallback_interval_s) or fallback_interval_s <= 0:
            raise ValueError(
                f"fallback_interval_s must be finite and > 0, got {fallback_interval_s}"
            )
        self.reloader = reloader
        self._on_reload = on_reload
        self._fallback_s = fallback_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> ActiveModelWatcher[T]:
        """Start the background thread.

        Returns:
            ``self``, for chaining.

        Raises:
            ImportError: ``watchfiles`` is not installed (``pip install 'taskclf[watch]'``).
            RuntimeError: The watcher is already running.
        """
        watch = _import_watch()
        if self.running:
            raise RuntimeError("ActiveModelWatcher is already running")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(watch,), name="taskclf-active-model-watcher", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout_s: float | None = 30.0) -> None:
        """Stop the thread and wait for it (a load in progress finishes first).

        Args:
            timeout_s: Longest wait for the thread, ``None`` for no limit.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
            if thread.is_alive():
                log.warning("The active-model watcher did not stop within %ss", timeout_s)
                return
        self._thread = None

    def __enter__(self) -> ActiveModelWatcher[T]:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, watch: _WatchFunction) -> None:
        # Catch up with anything that changed before the watch was in place.
        self._check()
        while not self._stop.is_set():
            try:
                # The directory of the reloader's alias: the registry for ``active``,
                # ``.aliases`` for the others (retried until it exists).
                for _changes in watch(
                    self.reloader.pointer_path.parent,
                    watch_filter=_pointer_filter(str(self.reloader.pointer_path)),
                    stop_event=self._stop,
                    rust_timeout=int(self._fallback_s * 1000),
                    yield_on_timeout=True,
                    recursive=False,
                    raise_interrupt=False,
                ):
                    if self._stop.is_set():
                        break
                    # An empty set is the fallback timeout: check anyway.
                    self._check()
            except Exception as exc:
                # E.g. the registry directory does not exist yet: retry later.
                log.warning("Watching %s failed (%s); retrying", self.reloader.models_dir, exc)
                self._stop.wait(self._fallback_s)
                self._check()

    def _check(self) -> None:
        if self._stop.is_set():
            return
        model = self.reloader.check_now()
        if model is not None and self._on_reload is not None:
            try:
                self._on_reload(model)
            except Exception:
                log.exception("on_reload callback failed")
