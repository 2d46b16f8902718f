"""Promotion, the overthrow flow (§10): a new bundle enters, and may take the pointer.

The candidate is checked first, before anything is written, so a refused
candidate leaves the registry exactly as it was: it must hold only regular
files and directories (no symlink, FIFO, device or socket anywhere below
it), within a size limit. It is then copied (never following a link, and
counting bytes against the limit as they are copied) or moved into a
dot-prefixed staging directory inside the registry, which scans ignore,
checked again there (the source may have changed while we copied), and
renamed into place in one step, so no reader ever sees a half-written
bundle. The final name check, the rename, the ranking, the index and the
pointer move all happen under the registry lock, so concurrent promotions
serialise cleanly and the history stays a chain.

Aliases (issue 14): the overthrow runs against one alias (default
``active``) and never touches any other; ``activate=False`` registers the
bundle and leaves every pointer alone; a pinned alias is never moved.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
from pathlib import Path

from taskclf.model_registry._fs import (
    absolute,
    fsync_tree,
    write_all,
)
from taskclf.model_registry.aliases import DEFAULT_ALIAS, check_alias_name
from taskclf.model_registry.config import CONFIG_FILE, RegistryConfig, load_registry_config
from taskclf.model_registry.errors import (
    BundleIntegrityError,
    PromotionError,
    RegistryConflictError,
    argument_phrase,
)
from taskclf.model_registry.hysteresis import should_switch_active
from taskclf.model_registry.index import INDEX_FILE, write_index_cache
from taskclf.model_registry.locations import shown_path
from taskclf.model_registry.manifest import intact_bundles, require_sealed_match
from taskclf.model_registry.models import (
    ActiveHistoryEntry,
    ActivePointer,
    ModelBundle,
    PromotionResult,
    SelectionPolicy,
    SelectionReport,
)
from taskclf.model_registry.pointer import (
    ACTIVE_FILE,
    HISTORY_FILE,
    pointer_change,
)
from taskclf.model_registry.resolution import find_best_model, follow_pointer
from taskclf.model_registry.scan import is_bundle_name, read_bundle
from taskclf.model_registry.selection import declared_incompatibility, explain_incompatibility
from taskclf.model_registry.storage import Storage, open_storage
from taskclf.model_registry.storage.base import PointerRead

STAGING_PREFIX = ".staging-"
PROMOTION_NOTE = "promotion"

# Names a bundle may not take: a directory there would shadow a registry file.
_RESERVED_NAMES = frozenset({ACTIVE_FILE, HISTORY_FILE, INDEX_FILE, CONFIG_FILE})
_MAX_NAME_BYTES = 255

DEFAULT_MAX_BUNDLE_BYTES = 10 * 1024**3
"""Largest total size (10 GiB) of a candidate's files that ``promote_bundle`` accepts by default."""

_COPY_CHUNK = 1 << 20
# The copy recurses and holds one descriptor per level: far below Python's recursion
# limit and any descriptor limit, far above any real bundle's layout.
MAX_CANDIDATE_DEPTH = 64
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# Never O_NOFOLLOW on the candidate itself: the path the user names may be a link.
_OPEN_CANDIDATE = os.O_RDONLY | _DIRECTORY | _CLOEXEC
_OPEN_SUBDIR = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
# O_NONBLOCK and O_NOCTTY: whatever replaced a checked file must not block us or become our tty.
_OPEN_FILE = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
_CREATE_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
# copy_file_range cannot serve this pair of files: fall back to read and write.
_NO_COPY_RANGE = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}
)

log = logging.getLogger("taskclf.model_registry")


def promote_bundle(
    candidate_dir: str | os.PathLike[str],
    models_dir: str | os.PathLike[str],
    *,
    policy: SelectionPolicy | None = None,
    move: bool = False,
    name: str | None = None,
    max_bytes: int | None = None,
    alias: str = DEFAULT_ALIAS,
    activate: bool = True,
    message: str | None = None,
    actor: str | None = None,
    config: RegistryConfig | None = None,
) -> PromotionResult:
    """Add a bundle to the registry and move the pointer to it if it is now the best.

    The pointer moves only when the best bundle after the promotion differs
    from the one the pointer locates and :func:`should_switch_active`
    allows it. A pointer that does not locate a valid, compatible bundle
    gets no hysteresis protection: it is replaced by the best bundle.
    ``index.json`` is rewritten on every successful promotion; since it is
    only a cache, failing to write it is logged, not raised.

    Args:
        candidate_dir: The bundle to promote (left in place unless ``move``).
        models_dir: The registry; created if missing.
        policy: Selection policy, including hysteresis (``min_improvement``).
        move: Move the candidate instead of copying it. Across filesystems
            it is copied, and the source is deleted once the bundle is in place.
        name: Bundle name in the registry (default: the candidate's directory name).
        max_bytes: Largest total size of the candidate's regular files, by
            apparent size (a sparse file counts in full); default
            :data:`DEFAULT_MAX_BUNDLE_BYTES` (10 GiB). Checked before anything
            is written and again while copying.
        alias: The pointer the overthrow runs against (default ``"active"``);
            no other alias is touched. A pinned alias is never moved.
        activate: ``False`` registers the bundle (and refreshes the index)
            but leaves every pointer alone.
        message: Why, recorded in the history entry if the pointer moves.
        actor: Who, recorded in the history entry (default ``user@host``).
        config: The registry's labels and schemas, which the candidate must
            match (default: read from ``models_dir``).

    Returns:
        What happened: the promoted bundle, the new ranking, the pointer
        before and after, and whether it moved.

    A sealed candidate must match its ``manifest.json``, before anything is
    written and again as staged (the copy is what lands).

    Raises:
        PromotionError: (a ``ValueError``) the candidate is missing, invalid,
            incompatible, does not match its manifest, a symlink given with
            ``move``, holds anything but regular files and directories (a
            symlink, even one pointing inside it, a FIFO, device or socket) or
            more than ``max_bytes``, changed that way while it was copied, or
            its name is taken, reserved or unusable. The registry is left
            unchanged (a moved candidate is put back).
        BundleIntegrityError: (a ``ValueError``) the bundle chosen to take the
            pointer changed between its hash and the write (sizes are checked
            again under the lock); the promoted bundle is in the registry, the
            pointer did not move. A sealed bundle that already no longer
            matches its manifest is simply passed over (logged) when choosing
            who takes the pointer.
        RegistryConfigError: The registry's configuration is malformed.
        OSError: Copying or a registry write failed. No staging directory is
            left behind; a moved candidate is put back. If the pointer write
            fails, the bundle is already in the registry (the error says which
            file failed) and the pointer and history are unchanged.
    """
    policy = policy if policy is not None else SelectionPolicy()
    check_alias_name(alias)
    candidate = absolute(candidate_dir)
    storage = open_storage(models_dir)
    root = storage.root_path
    target_name = name if name is not None else candidate.name
    limit = DEFAULT_MAX_BUNDLE_BYTES if max_bytes is None else max_bytes
    config = config if config is not None else load_registry_config(root)
    _check_candidate(candidate, target_name, storage, move, limit, config)

    created_root = storage.registry_problem() is not None
    staging = storage.staging_area()
    staged = staging / target_name
    moved_source = False
    landed = False
    keep_staging = False
    try:
        moved_source = _stage(candidate, staged, target_name, move, limit)
        if moved_source:
            # Checked again where only we can reach it by its path: it may have changed
            # since the first check. A refusal puts the candidate back, below.
            check_candidate_files(staged, target_name, candidate, limit)
        # Moved files too: whoever wrote them may never have fsynced them, and after
        # the final rename a power loss must not leave a visible bundle of empty files.
        fsync_tree(staged)
        bundle = _check_staged(staged, target_name, candidate, config)
        try:
            storage.publish(staged, target_name)
        except RegistryConflictError:
            raise _name_taken(target_name, candidate, root) from None
        landed = True
        bundle = bundle.model_copy(update={"path": root / target_name})
        result = _activate_if_best(
            storage,
            bundle,
            policy,
            config,
            alias=alias,
            activate=activate,
            message=message,
            actor=actor,
        )
    except BaseException:
        if moved_source and not landed:
            keep_staging = not _restore_source(staged, candidate)
        raise
    finally:
        if not keep_staging:
            shutil.rmtree(staging, ignore_errors=True)
        if created_root and not landed:
            with contextlib.suppress(OSError):
                os.rmdir(root)  # only succeeds if we left nothing in it
        if move and landed and not moved_source:
            _remove_source(candidate)
    return result


def _check_candidate(
    candidate: Path,
    target_name: str,
    storage: Storage,
    move: bool,
    max_bytes: int,
    config: RegistryConfig,
) -> None:
    """Refuse a candidate before anything is written."""
    root = storage.root_path
    problem = _name_problem(target_name)
    if problem is not None:
        raise PromotionError(target_name, candidate, problem)
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise PromotionError(
            target_name,
            candidate,
            f"{argument_phrase('max_bytes')} must be a whole number >= 0 (got {max_bytes!r})",
        )
    if root == candidate or root.is_relative_to(candidate):
        raise PromotionError(target_name, candidate, f"the registry {root} is inside the candidate")
    if move and os.path.islink(candidate):
        raise PromotionError(
            target_name,
            candidate,
            "candidate is a symlink; promote it without --move (its target is copied)",
        )
    if move and candidate.is_relative_to(root):
        raise PromotionError(target_name, candidate, f"candidate is already inside {root}")
    if not os.path.lexists(candidate):
        raise PromotionError(target_name, candidate, "candidate directory does not exist")
    if not candidate.is_dir():
        raise PromotionError(target_name, candidate, "candidate is not a directory")
    # Before the bundle is read: reading follows links, and metadata.json may be one.
    check_candidate_files(candidate, target_name, candidate, max_bytes)
    bundle = read_bundle(candidate)
    if bundle is None:
        raise PromotionError(target_name, candidate, "candidate directory does not exist")
    problem = _incompatibility(bundle, config)
    if problem is not None:
        raise PromotionError(target_name, candidate, problem)
    _check_integrity(bundle, target_name, candidate, "")
    if storage.name_taken(target_name):
        raise _name_taken(target_name, candidate, root)


def _name_problem(target_name: str) -> str | None:
    if not is_bundle_name(target_name):
        return f"'{target_name}' is not a usable bundle name (empty, dot-prefixed or a path)"
    if target_name in _RESERVED_NAMES:
        return (
            f"'{target_name}' is reserved for a registry file; pass another name with "
            f"{argument_phrase('name')}"
        )
    try:
        target_name.encode("utf-8")
    except UnicodeEncodeError:
        # Scans ignore such a directory (no registry JSON file could name it).
        return f"bundle name is not valid UTF-8; pass a UTF-8 name with {argument_phrase('name')}"
    if len(target_name.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES:
        return f"bundle name is longer than {_MAX_NAME_BYTES} bytes"
    return None


def _name_taken(target_name: str, candidate: Path, root: Path) -> PromotionError:
    return PromotionError(
        target_name,
        candidate,
        f"a bundle named '{target_name}' already exists in {shown_path(root)}; pass another "
        "name with "
        f"{argument_phrase('name')}",
    )


def _stage(candidate: Path, staged: Path, target_name: str, move: bool, max_bytes: int) -> bool:
    """Put the candidate's files at ``staged``; True when the candidate itself was renamed there.

    A renamed candidate is not checked here: the caller checks it, and puts it back if refused.
    """
    if move:
        try:
            os.rename(candidate, staged)
        except OSError as exc:
            # Another filesystem: copy now, delete the source once the bundle is
            # in place. Any other failure (permissions...) would doom the delete
            # too, so it is raised instead of half-moving the candidate.
            if exc.errno != errno.EXDEV:
                raise
        else:
            return True
    copy_candidate_files(candidate, staged, target_name, max_bytes)
    return False


def check_candidate_files(tree: Path, target_name: str, candidate: Path, max_bytes: int) -> int:
    """Refuse a tree holding anything but regular files and directories, or too many bytes.

    Links are never followed below ``tree`` (``tree`` itself may be one). Every
    symlink is refused, even one pointing inside the candidate: a bundle is
    copied as plain files, and "inside" cannot be checked safely against a
    tree that may change.

    Args:
        tree: The directory to check (the candidate, or a moved candidate in staging).
        target_name: The bundle's name in the registry, for the error.
        candidate: The candidate's path, for the error.
        max_bytes: Largest accepted total of the regular files' apparent sizes.

    Returns:
        That total, in bytes.

    Raises:
        PromotionError: What is wrong, naming the offending path inside the candidate
            (also: directories nested more than ``MAX_CANDIDATE_DEPTH`` deep).
    """
    total = 0
    pending = [("", 0)]
    while pending:
        relative_dir, depth = pending.pop()
        with os.scandir(os.path.join(tree, relative_dir)) as entries:
            for entry in entries:
                relative = os.path.join(relative_dir, entry.name)
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    if depth + 1 > MAX_CANDIDATE_DEPTH:
                        raise PromotionError(
                            target_name,
                            candidate,
                            f"{relative} is nested more than {MAX_CANDIDATE_DEPTH} directories "
                            "deep; flatten the bundle",
                        )
                    pending.append((relative, depth + 1))
                elif stat.S_ISREG(info.st_mode):
                    total += info.st_size
                else:
                    raise _not_plain(target_name, candidate, relative, info, tree)
    if total > max_bytes:
        raise PromotionError(
            target_name,
            candidate,
            f"its files hold {total} bytes{_in_units(total)}, more than the "
            f"{max_bytes}-byte limit{_in_units(max_bytes)}; raise the limit with "
            f"{argument_phrase('max_bytes')} if the bundle really is this large",
        )
    return total


def copy_candidate_files(candidate: Path, staged: Path, target_name: str, max_bytes: int) -> None:
    """Copy the candidate's regular files and directories to ``staged`` (which must not exist).

    Every entry is opened relative to its already opened parent with
    ``O_NOFOLLOW`` and checked with ``fstat`` on the opened descriptor, so
    a file or directory swapped for a link (or a FIFO, a device) after
    :func:`check_candidate_files` is refused, never followed. Bytes are
    counted as they are copied, so a file that grows meanwhile cannot take
    the total past ``max_bytes``. Modes and modification times are kept.

    Raises:
        PromotionError: The candidate changed into something refused while it was copied.
        OSError: Reading or writing failed (disk full...); ``staged`` may be partial.
    """
    budget = _Budget(max_bytes, target_name, candidate)
    top = os.open(candidate, _OPEN_CANDIDATE)
    try:
        _copy_directory(top, staged, "", budget)
    finally:
        os.close(top)


class _Budget:
    """Bytes still allowed for one copy; refuses (naming the file) when a copy would exceed it."""

    def __init__(self, max_bytes: int, target_name: str, candidate: Path) -> None:
        self.remaining = max_bytes
        self.max_bytes = max_bytes
        self.target_name = target_name
        self.candidate = candidate

    def spend(self, nbytes: int, relative: str) -> None:
        self.remaining -= nbytes
        if self.remaining < 0:
            raise PromotionError(
                self.target_name,
                self.candidate,
                f"{relative} grew while it was copied: the candidate now holds more than the "
                f"{self.max_bytes}-byte limit",
            )

    def refuse(self, relative: str, info: os.stat_result) -> PromotionError:
        return _not_plain(self.target_name, self.candidate, relative, info, None, changed=True)


def _copy_directory(source_fd: int, destination: Path, relative_dir: str, budget: _Budget) -> None:
    os.mkdir(destination, 0o700)
    for name in sorted(os.listdir(source_fd)):
        relative = os.path.join(relative_dir, name)
        try:
            info = os.stat(name, dir_fd=source_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue  # deleted since it was listed: the staged bundle is re-validated anyway
        if stat.S_ISDIR(info.st_mode):
            child = _open_checked(source_fd, name, _OPEN_SUBDIR, info, relative, budget)
            try:
                _copy_directory(child, destination / name, relative, budget)
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            source = _open_checked(source_fd, name, _OPEN_FILE, info, relative, budget)
            try:
                _copy_file(source, destination / name, relative, budget)
            finally:
                os.close(source)
        else:
            raise budget.refuse(relative, info)
    own = os.fstat(source_fd)
    os.chmod(destination, stat.S_IMODE(own.st_mode))
    os.utime(destination, ns=(own.st_atime_ns, own.st_mtime_ns))


def _open_checked(
    parent_fd: int, name: str, flags: int, seen: os.stat_result, relative: str, budget: _Budget
) -> int:
    """Open ``name`` without following it, and make sure it is still what ``lstat`` saw."""
    try:
        fd = os.open(name, flags, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            # Swapped for a symlink (or a directory for a file) since it was listed.
            now = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            raise budget.refuse(relative, now) from None
        raise
    info = os.fstat(fd)
    if stat.S_IFMT(info.st_mode) != stat.S_IFMT(seen.st_mode) or (info.st_dev, info.st_ino) != (
        seen.st_dev,
        seen.st_ino,
    ):
        os.close(fd)
        raise budget.refuse(relative, info)
    return fd


def _copy_file(source: int, destination: Path, relative: str, budget: _Budget) -> None:
    info = os.fstat(source)
    target = os.open(destination, _CREATE_FILE, 0o600)
    try:
        copy_range = getattr(os, "copy_file_range", None)
        while True:
            # One byte more than allowed is enough to notice a file that outgrew the limit.
            request = min(_COPY_CHUNK, budget.remaining + 1)
            copied = -1
            if copy_range is not None:
                try:
                    copied = copy_range(source, target, request)
                except OSError as exc:
                    if exc.errno not in _NO_COPY_RANGE:
                        raise
                    copy_range = None
            if copied < 0:
                chunk = os.read(source, request)
                write_all(target, chunk)
                copied = len(chunk)
            if copied == 0:
                break
            budget.spend(copied, relative)
        os.fchmod(target, stat.S_IMODE(info.st_mode))
        os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))
    finally:
        os.close(target)


def _not_plain(
    target_name: str,
    candidate: Path,
    relative: str,
    info: os.stat_result,
    tree: Path | None,
    *,
    changed: bool = False,
) -> PromotionError:
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFLNK:
        what = "a symlink"
        if tree is not None:
            with contextlib.suppress(OSError):
                what = f"a symlink to {os.readlink(os.path.join(tree, relative))}"
    elif kind == stat.S_IFIFO:
        what = "a named pipe (FIFO)"
    elif kind in (stat.S_IFCHR, stat.S_IFBLK):
        what = "a device"
    elif kind == stat.S_IFSOCK:
        what = "a socket"
    else:
        what = "not the file or directory it was when the candidate was checked"
    when = " (it changed while the candidate was copied)" if changed else ""
    return PromotionError(
        target_name,
        candidate,
        f"{relative} is {what}{when}; promote copies only regular files and directories, so "
        "replace it with a copy of what it should hold, or remove it",
    )


def _in_units(nbytes: int) -> str:
    """`` (1.5 GiB)`` for a size of at least 1 KiB, else nothing."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            return f" ({nbytes / scale:.1f} {unit})"
    return ""


def _incompatibility(bundle: ModelBundle, config: RegistryConfig) -> str | None:
    """Why the registry cannot take ``bundle``, with the labels or hashes involved."""
    schemas = config.schema_hashes
    problem = declared_incompatibility(bundle, config.labels, schemas)
    if problem is None:
        return None
    return explain_incompatibility(bundle, problem, config.labels, schemas)


def _check_staged(
    staged: Path, target_name: str, candidate: Path, config: RegistryConfig
) -> ModelBundle:
    """Validate what was actually copied: the source may have changed since the first check."""
    bundle = read_bundle(staged)
    if bundle is None:
        raise PromotionError(target_name, candidate, "candidate vanished while it was copied")
    problem = _incompatibility(bundle, config)
    if problem is not None:
        raise PromotionError(target_name, candidate, f"{problem} (changed while it was copied)")
    # The staged copy is what lands: hash it (outside the lock), not only the source.
    _check_integrity(bundle, target_name, candidate, " (changed while it was copied)")
    return bundle


def _check_integrity(bundle: ModelBundle, target_name: str, candidate: Path, when: str) -> None:
    try:
        require_sealed_match(bundle)
    except BundleIntegrityError as exc:
        more = f" (and {exc.problems - 1} more problem(s))" if exc.problems > 1 else ""
        raise PromotionError(
            target_name,
            candidate,
            f"candidate does not match its manifest.json: {exc.problem}{more}{when}; restore "
            "its files, or re-seal it with `taskclf model seal` if the change is intended",
        ) from exc


def _restore_source(staged: Path, candidate: Path) -> bool:
    """Give a moved candidate back; False (logged) if it has to stay in staging."""
    try:
        os.rename(staged, candidate)
        return True
    except OSError as exc:
        # Never delete the only copy of someone's bundle to keep the registry tidy.
        log.error(
            "Could not move the candidate back to %s (%s); it is kept at %s", candidate, exc, staged
        )
        return False


def _remove_source(candidate: Path) -> None:
    try:
        shutil.rmtree(candidate)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("Promoted a copy of %s but could not delete the source: %s", candidate, exc)


def _activate_if_best(
    storage: Storage,
    bundle: ModelBundle,
    policy: SelectionPolicy,
    config: RegistryConfig,
    *,
    alias: str,
    activate: bool,
    message: str | None,
    actor: str | None,
) -> PromotionResult:
    """Rank, refresh the index and move the pointer if allowed, in one pointer change.

    The decision runs at the commit (under the registry lock locally; on an
    object store it is made again on the fresh pointer and ranking after a
    lost compare-and-swap).
    """
    root = storage.root_path
    seen: dict[str, object] = {}

    def decide(state: PointerRead) -> ActiveHistoryEntry | None:
        report = find_best_model(root, policy, config=config)
        # Before the pointer step: a failing pointer write leaves the new bundle
        # described by a fresh index.
        try:
            write_index_cache(root, report)
        except OSError as exc:
            log.warning("Could not write %s in %s (it is only a cache): %s", INDEX_FILE, root, exc)
        previous = state.pointer
        if state.problem is not None:
            log.warning("%s", state.problem)
        seen.update(report=report, previous=previous)
        target = follow_pointer(
            root, previous, None, config.labels, config.schema_hashes, alias=alias
        )
        current = previous if target.bundle is not None else None
        # A sealed bundle whose files changed never takes the pointer: the overthrow goes
        # to the best bundle that matches its manifest. The promoted one was just hashed
        # in staging; another (the pointer was off it) is hashed here, at the commit.
        best = next(iter(intact_bundles(report.ranked, verified={bundle.model_id})), None)
        pinned = previous is not None and previous.pinned
        if (
            activate
            and not pinned
            and best is not None
            and (target.path is None or best.model_id != target.path.name)
            and should_switch_active(current, best, policy)
        ):
            return pointer_change(
                storage, state, best, policy, PROMOTION_NOTE, message=message, actor=actor
            )
        return None

    _, entry = storage.update_pointer(alias, decide)
    report = seen["report"]
    previous = seen["previous"]
    assert isinstance(report, SelectionReport)
    assert previous is None or isinstance(previous, ActivePointer)
    return PromotionResult(
        bundle=bundle,
        report=report,
        active_updated=entry is not None,
        previous=previous,
        active=entry.new if entry is not None else previous,
        alias=alias,
        activate=activate,
        pinned=previous is not None and previous.pinned,
    )
