from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    http_port: int = Field(8004, ge=0, le=65535)
    smtp_host: str = Field("127.0.0.1", description="SMTP relay host.")
    smtp_port: int = Field(2525, ge=1, le=65535, description="SMTP relay port.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS.")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(10.0, gt=0)
    mail_from: str = Field("helpstream <support@helpstream.local>", description="From header.")
    max_parallel_sends: int = Field(20, ge=1, description="Concurrent SMTP sends per batch.")
