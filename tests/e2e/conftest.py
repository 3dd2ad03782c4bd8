"""Every service as a real process on the session's broker and MongoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared.infra import local_secrets
from shared.infra.mailcatcher import MailCatcher
from shared.infra.processes import ManagedProcess, free_port
from shared.infra.services import EVERY_SERVICE, inbound_mail_env, service_process

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from shared.infra.modes import Infra

API_KEY = "hs_e2e_0123456789abcdefghijklmnopqrstuvwxyz"
SECRETS = {**local_secrets.generate(), "bootstrap_api_key": API_KEY}
SLA_READ = {"Authorization": f"Bearer {SECRETS['sla_read_api_key']}"}


@pytest.fixture
def inbound_smtp_port() -> int:
    """Where the mail gateway of `services` listens for mail (SMTP on 127.0.0.1)."""
    return free_port()


@pytest.fixture
def services(
    request: pytest.FixtureRequest,
    infra: Infra,
    uid: str,
    mail: MailCatcher,
    tmp_path: Path,
    inbound_smtp_port: int,
) -> Iterator[dict[str, str]]:
    """service name → its base URL; topics and databases prefixed with `t<uid>.`; each
    service logs to `tmp_path/<name>.log`. Parametrize indirectly with a dict to add
    environment (`{"HELPSTREAM_LOG_LEVEL": "DEBUG"}`)."""
    extra_env: dict[str, str] = getattr(request, "param", {})
    ports = {name: free_port() for name in EVERY_SERVICE}
    env = {
        "HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
        "HELPSTREAM_MONGO_URL": infra.mongo_url,
        "HELPSTREAM_TOPIC_PREFIX": f"t{uid}.",
        "HELPSTREAM_MONGO_DB_PREFIX": f"t{uid}",
        "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "HELPSTREAM_SMTP_PORT": str(mail.port),
        "HELPSTREAM_STATUS_PAGE_BASE_URL": f"http://127.0.0.1:{ports['intake']}",
        "HELPSTREAM_FEEDBACK_URL": f"http://127.0.0.1:{ports['feedback']}",  # exports
        "HELPSTREAM_NOTIFIER_URL": f"http://127.0.0.1:{ports['notifier']}",
        **inbound_mail_env(inbound_smtp_port),
        **extra_env,
    }
    started: list[ManagedProcess] = []
    urls: dict[str, str] = {}
    try:
        for name, port in ports.items():
            process = service_process(name, port, env, tmp_path, secrets=SECRETS)
            process.start(timeout=60)
            started.append(process)
            urls[name] = f"http://127.0.0.1:{port}"
        yield urls
    finally:
        for process in started:
            process.stop()
