"""The registry lock survives its file being deleted or replaced while it is held.

Tmp cleaners delete old dot-files; a lock that lived only in the lock
file's inode let a second writer in as soon as the file was gone (it
created a new file, with a new inode, and locked that). Real processes
throughout: a holder, the deletion, and a second writer that must wait.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from taskclf.model_registry._fs import LOCK_FILE, registry_lock
from taskclf.model_registry.errors import RegistryLockTimeout

# Holds the lock until told to let go on stdin; says "held" once it holds it.
_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taskclf.model_registry._fs import registry_lock
    with registry_lock(Path(sys.argv[1])):
        print("held", flush=True)
        sys.stdin.readline()
    """
)

# Says "got" as soon as it holds the lock.
_WAITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taskclf.model_registry._fs import registry_lock
    with registry_lock(Path(sys.argv[1])):
        print("got", flush=True)
    """
)

# Long enough for an unblocked child to import the registry and take the lock on
# a loaded 2-core machine several times over; only bounds how long we look.
_STILL_BLOCKED_WINDOW_S = 3.0


def _start(script: str, root: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _line_within(process: subprocess.Popen[str], seconds: float) -> str | None:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline().strip() if ready else None


def _finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=120)  # reaps it and closes its pipes


def _delete(lock_path: Path) -> None:
    lock_path.unlink()


def _replace(lock_path: Path) -> None:
    # What an editor, a sync tool or `cp` over the file does: a new inode at the same path.
    fresh = lock_path.with_name(".fresh")
    fresh.write_text("")
    os.replace(fresh, lock_path)


@pytest.mark.parametrize("tamper", [_delete, _replace], ids=["deleted", "replaced"])
def test_a_second_writer_waits_while_the_lock_file_is_deleted_or_replaced(
    models_dir: Path, tamper: object
) -> None:
    holder = _start(_HOLDER, models_dir)
    waiter: subprocess.Popen[str] | None = None
    try:
        assert _line_within(holder, 120) == "held"
        assert callable(tamper)
        tamper(models_dir / LOCK_FILE)
        waiter = _start(_WAITER, models_dir)
        assert _line_within(waiter, _STILL_BLOCKED_WINDOW_S) is None, (
            "a second writer got the lock while the first still held it"
        )
        assert waiter.poll() is None
        assert holder.stdin is not None
        holder.stdin.write("release\n")
        holder.stdin.flush()
        assert holder.wait(timeout=120) == 0
        assert _line_within(waiter, 120) == "got"
        assert waiter.wait(timeout=120) == 0
    finally:
        for process in (holder, waiter):
            if process is not None:
                _finish(process)


def test_a_thread_times_out_while_another_process_holds_a_deleted_lock_file(
    models_dir: Path,
) -> None:
    holder = _start(_HOLDER, models_dir)
    try:
        assert _line_within(holder, 120) == "held"
        (models_dir / LOCK_FILE).unlink()
        with pytest.raises(RegistryLockTimeout), registry_lock(models_dir, timeout_s=0.5):
            pass
    finally:
        _finish(holder)


def test_the_lock_is_taken_again_after_its_file_was_deleted(models_dir: Path) -> None:
    with registry_lock(models_dir):
        (models_dir / LOCK_FILE).unlink()
    with registry_lock(models_dir, timeout_s=5):
        assert (models_dir / LOCK_FILE).exists()
