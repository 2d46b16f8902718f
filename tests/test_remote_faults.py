"""An object-store registry under concurrent writers and a failing network.

Real processes against the loopback S3 server; a real TCP proxy that
cuts the connection part-way through an upload.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from taskclf.model_registry import (
    StorageError,
    list_bundles,
    promote_bundle,
    read_active,
    read_active_history,
    verify_registry,
)
from taskclf.model_registry.storage import open_storage
from taskclf.model_registry.storage.s3 import S3Storage
from taskclf.samples import write_bundle

_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taskclf.model_registry import RegistryConflictError, activate, promote_bundle
    from taskclf.samples import write_bundle

    url, number, work = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    changes = 0
    for round in range(4):
        name = f"w{number}_r{round}"
        bundle = write_bundle(work / name, macro_f1=0.5 + (number * 4 + round) / 100)
        if promote_bundle(bundle, url).active_updated:
            changes += 1
        try:
            if activate(url, f"w{number}_r0").changed:
                changes += 1
        except RegistryConflictError:
            pass
    print(changes)
    """
)


@pytest.mark.slow
def test_concurrent_writers_on_one_bucket_keep_one_chain(s3_registry: str, tmp_path: Path) -> None:
    """Several processes promoting and setting at once: every change recorded once, in order."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, s3_registry, str(number), str(tmp_path / str(number))],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for number in range(4)
    ]
    changes = 0
    for writer in writers:
        out, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0
        changes += int(out)
    history = read_active_history(s3_registry)
    # No lost update: one entry per change a writer saw committed, none for the rest.
    assert len(history) == changes
    for before, after in itertools.pairwise(history):
        assert after.old == before.new
    assert history[-1].new == read_active(s3_registry)
    assert len(list_bundles(s3_registry)) == 16
    report = verify_registry(s3_registry)
    assert report.healthy and report.findings == [], report.findings


class _CuttingProxy:
    """Forwards TCP to ``target``; after ``budget`` bytes from clients, drops every connection."""

    def __init__(self, target: tuple[str, int], budget: int) -> None:
        self.target = target
        self.budget = budget
        self.sent = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)

        def pump_down() -> None:
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            finally:
                client.close()

        threading.Thread(target=pump_down, daemon=True).start()
        try:
            while data := client.recv(65536):
                with self.lock:
                    allowed = max(0, self.budget - self.sent)
                    self.sent += len(data)
                if allowed < len(data):
                    upstream.sendall(data[:allowed])
                    break
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown, not just close: the pump thread is blocked in recv on these sockets,
            # and a close alone would not reach the peers while it is.
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_connection_cut_mid_upload_leaves_no_visible_bundle(
    s3_registry: str, s3_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_bundle(tmp_path / "big", macro_f1=0.7)
    (source / "model.txt").write_bytes(os.urandom(2_000_000))
    # Enough for the probe and the first requests, far from the whole model.
    proxy = _CuttingProxy(("127.0.0.1", s3_server.port), budget=300_000)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    try:
        with pytest.raises(StorageError) as caught:
            promote_bundle(source, s3_registry)
    finally:
        proxy.close()
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    message = str(caught.value)
    assert message.startswith(f"Registry {s3_registry}: ") and "\n" not in message
    assert list_bundles(s3_registry) == []
    assert read_active(s3_registry) is None
    assert open_storage(s3_registry).list_files("big/manifest.json") == []


def test_an_endpoint_that_is_down_is_one_sentence(
    s3_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(StorageError, match="check AWS_ENDPOINT_URL") as caught:
        list_bundles(s3_registry)
    assert "\n" not in str(caught.value)


def test_a_credentials_refusal_reads_as_one_sentence(s3_registry: str) -> None:
    """moto's server accepts any key, so the store's refusal text is fed to the translation."""
    storage = S3Storage(s3_registry)
    refusal = Exception(
        "Client error with status 403 Forbidden: <Error><Code>InvalidAccessKeyId</Code>\n..."
    )
    error = storage._fail(refusal, "listing the registry")
    assert str(error) == (
        f"Registry {s3_registry}: the store refused the credentials while listing the registry; "
        "check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
    )


def test_throttling_is_retried_with_backoff(
    s3_registry: str, s3_server: Any, tmp_path: Path
) -> None:
    promote_bundle(write_bundle(tmp_path / "run_a", macro_f1=0.7), s3_registry)
    s3_server.throttle = 3
    try:
        assert [b.model_id for b in list_bundles(s3_registry)] == ["run_a"]
    finally:
        left, s3_server.throttle = s3_server.throttle, 0
    assert left == 0  # every 503 was answered, then retried


def test_a_store_without_conditional_writes_is_refused(
    s3_registry: str, s3_server: Any, tmp_path: Path
) -> None:
    source = write_bundle(tmp_path / "run_a", macro_f1=0.7)
    s3_server.ignore_conditions = True
    try:
        with pytest.raises(StorageError, match="does not support conditional writes") as caught:
            promote_bundle(source, s3_registry)
    finally:
        s3_server.ignore_conditions = False
    assert "\n" not in str(caught.value)
    assert open_storage(s3_registry).list_files() == []
