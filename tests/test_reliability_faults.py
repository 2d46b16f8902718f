"""Real write faults at each step of a pointer change and of a promotion.

Every fault here is produced for real, in a child process, never by
patching ``os.write``:

- file-size limit (``EFBIG``): ``resource.setrlimit(RLIMIT_FSIZE)`` with
  ``SIGXFSZ`` ignored, sized so the history append is the write that fails
  (it cannot be sized to fail only the pointer step: the history line embeds
  the new pointer and is always at least as long as ``active.json``);
- disk full (``ENOSPC``): a tiny tmpfs filled to the last page, with the
  history's last page either roomy (the pointer step fails) or full (the
  history step fails); skipped where mounting is not allowed;
- permission (``EPERM``): root ignores ``chmod``, so the immutable and
  append-only inode attributes (``chattr +i`` / ``+a``) are used instead;
  skipped where ``chattr`` does not work (non-root, tmpfs, other filesystems);
- wrong file type (``EISDIR``): a directory where ``active.json`` belongs.

The one position no real fault reaches (the directory fsync after the
replace: tmpfs and ext4 do not fail it on demand) is covered by one test
that replaces ``_fs.fsync_dir`` with a function raising ``EIO``.

After each failure the three registry files must be byte-for-byte as
before and no temporary file may be left in the directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BundleFactory
from taskclf.model_registry import (
    _fs,
    find_best_model,
    list_bundles,
    read_active,
    read_active_history,
    write_active_atomic,
    write_index_cache,
)
from taskclf.model_registry.index import INDEX_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from taskclf.model_registry.verify import verify_registry
from taskclf.samples import write_bundle

REGISTRY_FILES = (ACTIVE_FILE, HISTORY_FILE, INDEX_FILE)

# The child imports everything and reads the bundles BEFORE lowering the limit, so
# only the registry write under test can hit it (not a .pyc or a log file).
CHILD = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    from pathlib import Path
    from taskclf.model_registry import list_bundles, promote_bundle, write_active_atomic

    args = json.loads(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    root = Path(args["models_dir"])
    bundles = {b.model_id: b for b in list_bundles(root)}
    if args["fsize"] is not None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (args["fsize"], args["fsize"]))
    try:
        if args["op"] == "pointer":
            write_active_atomic(root, bundles[args["bundle"]])
        else:
            promote_bundle(args["candidate"], root)
    except OSError as exc:
        out = {"error": type(exc).__name__, "errno": exc.errno, "message": str(exc),
               "notes": getattr(exc, "__notes__", [])}
    else:
        out = {"error": None}
    print(json.dumps(out))
    """
)


def run_child(
    models_dir: Path, op: str, fsize: int | None = None, **kwargs: str
) -> dict[str, object]:
    """Run one registry write in a fresh process; return how it ended."""
    args = {"models_dir": str(models_dir), "op": op, "fsize": fsize, **kwargs}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def snapshot(models_dir: Path) -> dict[str, bytes | None]:
    """The three registry files' bytes (``None`` when absent)."""
    state: dict[str, bytes | None] = {}
    for name in REGISTRY_FILES:
        path = models_dir / name
        state[name] = path.read_bytes() if path.is_file() else None
    return state


def listing(models_dir: Path) -> set[str]:
    return set(os.listdir(models_dir))


def assert_unchanged(
    models_dir: Path, before: dict[str, bytes | None], names_before: set[str]
) -> None:
    assert snapshot(models_dir) == before
    names = listing(models_dir)
    leftovers = [n for n in names if _fs.is_temp_name(n) or n.startswith(".staging-")]
    assert leftovers == []
    # The lock file may be created by the attempt; nothing else may appear or vanish.
    assert names - {_fs.LOCK_FILE} == names_before - {_fs.LOCK_FILE}


def seed_registry(models_dir: Path, make_bundle: BundleFactory) -> None:
    """Two bundles, the pointer on ``a`` (one history entry) and an index."""
    make_bundle("a", accuracy=0.70, seed=1)
    make_bundle("b", accuracy=0.90, seed=2)
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    write_active_atomic(models_dir, bundles["a"])
    write_index_cache(models_dir, find_best_model(models_dir))


# --- file-size limit (EFBIG) ----------------------------------------------------------


def test_file_size_limit_at_history_step_leaves_everything_as_it_was(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    seed_registry(models_dir, make_bundle)
    before, names = snapshot(models_dir), listing(models_dir)
    history_size = len(before[HISTORY_FILE] or b"")
    # Room for a few bytes of the new line (a partial write happens for real, then
    # EFBIG), far more than the pointer file needs: the history step is what fails.
    result = run_child(models_dir, "pointer", fsize=history_size + 16, bundle="b")
    assert result["errno"] == errno.EFBIG
    assert_unchanged(models_dir, before, names)
    assert read_active(models_dir) is not None


def test_file_size_limit_on_a_fresh_registry_leaves_no_history_file(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("a", accuracy=0.7)
    names = listing(models_dir)
    result = run_child(models_dir, "pointer", fsize=40, bundle="a")
    assert result["errno"] == errno.EFBIG
    # "As it was" is absent, not an empty file.
    assert_unchanged(models_dir, dict.fromkeys(REGISTRY_FILES), names)


def test_file_size_limit_during_promotion_copy_leaves_no_staging(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    seed_registry(models_dir, make_bundle)
    candidate = write_bundle(tmp_path / "cand", accuracy=0.95, seed=3)
    (candidate / "model.txt").write_bytes(b"x" * 200_000)
    before, names = snapshot(models_dir), listing(models_dir)
    result = run_child(models_dir, "promote", fsize=100_000, candidate=str(candidate))
    # EFBIG from the copy's write, raised as the OSError it is.
    assert result["error"] is not None
    assert "File too large" in str(result["message"])
    assert_unchanged(models_dir, before, names)
    assert not (models_dir / "cand").exists()


# --- a directory where active.json belongs (EISDIR at the pointer step) ---------------


def test_pointer_step_failure_undoes_the_history_append(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("a", accuracy=0.7)
    make_bundle("b", accuracy=0.9)
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    write_active_atomic(models_dir, bundles["a"])
    history = (models_dir / HISTORY_FILE).read_bytes()
    # rename(2) cannot replace a directory with a file: the pointer step fails for real.
    os.unlink(models_dir / ACTIVE_FILE)
    (models_dir / ACTIVE_FILE).mkdir()
    names = listing(models_dir)
    with pytest.raises(IsADirectoryError):
        write_active_atomic(models_dir, bundles["b"])
    # The history append succeeded, then the replace failed: the append is undone.
    assert (models_dir / HISTORY_FILE).read_bytes() == history
    assert (models_dir / ACTIVE_FILE).is_dir()
    assert listing(models_dir) == names


def test_pointer_step_failure_in_promotion_keeps_pointer_and_history(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """Promotion commits in two steps: the bundle (with the index), then the pointer.

    A failing pointer step leaves the bundle in the registry, described by a
    fresh ``index.json``, and the pointer and history byte-for-byte unchanged.
    """
    make_bundle("a", accuracy=0.7)
    (models_dir / ACTIVE_FILE).mkdir()
    candidate = write_bundle(tmp_path / "cand", accuracy=0.95, seed=3)
    result = run_child(models_dir, "promote", candidate=str(candidate))
    assert result["errno"] == errno.EISDIR
    assert (models_dir / ACTIVE_FILE).is_dir()
    assert not (models_dir / HISTORY_FILE).exists()
    assert (models_dir / "cand").is_dir()
    index = json.loads((models_dir / INDEX_FILE).read_bytes())
    assert index["best_model_id"] == "cand"
    assert not [n for n in listing(models_dir) if _fs.is_temp_name(n) or n.startswith(".staging")]


# --- permission faults that stop root: immutable / append-only inodes -------------------


def _chattr(path: Path, flags: str) -> bool:
    if shutil.which("chattr") is None:
        return False
    proc = subprocess.run(["chattr", flags, str(path)], capture_output=True, check=False)
    return proc.returncode == 0


@contextlib.contextmanager
def attributes(*changes: tuple[Path, str]) -> Iterator[None]:
    applied: list[tuple[Path, str]] = []
    try:
        for path, flags in changes:
            if not _chattr(path, flags):
                pytest.skip(f"chattr {flags} is not available here")
            applied.append((path, flags))
        yield
    finally:
        for path, flags in reversed(applied):
            _chattr(path, "-" + flags[1:])


def test_permission_denied_at_pointer_step_undoes_history(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    seed_registry(models_dir, make_bundle)
    (models_dir / _fs.LOCK_FILE).touch()
    before, names = snapshot(models_dir), listing(models_dir)
    # +i on the directory: existing files stay writable (the history append
    # succeeds), but no temporary file can be created for the pointer.
    with attributes((models_dir, "+i")):
        result = run_child(models_dir, "pointer", bundle="b")
    assert result["errno"] == errno.EPERM
    assert_unchanged(models_dir, before, names)


def test_permission_denied_at_history_step_leaves_everything(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    seed_registry(models_dir, make_bundle)
    before, names = snapshot(models_dir), listing(models_dir)
    with attributes((models_dir / HISTORY_FILE, "+i")):
        result = run_child(models_dir, "pointer", bundle="b")
    assert result["errno"] == errno.EPERM
    assert_unchanged(models_dir, before, names)


def test_undo_that_cannot_truncate_leaves_the_state_verify_reports(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    """Pointer step fails AND the history cannot be cut back (append-only inode).

    This is the only way, short of a crash, to get a history entry whose ``new``
    is not the pointer; the caller still gets the pointer error, with a note.
    """
    seed_registry(models_dir, make_bundle)
    (models_dir / _fs.LOCK_FILE).touch()
    before = snapshot(models_dir)
    with attributes((models_dir / HISTORY_FILE, "+a"), (models_dir, "+i")):
        result = run_child(models_dir, "pointer", bundle="b")
    assert result["errno"] == errno.EPERM
    notes = result["notes"]
    assert isinstance(notes, list)
    assert any("could not be undone" in str(n) for n in notes)
    assert snapshot(models_dir)[ACTIVE_FILE] == before[ACTIVE_FILE]
    entries = read_active_history(models_dir)
    pointer = read_active(models_dir)
    assert pointer is not None
    assert entries[-1].new.model_id == "b" != pointer.model_id
    _assert_verify_reports_pointer_mismatch(models_dir)


def _assert_verify_reports_pointer_mismatch(models_dir: Path) -> None:
    assert "history-pointer-mismatch" in verify_codes(models_dir)


def verify_codes(models_dir: Path) -> list[str]:
    report = verify_registry(models_dir)
    codes = [f.code for f in report.findings if f.severity == "error"]
    assert report.healthy is (not codes)
    return codes


# --- disk full (ENOSPC) on a real tiny tmpfs --------------------------------------------


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN)")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


PAGE = 4096


def _fill(directory: Path) -> None:
    """Consume every free page of the filesystem holding ``directory``."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * PAGE)
    finally:
        os.close(fd)
    probe = directory / "probe"
    with pytest.raises(OSError) as info:
        probe.write_bytes(b"x")
    assert info.value.errno == errno.ENOSPC
    probe.unlink()


def _registry_on(mount_point: Path) -> Path:
    root = mount_point / "models"
    root.mkdir()
    write_bundle(root / "a", accuracy=0.7, seed=1)
    write_bundle(root / "b", accuracy=0.9, seed=2)
    bundles = {b.model_id: b for b in list_bundles(root)}
    write_active_atomic(root, bundles["a"])
    write_index_cache(root, find_best_model(root))
    (root / _fs.LOCK_FILE).touch()
    return root


def test_disk_full_at_pointer_step_undoes_history(tiny_fs: Path) -> None:
    root = _registry_on(tiny_fs)
    # The history's last page has room for the new line, so only the pointer's
    # new temporary file needs a page the full disk does not have.
    assert os.path.getsize(root / HISTORY_FILE) % PAGE < PAGE // 2
    _fill(tiny_fs)
    before, names = snapshot(root), listing(root)
    result = run_child(root, "pointer", bundle="b")
    assert result["errno"] == errno.ENOSPC
    assert_unchanged(root, before, names)


def test_disk_full_at_history_step_leaves_everything(tiny_fs: Path) -> None:
    root = _registry_on(tiny_fs)
    history = root / HISTORY_FILE
    # Pad with blank lines (skipped by readers) to one byte short of a page.
    size = os.path.getsize(history)
    with open(history, "ab") as out:
        out.write(b"\n" * (PAGE - 1 - size))
    _fill(tiny_fs)
    before, names = snapshot(root), listing(root)
    result = run_child(root, "pointer", bundle="b")
    assert result["errno"] == errno.ENOSPC
    assert_unchanged(root, before, names)


def test_disk_full_during_promotion_leaves_no_staging(tiny_fs: Path, tmp_path: Path) -> None:
    root = _registry_on(tiny_fs)
    candidate = write_bundle(tmp_path / "cand", accuracy=0.95, seed=3)
    (candidate / "model.txt").write_bytes(b"x" * (3 * PAGE))
    _fill(tiny_fs)
    before, names = snapshot(root), listing(root)
    result = run_child(root, "promote", candidate=str(candidate))
    assert result["error"] is not None
    assert "No space left on device" in str(result["message"])
    assert_unchanged(root, before, names)


# --- the one injected fault: directory fsync after the replace --------------------------


def test_dir_fsync_failure_after_replace_counts_as_committed(
    models_dir: Path,
    make_bundle: BundleFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Once ``os.replace`` ran, every reader sees the new pointer: it is committed.

    Raising then would make the caller undo the history while the pointer stays
    new (the files would disagree). So the failure is logged and not raised.
    """
    make_bundle("a", accuracy=0.7)
    make_bundle("b", accuracy=0.9)
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    write_active_atomic(models_dir, bundles["a"])

    def failing_fsync_dir(directory: Path) -> None:
        raise OSError(errno.EIO, "injected directory fsync failure", str(directory))

    monkeypatch.setattr(_fs, "fsync_dir", failing_fsync_dir)
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        pointer = write_active_atomic(models_dir, bundles["b"])
    assert read_active(models_dir) == pointer
    assert read_active_history(models_dir)[-1].new == pointer
    assert "may not survive a power loss" in caplog.text


# --- hard crashes: a real SIGKILL at a chosen point, then verify ------------------------

# The child kills itself (SIGKILL: no cleanup, no finally) at the moment the
# profiler sees the chosen call start; the registry is left exactly as a crash
# at that point would leave it.
CRASH_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from taskclf.model_registry import list_bundles, write_active_atomic

    root, bundle_id, crash_at = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    bundle = next(b for b in list_bundles(root) if b.model_id == bundle_id)

    # Only taskclf's own functions and the os module's calls are crash points: a library
    # function of the same name (inspect's Signature.replace, run while pydantic builds a
    # deferred schema, or anything a lazy import runs) is not.
    def profiler(frame, event, arg):
        if event == "call":
            ours = frame.f_globals.get("__name__", "").startswith("taskclf.")
            hit = ours and frame.f_code.co_name == crash_at
        else:
            hit = event == "c_call" and getattr(arg, "__module__", None) == "posix"
            hit = hit and arg.__name__ == crash_at
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.setprofile(profiler)
    write_active_atomic(root, bundle)
    """
)


CLI_MAIN = "from taskclf.cli.main import main; main()"


def crash_writer(models_dir: Path, bundle_id: str, crash_at: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_CHILD, str(models_dir), bundle_id, crash_at],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == -9, proc.stderr


def test_sigkill_between_history_and_pointer_is_reported_by_verify(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    seed_registry(models_dir, make_bundle)
    assert verify_codes(models_dir) == []
    pointer_before = (models_dir / ACTIVE_FILE).read_bytes()
    crash_writer(models_dir, "b", "atomic_write")
    # History appended, pointer untouched: the documented crash state.
    assert (models_dir / ACTIVE_FILE).read_bytes() == pointer_before
    assert read_active_history(models_dir)[-1].new.model_id == "b"
    assert verify_codes(models_dir) == ["history-pointer-mismatch"]
    # The operator-facing command says the same, and fails (for CI / cron checks).
    cli = subprocess.run(
        [sys.executable, "-c", CLI_MAIN, "model", "verify", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "TASKCLF_MODELS_DIR": str(models_dir)},
    )
    assert cli.returncode == 1, cli.stderr
    findings = json.loads(cli.stdout)["findings"]
    assert [f["code"] for f in findings if f["severity"] == "error"] == ["history-pointer-mismatch"]
    # The next write continues from the pointer that stayed active; verify then
    # only warns about the entry that never took effect.
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    write_active_atomic(models_dir, bundles["b"])
    assert verify_codes(models_dir) == []


def test_sigkill_before_replace_leaves_a_temp_file_verify_reports(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    seed_registry(models_dir, make_bundle)
    pointer_before = (models_dir / ACTIVE_FILE).read_bytes()
    crash_writer(models_dir, "b", "replace")
    assert (models_dir / ACTIVE_FILE).read_bytes() == pointer_before
    temps = [n for n in listing(models_dir) if _fs.is_temp_name(n)]
    assert len(temps) == 1
    assert sorted(verify_codes(models_dir)) == ["history-pointer-mismatch", "leftover-temp-file"]
    # Readers are unaffected by the leftover.
    pointer = read_active(models_dir)
    assert pointer is not None
    assert pointer.model_id == "a"


def test_sigkill_after_replace_is_a_complete_change(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    seed_registry(models_dir, make_bundle)
    crash_writer(models_dir, "b", "fsync_dir")
    pointer = read_active(models_dir)
    assert pointer is not None
    assert pointer.model_id == "b"
    assert read_active_history(models_dir)[-1].new == pointer
    assert verify_codes(models_dir) == []


def test_torn_history_line_is_reported_and_skipped(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    seed_registry(models_dir, make_bundle)
    history = models_dir / HISTORY_FILE
    whole = history.read_bytes()
    # What a power loss in the middle of one append can leave: a line cut short.
    with open(history, "ab") as out:
        out.write(whole[: len(whole) // 2])
    assert "history-line-invalid" in verify_codes(models_dir)
    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        assert len(read_active_history(models_dir)) == 1
    assert "Skipping unparseable line 2" in caplog.text
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    write_active_atomic(models_dir, bundles["b"])
    entries = read_active_history(models_dir)
    # The new entry starts on its own line despite the torn one before it.
    assert [e.new.model_id for e in entries] == ["a", "b"]
    assert history.read_bytes().startswith(whole)


# --- durability order, observed at the system-call level --------------------------------

STRACE_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taskclf.model_registry import list_bundles, write_active_atomic

    root = Path(sys.argv[1])
    bundle = next(b for b in list_bundles(root) if b.model_id == "b")
    write_active_atomic(root, bundle)
    """
)


def test_durability_order_of_a_pointer_change(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """History line fsynced before the pointer is written; temp fsynced before the
    rename; directory fsynced after it. Observed with strace (skipped without it)."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed")
    seed_registry(models_dir, make_bundle)
    trace = tmp_path / "trace.txt"
    proc = subprocess.run(
        [
            "strace",
            "-f",
            "-e",
            "trace=openat,write,fsync,fdatasync,rename,renameat,renameat2,close",
            "-o",
            str(trace),
            sys.executable,
            "-c",
            STRACE_CHILD,
            str(models_dir),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr

    events: list[str] = []  # "open <path>", "write <path>", "fsync <path>", "rename <dst>"
    fds: dict[str, str] = {}
    root = str(models_dir)
    for line in trace.read_text().splitlines():
        # strace -f pads the pid column ("1106  openat(...)" below pid 10000).
        call = line.split(maxsplit=1)[1] if " " in line else line
        if call.startswith("openat(") and f'"{root}' in call and "= " in call:
            path = call.split('"')[1]
            fd = call.rsplit("= ", 1)[1].split()[0]
            if fd.isdigit():
                fds[fd] = path
                events.append(f"open {path}")
        elif call.startswith(("write(", "fsync(", "fdatasync(", "close(")):
            fd = call.split("(", 1)[1].split(",")[0].split(")")[0]
            if fd in fds:
                events.append(f"{call.split('(')[0]} {fds[fd]}")
                if call.startswith("close("):
                    del fds[fd]
        elif call.startswith("rename") and f'"{root}' in call:
            destination = call.split('"')[-2]
            events.append(f"rename {destination}")

    history = str(models_dir / HISTORY_FILE)
    pointer = str(models_dir / ACTIVE_FILE)
    temp = next(e.split(" ", 1)[1] for e in events if e.startswith("open") and ".tmp" in e)

    def at(event: str) -> int:
        return events.index(event)

    assert at(f"write {history}") < at(f"fsync {history}") < at(f"open {temp}")
    assert at(f"write {temp}") < at(f"fsync {temp}") < at(f"rename {pointer}")
    assert at(f"rename {pointer}") < at(f"fsync {root}")
