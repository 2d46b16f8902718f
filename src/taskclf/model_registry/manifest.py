"""The integrity manifest ``manifest.json`` (§12): size and SHA-256 of every bundle file.

A bundle *matches* its manifest when every listed file exists as a
regular file (not a symlink) with the listed size and SHA-256, and no
unlisted file exists besides ``manifest.json``. Without a manifest a
bundle is *unsealed*: valid and usable exactly as before. A manifest that
cannot be read or parsed is a mismatch, never "no manifest": otherwise
corrupting one file would switch the check off.

Decisions where §12 is silent (see docs/spec-decisions.md):

- An unlisted symlink or special file (FIFO, socket...) is a mismatch too:
  a loader may follow it, and §12 only has room for regular files.
- A manifest whose ``format`` is not 1 is a mismatch (written by a newer
  taskclf this one cannot check).
- ``deep=False`` checks presence, type and sizes only (one ``lstat`` per
  file); ``deep=True`` also hashes. The scan never calls either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from taskclf.model_registry._fs import (
    atomic_write,
    read_capped,
    registry_lock,
    sha256_file,
)
from taskclf.model_registry.errors import BundleIntegrityError, SealError, argument_phrase
from taskclf.model_registry.models import ModelBundle
from taskclf.model_registry.scan import describe_errors, is_bundle_name

log = logging.getLogger("taskclf.model_registry")

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1

_Size = Annotated[StrictInt, Field(ge=0)]
_Digest = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class ManifestEntry(BaseModel):
    """One file of a sealed bundle."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    size: _Size
    sha256: _Digest


class Manifest(BaseModel):
    """The contents of ``manifest.json``. Unknown keys are ignored (room for later formats)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: StrictInt
    files: dict[str, ManifestEntry]

    @field_validator("files")
    @classmethod
    def _check_paths(cls, files: dict[str, ManifestEntry]) -> dict[str, ManifestEntry]:
        for name in files:
            parts = name.split("/")
            if (
                name == MANIFEST_FILE
                or name.startswith("/")
                or "\\" in name
                or "\x00" in name
                or any(part in ("", ".", "..") for part in parts)
            ):
                raise ValueError(f"{name!r} is not a relative path inside the bundle")
        return files


@dataclass(frozen=True, slots=True)
class ManifestProblem:
    """One way a bundle differs from its manifest.

    Attributes:
        file: The file concerned, relative to the bundle with ``/`` separators.
        problem: One sentence naming the file and what is wrong.
    """

    file: str
    problem: str


@dataclass(frozen=True, slots=True)
class ManifestCheck:
    """The outcome of :func:`check_manifest`.

    Attributes:
        status: ``"unsealed"`` (no manifest), ``"match"`` or ``"mismatch"``.
        problems: Every difference found, sorted by file (empty unless ``mismatch``).
        deep: Whether contents were hashed (else presence, type and sizes only).
    """

    status: Literal["unsealed", "match", "mismatch"]
    problems: list[ManifestProblem] = field(default_factory=list)
    deep: bool = True


def build_manifest(bundle_dir: str | os.PathLike[str]) -> Manifest:
    """Hash every regular file of a bundle (except ``manifest.json``) into a manifest.

    Args:
        bundle_dir: The bundle directory.

    Returns:
        The manifest (format 1), files keyed by relative ``/`` path.

    Raises:
        SealError: (a ``ValueError``) the bundle holds a symlink or a special
            file, which a manifest cannot vouch for, or is not a directory.
        OSError: A file cannot be read.
    """
    root = Path(os.path.abspath(bundle_dir))
    if not os.path.isdir(root) or os.path.islink(root):
        raise SealError(root.name, root, "it is not a directory (or is a symlink to one)")
    files: dict[str, ManifestEntry] = {}
    for relative, kind in _walk(root):
        if kind != "file":
            raise SealError(
                root.name,
                root,
                f"{relative} is {_KIND_TEXT[kind]}; a manifest covers regular files only, so "
                "replace it with a copy of its target (or remove it) and seal again",
            )
        if relative == MANIFEST_FILE:
            continue
        size, digest = sha256_file(root / relative)
        files[relative] = ManifestEntry(size=size, sha256=digest)
    return Manifest(format=MANIFEST_FORMAT, files=dict(sorted(files.items())))


def manifest_bytes(manifest: Manifest) -> bytes:
    """The canonical bytes of ``manifest.json`` (sorted, indented, newline-terminated)."""
    document = manifest.model_dump(mode="json")
    document["files"] = dict(sorted(document["files"].items()))
    return json.dumps(document, indent=2).encode() + b"\n"


def write_manifest(bundle_dir: str | os.PathLike[str], manifest: Manifest) -> None:
    """Write ``manifest.json`` into ``bundle_dir`` atomically (temp file, fsync, replace)."""
    atomic_write(Path(os.path.abspath(bundle_dir)) / MANIFEST_FILE, manifest_bytes(manifest))


def read_manifest(bundle_dir: str | os.PathLike[str]) -> Manifest | None:
    """Read and parse ``manifest.json``; ``None`` when the bundle has none (unsealed).

    Raises:
        ValueError: The manifest is unreadable, a symlink, not JSON, or not a
            format-1 manifest (a mismatch, never "no manifest").
    """
    loaded = _load(Path(os.path.abspath(bundle_dir)))
    if isinstance(loaded, ManifestProblem):
        raise ValueError(loaded.problem)
    return loaded


def seal_bundle(
    bundle_dir: str | os.PathLike[str], *, force: bool = False, models_dir: Path | None = None
) -> Manifest:
    """Add ``manifest.json`` to an existing bundle (``taskclf model seal``).

    The files are hashed first, without the lock; the manifest is then
    written atomically, under the registry lock when ``models_dir`` is given
    (so a concurrent prune or promotion is not interleaved), after checking
    that no file changed size or appeared meanwhile.

    Args:
        bundle_dir: The bundle directory.
        force: Replace an existing manifest (after an intended change).
        models_dir: The registry the bundle lives in, for the lock.

    Returns:
        The manifest written.

    Raises:
        SealError: (a ``ValueError``) already sealed without ``force``, a
            symlink or special file in the bundle, or a file changed while it
            was hashed.
        OSError: A file cannot be read, or the write failed.
    """
    root = Path(os.path.abspath(bundle_dir))
    if not force and os.path.lexists(root / MANIFEST_FILE):
        raise SealError(
            root.name,
            root,
            f"it already has a {MANIFEST_FILE}; pass {argument_phrase('force')} to replace it "
            "after an intended change (`taskclf model verify --deep` shows what differs)",
        )
    manifest = build_manifest(root)
    with registry_lock(models_dir) if models_dir is not None else contextlib.nullcontext():
        recheck = _compare(root, manifest, deep=False)
        if recheck:
            raise SealError(
                root.name,
                root,
                f"{recheck[0].problem} while it was being sealed; seal it again once it is "
                "no longer being written",
            )
        write_manifest(root, manifest)
    return manifest


def seal_registry_bundle(
    models_dir: str | os.PathLike[str], model_id: str, *, force: bool = False
) -> tuple[Manifest, bool]:
    """Seal the bundle ``models_dir/model_id`` (``taskclf model seal ID``).

    Returns:
        The manifest written, and whether it replaced an existing one.

    Raises:
        SealError: (a ``ValueError``) no such bundle, already sealed without
            ``force``, a symlink or special file in it, or a file changed meanwhile.
        OSError: A file cannot be read, or the write failed.
    """
    from taskclf.model_registry.storage import is_remote

    if is_remote(models_dir):
        raise SealError(
            model_id,
            Path(models_dir) / model_id,
            "bundles in an object-store registry are sealed when they are uploaded, and "
            "never change there; there is nothing to seal",
        )
    root = Path(os.path.abspath(models_dir))
    path = root / model_id
    if not is_bundle_name(model_id) or not os.path.isdir(path) or os.path.islink(path):
        raise SealError(
            model_id,
            path,
            f"no bundle directory named {model_id!r} in {root} (`taskclf train list` shows them)",
        )
    replaced = os.path.lexists(path / MANIFEST_FILE)
    return seal_bundle(path, force=force, models_dir=root), replaced


def check_manifest(bundle_dir: str | os.PathLike[str], *, deep: bool = True) -> ManifestCheck:
    """Compare a bundle with its ``manifest.json``.

    Args:
        bundle_dir: The bundle directory.
        deep: Hash every listed file; ``False`` checks presence, type and sizes only.

    Returns:
        ``unsealed`` (no manifest), ``match``, or ``mismatch`` with every
        problem found (missing, changed size, changed content, unlisted
        extra file, symlink or special file, unreadable file or manifest).
        Never raises for anything on disk.
    """
    if isinstance(bundle_dir, Path) and bundle_dir.is_absolute():
        root = bundle_dir  # verify calls this once per bundle: skip re-normalising
    else:
        root = Path(os.path.abspath(bundle_dir))
    loaded = _load(root)
    if loaded is None:
        return ManifestCheck(status="unsealed", deep=deep)
    if isinstance(loaded, ManifestProblem):
        return ManifestCheck(status="mismatch", problems=[loaded], deep=deep)
    problems = _compare(root, loaded, deep=deep)
    return ManifestCheck(status="mismatch" if problems else "match", problems=problems, deep=deep)


def require_sealed_match(bundle: ModelBundle, *, deep: bool = True) -> None:
    """Refuse a sealed bundle that does not match its manifest; unsealed bundles pass.

    Args:
        bundle: The bundle (its ``path`` is checked).
        deep: Hash the files (default); ``False`` checks presence, type and sizes only.

    Raises:
        BundleIntegrityError: (a ``ValueError``) one sentence naming the bundle
            and the first offending file.
    """
    result = check_manifest(bundle.path, deep=deep)
    if result.status == "mismatch":
        first = result.problems[0]
        raise BundleIntegrityError(
            bundle.model_id, bundle.path, first.file, first.problem, len(result.problems)
        )


def intact_bundles(
    ranked: Iterable[ModelBundle], *, deep: bool = True, verified: Collection[str] = ()
) -> Iterable[ModelBundle]:
    """The bundles of a ranking that match their manifest (or are unsealed), in order.

    Lazy, so a caller that needs only the first (a repair, a promotion's
    overthrow) hashes only until it finds one. Each skipped bundle is
    logged as a warning naming the file that changed: ranking itself never
    hashes (REGISTRY.md keeps the scan cheap), so this is where a tampered
    bundle stops competing for the pointer.

    Args:
        ranked: Bundles, best first.
        deep: Hash the files (default); ``False`` checks presence, type and sizes only.
        verified: Ids the caller has just checked itself (not checked again).

    Yields:
        Every bundle of ``ranked`` that passes :func:`require_sealed_match`.
    """
    for bundle in ranked:
        if bundle.model_id not in verified:
            try:
                require_sealed_match(bundle, deep=deep)
            except BundleIntegrityError as exc:
                log.warning("Passing over %s: %s", bundle.model_id, exc)
                continue
        yield bundle


_Kind = Literal["file", "symlink", "special", "unreadable-dir"]
_KIND_TEXT: dict[str, str] = {
    "file": "a regular file",
    "symlink": "a symlink, not a regular file",
    "special": "not a regular file (a FIFO, socket or device)",
    "unreadable-dir": "a directory that cannot be listed",
}


def _walk(root: Path) -> list[tuple[str, _Kind]]:
    """Every non-directory entry below ``root`` (symlinks never followed), sorted."""
    found: list[tuple[str, _Kind]] = []
    stack = [""]
    while stack:
        prefix = stack.pop()
        directory = root / prefix if prefix else root
        try:
            with os.scandir(directory) as entries:
                listed = list(entries)
        except OSError:
            found.append((prefix or ".", "unreadable-dir"))
            continue
        for entry in listed:
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue  # vanished while we listed it: as if never there
            if stat.S_ISDIR(mode):
                stack.append(relative)
            elif stat.S_ISREG(mode):
                found.append((relative, "file"))
            elif stat.S_ISLNK(mode):
                found.append((relative, "symlink"))
            else:
                found.append((relative, "special"))
    found.sort()
    return found


def _load(root: Path) -> Manifest | ManifestProblem | None:
    name = os.path.join(root, MANIFEST_FILE)
    try:
        info = os.lstat(name)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return ManifestProblem(MANIFEST_FILE, f"{MANIFEST_FILE} is unreadable ({exc.strerror})")
    path = Path(name)
    if stat.S_ISLNK(info.st_mode):
        return ManifestProblem(
            MANIFEST_FILE,
            f"{MANIFEST_FILE} is a symlink, not a regular file, so it vouches for nothing",
        )
    try:
        raw = read_capped(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return ManifestProblem(MANIFEST_FILE, f"{MANIFEST_FILE} is unreadable ({exc})")
    try:
        manifest = Manifest.model_validate_json(raw)
    except (ValidationError, ValueError, RecursionError) as exc:
        detail = (
            describe_errors(exc.errors(include_url=False, include_input=False), 2)
            if isinstance(exc, ValidationError)
            else str(exc)
        )
        return ManifestProblem(MANIFEST_FILE, f"{MANIFEST_FILE} is malformed ({detail})")
    if manifest.format != MANIFEST_FORMAT:
        return ManifestProblem(
            MANIFEST_FILE,
            f"{MANIFEST_FILE} has format {manifest.format}, which this taskclf cannot check "
            f"(it knows format {MANIFEST_FORMAT}); upgrade taskclf",
        )
    return manifest


def _compare(root: Path, manifest: Manifest, *, deep: bool) -> list[ManifestProblem]:
    problems: list[ManifestProblem] = []
    present = dict(_walk(root))
    for name, kind in present.items():
        if name == MANIFEST_FILE and kind == "file":
            continue
        if kind != "file":
            problems.append(ManifestProblem(name, f"{name} is {_KIND_TEXT[kind]}"))
        elif name not in manifest.files:
            problems.append(
                ManifestProblem(name, f"{name} is not listed in {MANIFEST_FILE} (an extra file)")
            )
    for name, entry in manifest.files.items():
        listed_kind = present.get(name)
        if listed_kind is None:
            problems.append(ManifestProblem(name, f"{name} is missing"))
            continue
        if listed_kind != "file":
            continue  # already reported above
        problem = _file_problem(root / name, name, entry, deep=deep)
        if problem is not None:
            problems.append(ManifestProblem(name, problem))
    problems.sort(key=lambda p: p.file)
    return problems


def _file_problem(path: Path, name: str, entry: ManifestEntry, *, deep: bool) -> str | None:
    try:
        size = os.lstat(path).st_size
        if size != entry.size:
            return f"{name} has {size} bytes, but {MANIFEST_FILE} lists {entry.size}"
        if not deep:
            return None
        hashed, digest = sha256_file(path)
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as exc:
        return f"{name} is unreadable ({exc.strerror or exc})"
    if hashed != entry.size:
        return f"{name} has {hashed} bytes, but {MANIFEST_FILE} lists {entry.size}"
    if digest != entry.sha256:
        return f"{name} has changed: its SHA-256 differs from the one {MANIFEST_FILE} lists"
    return None
