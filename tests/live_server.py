"""Run the real application server (uvicorn in a subprocess) against a given database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def live_server(
    database_url: str,
    log_path: Path,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Start uvicorn on a free port, wait for ``/readyz``, yield the base URL, always stop it.
    ``env`` adds settings (``ATLASLINK_*``) for this server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **(env or {}), "ATLASLINK_DATABASE_URL": database_url}
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "atlaslink.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while not _ready(base):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {proc.returncode}:\n{log_path.read_text()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the server was not ready within {timeout:.0f} s:\n{log_path.read_text()}"
                    )
                time.sleep(0.1)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
