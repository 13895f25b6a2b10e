"""``ovseg view`` started as a user starts it: a subprocess on a free port, used once it says it serves."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_viewer(
    command: Sequence[str], *, timeout: float = 120, cwd: Path | None = None
) -> Iterator[tuple[int, str]]:
    """Run ``command --port PORT`` and yield ``(PORT, what it printed up to "ovseg-view: serving")``;
    it is stopped afterwards. A viewer that exits first fails with its output; one that hangs
    without a word is killed after ``timeout`` seconds (and fails the same way)."""
    port = free_port()
    proc = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd
    )
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        lines = []
        for line in proc.stdout:  # ends when the process exits (a crash fails at once)
            lines.append(line)
            if "ovseg-view: serving" in line:
                break
        text = "".join(lines)
        assert proc.poll() is None, f"{' '.join(map(str, command))} exited with {proc.returncode}:\n{text}"
        yield port, text
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.wait(20)
