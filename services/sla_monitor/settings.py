from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class SlaSettings(ServiceSettings):
    http_port: int = Field(8002, ge=0, le=65535)
