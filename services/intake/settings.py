from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings
from shared.web.links import DEV_REQUESTER_LINK_SECRET


class IntakeSettings(ServiceSettings):
    http_port: int = Field(8001, ge=0, le=65535)
    bootstrap_api_key: SecretStr | None = Field(
        None,
        description="An API key with every scope, installed at start (local run, first admin).",
    )
    triage_rules: Path | None = Field(
        None, description="Triage rules YAML; the packaged rules when empty."
    )
    requester_link_secret: SecretStr = Field(
        SecretStr(DEV_REQUESTER_LINK_SECRET),
        description="HMAC key of the requester's ticket status links (/t/{token}); the same "
        "value as notifier's, which mails the links. Set it in every real deployment.",
    )
    sla_monitor_url: str = Field(
        "http://127.0.0.1:8002",
        description="sla_monitor's API; the status page shows the promised next reply time "
        "from it (and is shown without it when sla_monitor does not answer).",
    )
