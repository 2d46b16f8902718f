"""A real S3 API on 127.0.0.1: moto's server, made to behave like S3 where it matters.

Shared by the tests (in a thread of the test process) and ``bench/s3.py``
(in its own process, ``python -m bench.loopback_s3``, so the server does not
compete with the measured client for the GIL).

moto checks ``If-Match`` / ``If-None-Match`` and then writes, in two steps;
real S3 does both atomically. Serialising moto's request handling restores
that atomicity, so concurrency tests see S3's semantics rather than a race
inside the emulator. Test hooks: :attr:`LoopbackS3.throttle` answers the
next requests with 503 SlowDown, :attr:`LoopbackS3.ignore_conditions` makes
it a store without conditional writes, :attr:`LoopbackS3.requests` counts
requests (also served at ``GET /__requests`` for another process).
"""

from __future__ import annotations

import io
import sys
import threading
import time
from typing import Any

REQUESTS_PATH = "/__requests"


class LoopbackS3:
    """moto's S3 server on 127.0.0.1 and a free port, serving from a thread."""

    def __init__(self, latency_s: float = 0.0) -> None:
        """Start serving.

        Args:
            latency_s: Added to every request before it is handled (outside the
                lock, so concurrent requests wait in parallel), to stand in for
                the round trip to a real store; 0 for the tests.
        """
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        inner = DomainDispatcherApplication(create_backend_app)
        lock = threading.Lock()
        self.requests = 0
        self.throttle = 0
        """Answer this many next requests with 503 SlowDown (throttling)."""
        self.ignore_conditions = False
        """Behave like a store without conditional writes."""

        def app(environ: Any, start_response: Any) -> Any:
            if environ.get("PATH_INFO") == REQUESTS_PATH:
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [str(self.requests).encode()]
            # The body is read before the lock: a client that stalls or drops mid-upload
            # must not hold up every other request.
            if latency_s:
                time.sleep(latency_s)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
            if self.ignore_conditions:
                # A store without conditional writes: the headers are silently dropped.
                environ.pop("HTTP_IF_NONE_MATCH", None)
                environ.pop("HTTP_IF_MATCH", None)
            with lock:
                self.requests += 1
                if self.throttle > 0:
                    self.throttle -= 1
                    start_response("503 Slow Down", [("Content-Type", "application/xml")])
                    return [b"<Error><Code>SlowDown</Code><Message>Reduce rate</Message></Error>"]
                return list(inner(environ, start_response))

        self.server = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler
        )
        self.port = self.server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        self.server.shutdown()
        self.thread.join()


def main() -> None:
    """Serve until stdin closes; the first line printed is the endpoint.

    ``python -m bench.loopback_s3 [LATENCY_MS]``.
    """
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = LoopbackS3(latency_s=float(sys.argv[1]) / 1000 if len(sys.argv) > 1 else 0.0)
    print(server.endpoint, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
