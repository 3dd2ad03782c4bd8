"""sla_monitor wiring: the ticket-event consumer and the SLA read API."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.sla_monitor.handlers import on_ticket_events
from services.sla_monitor.settings import SlaSettings
from services.sla_monitor.store import ClockStore
from shared.runtime import ServiceRuntime, service_app

SERVICE = "sla_monitor"


def create_app(
    settings: SlaSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    settings = settings or SlaSettings()
    runtime = runtime or ServiceRuntime(SERVICE, settings)
    holder: dict[str, ClockStore] = {}

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        store = ClockStore(rt.db)
        await store.ensure_indexes()
        holder["store"] = store

        async def handle(records: Any) -> Any:
            return await on_ticket_events(records, store)

        rt.add_consumer("tickets", [rt.topics.tickets], handle)

    app = service_app(
        runtime, title="helpstream sla_monitor", description="SLA clocks per ticket.", setup=setup
    )

    @app.get("/v1/tickets/{ticket_id}/sla", tags=["sla"])
    async def ticket_sla(ticket_id: str) -> dict[str, Any]:
        clocks = await holder["store"].for_ticket(ticket_id)
        return {
            "ticket_id": ticket_id,
            "clocks": [
                {
                    "metric": c["metric"],
                    "state": c["state"],
                    "target_s": c["target_s"],
                    "started_at": c["started_at"],
                    "due_at": c["due_at"],
                }
                for c in clocks
            ],
        }

    return app
