"""Real taskmasterd processes for tests: start, wait for the ready line, signal, restart."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

BIN = Path(sys.executable).parent
READY = re.compile(r"^taskmasterd ready name=(\S+) http=(\S+) gossip=(\S+)$")


class Daemon:
    def __init__(self, data_dir: str | Path, *args: str, env: dict | None = None):
        self.data_dir = str(data_dir)
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = self.name = self.gossip = ""
        self.ready_seconds = 0.0
        self.log: deque[str] = deque(maxlen=10_000)  # its stderr, drained so it never blocks on a full pipe
        self._drainer: threading.Thread | None = None

    def command(self) -> list[str]:
        return [str(BIN / "taskmasterd"), "--data-dir", self.data_dir, "--http", "127.0.0.1:0",
                "--bind", "127.0.0.1:0", "--log-level", "warning", *self.args]

    def start(self, timeout: float = 15.0) -> Daemon:
        started = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.env, text=True)
        line = read_line(self.proc, timeout)
        m = READY.match(line.strip())
        if m is None:
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"taskmasterd did not get ready: {line!r} {err}")
        self.ready_seconds = time.monotonic() - started
        self.name, self.url, self.gossip = m.groups()
        self._drainer = threading.Thread(target=self._drain, args=(self.proc.stderr,), daemon=True)
        self._drainer.start()
        return self

    def _drain(self, stream) -> None:
        try:
            for text in iter(stream.readline, ""):
                self.log.append(text)
        except (OSError, ValueError):  # closed under us: nothing more to read
            pass

    @property
    def log_text(self) -> str:
        return "".join(self.log)

    @property
    def base(self) -> str:
        return self.url.rsplit("/mcp", 1)[0]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._drainer is not None:  # the log is complete once the process is gone
            self._drainer.join(5)
        for stream in (self.proc.stdout, self.proc.stderr) if self.proc else ():
            stream.close()


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """One line of the process's stdout, waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            return proc.stdout.readline()
        if proc.poll() is not None:
            return ""
    return ""
