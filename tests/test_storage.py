"""The storage seam's contract, run on every backend (a local directory and an S3 bucket)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from pathlib import Path

import pytest

from taskclf.model_registry import RegistryConflictError, StorageError
from taskclf.model_registry.models import ActiveHistoryEntry, ActivePointer
from taskclf.model_registry.pointer import history_entry, utc_now_iso
from taskclf.model_registry.storage import LocalStorage, open_storage
from taskclf.model_registry.storage.base import PointerRead
from taskclf.model_registry.storage.s3 import S3Storage


def test_open_storage_picks_the_backend_by_scheme(any_registry: str) -> None:
    storage = open_storage(any_registry)
    expected = S3Storage if any_registry.startswith("s3://") else LocalStorage
    assert isinstance(storage, expected)
    assert storage.remote is (expected is S3Storage)


def test_create_is_exclusive(any_registry: str) -> None:
    storage = open_storage(any_registry)
    version = storage.create("active.json", b"one")
    assert storage.read("active.json") == (b"one", version)
    with pytest.raises(RegistryConflictError, match="changed by another writer"):
        storage.create("active.json", b"two")
    assert storage.read("active.json")[0] == b"one"


def test_replace_is_a_compare_and_swap(any_registry: str) -> None:
    storage = open_storage(any_registry)
    first = storage.replace("active.json", b"one", expected=None)
    second = storage.replace("active.json", b"two", expected=first)
    assert storage.head("active.json") == second
    with pytest.raises(RegistryConflictError):
        storage.replace("active.json", b"stale", expected=first)
    with pytest.raises(RegistryConflictError):
        storage.replace("active.json", b"absent?", expected=None)
    assert storage.read("active.json")[0] == b"two"


def test_concurrent_compare_and_swap_has_exactly_one_winner(any_registry: str) -> None:
    storage = open_storage(any_registry)
    start = storage.create("active.json", b"start")

    def attempt(number: int) -> bool:
        try:
            storage.replace("active.json", f"writer {number}".encode(), expected=start)
        except RegistryConflictError:
            return False
        return True

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert outcomes.count(True) == 1
    winner = outcomes.index(True)
    assert storage.read("active.json")[0] == f"writer {winner}".encode()


def test_read_and_head_of_a_missing_file(any_registry: str) -> None:
    storage = open_storage(any_registry)
    assert storage.head("active.json") is None
    with pytest.raises(FileNotFoundError):
        storage.read("active.json")


def test_read_refuses_a_file_over_the_cap(any_registry: str) -> None:
    storage = open_storage(any_registry)
    storage.create("big.json", b"x" * 100)
    with pytest.raises(OSError, match="limit"):
        storage.read("big.json", cap=10)


def _tree(tmp_path: Path) -> Path:
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "metadata.json").write_bytes(b"{}")
    (source / "sub" / "model.txt").write_bytes(b"weights" * 1000)
    (source / "manifest.json").write_bytes(b'{"format": 1, "files": {}}')
    return source


def test_upload_then_download_round_trips_a_tree(any_registry: str, tmp_path: Path) -> None:
    storage = open_storage(any_registry)
    source = _tree(tmp_path)
    storage.upload_tree(source, "run_001")
    assert storage.list_bundle_names() == ["run_001"]
    keys = [info.key for info in storage.list_files("run_001")]
    assert keys == ["run_001/manifest.json", "run_001/metadata.json", "run_001/sub/model.txt"]
    target = tmp_path / "copy"
    storage.download_tree("run_001", target)
    for name in ("metadata.json", "sub/model.txt", "manifest.json"):
        assert (target / name).read_bytes() == (source / name).read_bytes()


def test_upload_never_overwrites_a_bundle(any_registry: str, tmp_path: Path) -> None:
    storage = open_storage(any_registry)
    source = _tree(tmp_path)
    storage.upload_tree(source, "run_001")
    (source / "metadata.json").write_bytes(b'{"changed": true}')
    with pytest.raises(RegistryConflictError):
        storage.upload_tree(source, "run_001")
    assert storage.read("run_001/metadata.json")[0] == b"{}"


def test_delete_tree_removes_the_bundle_whole(any_registry: str, tmp_path: Path) -> None:
    storage = open_storage(any_registry)
    storage.upload_tree(_tree(tmp_path), "run_001")
    storage.delete_tree("run_001")
    assert storage.list_bundle_names() == []
    assert [info.key for info in storage.list_files("run_001")] == []
    storage.delete_tree("run_001")  # already gone: not an error


def test_a_remote_bundle_without_its_manifest_is_not_a_bundle(s3_registry: str) -> None:
    storage = open_storage(s3_registry)
    storage.create("half/metadata.json", b"{}")
    storage.create(".staging/manifest.json", b"{}")
    assert storage.list_bundle_names() == []
    storage.create("half/manifest.json", b"{}")
    assert storage.list_bundle_names() == ["half"]


def test_a_missing_bucket_is_one_sentence(s3_server: object) -> None:
    storage = open_storage("s3://no-such-bucket-here/models")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist"):
        storage.list_files()
    with pytest.raises(StorageError, match="does not exist"):
        storage.create("active.json", b"x")


def test_an_url_without_a_bucket_is_refused() -> None:
    with pytest.raises(StorageError, match="names no bucket"):
        open_storage("s3:///models")


# -- the registry-level verbs: same observable contract on both backends ------------------


def _pointer(name: str, note: str = "test") -> ActivePointer:
    return ActivePointer(
        model_dir=f"models/{name}",
        selected_at=utc_now_iso(),
        policy_version=1,
        model_id=name,
        reason={"note": note},
    )


def test_update_pointer_commits_decided_changes_with_one_entry_each(any_registry: str) -> None:
    storage = open_storage(any_registry)
    seen: list[PointerRead] = []

    def to(name: str) -> Callable[[PointerRead], ActiveHistoryEntry | None]:
        def decide(state: PointerRead) -> ActiveHistoryEntry | None:
            seen.append(state)
            return history_entry(state.pointer, _pointer(name), "tester", f"to {name}")

        return decide

    storage.update_pointer("canary", to("run_a"))
    storage.update_pointer("canary", to("run_b"))
    state, entry = storage.update_pointer("canary", lambda state: None)
    assert entry is None and state.pointer is not None and state.pointer.model_id == "run_b"
    assert [s.pointer.model_id if s.pointer else None for s in seen] == [None, "run_a"]
    history = storage.read_history("canary")
    assert [(e.old.model_id if e.old else None, e.new.model_id) for e in history] == [
        (None, "run_a"),
        ("run_a", "run_b"),
    ]
    assert history[1].actor == "tester" and history[1].message == "to run_b"
    # The other aliases are untouched; only aliases with a pointer are listed.
    assert storage.read_pointer().pointer is None and storage.read_history() == []
    assert storage.alias_names() == ["canary"]


def test_a_refusing_decide_writes_nothing(any_registry: str) -> None:
    storage = open_storage(any_registry)

    def refuse(state: PointerRead) -> ActiveHistoryEntry | None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        storage.update_pointer("active", refuse)
    assert storage.read_pointer().pointer is None and storage.read_history() == []
    assert storage.head("active.json") is None


def test_publish_is_whole_and_refuses_a_taken_name(any_registry: str, tmp_path: Path) -> None:
    storage = open_storage(any_registry)
    for attempt in range(2):
        staging = storage.staging_area()
        (staging / "run_a").mkdir()
        (staging / "run_a" / "metadata.json").write_text("{}")
        (staging / "run_a" / "model.txt").write_text(f"weights {attempt}")
        if attempt == 0:
            storage.publish(staging / "run_a", "run_a")
        else:
            with pytest.raises(RegistryConflictError):
                storage.publish(staging / "run_a", "run_a")
    assert storage.has_bundle("run_a") and storage.name_taken("run_a")
    assert storage.read("run_a/model.txt")[0] == b"weights 0"
    assert "model.txt" in [name for name, _, _ in storage.bundle_files("run_a")]
    storage.delete_bundles(["run_a"])()
    assert not storage.has_bundle("run_a")


def test_stamped_read_changes_with_every_rewrite(any_registry: str) -> None:
    storage = open_storage(any_registry)
    assert storage.stamped_read("active.json") is None
    storage.put("active.json", b"same bytes")
    first = storage.stamped_read("active.json")
    storage.put("active.json", b"other bytes")
    second = storage.stamped_read("active.json")
    assert first is not None and second is not None
    assert first != second and second[1] == b"other bytes"
