"""REGISTRY.md §6: the active pointer, its history, and locating the pointed-to bundle."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tree_contents
from taskclf.model_registry import (
    ActiveHistoryEntry,
    ActivePointer,
    ModelBundle,
    SelectionPolicy,
    append_active_history,
    list_bundles,
    locate_pointed_bundle,
    read_active,
    read_active_history,
    read_bundle,
    write_active_atomic,
)
from taskclf.model_registry._fs import LOCK_FILE
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE, default_actor

BundleFactory = Callable[..., Path]


def _bundle(path: Path) -> ModelBundle:
    bundle = read_bundle(path)
    assert bundle is not None
    return bundle


def _pointer(model_dir: str = "models/a", **extra: object) -> ActivePointer:
    return ActivePointer.model_validate(
        {"model_dir": model_dir, "selected_at": "2026-01-01T00:00:00+00:00", "policy_version": 1}
        | extra
    )


def _registry_files(models_dir: Path) -> set[str]:
    return {p.name for p in models_dir.iterdir() if not p.is_dir()}


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- read_active ------------------------------------------------------------


def test_read_active_missing_is_none_silently(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert read_active(models_dir) is None
    assert read_active(models_dir / "no-such-registry") is None
    assert _warnings(caplog) == []


def test_read_active_valid(models_dir: Path) -> None:
    pointer = _pointer(model_id="a", reason={"metric": "macro_f1", "macro_f1": 0.8}, extra=1)
    (models_dir / ACTIVE_FILE).write_text(json.dumps(pointer.model_dump() | {"future": True}))
    assert read_active(models_dir) == pointer
    assert read_active(str(models_dir)) == pointer


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"{", b"\xff\xfe{}", b'{"model_dir": "models/a"', b"[" * 100_000],
    ids=["empty", "text", "torn", "non-utf8", "truncated", "deep"],
)
def test_read_active_not_json_is_none_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (models_dir / ACTIVE_FILE).write_bytes(content)
    assert read_active(models_dir) is None
    assert _warnings(caplog)


@pytest.mark.parametrize(
    "data",
    [
        [],
        42,
        None,
        {},
        {"model_dir": "models/a"},
        {"model_dir": 5, "selected_at": "t", "policy_version": 1},
        {"model_dir": "models/a", "selected_at": "t", "policy_version": "one"},
        {"model_dir": "models/a", "selected_at": "t", "policy_version": 1, "reason": [1]},
    ],
)
def test_read_active_invalid_pointer_is_none_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture, data: object
) -> None:
    (models_dir / ACTIVE_FILE).write_text(json.dumps(data))
    assert read_active(models_dir) is None
    assert _warnings(caplog)


def test_read_active_unreadable_is_none_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (models_dir / ACTIVE_FILE).mkdir()
    assert read_active(models_dir) is None
    assert _warnings(caplog)


def test_read_active_fifo_does_not_hang(models_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    os.mkfifo(models_dir / ACTIVE_FILE)
    assert read_active(models_dir) is None
    assert _warnings(caplog)


def test_read_active_huge_is_none_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (models_dir / ACTIVE_FILE).open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)
    assert read_active(models_dir) is None
    assert _warnings(caplog)


def test_read_active_when_models_dir_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "models"
    path.write_text("x")
    assert read_active(path) is None


# --- locate_pointed_bundle --------------------------------------------------


@pytest.mark.parametrize(
    "model_dir",
    [
        "models/run",
        "run",
        "./run",
        "models/./run",
        "models/../models/run",
        "models/run/",
        "run/.",
        "models//run",
        "sub/../run",
    ],
)
def test_locate_relative_styles(models_dir: Path, model_dir: str) -> None:
    assert locate_pointed_bundle(models_dir, model_dir) == models_dir / "run"


def test_locate_absolute_inside(models_dir: Path) -> None:
    assert locate_pointed_bundle(models_dir, str(models_dir / "run")) == models_dir / "run"
    assert locate_pointed_bundle(models_dir, f"{models_dir}/x/../run") == models_dir / "run"


def test_locate_second_candidate_is_the_bare_name(models_dir: Path) -> None:
    """Each candidate is tried in turn: the bare-name reading can land on a direct child."""
    # models.parent/"models" is the registry itself (not a child); models/"models" is.
    assert locate_pointed_bundle(models_dir, "models") == models_dir / "models"
    assert locate_pointed_bundle(models_dir, "models/.") == models_dir / "models"
    # models.parent/"models/run/../../x" is outside; models/"models/run/../../x" is models/x.
    assert locate_pointed_bundle(models_dir, "models/run/../../x") == models_dir / "x"


def test_locate_relative_models_dir(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(models_dir.parent)
    assert locate_pointed_bundle("models", "models/run") == models_dir / "run"
    assert locate_pointed_bundle("models", "run") == models_dir / "run"


def test_locate_does_not_touch_the_filesystem(tmp_path: Path) -> None:
    # Purely lexical: the bundle need not exist for the pointer to be in bounds.
    assert locate_pointed_bundle(tmp_path / "nope", "nope/gone") == tmp_path / "nope" / "gone"


ESCAPES = [
    "../x",
    "../../etc",
    "models/a/b",
    "a/b",
    ".",
    "..",
    "",
    "models/..",
    ".staging-run",
    "models/.staging-run",
    ".hidden",
    "../models2/run",
    "/etc",
    "/tmp/x",
    "run\x00evil",
]


@pytest.mark.parametrize("model_dir", ESCAPES, ids=repr)
def test_locate_escapes_are_absent_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture, model_dir: str
) -> None:
    assert locate_pointed_bundle(models_dir, model_dir) is None
    assert _warnings(caplog)


def test_locate_absolute_outside_and_nested(tmp_path: Path, models_dir: Path) -> None:
    for model_dir in [str(tmp_path / "run"), str(models_dir / "a" / "b"), str(models_dir)]:
        assert locate_pointed_bundle(models_dir, model_dir) is None


def test_locate_sibling_registry_with_common_prefix(tmp_path: Path) -> None:
    root = tmp_path / "models"
    # "/.../models-evil/run" shares a string prefix with "/.../models" but is outside it.
    assert locate_pointed_bundle(root, str(tmp_path / "models-evil" / "run")) is None
    assert locate_pointed_bundle(root, "models-evil/run") is None


# --- write_active_atomic ----------------------------------------------------


def test_write_active_fields(models_dir: Path, make_bundle: BundleFactory) -> None:
    bundle = _bundle(make_bundle("run_001", macro_f1=0.81, weighted_f1=0.79))
    before = datetime.now(UTC)
    pointer = write_active_atomic(models_dir, bundle, SelectionPolicy(version=3))
    after = datetime.now(UTC)
    assert pointer.model_dir == "models/run_001"
    assert pointer.model_id == "run_001"
    assert pointer.policy_version == 3
    assert pointer.reason == {"metric": "macro_f1", "macro_f1": 0.81, "weighted_f1": 0.79}
    selected = datetime.fromisoformat(pointer.selected_at)
    assert selected.utcoffset() == timedelta(0)
    assert before <= selected <= after
    assert read_active(models_dir) == pointer
    on_disk = json.loads((models_dir / ACTIVE_FILE).read_text("utf-8"))
    assert on_disk["model_dir"] == "models/run_001"
    assert on_disk["reason"]["metric"] == "macro_f1"


def test_write_active_note_and_default_policy(models_dir: Path, make_bundle: BundleFactory) -> None:
    bundle = _bundle(make_bundle("run", macro_f1=0.5, weighted_f1=0.6))
    pointer = write_active_atomic(models_dir, bundle, reason="manual")
    assert pointer.policy_version == 1
    assert pointer.reason == {
        "metric": "macro_f1",
        "macro_f1": 0.5,
        "weighted_f1": 0.6,
        "note": "manual",
    }


def test_write_active_model_dir_uses_the_registry_name(tmp_path: Path) -> None:
    from taskclf.samples import write_bundle

    root = tmp_path / "deploy" / "registry"
    bundle = _bundle(write_bundle(root / "b1"))
    pointer = write_active_atomic(root, bundle)
    assert pointer.model_dir == "registry/b1"
    assert locate_pointed_bundle(root, pointer.model_dir) == root / "b1"


def test_write_active_relative_models_dir(
    models_dir: Path, make_bundle: BundleFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_bundle("run")
    monkeypatch.chdir(models_dir.parent)
    [bundle] = list_bundles("models")
    assert write_active_atomic("models", bundle).model_dir == "models/run"


def test_write_active_leaves_no_temp_files(models_dir: Path, make_bundle: BundleFactory) -> None:
    a = _bundle(make_bundle("a", seed=1))
    b = _bundle(make_bundle("b", seed=2))
    for bundle in [a, b, a, b]:
        write_active_atomic(models_dir, bundle)
    assert _registry_files(models_dir) <= {ACTIVE_FILE, HISTORY_FILE, LOCK_FILE}
    assert not (models_dir / "active.json.tmp").exists()
    assert {p.name for p in models_dir.iterdir()} <= {
        "a",
        "b",
        ACTIVE_FILE,
        HISTORY_FILE,
        LOCK_FILE,
    }


def test_write_active_appends_history(models_dir: Path, make_bundle: BundleFactory) -> None:
    a = _bundle(make_bundle("a", seed=1))
    b = _bundle(make_bundle("b", seed=2))
    first = write_active_atomic(models_dir, a)
    second = write_active_atomic(models_dir, b, reason="switch")
    history = read_active_history(models_dir)
    # Issue 14: every entry also records who made the change (user@host by default).
    actor = default_actor()
    assert history == [
        ActiveHistoryEntry(at=first.selected_at, old=None, new=first, actor=actor),
        ActiveHistoryEntry(at=second.selected_at, old=first, new=second, actor=actor),
    ]
    lines = (models_dir / HISTORY_FILE).read_text("utf-8").splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["old"] is None


def test_write_active_old_is_the_previous_hand_written_pointer(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = _bundle(make_bundle("a"))
    hand = _pointer("a")
    (models_dir / ACTIVE_FILE).write_text(hand.model_dump_json())
    write_active_atomic(models_dir, bundle)
    [entry] = read_active_history(models_dir)
    assert entry.old == hand


def test_write_active_old_is_null_when_previous_pointer_is_corrupt(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = _bundle(make_bundle("a"))
    (models_dir / ACTIVE_FILE).write_text("garbage")
    new = write_active_atomic(models_dir, bundle)
    [entry] = read_active_history(models_dir)
    assert entry.old is None
    assert entry.new == new


def _rejects(models_dir: Path, bundle: ModelBundle) -> None:
    before = tree_contents(models_dir.parent)
    with pytest.raises(ValueError):
        write_active_atomic(models_dir, bundle)
    assert tree_contents(models_dir.parent) == before


def test_write_active_rejects_invalid_bundle(models_dir: Path, make_bundle: BundleFactory) -> None:
    path = make_bundle("bad")
    (path / "metrics.json").write_text("{")
    bundle = _bundle(path)
    assert not bundle.valid
    _rejects(models_dir, bundle)


def test_write_active_rejects_bundle_without_metrics(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    bundle = _bundle(make_bundle("m")).model_copy(update={"metrics": None})
    _rejects(models_dir, bundle)


def test_write_active_rejects_foreign_bundle(tmp_path: Path, make_bundle: BundleFactory) -> None:
    models_dir = tmp_path / "models"
    other = tmp_path / "other-registry"
    foreign = _bundle(make_bundle("run", parent=other))
    make_bundle("run")  # same name inside: still the wrong bundle
    (models_dir / ACTIVE_FILE).write_text(_pointer("models/run").model_dump_json())
    _rejects(models_dir, foreign)


def test_write_active_rejects_nested_bundle(models_dir: Path, make_bundle: BundleFactory) -> None:
    nested = _bundle(make_bundle("b", parent=models_dir / "a"))
    assert nested.valid
    _rejects(models_dir, nested)


def test_write_active_rejects_registry_itself_and_dot_dirs(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    staged = _bundle(make_bundle(".staging-x"))
    _rejects(models_dir, staged)
    itself = _bundle(make_bundle("x")).model_copy(update={"path": models_dir, "model_id": "models"})
    _rejects(models_dir, itself)


def test_write_active_rejects_id_path_mismatch_and_missing_dir(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    real = _bundle(make_bundle("real"))
    _rejects(models_dir, real.model_copy(update={"model_id": "other"}))
    _rejects(models_dir, real.model_copy(update={"path": models_dir / "gone", "model_id": "gone"}))


def test_write_active_pointer_step_failure_leaves_both_files(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a = _bundle(make_bundle("a", seed=1))
    b = _bundle(make_bundle("b", seed=2))
    write_active_atomic(models_dir, a)
    history_before = (models_dir / HISTORY_FILE).read_bytes()
    # A directory where active.json belongs: os.replace onto it fails with a real OSError.
    (models_dir / ACTIVE_FILE).unlink()
    (models_dir / ACTIVE_FILE).mkdir()
    with pytest.raises(OSError):
        write_active_atomic(models_dir, b)
    assert (models_dir / HISTORY_FILE).read_bytes() == history_before
    assert (models_dir / ACTIVE_FILE).is_dir()
    assert _registry_files(models_dir) <= {HISTORY_FILE, LOCK_FILE}


def test_write_active_pointer_failure_with_no_history_leaves_no_history(
    models_dir: Path, make_bundle: BundleFactory, caplog: pytest.LogCaptureFixture
) -> None:
    a = _bundle(make_bundle("a"))
    (models_dir / ACTIVE_FILE).mkdir()
    with pytest.raises(OSError):
        write_active_atomic(models_dir, a)
    history = models_dir / HISTORY_FILE
    assert not history.exists() or history.read_bytes() == b""
    assert read_active_history(models_dir) == []


def test_write_active_history_step_failure_leaves_pointer(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    a = _bundle(make_bundle("a", seed=1))
    b = _bundle(make_bundle("b", seed=2))
    write_active_atomic(models_dir, a)
    pointer_before = (models_dir / ACTIVE_FILE).read_bytes()
    (models_dir / HISTORY_FILE).unlink()
    (models_dir / HISTORY_FILE).mkdir()
    with pytest.raises(OSError):
        write_active_atomic(models_dir, b)
    assert (models_dir / ACTIVE_FILE).read_bytes() == pointer_before
    assert _registry_files(models_dir) <= {ACTIVE_FILE, LOCK_FILE}


def test_written_pointer_is_pretty_json_object(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    write_active_atomic(models_dir, _bundle(make_bundle("a")))
    data = json.loads((models_dir / ACTIVE_FILE).read_bytes())
    assert set(data) == {"model_dir", "selected_at", "policy_version", "model_id", "reason"}


# --- append_active_history / read_active_history ----------------------------


def test_append_creates_file_and_sets_at(models_dir: Path) -> None:
    new = _pointer("models/b", selected_at="2026-02-02T00:00:00+00:00")
    append_active_history(models_dir, None, new, actor="ci@runner")
    [entry] = read_active_history(models_dir)
    assert entry == ActiveHistoryEntry(
        at="2026-02-02T00:00:00+00:00", old=None, new=new, actor="ci@runner"
    )
    raw = (models_dir / HISTORY_FILE).read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1


def test_append_keeps_order(models_dir: Path) -> None:
    pointers = [_pointer(f"models/r{i}", selected_at=f"2026-01-0{i + 1}") for i in range(5)]
    previous = None
    for pointer in pointers:
        append_active_history(models_dir, previous, pointer)
        previous = pointer
    history = read_active_history(models_dir)
    assert [e.new for e in history] == pointers
    assert [e.old for e in history] == [None, *pointers[:-1]]


def test_append_after_torn_line_starts_a_new_line(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _pointer("models/a")
    append_active_history(models_dir, None, first)
    with (models_dir / HISTORY_FILE).open("ab") as handle:
        handle.write(b'{"at": "2026-01-01", "old": null, "new": {"model_d')  # crash mid-write
    second = _pointer("models/b")
    append_active_history(models_dir, first, second)
    lines = (models_dir / HISTORY_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert ActiveHistoryEntry.model_validate_json(lines[-2]).new == second
    history = read_active_history(models_dir)
    assert [e.new for e in history] == [first, second]
    assert _warnings(caplog)  # the torn line was skipped with a warning


def test_read_history_missing_is_empty(models_dir: Path, tmp_path: Path) -> None:
    assert read_active_history(models_dir) == []
    assert read_active_history(tmp_path / "nope") == []


def test_read_history_skips_bad_lines_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = [
        ActiveHistoryEntry(at="t1", old=None, new=_pointer("models/a")),
        ActiveHistoryEntry(at="t2", old=_pointer("models/a"), new=_pointer("models/b")),
    ]
    lines = [
        good[0].model_dump_json().encode(),
        b"not json",
        b"",
        b"   ",
        b"\xff\xfe\xfd",
        b'{"at": "t"}',
        b"[]",
        good[1].model_dump_json().encode(),
        b'{"at": "t", "old": null, "new": {"model_dir": ',
    ]
    (models_dir / HISTORY_FILE).write_bytes(b"\n".join(lines))
    assert read_active_history(models_dir) == good
    assert len(_warnings(caplog)) == 5


def test_read_history_unreadable_is_empty_with_warning(
    models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (models_dir / HISTORY_FILE).mkdir()
    assert read_active_history(models_dir) == []
    assert _warnings(caplog)


def test_read_history_accepts_crlf_and_extra_keys(models_dir: Path) -> None:
    entry = ActiveHistoryEntry(at="t", old=None, new=_pointer("models/a"))
    data = json.loads(entry.model_dump_json()) | {"host": "x"}
    (models_dir / HISTORY_FILE).write_bytes(json.dumps(data).encode() + b"\r\n")
    assert read_active_history(models_dir) == [entry]


# --- property: a located bundle is always a direct, non-reserved child --------

_segments = st.sampled_from(["models", "run", "a", ".", "..", ".hidden", "", "models2", "x y"])


@settings(max_examples=300)
@given(st.lists(_segments, min_size=1, max_size=6), st.booleans())
def test_locate_property_confined_to_the_registry(segments: list[str], absolute: bool) -> None:
    root = Path("/srv/reg/models")
    model_dir = "/".join(segments)
    if absolute:
        model_dir = "/srv/reg/" + model_dir
    located = locate_pointed_bundle(root, model_dir)
    candidates = [Path(model_dir)] if absolute else [root.parent / model_dir, root / model_dir]
    expected = None
    for candidate in candidates:
        normal = Path(os.path.normpath(candidate))
        if normal.parent == root and not normal.name.startswith("."):
            expected = normal
            break
    assert located == expected
    if located is not None:
        assert located.parent == root
        assert located.name not in ("", ".", "..")
        assert not located.name.startswith(".")
