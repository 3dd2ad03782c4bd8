from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class FeedbackSettings(ServiceSettings):
    http_port: int = Field(8003, ge=0, le=65535)
