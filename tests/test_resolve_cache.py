"""The resolution cache (issue 13, start-up): a repeated health check without pydantic.

``taskclf model resolve`` on a healthy pointer stores its answer with the stat
key of every file the answer came from; the next identical request is
answered from it only while every one of those files is unchanged. These
tests check that it is used (the answering process never imports pydantic),
that it is never trusted over the files (a Hypothesis sequence of changes,
same-size rewrites that keep the mtime included), and that a damaged, foreign
or disabled cache only costs speed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskclf.cli.resolving import run_resolve
from taskclf.model_registry import read_bundle, write_active_atomic
from taskclf.model_registry import resolve_cache as rc
from taskclf.model_registry.caching import CACHE_DIR_ENV, RACY_WINDOW_NS, tree_key
from taskclf.samples import write_bundle

SCRIPT = str(Path(sys.executable).with_name("taskclf"))


def _settle() -> None:
    """Let every file written so far leave the racy window (see taskclf.model_registry.caching)."""
    time.sleep(RACY_WINDOW_NS / 1e9 * 1.5)


def _registry(models: Path) -> Path:
    models.mkdir()
    write_bundle(models / "a", seed=1, macro_f1=0.7)
    write_bundle(models / "b", seed=2, macro_f1=0.9)
    _point(models, "a")  # not the best: a scan (a miss that repairs) would pick b
    return models


def _point(models: Path, name: str, alias: str = "active") -> None:
    bundle = read_bundle(models / name)
    assert bundle is not None
    write_active_atomic(models, bundle, alias=alias)


@contextlib.contextmanager
def _env(name: str, value: str | None) -> Iterator[None]:
    saved = os.environ.get(name)
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def _resolve(models: Path, alias: str = "active", *, cached: bool = True) -> tuple[int, str]:
    """``taskclf model resolve --json`` in this process: its status and stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        if not cached:
            stack.enter_context(_env(CACHE_DIR_ENV, ""))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        status = run_resolve(models, alias, None, json_mode=True)
    return status, out.getvalue()


def _same_size_rewrite(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` (same length) in place, and put the mtime back."""
    assert len(old) == len(new)
    info = path.stat()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))


def test_a_repeated_resolve_is_answered_without_pydantic(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    first = subprocess.run(
        [SCRIPT, "model", "resolve", "--json", "--models-dir", str(models)],
        capture_output=True,
        text=True,
        check=True,
    )
    probe = (
        "import sys\n"
        "from taskclf.cli.entry import main\n"
        f"sys.argv = ['taskclf', 'model', 'resolve', '--json', '--models-dir', {str(models)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    status = exc.code\n"
        "print('pydantic' in sys.modules, status, file=sys.stderr)\n"
    )
    again = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert again.stderr.strip() == "False 0"
    assert again.stdout == first.stdout
    assert json.loads(again.stdout)["active"]["model_id"] == "a"


def test_the_answer_from_the_cache_is_the_answer_of_a_full_resolution(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _point(models, "b", alias="canary")
    (models / "registry.toml").write_text(
        'labels = ["Build", "Debug", "Review", "Write", "ReadResearch", "Communicate", '
        '"Meet", "BreakIdle"]\n'
    )
    _settle()
    for alias in ("active", "canary"):
        fresh = _resolve(models, alias, cached=False)
        assert _resolve(models, alias) == fresh  # stores
        assert rc.lookup(models, alias, None) is not None
        assert _resolve(models, alias) == fresh  # answered from the cache
    text = [SCRIPT, "model", "resolve", "--models-dir", str(models)]
    # Explicit environments: the C environment of a test process may differ from os.environ.
    stored = subprocess.run(text, capture_output=True, text=True, env={**os.environ})
    no_cache = {**os.environ, CACHE_DIR_ENV: ""}
    off = subprocess.run(text, capture_output=True, text=True, env=no_cache)
    assert (stored.returncode, stored.stdout, stored.stderr) == (
        off.returncode,
        off.stdout,
        off.stderr,
    )
    assert "Followed the active pointer" in stored.stdout


def test_files_changed_within_the_racy_window_are_not_stored(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    assert _resolve(models)[0] == 0  # the pointer was written just now
    assert rc.lookup(models, "active", None) is None


def test_a_same_size_rewrite_that_keeps_the_mtime_is_seen(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    _resolve(models)
    assert rc.lookup(models, "active", None) is not None
    metadata = models / "a" / "metadata.json"
    schema_hash = json.loads(metadata.read_text())["schema_hash"]
    _same_size_rewrite(metadata, schema_hash, "f" * len(schema_hash))  # now incompatible
    status, out = _resolve(models)
    assert status == 0
    assert json.loads(out)["source"] == "scan"  # not the stored "pointer" answer
    assert json.loads(out)["active"]["model_id"] == "b"


@pytest.mark.parametrize(
    "change",
    [
        "labels-env",
        "registry-toml",
        "aliases-symlink",
        "bundle-replaced",
        "pointer-moved",
    ],
)
def test_every_input_of_the_answer_is_part_of_its_key(tmp_path: Path, change: str) -> None:
    models = _registry(tmp_path / "models")
    alias = "canary" if change == "aliases-symlink" else "active"
    if alias != "active":
        _point(models, "a", alias=alias)
    _settle()
    _resolve(models, alias)
    assert rc.lookup(models, alias, None) is not None
    with contextlib.ExitStack() as stack:
        if change == "labels-env":
            stack.enter_context(_env("TASKCLF_LABELS", "x,y"))
        elif change == "registry-toml":
            (models / "registry.toml").write_text('labels = ["x", "y"]\n')
        elif change == "aliases-symlink":
            shutil.move(models / ".aliases", tmp_path / "elsewhere")
            (models / ".aliases").symlink_to(tmp_path / "elsewhere")
        elif change == "bundle-replaced":
            shutil.copytree(models / "b", tmp_path / "b-copy")
            shutil.rmtree(models / "a")
            shutil.move(tmp_path / "b-copy", models / "a")  # same name, other content
        else:
            _point(models, "b")
        assert rc.lookup(models, alias, None) is None
        assert _resolve(models, alias) == _resolve(models, alias, cached=False)


def test_a_pointer_that_needed_repair_is_never_stored(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    (models / "active.json").write_text("{not json")
    _settle()
    status, out = _resolve(models)
    assert (status, json.loads(out)["pointer_repaired"]) == (0, True)
    assert rc.lookup(models, "active", None) is None


@pytest.mark.parametrize(
    "damage",
    [b"", b"{not json", b"[]", b'{"format": "taskclf-resolve-cache", "version": 99}', b"x" * 2],
)
def test_a_damaged_cache_is_a_miss_and_is_rewritten(tmp_path: Path, damage: bytes) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    fresh = _resolve(models, cached=False)
    path = rc.cache_path(models)
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(damage)
    assert _resolve(models) == fresh
    assert rc.lookup(models, "active", None) is not None  # rewritten whole
    assert json.loads(path.read_bytes())["version"] == rc.VERSION


def test_an_oversized_or_foreign_writable_cache_is_not_believed(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    _resolve(models)
    path = rc.cache_path(models)
    assert path is not None and rc.lookup(models, "active", None) is not None
    # Anyone who may write the file could choose which model a service runs.
    path.chmod(0o666)
    assert rc.lookup(models, "active", None) is None
    path.chmod(0o600)
    assert rc.lookup(models, "active", None) is not None
    path.write_bytes(path.read_bytes() + b" " * rc.MAX_FILE_BYTES)
    assert rc.lookup(models, "active", None) is None


def test_an_empty_cache_dir_setting_turns_it_off(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    with _env(CACHE_DIR_ENV, ""):
        assert rc.cache_path(models) is None
        assert _resolve(models)[0] == 0
        assert rc.lookup(models, "active", None) is None


def test_an_unusable_cache_directory_only_costs_speed(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    fresh = _resolve(models, cached=False)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the cache directory should be\n")
    with _env(CACHE_DIR_ENV, str(blocker)):
        assert _resolve(models) == fresh  # the store fails quietly, the answer is printed
        assert _resolve(models) == fresh
        assert rc.lookup(models, "active", None) is None
    assert blocker.read_text() == "a file where the cache directory should be\n"


def test_a_read_only_registry_is_cached_outside_it(tmp_path: Path) -> None:
    models = _registry(tmp_path / "models")
    _settle()
    before = sorted(p.name for p in models.iterdir())
    models.chmod(0o555)
    try:
        _resolve(models)
        assert rc.lookup(models, "active", None) is not None
        assert sorted(p.name for p in models.iterdir()) == before
    finally:
        models.chmod(0o755)


def test_the_code_key_changes_when_a_source_file_does(tmp_path: Path) -> None:
    tree = tmp_path / "pkg"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "m.py").write_text("x = 1\n")
    (tree / "__pycache__").mkdir()
    before = tree_key(str(tree))
    (tree / "__pycache__" / "m.pyc").write_bytes(b"bytecode")
    assert tree_key(str(tree)) == before  # bytecode is derived from the sources
    (tree / "sub" / "m.py").write_text("x = 2\n")
    assert tree_key(str(tree)) != before


# --- never trusted over the files: random changes between resolutions -----------------

_CHANGES = (
    "settle",
    "settle",
    "point-a",
    "point-b",
    "metadata-same-size",
    "metrics-same-size",
    "delete-a",
    "re-add-a",
    "registry-toml",
    "remove-registry-toml",
    "corrupt-pointer",
)


def _apply(models: Path, change: str) -> None:
    a = models / "a"
    if change == "settle":
        _settle()
    elif change in ("point-a", "point-b") and (models / change[-1]).is_dir():
        with contextlib.suppress(ValueError):  # a bundle made unusable cannot be pointed at
            _point(models, change[-1])
    elif change == "metadata-same-size" and (a / "metadata.json").exists():
        text = (a / "metadata.json").read_text()
        old = json.loads(text)["schema_hash"]
        _same_size_rewrite(a / "metadata.json", old, old[::-1] if old[::-1] != old else "0" * 12)
    elif change == "metrics-same-size" and (a / "metrics.json").exists():
        macro = json.dumps(json.loads((a / "metrics.json").read_text())["macro_f1"])
        swapped = macro[:-1] + ("1" if macro[-1] != "1" else "2")
        _same_size_rewrite(a / "metrics.json", macro, swapped)
    elif change == "delete-a":
        shutil.rmtree(a, ignore_errors=True)
    elif change == "re-add-a" and not a.exists():
        write_bundle(a, seed=1, macro_f1=0.7)
    elif change == "registry-toml":
        (models / "registry.toml").write_text('labels = ["x", "y"]\n')
    elif change == "remove-registry-toml":
        (models / "registry.toml").unlink(missing_ok=True)
    elif change == "corrupt-pointer":
        (models / "active.json").write_text("{not json")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(st.sampled_from(_CHANGES), max_size=8))
def test_an_answer_from_the_cache_always_equals_a_full_resolution(changes: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        models = _registry(Path(scratch) / "models")
        _settle()
        _resolve(models)
        for change in changes:
            _apply(models, change)
            if rc.lookup(models, "active", None) is None:
                _resolve(models)  # a miss resolves (and may repair, and store) as always
                continue
            # A hit must be exactly what resolving the files now says (which, for a
            # healthy pointer, writes nothing, so both see the same registry).
            assert _resolve(models) == _resolve(models, cached=False), change
