from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = Field(8001, ge=0, le=65535)
    bootstrap_api_key: SecretStr | None = Field(
        None,
        description="An API key with every scope, installed at start (local run, first admin).",
    )
    triage_rules: Path | None = Field(
        None, description="Triage rules YAML; the packaged rules when empty."
    )
