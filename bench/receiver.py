"""A partner's HTTP endpoint for the tests and the benchmark: a threaded http.server on loopback
that checks each delivery's HMAC signature, records MessageIDs, and fails on request."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from atlaslink.messages.tasks import verify


class Receiver:
    def __init__(
        self, secret: str, *, fail_first: int = 0, always_fail: bool = False, delay: float = 0.0
    ) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.delay = delay
        self.received: Counter[str] = Counter()
        self.bad_signatures = 0
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's name
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver.lock:
                    receiver.requests += 1
                    n = receiver.requests
                    receiver.headers.append(dict(self.headers.items()))
                ok = verify(
                    receiver.secret,
                    self.headers.get("X-Atlaslink-Timestamp", ""),
                    body,
                    self.headers.get("X-Atlaslink-Signature", ""),
                )
                if not ok:
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(401)
                    return
                if receiver.always_fail or n <= receiver.fail_first:
                    self._answer(503)
                    return
                with receiver.lock:
                    receiver.received[self.headers["X-Atlaslink-Message-Id"]] += 1
                self._answer(200)

            def _answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/inbox"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
