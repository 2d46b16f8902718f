"""Issue 10 regressions: renamed registries, a too-high --models-dir, oversized history
lines, pointer id disagreements, and the wording fixes (items 1-4, 13, 14, 16, 17).

Each test reproduces a defect found on the landed code with real files and, where the
defect was user-visible, the real ``taskclf`` script in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tree_contents
from taskclf.infer.resolve import ModelResolutionError, resolve_model_dir
from taskclf.model_registry import (
    locate_pointed_bundle,
    read_active,
    read_active_history,
    resolve_active_model,
)
from taskclf.model_registry.activation import plan_rollback
from taskclf.model_registry.errors import PruneError
from taskclf.model_registry.listing import list_rows
from taskclf.model_registry.pointer import ACTIVE_FILE, HISTORY_FILE
from taskclf.model_registry.retention import execute_prune, plan_prune
from taskclf.model_registry.verify import verify_registry
from taskclf.samples import write_bundle

if TYPE_CHECKING:
    from conftest import BundleFactory

Run = Callable[..., subprocess.CompletedProcess[str]]


def _script() -> Path:
    script = Path(sys.executable).parent / "taskclf"
    if not script.exists():
        pytest.skip("the taskclf console script is not installed next to this interpreter")
    return script


def taskclf(*args: str | Path, user: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed CLI (optionally through ``setpriv``) and capture its output."""
    env = {k: v for k, v in os.environ.items() if k not in ("TASKCLF_DEBUG", "COLUMNS")}
    command = [*(user or []), str(_script()), *(str(a) for a in args)]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120, check=False
    )


def history_lines(root: Path) -> int:
    path = root / HISTORY_FILE
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture
def pinned(models_dir: Path, make_bundle: BundleFactory) -> Path:
    """b0 < b1 < b2 by macro F1; the operator pinned b1 then b0 (b0 active, not the best)."""
    make_bundle("b0", macro_f1=0.70, seed=1)
    make_bundle("b1", macro_f1=0.80, seed=2)
    make_bundle("b2", macro_f1=0.90, seed=3)
    for model_id in ("b1", "b0"):
        result = taskclf("model", "set-active", "--model-id", model_id, "--models-dir", models_dir)
        assert result.returncode == 0, result.stderr
    return models_dir


# --- item 1: a registry reached under another name keeps its pin -------------------------


def _reach(registry: Path, how: str) -> Path:
    """The same registry under another name: renamed, via a differently named symlink, copied."""
    elsewhere = registry.parent / "srv"
    elsewhere.mkdir()
    view = elsewhere / "registry"
    if how == "renamed":
        os.rename(registry, view)
    elif how == "symlink":
        view.symlink_to(registry, target_is_directory=True)
    else:
        shutil.copytree(registry, view, symlinks=True)
    return view


@pytest.mark.parametrize("how", ["renamed", "symlink", "copy"])
def test_renamed_registry_keeps_the_pin_and_writes_nothing(pinned: Path, how: str) -> None:
    view = _reach(pinned, how)
    pointer_bytes = (view / ACTIVE_FILE).read_bytes()
    lines = history_lines(view)

    bundle, report = resolve_active_model(view)

    assert bundle is not None
    assert (bundle.model_id, report) == ("b0", None)
    assert bundle.path == view / "b0"
    assert (view / ACTIVE_FILE).read_bytes() == pointer_bytes
    assert history_lines(view) == lines


@pytest.mark.parametrize("how", ["renamed", "symlink", "copy"])
def test_prune_in_renamed_registry_keeps_pinned_bundle_and_history_targets(
    pinned: Path, how: str
) -> None:
    view = _reach(pinned, how)

    plan = plan_prune(view, keep=0, keep_history=10)
    decisions = {d.model_id: d for d in plan.decisions}
    assert decisions["b0"].action == "keep"
    assert decisions["b0"].reasons[0].startswith("active")
    assert decisions["b1"].action == "keep"
    assert any(reason.startswith("history") for reason in decisions["b1"].reasons)
    assert decisions["b2"].action == "delete"

    execute_prune(plan)
    assert sorted(p.name for p in view.iterdir() if p.is_dir()) == ["b0", "b1"]


def test_renamed_registry_rollback_list_and_verify_follow_the_pin(pinned: Path) -> None:
    view = _reach(pinned, "renamed")

    plan = plan_rollback(view)
    assert (plan.current_model_id, plan.target_model_id) == ("b0", "b1")
    assert [row.model_id for row in list_rows(view) if row.active] == ["b0"]
    report = verify_registry(view)
    assert report.active_model_id == "b0"
    assert report.healthy, report.findings


def test_two_processes_under_different_names_alternate_without_history_lines(
    tmp_path: Path,
) -> None:
    """A host (``srv/registry``) and a service (``svc/models``) share one registry."""
    host = tmp_path / "srv" / "registry"
    for name, f1 in (("b0", 0.7), ("b1", 0.9)):
        write_bundle(host / name, macro_f1=f1, seed=int(f1 * 10))
    assert taskclf("model", "set-active", "--model-id", "b0", "--models-dir", host).returncode == 0
    service = tmp_path / "svc" / "models"
    service.parent.mkdir()
    service.symlink_to(host, target_is_directory=True)
    pointer_bytes = (host / ACTIVE_FILE).read_bytes()

    for root in (service, host, service, host):
        result = taskclf("model", "resolve", "--json", "--models-dir", root)
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["active"]["model_id"], data["source"]) == ("b0", "pointer")
        assert "warning" not in result.stderr

    assert (host / ACTIVE_FILE).read_bytes() == pointer_bytes
    assert history_lines(host) == 1


def test_renamed_read_only_registry_resolves_for_a_non_root_user(tmp_path: Path) -> None:
    """The service user cannot write the registry: before, it warned on every call."""
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run as another user")
    # tmp_path is private to root; the service user needs a world-readable tree.
    base = Path(tempfile.mkdtemp(prefix="taskclf-ro-"))
    try:
        base.chmod(0o755)
        host = base / "registry"
        write_bundle(host / "b0", macro_f1=0.7, seed=1)
        write_bundle(host / "b1", macro_f1=0.9, seed=2)
        done = taskclf("model", "set-active", "--model-id", "b0", "--models-dir", host)
        assert done.returncode == 0
        (base / "models").symlink_to(host, target_is_directory=True)
        nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

        result = taskclf("model", "resolve", "--json", "--models-dir", base / "models", user=nobody)

        if result.returncode != 0 and "setpriv" in result.stderr:
            pytest.skip(f"setpriv refused: {result.stderr.strip()}")
        if result.returncode != 0 and "can't open file" in result.stderr:
            pytest.skip(f"the virtualenv is not readable by another user: {result.stderr.strip()}")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["active"]["model_id"], data["source"]) == ("b0", "pointer")
        assert result.stderr == ""
    finally:
        shutil.rmtree(base)


def test_locate_renamed_registry_rules(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    (root / "b0").mkdir(parents=True)
    (root / ".hidden").mkdir()

    assert locate_pointed_bundle(root, "models/b0") == root / "b0"
    assert locate_pointed_bundle(root, "models/b0", model_id="b0") == root / "b0"
    # The pointer's own id must agree with the directory it falls back to.
    assert locate_pointed_bundle(root, "models/b0", model_id="b1") is None
    # Only <name>/<id>, both plain names, and only an existing directory.
    for model_dir in ("models/b9", "a/models/b0", "../b0", "models/..", "models/.hidden", "/b0"):
        assert locate_pointed_bundle(root, model_dir) is None, model_dir
    # A pointer in the registry's own name is located lexically, as before.
    assert locate_pointed_bundle(root, "registry/b9") == root / "b9"


_NAMES = st.sampled_from(["models", "registry", "b0", "b1", ".", "..", "", ".hidden", "x/y"])


def test_locate_always_returns_a_direct_child_or_none() -> None:
    with tempfile.TemporaryDirectory() as base:
        root = Path(base) / "registry"
        for name in ("b0", "b1", ".hidden", "models"):
            (root / name).mkdir(parents=True)

        @settings(max_examples=300, deadline=None)
        @given(
            parts=st.lists(st.one_of(_NAMES, st.text(max_size=6)), min_size=0, max_size=4),
            absolute=st.booleans(),
            model_id=st.one_of(st.none(), _NAMES),
        )
        def check(parts: list[str], absolute: bool, model_id: str | None) -> None:
            model_dir = ("/" if absolute else "") + "/".join(parts)
            located = locate_pointed_bundle(root, model_dir, model_id=model_id)
            if located is not None:
                assert located.parent == root
                assert located.name not in ("", ".", "..")
                assert not located.name.startswith(".")

        check()


# --- item 2: --models-dir one level too high -------------------------------------------


@pytest.fixture
def home(pinned: Path, tmp_path: Path) -> Path:
    """A home-like directory: Documents/, src/ and models/ (a real registry)."""
    (tmp_path / "Documents").mkdir()
    (tmp_path / "Documents" / "taxes.txt").write_text("keep me")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("print('hi')\n")
    return tmp_path


def test_verify_on_the_parent_never_recommends_prune(home: Path) -> None:
    result = taskclf("model", "verify", "--models-dir", home)

    assert result.returncode == 1
    assert "taskclf model prune" not in result.stdout
    assert f"--models-dir {home / 'models'}" in result.stdout
    report = verify_registry(home)
    codes = {(f.code, f.model_id) for f in report.findings}
    assert ("registry-not-bundle", "models") in codes
    assert ("not-a-bundle", "Documents") in codes
    assert not any("taskclf model prune" in f.message for f in report.findings)


def test_prune_refuses_the_parent_of_a_registry(home: Path) -> None:
    before = tree_contents(home)

    with pytest.raises(PruneError, match="does not look like a model registry"):
        plan_prune(home, keep=0, include_invalid=True)
    result = taskclf(
        "model", "prune", "--keep", "0", "--include-invalid", "--yes", "--models-dir", home
    )

    assert result.returncode == 1
    assert "does not look like a model registry" in result.stderr
    assert f"the models directory probably should be {home / 'models'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert tree_contents(home) == before


def test_prune_refuses_a_directory_without_bundles_or_registry_files(tmp_path: Path) -> None:
    (tmp_path / "Documents").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.c").write_text("int main(void) { return 0; }\n")

    with pytest.raises(PruneError, match="does not look like a model registry"):
        plan_prune(tmp_path, keep=0, include_invalid=True)
    assert (tmp_path / "src" / "main.c").exists()


def test_prune_deletes_only_directories_that_look_like_bundles(pinned: Path) -> None:
    notes = pinned / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not a bundle")
    nested = pinned / "old-registry"
    write_bundle(nested / "x", seed=9)
    (nested / ACTIVE_FILE).write_text("{}")
    broken = pinned / "broken"
    broken.mkdir()
    (broken / "metadata.json").write_text("{")

    plan = execute_prune(plan_prune(pinned, keep=0, keep_history=0, include_invalid=True))

    decisions = {d.model_id: d for d in plan.decisions}
    assert decisions["notes"].action == "keep"
    assert decisions["old-registry"].action == "keep"
    assert "registry" in decisions["old-registry"].reasons[0]
    assert decisions["broken"].action == "delete"
    assert notes.is_dir()
    assert (nested / "x").is_dir()
    assert not broken.exists()
    report = verify_registry(pinned)
    by_id = {f.model_id: f for f in report.findings if f.model_id}
    assert by_id["notes"].code == "not-a-bundle"
    assert "taskclf model prune" not in by_id["notes"].message


# --- item 3: a history line larger than the read window ------------------------------------


def _append_huge_line(path: Path, *, terminated: bool) -> None:
    """Append a >16 MiB line (sparse: the file is extended, not written byte by byte)."""
    with path.open("ab") as handle:
        handle.write(b'{"at": "')
        handle.truncate(handle.tell() + 17 * 1024 * 1024)
    if terminated:
        with path.open("ab") as handle:
            handle.write(b"\n")


def test_oversized_torn_tail_does_not_hide_the_history(
    pinned: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _append_huge_line(pinned / HISTORY_FILE, terminated=False)

    with caplog.at_level(logging.WARNING, logger="taskclf.model_registry"):
        entries = read_active_history(pinned)

    assert [e.new.model_id for e in entries] == ["b1", "b0"]
    assert any("larger than" in r.getMessage() for r in caplog.records)
    report = verify_registry(pinned)
    assert not report.healthy
    assert "history-line-oversized" in {f.code for f in report.findings}
    assert plan_rollback(pinned).target_model_id == "b1"
    decisions = {d.model_id: d.action for d in plan_prune(pinned, keep=0).decisions}
    assert decisions == {"b0": "keep", "b1": "keep", "b2": "delete"}


def test_oversized_line_in_the_middle_is_skipped_and_reported(pinned: Path) -> None:
    _append_huge_line(pinned / HISTORY_FILE, terminated=True)
    assert (
        taskclf("model", "set-active", "--model-id", "b2", "--models-dir", pinned).returncode == 0
    )

    entries = read_active_history(pinned)

    assert [e.new.model_id for e in entries] == ["b1", "b0", "b2"]
    report = verify_registry(pinned)
    [oversized] = [f for f in report.findings if f.code == "history-line-oversized"]
    assert "Line 3 " in oversized.message
    assert plan_rollback(pinned).target_model_id == "b0"
    shown = taskclf("model", "history", "--json", "--models-dir", pinned)
    assert [e["to"] for e in json.loads(shown.stdout)] == ["b2", "b0", "b1"]


# --- item 4: the pointer's model_id disagrees with its model_dir ----------------------------


@pytest.fixture
def mislabelled(pinned: Path) -> Path:
    """active.json locates b0 (its model_dir) but claims model_id b2."""
    path = pinned / ACTIVE_FILE
    data = json.loads(path.read_text())
    data["model_id"] = "b2"
    path.write_text(json.dumps(data))
    return pinned


def test_promote_names_the_bundle_resolution_follows(mislabelled: Path, tmp_path: Path) -> None:
    candidate = write_bundle(tmp_path / "cand" / "c9", macro_f1=0.95, seed=7)

    result = taskclf("model", "promote", candidate, "--models-dir", mislabelled)

    assert result.returncode == 0, result.stderr
    assert "moved from b0 to c9" in result.stdout
    shown = json.loads(taskclf("model", "history", "--json", "--models-dir", mislabelled).stdout)
    assert shown[0]["from"] == "b0"


def test_verify_reports_a_pointer_id_disagreement(mislabelled: Path) -> None:
    report = verify_registry(mislabelled)

    assert report.active_model_id == "b0"
    [finding] = [f for f in report.findings if f.code == "pointer-id-mismatch"]
    assert "b2" in finding.message and "b0" in finding.message
    dry = taskclf("model", "rollback", "--dry-run", "--models-dir", mislabelled)
    assert "from b0 to b1" in dry.stdout


# --- item 13: set-active on the already-active bundle -----------------------------------------


def test_set_active_on_the_active_bundle_says_so_and_writes_nothing(pinned: Path) -> None:
    pointer_bytes = (pinned / ACTIVE_FILE).read_bytes()
    lines = history_lines(pinned)

    result = taskclf("model", "set-active", "--model-id", "b0", "--models-dir", pinned)

    assert result.returncode == 0, result.stderr
    assert "already active" in result.stdout
    assert (pinned / ACTIVE_FILE).read_bytes() == pointer_bytes
    assert history_lines(pinned) == lines


# --- item 14: prune and the index ---------------------------------------------------------


def test_prune_refreshes_the_index(pinned: Path) -> None:
    assert taskclf("model", "index", "--models-dir", pinned).returncode == 0

    result = taskclf(
        "model", "prune", "--keep", "0", "--keep-history", "0", "--yes", "--models-dir", pinned
    )

    assert result.returncode == 0, result.stderr
    index = json.loads((pinned / "index.json").read_text())
    listed = {s["model_id"] for s in index["ranked"]} | {e["model_id"] for e in index["excluded"]}
    assert listed == {"b0"}
    read = taskclf("model", "index", "--read", "--models-dir", pinned)
    assert "The index is fresh" in read.stdout


def test_index_read_says_it_shows_only_the_top_rows(
    pinned: Path, make_bundle: BundleFactory
) -> None:
    for number in range(4):
        make_bundle(f"extra{number}", macro_f1=0.5 + number / 100, seed=10 + number)
    assert taskclf("model", "index", "--models-dir", pinned).returncode == 0

    result = taskclf("model", "index", "--read", "--models-dir", pinned)

    assert "showing the top 5 of 7 ranked" in result.stdout


# --- item 16: one warning for a corrupt pointer -----------------------------------------


def test_resolve_with_a_corrupt_pointer_warns_once(pinned: Path) -> None:
    (pinned / ACTIVE_FILE).write_text("{bad")

    result = taskclf("model", "resolve", "--models-dir", pinned)

    assert result.returncode == 0, result.stderr
    assert result.stderr.count("is not JSON") == 1, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "selecting the best bundle" in warnings[0]
    pointer = read_active(pinned)
    assert pointer is not None and pointer.model_id == "b2"


# --- item 17: drop-in wording of resolve_model_dir ----------------------------------------


def test_nothing_eligible_message_matches_the_original_wording(
    models_dir: Path, make_bundle: BundleFactory
) -> None:
    make_bundle("alien", schema_hash="000000000000", seed=1)
    (models_dir / "empty").mkdir()

    with pytest.raises(ModelResolutionError) as caught:
        resolve_model_dir(None, models_dir)

    lines = caught.value.message.splitlines()
    assert lines[0].startswith("No eligible model found")
    [intro] = [n for n, line in enumerate(lines) if "Excluded bundles" in line]
    assert lines[intro + 1 :] == [
        "  - alien: incompatible: schema_hash mismatch",
        "  - empty: invalid: missing metadata.json",
    ]


def test_empty_registry_message_starts_the_same_way(models_dir: Path) -> None:
    with pytest.raises(ModelResolutionError) as caught:
        resolve_model_dir(None, models_dir)
    assert caught.value.message.startswith("No eligible model found")


def _reference_tail(content: bytes, cap: int) -> tuple[bytes, int, list[tuple[int, int]]]:
    """What read_tail must return, computed the obvious (whole-file) way."""
    if len(content) <= cap:
        return content, 0, []
    lines = content.split(b"\n")
    kept: list[bytes] = []
    oversized: list[int] = []
    total = 0
    offsets = [0]
    for line in lines[:-1]:
        offsets.append(offsets[-1] + len(line) + 1)
    skipped = 0
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if len(line) > cap - 1:
            oversized.append(len(kept))
            kept.append(b"")
            continue
        # A line costs its bytes plus the newline before it.
        cost = len(line) + (1 if index > 0 else 0)
        if total + cost > cap:
            skipped = offsets[index + 1] if index + 1 < len(offsets) else len(content)
            break
        kept.append(line)
        total += cost
    count = len(kept)
    sizes = {count - at: len(lines[len(lines) - 1 - at]) for at in oversized}
    return b"\n".join(reversed(kept)), skipped, sorted(sizes.items())


def test_read_tail_matches_a_whole_file_reading() -> None:
    from taskclf.model_registry._fs import read_tail

    with tempfile.TemporaryDirectory() as base:
        path = Path(base) / "log"

        @settings(max_examples=300, deadline=None)
        @given(
            lines=st.lists(st.integers(0, 40), max_size=12),
            trailing=st.booleans(),
            cap=st.integers(2, 30),
        )
        def check(lines: list[int], trailing: bool, cap: int) -> None:
            content = b"\n".join(bytes([65 + n % 26]) * n for n in lines)
            if trailing and content:
                content += b"\n"
            path.write_bytes(content)
            got = read_tail(path, cap)
            assert (got.data, got.skipped, got.oversized) == _reference_tail(content, cap)
            # Memory stays bounded: the cap, plus one newline per oversized line left out.
            assert len(got.data) <= cap + len(got.oversized)

        check()
