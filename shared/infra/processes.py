"""A child process with a log file, a readiness probe and a clean stop."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from shared.errors import InfraStartError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PICKED_BELOW = 12_000  # how many ports under the ephemeral range `free_port` picks among


def ephemeral_floor() -> int:
    """The lowest port outgoing connections take their local ports from (Linux's default
    when it cannot be read)."""
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port free right now, for a listener started a little later (tests pick these; the
    local run uses fixed ones).

    Picked at random below the ephemeral range: a port the OS hands out for binding port 0
    comes from that range, and so do the local ports of every outgoing connection, so any
    Kafka or MongoDB client could take it before the listener binds (a mail gateway did,
    starting after four other services)."""
    low = ephemeral_floor()
    first = max(1024, low - PICKED_BELOW)
    for _ in range(200):
        port = first + secrets.randbelow(max(1, low - first))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # all taken: any free one
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL: the port is free once this returns."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)  # a stopped process cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@dataclass
class ManagedProcess:
    """One infrastructure process; `ready` is probed with the real client."""

    name: str
    argv: Sequence[str]
    log_path: Path
    ready: Callable[[], bool]
    env: dict[str, str] | None = None
    detached: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def start(self, timeout: float = 30.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                list(self.argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=self.detached,
            )
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code is not None:
                    raise InfraStartError(
                        self.name, f"exited with code {code}", tail(self.log_path)
                    )
                if self.ready():
                    return
                time.sleep(0.1)
            raise InfraStartError(
                self.name, f"not answering after {timeout:.0f}s", tail(self.log_path)
            )
        except BaseException:
            self.stop()  # never leave a half-started process behind
            raise

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid)
        self.process = None
