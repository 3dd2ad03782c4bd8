from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class SlaSettings(ServiceSettings):
    http_port: int = Field(8002, ge=0, le=65535)
    sla_policies: Path | None = Field(
        None, description="SLA policy YAML; deploy/sla_policies.yaml when empty."
    )
    timer_interval_s: float = Field(
        0.2, gt=0, le=10, description="How often due clocks are looked for when idle."
    )
    open_clocks_refresh_s: float = Field(
        300.0,
        ge=0,
        description="How often the open-clocks gauge is recounted, 0 never. The count visits"
        " every open clock: an index count on MongoDB, ~20 µs a clock on SecantusDB, which"
        " serves nothing else meanwhile.",
    )
    at_risk_clocks_refresh_s: float = Field(
        30.0,
        gt=0,
        description="How often the at-risk gauge (warned, not breached) is recounted.",
    )
    operator_api_key: SecretStr | None = Field(
        None,
        description="When set, operator actions (POST /v1/tickets/{id}/sla/reapply) need"
        " `Authorization: Bearer <key>`; without it they are open to whoever reaches the port.",
    )
