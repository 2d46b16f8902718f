"""Shared fixtures: real bundle trees in ``tmp_path``."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from bench.loopback_s3 import LoopbackS3

from taskclf.samples import write_bundle

if TYPE_CHECKING:
    from typer.testing import Result

BundleFactory = Callable[..., Path]


def tree_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` (symlinks not followed) with its mode, size and mtime (ns).

    Equal before and after an operation means it created, removed, renamed
    or modified nothing there.
    """
    state: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            state[os.path.relpath(path, root)] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return state


def one_sentence_error(result: Result) -> str:
    """Exit 1, one ``Error:`` line on stderr and no traceback; returns that line."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


Snapshot = dict[str, tuple[str, bytes | str | None]]


def tree_contents(root: Path) -> Snapshot | None:
    """Every entry below ``root``: kind and content (bytes, link target), or None if absent."""
    if not os.path.lexists(root):
        return None
    result: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            path = os.path.join(dirpath, entry)
            key = os.path.relpath(path, root)
            if os.path.islink(path):
                result[key] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                result[key] = ("dir", None)
            else:
                with open(path, "rb") as handle:
                    result[key] = ("file", handle.read())
    return result


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """An empty registry directory named ``models`` (so pointers read ``models/<id>``)."""
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def make_bundle(models_dir: Path) -> BundleFactory:
    """Write a valid bundle ``models_dir/<name>``; keyword arguments go to ``write_bundle``."""

    def factory(name: str, *, parent: Path | None = None, **kwargs: Any) -> Path:
        return write_bundle((parent or models_dir) / name, **kwargs)

    return factory


_DELETE_UNDER_LOCK = textwrap.dedent(
    """
    import shutil, sys
    from pathlib import Path
    from taskclf.model_registry._fs import registry_lock
    root = Path(sys.argv[1])
    with registry_lock(root):
        shutil.rmtree(root / sys.argv[2])
    """
)


def prune_just_before_locking(
    monkeypatch: pytest.MonkeyPatch, module: ModuleType, bundle_name: str
) -> None:
    """Force a race: the next time ``module`` takes the registry lock, another process
    first deletes ``bundle_name`` under that same lock, for real, as a prune would."""
    real_lock = module.registry_lock

    def lock_after_a_concurrent_prune(root: Path, *args: Any, **kwargs: Any) -> Any:
        command = [sys.executable, "-c", _DELETE_UNDER_LOCK, str(root), bundle_name]
        subprocess.run(command, check=True, timeout=120)
        return real_lock(root, *args, **kwargs)

    monkeypatch.setattr(module, "registry_lock", lock_after_a_concurrent_prune)


def change_between_check_and_copy(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[], None]
) -> None:
    """Force a race: run ``change`` (a real change to a candidate) when promotion creates
    its staging directory, after it checked the candidate and before it copies a byte."""
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp_after_a_change(*args: Any, **kwargs: Any) -> str:
        change()
        return str(real_mkdtemp(*args, **kwargs))

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_after_a_change)


# -- object storage: a real S3 API (moto's server) on the loopback interface --


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The loopback S3 server; the AWS environment points every client (and child) at it."""
    import logging

    # One INFO line per request would bury every failure report.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = LoopbackS3()
    names = [*S3_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE", "TASKCLF_CACHE_DIR"]
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(S3_ENV)
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    os.environ.pop("AWS_PROFILE", None)
    # Scans keep an ETag cache and inference a bundle cache; never in the user's home.
    os.environ["TASKCLF_CACHE_DIR"] = str(tmp_path_factory.mktemp("taskclf-cache"))
    try:
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_bucket_counter = iter(range(1_000_000))


def make_bucket(server: Any) -> str:
    """Create a fresh bucket on ``server``; returns its name."""
    import boto3

    name = f"taskclf-{os.getpid()}-{next(_bucket_counter)}"
    client = boto3.client("s3", endpoint_url=server.endpoint, **_boto_credentials())
    client.create_bucket(Bucket=name)
    return name


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": S3_ENV["AWS_REGION"],
    }


@pytest.fixture
def s3_registry(s3_server: Any) -> str:
    """``s3://<a bucket of this test's own>/models``."""
    return f"s3://{make_bucket(s3_server)}/models"


@pytest.fixture(params=["local", "s3"])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each contract test runs twice: on a local directory and on an S3 bucket."""
    if request.param == "local":
        return str(tmp_path / "models")
    server = request.getfixturevalue("s3_server")
    return f"s3://{make_bucket(server)}/models"


@pytest.fixture(autouse=True)
def scan_cache_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Each test's scan cache in a directory of its own (never the user's, never tmp_path)."""
    cache = tmp_path_factory.mktemp("scan-cache")
    monkeypatch.setenv("TASKCLF_CACHE_DIR", str(cache))
    return cache


# Code that runs while tests are collected (test_fuzz builds its templates by scanning)
# comes before every fixture: it scans with no cache, never into the user's.
os.environ["TASKCLF_CACHE_DIR"] = ""


@pytest.fixture(scope="session", autouse=True)
def session_scan_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scan cache directory for module- and session-scoped fixtures, which run first."""
    cache = tmp_path_factory.mktemp("session-scan-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TASKCLF_CACHE_DIR", str(cache))
        yield cache


def sealed_bundle(directory: Path, name: str, f1: float) -> Path:
    """A sealed bundle ``directory/name`` (made by ``save_bundle``) whose macro F1 is ``f1``.

    Its model file is ``<name>.model``. Saved beside ``directory`` and renamed in, as a
    registry never has bundles written into it directly.
    """
    from taskclf.model_registry import save_bundle
    from taskclf.model_registry.authoring import DEFAULT_LABELS
    from taskclf.samples import matrix_for_scores

    runs = directory.parent / f".{directory.name}-runs"
    runs.mkdir(exist_ok=True)
    model = runs / f"{name}.model"
    model.write_bytes(f"weights of {name}\n".encode() * 100)
    matrix = matrix_for_scores(DEFAULT_LABELS, f1)
    assert matrix is not None
    bundle = save_bundle(runs / name, model, schema_version="v1", confusion_matrix=matrix)
    model.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    os.rename(bundle.path, directory / name)
    return directory / name


def run_on_a_pty(
    command: list[str], env: dict[str, str], *, stream: str = "stdout"
) -> tuple[int, bytes, bytes]:
    """Run ``command`` with its ``stream`` ("stdout" or "stderr") on a pseudo-terminal.

    Returns:
        ``(exit status, what reached the terminal, the other stream's bytes)``.
    """
    import pty

    master, slave = pty.openpty()
    on_pty = {"stdout": slave, "stderr": subprocess.PIPE}
    if stream == "stderr":
        on_pty = {"stdout": subprocess.PIPE, "stderr": slave}
    with subprocess.Popen(command, env=env, **on_pty) as proc:  # type: ignore[call-overload]
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        other = (proc.stderr if stream == "stdout" else proc.stdout).read()
        proc.wait()
    os.close(master)
    return proc.returncode, b"".join(chunks), other
