"""``promote`` copies only the candidate's own regular files and directories, within a size limit.

Every attack here worked before: a link to ``/etc/passwd`` landed in the
registry as a regular file with those bytes, a directory link pulled a
tree from ``/etc/ssl``, and a link to ``/dev/zero`` or a huge sparse file
filled the disk. Each is now refused before anything is written, with the
registry byte-for-byte unchanged and the candidate untouched.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import BundleFactory, change_between_check_and_copy, tree_contents, tree_state
from taskclf.model_registry import (
    DEFAULT_MAX_BUNDLE_BYTES,
    PromotionError,
    promote_bundle,
    read_active,
    read_bundle,
    write_active_atomic,
)
from taskclf.model_registry.promotion import MAX_CANDIDATE_DEPTH, STAGING_PREFIX
from taskclf.samples import write_bundle

TASKCLF = str(Path(sys.executable).with_name("taskclf"))


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """A registry with two bundles and a pointer on ``run-a``."""
    make_bundle("run-a", seed=1, macro_f1=0.80, weighted_f1=0.80)
    make_bundle("run-b", seed=2, macro_f1=0.70, weighted_f1=0.70)
    bundle = read_bundle(models_dir / "run-a")
    assert bundle is not None
    write_active_atomic(models_dir, bundle, reason="manual set-active")
    return models_dir


@pytest.fixture
def candidate(tmp_path: Path) -> Path:
    """A valid, better candidate outside the registry (it would take the pointer)."""
    return write_bundle(tmp_path / "candidates" / "run-c", seed=3, macro_f1=0.95, weighted_f1=0.95)


def _unchanged(registry: Path, before: Any) -> None:
    assert tree_contents(registry) == before
    assert not any(name.startswith(STAGING_PREFIX) for name in os.listdir(registry))


# --- what may not be in a candidate ------------------------------------------------------------


def _link_to_passwd(candidate: Path) -> str:
    (candidate / "model.txt").unlink()
    (candidate / "model.txt").symlink_to("/etc/passwd")
    return "model.txt"


def _directory_link_to_etc_ssl(candidate: Path) -> str:
    (candidate / "certs").symlink_to("/etc/ssl", target_is_directory=True)
    return "certs"


def _link_to_dev_zero(candidate: Path) -> str:
    (candidate / "model.bin").symlink_to("/dev/zero")
    return "model.bin"


def _nested_link(candidate: Path) -> str:
    (candidate / "extra" / "deeper").mkdir(parents=True)
    (candidate / "extra" / "deeper" / "weights.bin").symlink_to("/etc/passwd")
    return os.path.join("extra", "deeper", "weights.bin")


def _internal_relative_link(candidate: Path) -> str:
    # Refused too (decision): every link, not only those leaving the candidate.
    (candidate / "weights.bin").symlink_to("model.txt")
    return "weights.bin"


def _metadata_link_to_a_valid_file(candidate: Path) -> str:
    # The scan would read through it and find a valid bundle.
    real = candidate.parent / "real-metadata.json"
    os.replace(candidate / "metadata.json", real)
    (candidate / "metadata.json").symlink_to(real)
    return "metadata.json"


def _dangling_link(candidate: Path) -> str:
    (candidate / "weights.bin").symlink_to(candidate.parent / "gone")
    return "weights.bin"


def _fifo(candidate: Path) -> str:
    os.mkfifo(candidate / "pipe")
    return "pipe"


def _socket(candidate: Path) -> str:
    # AF_UNIX paths are limited to ~107 bytes: bind relative to the candidate.
    cwd = os.getcwd()
    os.chdir(candidate)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("sock")
    finally:
        os.chdir(cwd)
    return "sock"


def _character_device(candidate: Path) -> str:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    zero = os.stat("/dev/zero").st_rdev
    os.mknod(candidate / "zero", stat.S_IFCHR | 0o600, zero)
    return "zero"


ATTACKS: list[Callable[[Path], str]] = [
    _link_to_passwd,
    _directory_link_to_etc_ssl,
    _link_to_dev_zero,
    _nested_link,
    _internal_relative_link,
    _metadata_link_to_a_valid_file,
    _dangling_link,
    _fifo,
    _socket,
    _character_device,
]


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
@pytest.mark.parametrize("attack", ATTACKS, ids=lambda f: f.__name__.lstrip("_"))
def test_candidate_with_a_link_or_special_file_is_refused_before_anything_is_written(
    registry: Path, candidate: Path, attack: Callable[[Path], str], move: bool
) -> None:
    offending = attack(candidate)
    before = tree_contents(registry)
    candidate_before = tree_state(candidate)

    with pytest.raises(PromotionError) as caught:
        promote_bundle(candidate, registry, move=move)

    message = str(caught.value)
    assert offending in message
    assert "only regular files and directories" in message
    _unchanged(registry, before)
    assert tree_state(candidate) == candidate_before
    assert read_active(registry) is not None
    assert read_active(registry).model_id == "run-a"  # type: ignore[union-attr]


def test_a_candidate_nested_too_deep_is_refused_before_anything_is_written(
    registry: Path, candidate: Path
) -> None:
    deep = candidate
    for _ in range(MAX_CANDIDATE_DEPTH + 1):
        deep = deep / "d"
    deep.mkdir(parents=True)
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match=f"more than {MAX_CANDIDATE_DEPTH} directories deep"):
        promote_bundle(candidate, registry)

    _unchanged(registry, before)
    # At the limit it is copied whole.
    (deep.parent / "d").rmdir()
    assert promote_bundle(candidate, registry).bundle.valid
    assert tree_contents(registry / "run-c") == tree_contents(candidate)


def test_a_refused_candidate_does_not_create_the_registry(tmp_path: Path, candidate: Path) -> None:
    _link_to_passwd(candidate)
    root = tmp_path / "new-models"
    with pytest.raises(PromotionError, match="symlink"):
        promote_bundle(candidate, root)
    assert not os.path.lexists(root)


def test_a_symlinked_candidate_directory_is_still_copied_as_its_target(
    registry: Path, candidate: Path, tmp_path: Path
) -> None:
    # The path the user names may be a link (kept behaviour); links *inside* it may not.
    link = tmp_path / "latest"
    link.symlink_to(candidate, target_is_directory=True)
    result = promote_bundle(link, registry)
    assert result.bundle.valid
    assert not (registry / "latest").is_symlink()
    assert tree_contents(registry / "latest") == tree_contents(candidate)


def test_copies_keep_bytes_modes_and_nested_directories(registry: Path, candidate: Path) -> None:
    (candidate / "shards" / "a").mkdir(parents=True)
    (candidate / "shards" / "a" / "part-0.bin").write_bytes(os.urandom(300_000))
    (candidate / "run.sh").write_text("#!/bin/sh\n")
    (candidate / "run.sh").chmod(0o755)

    promote_bundle(candidate, registry)

    landed = registry / "run-c"
    assert tree_contents(landed) == tree_contents(candidate)
    assert stat.S_IMODE((landed / "run.sh").stat().st_mode) == 0o755
    assert (landed / "run.sh").stat().st_mtime_ns == (candidate / "run.sh").stat().st_mtime_ns


# --- size ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("move", [False, True], ids=["copy", "move"])
def test_a_sparse_file_beyond_the_default_limit_is_refused_by_its_apparent_size(
    registry: Path, candidate: Path, move: bool
) -> None:
    # Takes no disk space itself; copied, it would write every byte.
    with open(candidate / "model.bin", "wb") as handle:
        handle.truncate(DEFAULT_MAX_BUNDLE_BYTES + 1)
    before = tree_contents(registry)
    candidate_before = tree_state(candidate)

    with pytest.raises(PromotionError, match="limit") as caught:
        promote_bundle(candidate, registry, move=move)

    assert str(DEFAULT_MAX_BUNDLE_BYTES) in str(caught.value)
    _unchanged(registry, before)
    assert tree_state(candidate) == candidate_before


def test_max_bytes_is_the_sum_of_every_file(registry: Path, candidate: Path) -> None:
    (candidate / "model.bin").write_bytes(b"x" * 100_000)
    total = sum(p.stat().st_size for p in candidate.rglob("*") if p.is_file())
    before = tree_contents(registry)

    with pytest.raises(PromotionError, match=f"{total} bytes"):
        promote_bundle(candidate, registry, max_bytes=total - 1)
    _unchanged(registry, before)

    assert promote_bundle(candidate, registry, max_bytes=total).bundle.valid


def test_a_negative_max_bytes_is_refused(registry: Path, candidate: Path) -> None:
    with pytest.raises(PromotionError, match="max_bytes"):
        promote_bundle(candidate, registry, max_bytes=-1)


# --- the candidate changing between the check and the copy ----------------------------------------


def test_a_file_that_grows_past_the_limit_during_the_copy_is_refused(
    registry: Path, candidate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (candidate / "model.bin").write_bytes(b"x" * 400_000)
    before = tree_contents(registry)

    def grow() -> None:
        with open(candidate / "model.bin", "ab") as handle:
            handle.write(b"y" * 800_000)

    change_between_check_and_copy(monkeypatch, grow)
    with pytest.raises(PromotionError, match="grew"):
        promote_bundle(candidate, registry, max_bytes=1_000_000)
    _unchanged(registry, before)


def test_a_file_swapped_for_a_symlink_after_the_check_is_not_followed(
    registry: Path, candidate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree_contents(registry)

    def swap() -> None:
        (candidate / "model.txt").unlink()
        (candidate / "model.txt").symlink_to("/etc/passwd")

    change_between_check_and_copy(monkeypatch, swap)
    with pytest.raises(PromotionError, match=r"model\.txt"):
        promote_bundle(candidate, registry)
    _unchanged(registry, before)


def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_followed(
    registry: Path, candidate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (candidate / "certs").mkdir()
    (candidate / "certs" / "ca.pem").write_text("mine\n")
    before = tree_contents(registry)

    def swap() -> None:
        os.rename(candidate / "certs", candidate.parent / "certs-away")
        (candidate / "certs").symlink_to("/etc/ssl", target_is_directory=True)

    change_between_check_and_copy(monkeypatch, swap)
    with pytest.raises(PromotionError, match="certs"):
        promote_bundle(candidate, registry)
    _unchanged(registry, before)


def test_a_moved_candidate_that_gained_a_link_after_the_check_is_given_back(
    registry: Path, candidate: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = tree_contents(registry)

    def plant() -> None:
        (candidate / "weights.bin").symlink_to("/etc/passwd")

    change_between_check_and_copy(monkeypatch, plant)
    with pytest.raises(PromotionError, match=r"weights\.bin"):
        promote_bundle(candidate, registry, move=True)
    _unchanged(registry, before)
    assert (candidate / "metadata.json").is_file()
    assert (candidate / "weights.bin").is_symlink()


# --- the command line --------------------------------------------------------------------------


def _promote(
    *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TASKCLF, "model", "promote", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_cli_max_bytes_refuses_and_names_the_limit(registry: Path, candidate: Path) -> None:
    (candidate / "model.bin").write_bytes(b"x" * 3000)
    before = tree_contents(registry)

    line = _one_error_line(_promote(candidate, "--models-dir", registry, "--max-bytes", "2K"))
    assert "2048" in line and "run-c" in line
    line = _one_error_line(
        _promote(candidate, "--models-dir", registry, env={"TASKCLF_MAX_BUNDLE_BYTES": "1k"})
    )
    assert "1024" in line
    _unchanged(registry, before)

    done = _promote(candidate, "--models-dir", registry, "--max-bytes", "1.5M")
    assert done.returncode == 0, done.stderr
    assert (registry / "run-c" / "model.bin").stat().st_size == 3000


@pytest.mark.parametrize("value", ["lots", "-1", "", "5X", "1e3"])
def test_cli_max_bytes_rejects_a_value_that_is_not_a_size(
    registry: Path, candidate: Path, value: str
) -> None:
    before = tree_contents(registry)
    line = _one_error_line(_promote(candidate, "--models-dir", registry, "--max-bytes", value))
    assert "--max-bytes" in line
    _unchanged(registry, before)
