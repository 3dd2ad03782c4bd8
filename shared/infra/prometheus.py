"""Prometheus (Debian's `prometheus` binary) as a child process: the local run and e2e tests.

Not a Python dependency: `make install` installs the Debian package where it is missing.
"""

from __future__ import annotations

import shutil
import urllib.request
from typing import TYPE_CHECKING

from shared.errors import InfraStartError
from shared.infra.processes import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path

INSTALL_HINT = (
    "apt-get install --no-install-recommends prometheus  (Debian/Ubuntu; `make install` does it)"
)


def prometheus_binary() -> str | None:
    """Path of the `prometheus` server binary, or None when it is not installed."""
    return shutil.which("prometheus")


def prometheus_ready(base_url: str) -> bool:
    """Prometheus answers GET /-/ready with 200 once its TSDB and rules are loaded."""
    try:
        with urllib.request.urlopen(f"{base_url}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def prometheus_process(
    config: Path,
    storage: Path,
    port: int,
    log_dir: Path,
    *,
    binary: str | None = None,
    host: str = "127.0.0.1",
) -> ManagedProcess:
    """`prometheus --config.file=… --storage.tsdb.path=… --web.listen-address=host:port`."""
    path = binary or prometheus_binary()
    if path is None:
        raise InfraStartError("prometheus", f"not installed; {INSTALL_HINT}")
    storage.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        name="prometheus",
        argv=[
            path,
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            f"--web.listen-address={host}:{port}",
        ],
        log_path=log_dir / "prometheus.log",
        ready=lambda: prometheus_ready(f"http://{host}:{port}"),
    )
