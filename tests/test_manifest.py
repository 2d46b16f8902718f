"""The integrity manifest (REGISTRY.md §12): build, write, read and every kind of mismatch."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskclf.model_registry import (
    BundleError,
    BundleIntegrityError,
    ModelBundle,
    SealError,
    build_manifest,
    check_manifest,
    read_manifest,
    require_sealed_match,
    seal_bundle,
    seal_registry_bundle,
    write_manifest,
)
from taskclf.model_registry._fs import HASH_CHUNK_BYTES, sha256_file
from taskclf.model_registry.manifest import MANIFEST_FILE
from taskclf.samples import write_bundle


def _bundle(tmp_path: Path, name: str = "run") -> Path:
    path = write_bundle(tmp_path / name)
    (path / "extra").mkdir()
    (path / "extra" / "vocab.bin").write_bytes(b"\x00\x01" * 100)
    return path


def _sealed(tmp_path: Path, name: str = "run") -> Path:
    path = _bundle(tmp_path, name)
    write_manifest(path, build_manifest(path))
    return path


def _as_bundle(path: Path) -> ModelBundle:
    return ModelBundle(model_id=path.name, path=path, valid=True)


def _problems(path: Path, deep: bool = True) -> list[tuple[str, str]]:
    check = check_manifest(path, deep=deep)
    return [(p.file, p.problem) for p in check.problems]


def test_round_trip(tmp_path: Path) -> None:
    path = _sealed(tmp_path)
    manifest = read_manifest(path)
    assert manifest is not None
    assert manifest.format == 1
    assert sorted(manifest.files) == [
        "confusion_matrix.csv",
        "extra/vocab.bin",
        "metadata.json",
        "metrics.json",
        "model.txt",
    ]
    data = (path / "model.txt").read_bytes()
    entry = manifest.files["model.txt"]
    assert entry.size == len(data)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    raw = json.loads((path / MANIFEST_FILE).read_text())
    assert list(raw) == ["format", "files"]
    assert check_manifest(path).status == "match"
    assert check_manifest(path, deep=False).status == "match"
    require_sealed_match(_as_bundle(path))


def test_extra_keys_are_ignored(tmp_path: Path) -> None:
    path = _sealed(tmp_path)
    raw = json.loads((path / MANIFEST_FILE).read_text())
    raw["signed_by"] = "ci"
    raw["files"]["model.txt"]["mtime"] = 5
    (path / MANIFEST_FILE).write_text(json.dumps(raw))
    assert check_manifest(path).status == "match"


def test_unsealed_bundle_passes(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    assert check_manifest(path).status == "unsealed"
    assert read_manifest(path) is None
    require_sealed_match(_as_bundle(path))


def _truncate(path: Path) -> None:
    (path / "model.txt").write_bytes(b"")


def _same_size_edit(path: Path) -> None:
    data = bytearray((path / "model.txt").read_bytes())
    data[0] ^= 0x01
    (path / "model.txt").write_bytes(bytes(data))


def _symlink_model(path: Path) -> None:
    os.rename(path / "model.txt", path.parent / "elsewhere.txt")
    os.symlink(path.parent / "elsewhere.txt", path / "model.txt")


def _dir_for_model(path: Path) -> None:
    (path / "model.txt").unlink()
    (path / "model.txt").mkdir()


Tamper = Callable[[Path], object]

TAMPERS: dict[str, tuple[Tamper, str, str]] = {
    "deleted": (lambda p: (p / "model.txt").unlink(), "model.txt", "model.txt is missing"),
    "truncated": (_truncate, "model.txt", "model.txt has 0 bytes, but manifest.json lists"),
    "modified": (_same_size_edit, "model.txt", "model.txt has changed: its SHA-256 differs"),
    "metrics": (
        lambda p: (p / "metrics.json").write_text(
            (p / "metrics.json").read_text().replace('"macro_f1": 0.', '"macro_f1": 1.')
        ),
        "metrics.json",
        "metrics.json has changed",
    ),
    "added": (
        lambda p: (p / "backdoor.py").write_text("x"),
        "backdoor.py",
        "backdoor.py is not listed in manifest.json",
    ),
    "added-in-subdir": (
        lambda p: (p / "extra" / "more.bin").write_text("x"),
        "extra/more.bin",
        "extra/more.bin is not listed",
    ),
    "symlinked": (
        _symlink_model,
        "model.txt",
        "model.txt is a symlink, not a regular file",
    ),
    "fifo": (lambda p: os.mkfifo(p / "pipe"), "pipe", "pipe is not a regular file"),
    "dir-instead-of-file": (
        _dir_for_model,
        "model.txt",
        "model.txt is missing",
    ),
}


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_every_mismatch_kind_is_named(tmp_path: Path, kind: str) -> None:
    tamper, file, problem = TAMPERS[kind]
    path = _sealed(tmp_path)
    tamper(path)
    check = check_manifest(path)
    assert check.status == "mismatch"
    assert [p.file for p in check.problems] == [file]
    assert check.problems[0].problem.startswith(problem)
    with pytest.raises(BundleIntegrityError) as caught:
        require_sealed_match(_as_bundle(path))
    error = caught.value
    assert isinstance(error, BundleError) and isinstance(error, ValueError)
    assert (error.model_id, error.path, error.file) == ("run", path, file)
    message = str(error)
    assert message.startswith(f"Bundle 'run' ({path}) does not match its manifest.json: {file}")
    assert "\n" not in message


def test_shallow_check_sees_sizes_not_contents(tmp_path: Path) -> None:
    path = _sealed(tmp_path)
    _same_size_edit(path)
    assert check_manifest(path, deep=False).status == "match"
    assert check_manifest(path, deep=True).status == "mismatch"
    require_sealed_match(_as_bundle(path), deep=False)
    _truncate(path)
    assert check_manifest(path, deep=False).status == "mismatch"


@pytest.mark.parametrize(
    "content",
    [
        b"{ torn",
        b"[]",
        b'{"format": 1}',
        b'{"format": 1, "files": {"model.txt": {"size": 1, "sha256": "XYZ"}}}',
        b'{"format": 1, "files": {"../outside": {"size": 1, "sha256": "' + b"0" * 64 + b'"}}}',
        b'{"format": 1, "files": {"manifest.json": {"size": 1, "sha256": "' + b"0" * 64 + b'"}}}',
        b'{"format": 1, "files": {"model.txt": {"size": -1, "sha256": "' + b"0" * 64 + b'"}}}',
        b"\xff\xfe",
    ],
)
def test_malformed_manifest_is_a_mismatch_never_unsealed(tmp_path: Path, content: bytes) -> None:
    path = _bundle(tmp_path)
    (path / MANIFEST_FILE).write_bytes(content)
    check = check_manifest(path)
    assert check.status == "mismatch"
    assert check.problems[0].file == MANIFEST_FILE
    assert "manifest.json is malformed" in check.problems[0].problem
    with pytest.raises(ValueError, match="malformed"):
        read_manifest(path)
    with pytest.raises(BundleIntegrityError):
        require_sealed_match(_as_bundle(path))


def test_newer_format_and_symlinked_manifest_are_mismatches(tmp_path: Path) -> None:
    path = _sealed(tmp_path)
    raw = json.loads((path / MANIFEST_FILE).read_text())
    raw["format"] = 2
    (path / MANIFEST_FILE).write_text(json.dumps(raw))
    assert "has format 2" in _problems(path)[0][1]

    other = _sealed(tmp_path, "other")
    os.rename(other / MANIFEST_FILE, tmp_path / "m.json")
    os.symlink(tmp_path / "m.json", other / MANIFEST_FILE)
    assert _problems(other) == [
        (MANIFEST_FILE, "manifest.json is a symlink, not a regular file, so it vouches for nothing")
    ]


def test_sealing_refuses_symlinks_and_special_files(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    os.symlink("/etc/hostname", path / "link")
    with pytest.raises(SealError, match="link is a symlink"):
        build_manifest(path)
    os.unlink(path / "link")
    os.mkfifo(path / "extra" / "fifo")
    with pytest.raises(SealError, match=r"extra/fifo is not a regular file"):
        seal_bundle(path)
    assert not (path / MANIFEST_FILE).exists()


def test_seal_refuses_an_existing_manifest_unless_forced(tmp_path: Path) -> None:
    path = _bundle(tmp_path)
    seal_bundle(path)
    before = (path / MANIFEST_FILE).read_bytes()
    (path / "model.txt").write_text("retrained\n")
    with pytest.raises(SealError, match=r"already has a manifest\.json; pass the force= argument"):
        seal_bundle(path)
    assert (path / MANIFEST_FILE).read_bytes() == before
    assert check_manifest(path).status == "mismatch"
    seal_bundle(path, force=True)
    assert check_manifest(path).status == "match"
    assert [n for n in os.listdir(path) if n.endswith(".tmp")] == []


def test_seal_registry_bundle(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _bundle(models, "run")
    manifest, replaced = seal_registry_bundle(models, "run")
    assert not replaced and "model.txt" in manifest.files
    _, replaced = seal_registry_bundle(models, "run", force=True)
    assert replaced
    for bad in ("nope", "../run", ".staging-x", ""):
        with pytest.raises(SealError, match="no bundle directory named"):
            seal_registry_bundle(models, bad)


def test_sha256_file_streams_in_chunks(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(HASH_CHUNK_BYTES * 2 + 123)
    path.write_bytes(data)
    assert sha256_file(path) == (len(data), hashlib.sha256(data).hexdigest())
    os.symlink(path, tmp_path / "link")
    with pytest.raises(OSError, match="is a symlink"):
        sha256_file(tmp_path / "link")


_names = st.text(alphabet="abcdefgh_.-", min_size=1, max_size=8).filter(
    lambda n: n not in (".", "..", MANIFEST_FILE)
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(
        st.lists(_names, min_size=1, max_size=3).map(tuple),
        st.binary(max_size=64),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_any_tree_round_trips_and_any_byte_flip_is_caught(
    tmp_path_factory: pytest.TempPathFactory,
    files: dict[tuple[str, ...], bytes],
    data: st.DataObject,
) -> None:
    root = tmp_path_factory.mktemp("tree")
    written: dict[str, bytes] = {}
    for parts, content in files.items():
        target = root.joinpath(*parts)
        # A path may be both a file and a directory prefix of another: keep the first.
        if any(root.joinpath(*parts[:i]).is_file() for i in range(1, len(parts) + 1)):
            continue
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written["/".join(parts)] = content
    if not written:
        return
    manifest = build_manifest(root)
    assert {name: entry.size for name, entry in manifest.files.items()} == {
        name: len(content) for name, content in written.items()
    }
    write_manifest(root, manifest)
    assert check_manifest(root).status == "match"
    victim = (
        data.draw(st.sampled_from(sorted(n for n, c in written.items() if c)), label="victim")
        if any(written.values())
        else None
    )
    if victim is None:
        return
    flipped = bytearray(written[victim])
    index = data.draw(st.integers(0, len(flipped) - 1), label="index")
    flipped[index] ^= 0xFF
    root.joinpath(*victim.split("/")).write_bytes(bytes(flipped))
    check = check_manifest(root)
    assert check.status == "mismatch"
    assert [p.file for p in check.problems] == [victim]
