"""One benchmark at a time on this machine: the lock file every benchmark waits for and holds."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

LOCK = Path("/tmp/atlaslink-benching")


@contextmanager
def benchmark_lock(name: str, expected_seconds: float, wait_minutes: float) -> Iterator[None]:
    """Wait (polling every 5 s, at most ``wait_minutes``) while another benchmark holds the lock
    file, then hold it until the block ends, also when the process is terminated. The file is
    created with O_EXCL, so two waiting benchmarks never both take it."""
    deadline = time.monotonic() + wait_minutes * 60
    last_note = 0.0
    while True:
        end = datetime.now(UTC) + timedelta(seconds=expected_seconds)
        try:
            fd = os.open(LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if time.monotonic() > deadline:
                sys.exit(f"{LOCK} still exists after {wait_minutes:g} min: another benchmark runs")
            if time.monotonic() - last_note > 60:
                try:
                    holder = LOCK.read_text().strip()
                except OSError:
                    holder = "?"
                print(f"# waiting: {LOCK} exists ({holder})", file=sys.stderr, flush=True)
                last_note = time.monotonic()
            time.sleep(5)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{name} until about {end:%Y-%m-%d %H:%M:%S} UTC\n")
        break
    # finally blocks run on SystemExit, so a terminated run still gives the lock back
    # (signal handlers can be set only in the main thread).
    main = threading.current_thread() is threading.main_thread()
    try:
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)) if main else None
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
        LOCK.unlink(missing_ok=True)
