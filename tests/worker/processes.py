"""Real processes for the worker tests, outside pytest's fixtures: a private Redis, a
``grait worker`` process, the running job children, and a bounded ``wait_for``.

``tests/worker/conftest.py`` builds its fixtures on these.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned); fail after
    ``timeout`` seconds with ``what`` in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RedisServer:
    """A private, non-persistent Redis on ``port``; ``kill``/``start`` to simulate an outage."""

    port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        client = redis.Redis(port=self.port, socket_timeout=1)
        wait_for(lambda: _pings(client), 10, f"redis on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class Worker:
    """A ``grait worker`` process (own session, so a group kill reaches embedded beat)."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.env, self.log, self.args = env, log, args
        self.process: subprocess.Popen | None = None

    def start(self, **env: str) -> Worker:
        """Start it (extra ``GRAIT_*`` variables in ``env``); returns once it consumes."""
        offset = self.log.stat().st_size if self.log.exists() else 0
        command = [sys.executable, "-m", "grait_cli.main", "worker", *self.args]
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                command,
                env={**self.env, **env},
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_for(lambda: b" ready." in self.log.read_bytes()[offset:], 60, f"{self.args} ready")
        return self

    def kill(self) -> None:
        """SIGKILL the main process only (its job child must die by PDEATHSIG)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of the whole group after 20 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)


def job_children(job_id: str | None = None) -> list[int]:
    """Pids of running ``python -m worker.child`` processes (of ``job_id`` if given)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"worker.child" in argv and state != "Z":
            if job_id is None or job_id.encode() in argv:
                found.append(int(entry.name))
    return found
