"""The services as child processes (the local run and end-to-end tests)."""

from __future__ import annotations

import sys
import urllib.request
from typing import TYPE_CHECKING

from shared.infra.local_secrets import service_env
from shared.infra.processes import ManagedProcess

if TYPE_CHECKING:
    from pathlib import Path

# The four services of the event flow, and every service of a run: those and the mail
# gateway, which receives mail, publishes commands and consumes only erasure requests.
SERVICES: dict[str, int] = {"intake": 8001, "sla_monitor": 8002, "feedback": 8003, "notifier": 8004}
EVERY_SERVICE: dict[str, int] = {**SERVICES, "mail_gateway": 8005}
INBOUND_MAIL_ADDRESS = "support@helpstream.local"  # the gateway's default; notifier's Reply-To


def inbound_mail_env(inbound_smtp_port: int) -> dict[str, str]:
    """What a local run sets so that notifier's mail says "reply to this email" and the
    mail gateway reads the replies: one support address, the gateway's SMTP port."""
    return {
        "HELPSTREAM_INBOUND_MAIL_ADDRESS": INBOUND_MAIL_ADDRESS,
        "HELPSTREAM_INBOUND_SMTP_PORT": str(inbound_smtp_port),
    }


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def service_process(
    name: str,
    port: int,
    env: dict[str, str],
    log_dir: Path,
    *,
    secrets: dict[str, str],
    wait_ready: bool = True,
) -> ManagedProcess:
    """`python -m services.<name>`; ready once /readyz (or /healthz) answers 200.

    `secrets` holds every secret of the run (`shared.infra.local_secrets`); the process
    gets only those its service uses."""
    probe = "readyz" if wait_ready else "healthz"
    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", f"services.{name}"],
        log_path=log_dir / f"{name}.log",
        ready=lambda: http_ok(f"http://127.0.0.1:{port}/{probe}"),
        env={**env, **service_env(name, secrets), "HELPSTREAM_HTTP_PORT": str(port)},
    )
