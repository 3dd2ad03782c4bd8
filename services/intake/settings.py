from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    http_port: int = Field(8001, ge=0, le=65535)
    public_base_url: str = Field(
        "http://127.0.0.1:8001", description="Base of links to this service in messages."
    )
