"""The `helpstream` command: its version, and one clear line when a port is taken."""

from __future__ import annotations

import importlib.metadata
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from shared.infra.processes import free_port
from shared.infra.prometheus import prometheus_binary

HELPSTREAM = str(Path(sys.executable).parent / "helpstream")
FLAGS = {
    "--kafka-port": "Kafka",
    "--mongo-port": "MongoDB",
    "--smtp-port": "mail catcher",
    "--prometheus-port": "Prometheus",
}


def helpstream(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPSTREAM_")}
    return subprocess.run(
        [HELPSTREAM, *args],
        env={**env, "HELPSTREAM_INFRA": "embedded"},
        capture_output=True,
        text=True,
        timeout=60,  # the check comes before anything starts: it answers in about a second
        check=False,
    )


def test_version_comes_from_the_package_metadata() -> None:
    result = helpstream("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"helpstream {importlib.metadata.version('helpstream')}"


@pytest.mark.parametrize(("flag", "component"), sorted(FLAGS.items()))
def test_a_taken_port_is_named_in_one_line_with_the_flag_that_moves_it(
    flag: str, component: str, tmp_path: Path
) -> None:
    if flag == "--prometheus-port" and prometheus_binary() is None:
        pytest.skip("without prometheus installed the local run does not use its port")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        ports = {other: str(free_port()) for other in FLAGS}  # the others: free ones
        ports[flag] = str(taken)
        args = [arg for pair in ports.items() for arg in pair]
        result = helpstream("up", "--data-dir", str(tmp_path / "data"), *args)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"port {taken} ({component}) is already in use; choose another with {flag} PORT"
    ]
    assert not (tmp_path / "data").exists()  # nothing was started or written
