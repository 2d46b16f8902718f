"""Issue 14: named aliases with every guarantee of ``active.json``, pins, and who/why.

Real registries in ``tmp_path``; the CLI through typer's runner; crash and
concurrency tests in ``test_aliases_processes.py``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import BundleFactory, one_sentence_error, tree_contents
from taskclf.infer import ActiveModelReloader, resolve_model_dir
from taskclf.model_registry import (
    ActiveHistoryEntry,
    AliasError,
    AliasNameError,
    RegistryFileError,
    activate_bundle,
    delete_alias,
    execute_prune,
    execute_rollback,
    list_aliases,
    list_rows,
    plan_prune,
    plan_rollback,
    promote_bundle,
    read_active,
    read_active_history,
    read_bundle,
    resolve_active_model,
    set_alias_pin,
    verify_registry,
    write_active_atomic,
)
from taskclf.model_registry.aliases import ALIAS_DIR, ALIAS_PATTERN, alias_paths
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from test_cli import run


def run_json(*args: str | Path, env: dict[str, str] | None = None) -> Any:
    """``--json`` output of a command that must succeed."""
    result = run(*args, "--json", env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


@pytest.fixture
def registry(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """Three eligible bundles a < b < c by macro_f1; ``active`` on ``a``."""
    make_bundle("a", macro_f1=0.70, seed=1)
    make_bundle("b", macro_f1=0.80, seed=2)
    make_bundle("c", macro_f1=0.90, seed=3)
    activate_bundle(models_dir, "a")
    return models_dir


def _break(bundle: Path) -> None:
    (bundle / "metrics.json").write_text("{not json")


# --- names and paths ---------------------------------------------------------------------


BAD_NAMES = [
    "",
    "a/b",
    "../x",
    "..",
    ".",
    ".hidden",
    "a.b",
    "Canary",
    "x" * 65,
    "1abc",
    "-x",
    "a\x00b",
    "a b",
    "index",
    "registry",
    "canary_history",
    "caña",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_alias_names_are_refused_with_a_sentence(registry: Path, name: str) -> None:
    with pytest.raises(AliasNameError) as info:
        activate_bundle(registry, "b", alias=name)
    message = str(info.value)
    assert message.endswith(".") and "\n" not in message
    assert not (registry / ALIAS_DIR).exists()
    with pytest.raises(AliasNameError):
        read_active(registry, alias=name)


@pytest.mark.parametrize("name", ["a/b", "..", "Canary", "", "index"])
def test_cli_refuses_invalid_alias_names_in_one_sentence(registry: Path, name: str) -> None:
    before = tree_contents(registry)
    line = one_sentence_error(
        run("model", "set-active", "--models-dir", registry, "--alias", name, "--model-id", "b")
    )
    assert "alias name" in line.lower()
    assert tree_contents(registry) == before


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70))
def test_any_accepted_name_stays_inside_aliases(name: str) -> None:
    root = Path("/srv/models")
    if ALIAS_PATTERN.fullmatch(name) is None:
        with pytest.raises(AliasNameError):
            alias_paths(root, name)
        return
    try:
        paths = alias_paths(root, name)
    except AliasNameError:
        return  # reserved
    if name == "active":
        assert paths.pointer == root / ACTIVE_FILE
        return
    for path in (paths.pointer, paths.history):
        assert path.parent == root / ALIAS_DIR
        assert os.path.normpath(path) == str(path)


def test_active_alias_is_active_json(models_dir: Path) -> None:
    paths = alias_paths(models_dir, "active")
    assert paths.pointer == models_dir / ACTIVE_FILE
    assert paths.history == models_dir / HISTORY_FILE
    canary = alias_paths(models_dir, "canary")
    assert canary.pointer == models_dir / ".aliases" / "canary.json"
    assert canary.history == models_dir / ".aliases" / "canary_history.jsonl"


# --- independence and the old format ------------------------------------------------------


def test_moving_an_alias_never_touches_active_json(registry: Path) -> None:
    active_bytes = (registry / ACTIVE_FILE).read_bytes()
    history_bytes = (registry / HISTORY_FILE).read_bytes()
    activate_bundle(registry, "b", alias="canary")
    activate_bundle(registry, "c", alias="canary")
    set_alias_pin(registry, True, alias="canary")
    assert (registry / ACTIVE_FILE).read_bytes() == active_bytes
    assert (registry / HISTORY_FILE).read_bytes() == history_bytes
    canary = read_active(registry, alias="canary")
    assert canary is not None and canary.model_id == "c" and canary.pinned
    assert [e.new.model_id for e in read_active_history(registry, alias="canary")] == [
        "b",
        "c",
        "c",
    ]
    # The pointer format is the same: model_dir relative to the registry's parent.
    assert canary.model_dir == "models/c"


def test_reading_never_creates_the_alias_directory(registry: Path) -> None:
    assert read_active(registry, alias="canary") is None
    assert read_active_history(registry, alias="canary") == []
    assert list_aliases(registry)[0].name == "active"
    run("model", "aliases", "--models-dir", registry)
    run("model", "history", "--models-dir", registry, "--alias", "canary")
    run("train", "list", "--models-dir", registry)
    verify_registry(registry)
    plan_prune(registry, keep=1)
    assert not (registry / ALIAS_DIR).exists()


def test_resolving_a_missing_alias_repairs_only_that_alias(registry: Path) -> None:
    before = (registry / ACTIVE_FILE).read_bytes()
    bundle, report = resolve_active_model(registry, alias="canary")
    assert bundle is not None and bundle.model_id == "c" and report is not None
    canary = read_active(registry, alias="canary")
    assert canary is not None and canary.model_id == "c"
    assert (canary.reason or {}).get("note") == "auto-repair"
    assert (registry / ACTIVE_FILE).read_bytes() == before


def test_an_unpinned_pointer_is_written_in_the_original_format(registry: Path) -> None:
    data = json.loads((registry / ACTIVE_FILE).read_text())
    assert list(data) == ["model_dir", "selected_at", "policy_version", "model_id", "reason"]
    pinned = activate_bundle(registry, "b", pin=True)
    assert json.loads((registry / ACTIVE_FILE).read_text())["pinned"] is True
    assert pinned.pinned
    activate_bundle(registry, "c", pin=False)
    assert "pinned" not in json.loads((registry / ACTIVE_FILE).read_text())


def test_old_registry_without_aliases_behaves_as_before(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("a", macro_f1=0.70, seed=1)
    make_bundle("b", macro_f1=0.80, seed=2)
    # Written by the original tooling: no model_id, no history, no .aliases.
    (models_dir / ACTIVE_FILE).write_text(
        '{"model_dir": "models/a", "selected_at": "2026-01-01T00:00:00+00:00", "policy_version": 1}'
    )
    old_line = (
        '{"at":"2026-01-01T00:00:00+00:00","old":null,"new":{"model_dir":"models/a",'
        '"selected_at":"2026-01-01T00:00:00+00:00","policy_version":1}}\n'
    )
    (models_dir / HISTORY_FILE).write_text(old_line)
    [entry] = read_active_history(models_dir)
    assert entry.actor is None and entry.message is None
    assert [info.name for info in list_aliases(models_dir)] == ["active"]
    rows = run_json("train", "list", "--models-dir", models_dir)
    assert {r["model_id"]: r["aliases"] for r in rows} == {"a": ["active"], "b": []}
    table = run("train", "list", "--models-dir", models_dir).stdout
    assert "aliases" not in table
    resolved = run_json("model", "resolve", "--models-dir", models_dir)
    assert resolved["active"]["model_id"] == "a" and resolved["pinned"] is False
    assert verify_registry(models_dir).aliases[0].name == "active"
    assert not (models_dir / ALIAS_DIR).exists()
    # The original line is still there, byte for byte; a new one follows it.
    activate_bundle(models_dir, "b")
    assert (models_dir / HISTORY_FILE).read_text().startswith(old_line)
    assert not (models_dir / ALIAS_DIR).exists()


# --- who and why ---------------------------------------------------------------------------


def test_history_records_actor_and_message(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCLF_ACTOR", "deploy-bot")
    activate_bundle(registry, "b", alias="canary", message="try b on 5% of hosts")
    activate_bundle(registry, "c", alias="canary", actor="ana@laptop")
    first, second = read_active_history(registry, alias="canary")
    assert (first.actor, first.message) == ("deploy-bot", "try b on 5% of hosts")
    assert (second.actor, second.message) == ("ana@laptop", None)
    line = (registry / ".aliases" / "canary_history.jsonl").read_text().splitlines()[1]
    assert "message" not in json.loads(line)


def test_default_actor_is_user_at_host(registry: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass
    import socket

    monkeypatch.delenv("TASKCLF_ACTOR", raising=False)
    activate_bundle(registry, "b")
    assert read_active_history(registry)[-1].actor == (
        f"{getpass.getuser()}@{socket.gethostname()}"
    )


def test_cli_history_shows_actor_and_message(registry: Path) -> None:
    result = run(
        "model", "set-active", "--models-dir", registry, "--alias", "challenger",
        "--model-id", "b", "--message", "weekly retrain", "--actor", "ci@runner",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "Alias challenger set to b" in result.stdout
    [entry] = run_json("model", "history", "--models-dir", registry, "--alias", "challenger")
    assert entry["to"] == "b" and entry["actor"] == "ci@runner"
    assert entry["message"] == "weekly retrain"
    table = run("model", "history", "--models-dir", registry, "--alias", "challenger").stdout
    assert "weekly retrain" in table and "ci@runner" in table
    assert "Alias challenger history" in table


def test_entry_with_unknown_keys_still_parses() -> None:
    line = (
        '{"at":"t","old":null,"new":{"model_dir":"models/a","selected_at":"t",'
        '"policy_version":1,"future":1},"actor":"x","later":[1]}'
    )
    entry = ActiveHistoryEntry.model_validate_json(line)
    assert entry.actor == "x" and entry.new.model_dir == "models/a"


# --- pins ----------------------------------------------------------------------------------


def test_a_pin_survives_promotion(
    registry: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    activate_bundle(registry, "a", alias="prod", pin=True)
    activate_bundle(registry, "a", alias="staging")
    prod_bytes = (registry / ".aliases" / "prod.json").read_bytes()
    candidate = make_bundle("d", parent=tmp_path, macro_f1=0.99, seed=4)
    held = promote_bundle(candidate, registry, alias="prod")
    assert held.pinned and not held.active_updated
    assert (registry / ".aliases" / "prod.json").read_bytes() == prod_bytes
    candidate = make_bundle("e", parent=tmp_path, macro_f1=0.995, seed=5)
    moved = promote_bundle(candidate, registry, alias="staging")
    assert moved.active_updated and not moved.pinned
    staging = read_active(registry, alias="staging")
    assert staging is not None and staging.model_id == "e"
    assert (registry / ".aliases" / "prod.json").read_bytes() == prod_bytes


def test_cli_promote_explains_the_pin(
    registry: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    run("model", "set-active", "--models-dir", registry, "--model-id", "a", "--pin")
    candidate = make_bundle("d", parent=tmp_path, macro_f1=0.99, seed=4)
    data = run_json("model", "promote", candidate, "--models-dir", registry)
    assert data["pinned"] is True and data["active_updated"] is False
    assert "pinned to a" in data["explanation"]
    pointer = read_active(registry)
    assert pointer is not None and pointer.model_id == "a" and pointer.pinned


def test_pin_and_unpin_where_the_alias_points(registry: Path) -> None:
    result = run("model", "set-active", "--models-dir", registry, "--pin", "--message", "freeze")
    assert result.exit_code == 0, result.stderr
    assert "Alias active pinned at a" in result.stdout
    pointer = read_active(registry)
    assert pointer is not None and pointer.pinned and pointer.model_id == "a"
    assert read_active_history(registry)[-1].message == "freeze"
    # A manual move keeps the pin.
    activate_bundle(registry, "b")
    pointer = read_active(registry)
    assert pointer is not None and pointer.pinned and pointer.model_id == "b"
    run("model", "set-active", "--models-dir", registry, "--unpin")
    pointer = read_active(registry)
    assert pointer is not None and not pointer.pinned and pointer.model_id == "b"


def test_pinning_an_alias_without_pointer_is_refused(registry: Path) -> None:
    with pytest.raises(AliasError, match="nothing to pin"):
        set_alias_pin(registry, True, alias="canary")
    line = one_sentence_error(
        run("model", "set-active", "--models-dir", registry, "--alias", "canary", "--pin")
    )
    assert "canary" in line
    # Neither a bundle nor a pin change: a usage error, as for any missing argument.
    usage = run("model", "set-active", "--models-dir", registry)
    assert usage.exit_code == 2 and "--pin / --unpin" in usage.stderr


def test_pinned_unusable_bundle_is_refused_loudly_and_left_pinned(
    registry: Path, caplog: pytest.LogCaptureFixture
) -> None:
    activate_bundle(registry, "b", alias="prod", pin=True)
    pointer_bytes = (registry / ".aliases" / "prod.json").read_bytes()
    _break(registry / "b")
    with caplog.at_level(logging.ERROR):
        bundle, report = resolve_active_model(registry, alias="prod")
    assert bundle is not None and bundle.model_id == "c" and report is not None
    assert "pinned" in caplog.text and "WITHOUT moving" in caplog.text
    assert (registry / ".aliases" / "prod.json").read_bytes() == pointer_bytes
    assert resolve_model_dir(None, registry, alias="prod") == registry / "c"

    data = run_json("model", "resolve", "--models-dir", registry, "--alias", "prod")
    assert data["pinned"] is True and data["pointer_repaired"] is False
    assert data["active"]["model_id"] == "c"

    report_ = verify_registry(registry)
    codes = {f.code for f in report_.findings}
    assert "alias-pinned-unusable" in codes and not report_.healthy
    assert {a.name: a.pinned for a in report_.aliases} == {"active": False, "prod": True}
    infos = {info.name: info for info in list_aliases(registry)}
    assert infos["prod"].broken and infos["prod"].pinned and infos["prod"].model_id == "b"

    # Unpinning needs a usable bundle: move it and release the pin in one step.
    activate_bundle(registry, "c", alias="prod", pin=False)
    assert "alias-pinned-unusable" not in {f.code for f in verify_registry(registry).findings}


# --- rollback, listing, deletion -------------------------------------------------------------


def test_rollback_per_alias(registry: Path) -> None:
    activate_bundle(registry, "b", alias="canary")
    activate_bundle(registry, "c", alias="canary")
    active_bytes = (registry / ACTIVE_FILE).read_bytes()
    plan = plan_rollback(registry, alias="canary")
    assert plan.alias == "canary" and plan.target_model_id == "b"
    pointer = execute_rollback(registry, plan, message="c regressed")
    assert pointer.model_id == "b"
    assert read_active_history(registry, alias="canary")[-1].message == "c regressed"
    assert (registry / ACTIVE_FILE).read_bytes() == active_bytes
    data = run_json("model", "rollback", "--models-dir", registry, "--alias", "canary")
    assert data["alias"] == "canary" and data["to"] == "c"


def test_aliases_command_and_train_list(registry: Path) -> None:
    activate_bundle(registry, "b", alias="challenger")
    activate_bundle(registry, "a", alias="staging", pin=True)
    infos = run_json("model", "aliases", "--models-dir", registry)
    assert [(i["name"], i["model_id"], i["pinned"]) for i in infos] == [
        ("active", "a", False),
        ("challenger", "b", False),
        ("staging", "a", True),
    ]
    assert all(i["last_moved_at"] and not i["broken"] for i in infos)
    rows = {r["model_id"]: r for r in run_json("train", "list", "--models-dir", registry)}
    assert rows["a"]["aliases"] == ["active", "staging"] and rows["a"]["active"] is True
    assert rows["b"]["aliases"] == ["challenger"] and rows["b"]["active"] is False
    assert rows["c"]["aliases"] == []
    table = run("train", "list", "--models-dir", registry).stdout
    assert "aliases" in table and "challenger" in table
    assert [r.aliases for r in list_rows(registry) if r.model_id == "a"] == [["active", "staging"]]
    human = run("model", "aliases", "--models-dir", registry).stdout
    assert "challenger" in human and "yes" in human


def test_delete_alias_archives_its_history(registry: Path) -> None:
    activate_bundle(registry, "b", alias="canary")
    active_bytes = (registry / ACTIVE_FILE).read_bytes()
    result = run(
        "model", "alias", "delete", "canary", "--models-dir", registry, "--message", "done"
    )
    assert result.exit_code == 0, result.stderr
    assert "Deleted alias canary" in result.stdout
    assert not (registry / ".aliases" / "canary.json").exists()
    assert not (registry / ".aliases" / "canary_history.jsonl").exists()
    [archive] = (registry / ".aliases").glob("canary_history.deleted-*.jsonl")
    lines = archive.read_text().splitlines()
    assert json.loads(lines[0])["new"]["model_id"] == "b"
    record = json.loads(lines[-1])
    assert record["deleted"]["model_id"] == "b" and record["message"] == "done"
    assert (registry / ACTIVE_FILE).read_bytes() == active_bytes
    assert [i.name for i in list_aliases(registry)] == ["active"]
    # A new alias of the same name starts a fresh history.
    activate_bundle(registry, "c", alias="canary")
    [entry] = read_active_history(registry, alias="canary")
    assert entry.old is None
    assert verify_registry(registry).healthy


def test_active_cannot_be_deleted_and_unknown_aliases_are_reported(registry: Path) -> None:
    before = tree_contents(registry)
    line = one_sentence_error(run("model", "alias", "delete", "active", "--models-dir", registry))
    assert "cannot be deleted" in line
    line = one_sentence_error(run("model", "alias", "delete", "nope", "--models-dir", registry))
    assert "No alias 'nope'" in line
    with pytest.raises(AliasError):
        delete_alias(registry, "active")
    assert tree_contents(registry) == before


def test_no_activate_leaves_every_pointer_alone(
    registry: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    activate_bundle(registry, "b", alias="canary")
    state = {p: p.read_bytes() for p in [registry / ACTIVE_FILE, registry / HISTORY_FILE]} | {
        p: p.read_bytes() for p in (registry / ".aliases").iterdir()
    }
    candidate = make_bundle("d", parent=tmp_path, macro_f1=0.99, seed=4)
    data = run_json("model", "promote", candidate, "--models-dir", registry, "--no-activate")
    assert data["active_updated"] is False and data["activate"] is False
    assert "without activating" in data["explanation"]
    assert (registry / "d").is_dir()
    for path, raw in state.items():
        assert path.read_bytes() == raw


# --- retention -------------------------------------------------------------------------------


def test_prune_never_deletes_an_aliased_bundle(registry: Path, make_bundle: BundleFactory) -> None:
    make_bundle("old", macro_f1=0.5, seed=6)
    make_bundle("older", macro_f1=0.4, seed=7)
    make_bundle("gone", macro_f1=0.3, seed=8)
    activate_bundle(registry, "old", alias="canary")
    activate_bundle(registry, "older", alias="legacy")
    activate_bundle(registry, "gone", alias="legacy")
    plan = plan_prune(registry, keep=1, keep_history=1)
    actions = {d.model_id: (d.action, d.reasons) for d in plan.decisions}
    assert actions["old"][0] == "keep"
    assert any("alias 'canary'" in r for r in actions["old"][1])
    assert actions["gone"][0] == "keep"
    # 'older' is named by legacy's last history entry (its ``old``): a rollback target.
    assert actions["older"][0] == "keep"
    assert actions["b"][0] == "delete"
    execute_prune(plan)
    assert (registry / "old").is_dir() and (registry / "gone").is_dir()
    assert not (registry / "b").exists()
    # Deleting an alias releases what only it protected.
    delete_alias(registry, "canary")
    plan = plan_prune(registry, keep=1, keep_history=1)
    assert {d.model_id: d.action for d in plan.decisions}["old"] == "delete"


# --- symlinks and confinement -------------------------------------------------------------


def test_symlinked_alias_directory_is_refused(registry: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (registry / ALIAS_DIR).symlink_to(outside)
    bundle = read_bundle(registry / "b")
    assert bundle is not None
    with pytest.raises(RegistryFileError, match="symlink"):
        write_active_atomic(registry, bundle, alias="canary")
    assert list(outside.iterdir()) == []
    (outside / "canary.json").write_text((registry / ACTIVE_FILE).read_text())
    assert read_active(registry, alias="canary") is None
    assert [i.name for i in list_aliases(registry)] == ["active"]
    report = verify_registry(registry)
    assert "registry-file-symlink" in {f.code for f in report.findings}
    line = one_sentence_error(
        run("model", "set-active", "--models-dir", registry, "--alias", "canary", "--model-id", "b")
    )
    assert "symlink" in line


def test_symlinked_alias_files_are_never_written_through(registry: Path, tmp_path: Path) -> None:
    activate_bundle(registry, "b", alias="canary")
    victim = tmp_path / "victim.json"
    victim.write_text("precious")
    pointer = registry / ".aliases" / "canary.json"
    pointer.unlink()
    pointer.symlink_to(victim)
    with pytest.raises(RegistryFileError, match="symlink"):
        activate_bundle(registry, "c", alias="canary")
    assert victim.read_text() == "precious"
    history = registry / ".aliases" / "canary_history.jsonl"
    history.rename(tmp_path / "h.jsonl")
    history.symlink_to(tmp_path / "h.jsonl")
    pointer.unlink()
    before = (tmp_path / "h.jsonl").read_bytes()
    with pytest.raises(RegistryFileError, match="symlink"):
        activate_bundle(registry, "c", alias="canary")
    assert (tmp_path / "h.jsonl").read_bytes() == before
    assert "registry-file-symlink" in {f.code for f in verify_registry(registry).findings}


def test_alias_pointer_that_escapes_is_treated_as_absent(registry: Path) -> None:
    (registry / ALIAS_DIR).mkdir()
    (registry / ALIAS_DIR / "canary.json").write_text(
        '{"model_dir": "../../etc", "selected_at": "t", "policy_version": 1}'
    )
    [info] = [i for i in list_aliases(registry) if i.name == "canary"]
    assert info.broken and info.model_id is None
    codes = {f.code for f in verify_registry(registry).findings}
    assert "pointer-escapes" in codes


# --- inference ---------------------------------------------------------------------------------


def test_reloader_follows_its_alias_only(registry: Path) -> None:
    activate_bundle(registry, "b", alias="canary")
    loaded: list[Path] = []

    def loader(path: Path) -> str:
        loaded.append(path)
        return path.name

    reloader = ActiveModelReloader(registry, loader, check_interval_s=0.0, alias="canary")
    assert reloader.check_reload() == "b"
    activate_bundle(registry, "c")  # the active pointer moves: not ours
    assert reloader.check_reload() is None
    activate_bundle(registry, "c", alias="canary")
    assert reloader.check_reload() == "c"
    assert loaded == [registry / "b", registry / "c"]
    assert resolve_model_dir(None, registry, alias="canary") == registry / "c"
    assert resolve_model_dir(None, registry) == registry / "c"
    with pytest.raises(AliasNameError):
        ActiveModelReloader(registry, loader, alias="../x")


def test_watcher_reloads_when_its_alias_moves(registry: Path) -> None:
    import threading

    from taskclf.infer import ActiveModelWatcher

    pytest.importorskip("watchfiles")
    activate_bundle(registry, "b", alias="canary")
    loaded = threading.Event()

    def on_reload(name: str) -> None:
        if name == "c":
            loaded.set()

    # A huge interval: only the watcher (on .aliases/canary.json) can trigger the reload.
    reloader = ActiveModelReloader(
        registry, lambda p: p.name, check_interval_s=3600, alias="canary"
    )
    with ActiveModelWatcher(reloader, on_reload=on_reload, fallback_interval_s=1.0):
        activate_bundle(registry, "c", alias="canary")
        assert loaded.wait(timeout=30)
    assert reloader.current == "c"
    active = read_active(registry)
    assert active is not None and active.model_id == "a"


def test_verify_and_prune_look_inside_aliases(registry: Path) -> None:
    activate_bundle(registry, "b", alias="canary")
    temp = registry / ALIAS_DIR / ".canary.json.abc123.tmp"
    temp.write_text("{")
    codes = {f.code for f in verify_registry(registry).findings}
    assert "leftover-temp-file" in codes
    old = 1_000_000_000
    os.utime(temp, (old, old))
    plan = plan_prune(registry, keep=3)
    assert temp in plan.leftovers
    execute_prune(plan)
    assert not temp.exists()
    assert (registry / ALIAS_DIR / "canary.json").exists()


def test_alias_dir_that_is_a_file_is_reported_and_refused(registry: Path) -> None:
    (registry / ALIAS_DIR).write_text("not a directory")
    assert "alias-dir-unusable" in {f.code for f in verify_registry(registry).findings}
    with pytest.raises(RegistryFileError, match="not a directory"):
        activate_bundle(registry, "b", alias="canary")
    assert (registry / ALIAS_DIR).read_text() == "not a directory"


def test_history_of_an_alias_is_verified_like_active(registry: Path) -> None:
    activate_bundle(registry, "b", alias="canary")
    activate_bundle(registry, "c", alias="canary")
    history = registry / ALIAS_DIR / "canary_history.jsonl"
    with history.open("ab") as out:
        out.write(b'{"at": "torn')
    report = verify_registry(registry)
    messages = [f.message for f in report.findings if f.code == "history-line-invalid"]
    assert len(messages) == 1 and "canary_history.jsonl" in messages[0]
    # Only the last whole entry counts; the torn line is skipped, and the next write
    # still starts on a line of its own.
    assert [e.new.model_id for e in read_active_history(registry, alias="canary")] == ["b", "c"]
    activate_bundle(registry, "a", alias="canary")
    assert [e.new.model_id for e in read_active_history(registry, alias="canary")][-1] == "a"


def test_cli_promote_and_resolve_per_alias(
    registry: Path, make_bundle: BundleFactory, tmp_path: Path
) -> None:
    active_bytes = (registry / ACTIVE_FILE).read_bytes()
    candidate = make_bundle("d", parent=tmp_path, macro_f1=0.99, seed=4)
    data = run_json(
        "model", "promote", candidate, "--models-dir", registry, "--alias", "challenger",
        "--message", "nightly",
    )  # fmt: skip
    assert data["alias"] == "challenger" and data["active_updated"] is True
    assert data["explanation"].startswith("The pointer of alias challenger moved from nothing")
    assert (registry / ACTIVE_FILE).read_bytes() == active_bytes
    assert read_active_history(registry, alias="challenger")[-1].message == "nightly"
    human = run("model", "resolve", "--models-dir", registry, "--alias", "challenger")
    assert human.exit_code == 0, human.stderr
    assert "Model of alias challenger" in human.stdout
    assert "Followed the pointer of alias challenger" in human.stdout


def test_verify_shows_aliases_and_pins(registry: Path) -> None:
    plain = run("model", "verify", "--models-dir", registry)
    assert "Aliases:" not in plain.stdout
    activate_bundle(registry, "b", alias="prod", pin=True)
    result = run("model", "verify", "--models-dir", registry)
    assert "Aliases: active -> a; prod -> b (pinned)." in result.stdout
    data = run_json("model", "verify", "--models-dir", registry)
    assert data["aliases"] == [
        {"name": "active", "model_id": "a", "pinned": False},
        {"name": "prod", "model_id": "b", "pinned": True},
    ]
    assert {b["model_id"]: b["aliases"] for b in data["bundles"]} == {
        "a": ["active"],
        "b": ["prod"],
        "c": [],
    }


def test_pinning_twice_or_re_setting_writes_nothing(registry: Path) -> None:
    first = set_alias_pin(registry, True)
    assert first.changed and first.pointer.pinned
    before = (registry / HISTORY_FILE).read_bytes(), (registry / ACTIVE_FILE).read_bytes()
    again = set_alias_pin(registry, True)
    assert not again.changed and again.pointer == first.pointer
    activate_bundle(registry, "a")  # same bundle, pin state kept: nothing to record
    assert ((registry / HISTORY_FILE).read_bytes(), (registry / ACTIVE_FILE).read_bytes()) == before
    result = run("model", "set-active", "--models-dir", registry, "--pin")
    assert "already pinned at a; nothing was changed" in result.stdout
    # Unpinning the same bundle is a change.
    activate_bundle(registry, "a", pin=False)
    pointer = read_active(registry)
    assert pointer is not None and not pointer.pinned
    assert len(read_active_history(registry)) == 3


def test_verify_hashes_every_aliased_sealed_bundle(registry: Path) -> None:
    from taskclf.model_registry.manifest import seal_registry_bundle

    seal_registry_bundle(registry, "b")
    activate_bundle(registry, "b", alias="canary")
    artifact = registry / "b" / "model.txt"
    raw = artifact.read_bytes()
    # Same size, different bytes: only hashing notices.
    artifact.write_bytes(bytes([raw[0] ^ 1]) + raw[1:])
    findings = verify_registry(registry).findings
    assert any(f.code == "bundle-manifest-mismatch" and f.model_id == "b" for f in findings)
    # A tampered sealed bundle is refused for any alias, and nothing is written.
    before = (registry / ".aliases" / "canary.json").read_bytes()
    with pytest.raises(ValueError, match="manifest"):
        activate_bundle(registry, "b", alias="staging")
    assert not (registry / ".aliases" / "staging.json").exists()
    assert (registry / ".aliases" / "canary.json").read_bytes() == before
