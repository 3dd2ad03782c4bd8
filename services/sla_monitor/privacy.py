"""Requester erasure in sla_monitor: its SLA timers hold ticket ids, priorities and policy
versions, no contact details and no texts, so there is nothing to erase; it still
confirms, so intake knows every service has been asked."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shared.events import RequesterErasureRequested


class SlaEraser:
    async def erase(self, request: RequesterErasureRequested) -> Mapping[str, int]:
        return {}
