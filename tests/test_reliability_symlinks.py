"""Registry files are never written through a symlink (or a hard link).

An attacker (or a careless ``ln -s``) who can plant a link where a registry
file belongs must not be able to make taskclf write to the link's target.
Each case checks the write is refused with a ``RegistryFileError`` (an
``OSError``) naming the file, and that the target is byte-for-byte intact.
Reading a symlinked bundle directory, and a registry directory that is
itself a symlink, stay allowed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import BundleFactory
from taskclf.model_registry import (
    RegistryFileError,
    execute_prune,
    find_best_model,
    list_bundles,
    plan_prune,
    promote_bundle,
    read_active,
    resolve_active_model,
    write_active_atomic,
    write_index_cache,
)
from taskclf.model_registry._fs import LOCK_FILE, append_line, registry_lock
from taskclf.model_registry.index import INDEX_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE, append_active_history
from taskclf.model_registry.verify import verify_registry
from taskclf.samples import write_bundle

SECRET = b"precious content that must survive\n"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the registry that a planted link points to."""
    path = tmp_path / "victim.txt"
    path.write_bytes(SECRET)
    return path


@pytest.mark.parametrize("name", [ACTIVE_FILE, HISTORY_FILE, LOCK_FILE])
def test_pointer_write_refuses_a_symlinked_registry_file(
    models_dir: Path, make_bundle: BundleFactory, victim: Path, name: str
) -> None:
    make_bundle("a", accuracy=0.8)
    (models_dir / name).symlink_to(victim)
    bundle = list_bundles(models_dir)[0]
    with pytest.raises(RegistryFileError) as info:
        write_active_atomic(models_dir, bundle)
    assert isinstance(info.value, OSError)
    assert info.value.path == models_dir / name
    assert name in str(info.value)
    assert "symlink" in str(info.value)
    assert victim.read_bytes() == SECRET
    assert os.path.islink(models_dir / name)
    # Nothing was half-done: no pointer, no history (unless that is the link).
    for other in {ACTIVE_FILE, HISTORY_FILE} - {name}:
        assert not os.path.lexists(models_dir / other)


def test_dangling_symlink_is_refused_too(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    make_bundle("a", accuracy=0.8)
    target = tmp_path / "would-be-created.jsonl"
    (models_dir / HISTORY_FILE).symlink_to(target)
    with pytest.raises(RegistryFileError, match=HISTORY_FILE):
        write_active_atomic(models_dir, list_bundles(models_dir)[0])
    assert not target.exists()


def test_history_append_refuses_a_symlink(
    models_dir: Path, make_bundle: BundleFactory, victim: Path
) -> None:
    make_bundle("a", accuracy=0.8)
    pointer = write_active_atomic(models_dir, list_bundles(models_dir)[0])
    os.unlink(models_dir / HISTORY_FILE)
    (models_dir / HISTORY_FILE).symlink_to(victim)
    with pytest.raises(RegistryFileError, match="symlink"):
        append_active_history(models_dir, None, pointer)
    assert victim.read_bytes() == SECRET


def test_index_write_refuses_a_symlink(
    models_dir: Path, make_bundle: BundleFactory, victim: Path
) -> None:
    make_bundle("a", accuracy=0.8)
    (models_dir / INDEX_FILE).symlink_to(victim)
    with pytest.raises(RegistryFileError) as info:
        write_index_cache(models_dir, find_best_model(models_dir))
    assert info.value.path == models_dir / INDEX_FILE
    assert victim.read_bytes() == SECRET


def test_lock_refuses_a_symlink(models_dir: Path, victim: Path) -> None:
    (models_dir / LOCK_FILE).symlink_to(victim)
    with pytest.raises(RegistryFileError, match=LOCK_FILE), registry_lock(models_dir):
        pass
    assert victim.read_bytes() == SECRET


def test_history_append_refuses_a_hard_link(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    make_bundle("a", accuracy=0.8)
    make_bundle("b", accuracy=0.9)
    bundles = {b.model_id: b for b in list_bundles(models_dir)}
    write_active_atomic(models_dir, bundles["a"])
    backup = tmp_path / "backup.jsonl"
    os.link(models_dir / HISTORY_FILE, backup)
    before = backup.read_bytes()
    pointer_before = (models_dir / ACTIVE_FILE).read_bytes()
    with pytest.raises(RegistryFileError, match="hard links"):
        write_active_atomic(models_dir, bundles["b"])
    assert backup.read_bytes() == before
    assert (models_dir / ACTIVE_FILE).read_bytes() == pointer_before


def test_append_primitive_opens_without_following(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "log.jsonl"
    link.symlink_to(victim)
    with pytest.raises(RegistryFileError) as info:
        append_line(link, b"{}")
    assert info.value.path == link
    assert victim.read_bytes() == SECRET


def test_resolve_still_answers_when_the_pointer_is_a_symlink(
    models_dir: Path, make_bundle: BundleFactory, victim: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A reader never raises: the repair write is refused (logged) and the answer returned."""
    make_bundle("a", accuracy=0.8)
    (models_dir / ACTIVE_FILE).symlink_to(victim)
    bundle, report = resolve_active_model(models_dir)
    assert bundle is not None
    assert bundle.model_id == "a"
    assert report is not None
    assert "symlink" in caplog.text
    assert victim.read_bytes() == SECRET


def test_verify_names_a_symlinked_registry_file(
    models_dir: Path, make_bundle: BundleFactory, victim: Path
) -> None:
    make_bundle("a", accuracy=0.8)
    (models_dir / INDEX_FILE).symlink_to(victim)
    report = verify_registry(models_dir)
    findings = [f for f in report.findings if f.code == "registry-file-symlink"]
    assert [f.path for f in findings] == [str(models_dir / INDEX_FILE)]


def test_promotion_never_writes_through_a_planted_staging_symlink(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """Staging names come from mkdtemp (random, created exclusively), so a planted
    ``.staging-*`` link is never reused, and the link and its target are left alone."""
    make_bundle("a", accuracy=0.8)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = [models_dir / f".staging-{i}" for i in range(20)]
    for link in planted:
        link.symlink_to(elsewhere, target_is_directory=True)
    candidate = write_bundle(tmp_path / "cand", accuracy=0.95)
    result = promote_bundle(candidate, models_dir)
    assert result.active_updated
    assert list(elsewhere.iterdir()) == []
    assert all(link.is_symlink() for link in planted)


def test_prune_removes_a_symlinked_bundle_not_its_target(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    """Prune renames into a fresh ``.trash-*`` dir and removes it without following links."""
    make_bundle("a", accuracy=0.9)
    outside = write_bundle(tmp_path / "outside", accuracy=0.5)
    (models_dir / "linked").symlink_to(outside, target_is_directory=True)
    files_before = sorted(p.name for p in outside.iterdir())
    assert {b.model_id for b in list_bundles(models_dir)} == {"a", "linked"}
    plan = plan_prune(models_dir, keep=1, keep_history=0)
    executed = execute_prune(plan)
    assert [d.model_id for d in executed.to_delete] == ["linked"]
    assert not os.path.lexists(models_dir / "linked")
    assert sorted(p.name for p in outside.iterdir()) == files_before
    assert not [n for n in os.listdir(models_dir) if n.startswith(".trash-")]


def test_symlinked_bundle_directory_is_readable_and_activatable(
    models_dir: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    outside = write_bundle(tmp_path / "outside", accuracy=0.9)
    (models_dir / "linked").symlink_to(outside, target_is_directory=True)
    bundle, _ = resolve_active_model(models_dir)
    assert bundle is not None
    assert bundle.model_id == "linked"
    assert bundle.valid
    pointer = read_active(models_dir)
    assert pointer is not None
    assert pointer.model_dir == "models/linked"


def test_a_symlinked_registry_directory_works(tmp_path: Path) -> None:
    """Deployments often mount the registry elsewhere (``models -> /data/models``)."""
    real = tmp_path / "data" / "models"
    real.mkdir(parents=True)
    write_bundle(real / "a", accuracy=0.8)
    link = tmp_path / "models"
    link.symlink_to(real, target_is_directory=True)
    bundle, _ = resolve_active_model(link)
    assert bundle is not None
    assert (real / ACTIVE_FILE).is_file()
    pointer = read_active(link)
    assert pointer is not None
    assert pointer.model_dir == "models/a"
