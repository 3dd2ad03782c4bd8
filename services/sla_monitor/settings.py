from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from shared.secrets import Secret, key_or_explicitly_open
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
        3600.0,
        ge=0,
        description="How often the open-clocks gauge, kept from every saved change, is"
        " reconciled with a recount (drift after a crash), 0 never; also at the first start."
        " The recount visits every open clock: an index count on MongoDB, ~20 µs a clock on"
        " SecantusDB, which serves nothing else meanwhile.",
    )
    at_risk_clocks_refresh_s: float = Field(
        30.0,
        gt=0,
        description="How often the at-risk gauge (warned, not breached) is recounted.",
    )
    operator_api_key: Secret | None = Field(
        None,
        description="Operator actions (POST /v1/tickets/{id}/sla/reapply) need"
        " `Authorization: Bearer <key>` (required).",
    )
    operator_routes_open: bool = Field(
        False, description="Leave operator actions open without a key (logged at start)."
    )
    sla_read_api_key: Secret | None = Field(
        None,
        description="GET /v1/tickets/{id}/sla needs `Authorization: Bearer <key>` (required;"
        " intake's status page sends the same value).",
    )
    sla_read_open: bool = Field(
        False, description="Leave GET /v1/tickets/{id}/sla open without a key (logged at start)."
    )

    @model_validator(mode="after")
    def _routes_closed_unless_chosen(self) -> SlaSettings:
        key_or_explicitly_open(
            self.operator_api_key,
            self.operator_routes_open,
            "operator_api_key",
            "operator_routes_open",
        )
        key_or_explicitly_open(
            self.sla_read_api_key, self.sla_read_open, "sla_read_api_key", "sla_read_open"
        )
        return self
