"""feedback wiring: the ticket-event consumer."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from services.feedback.handlers import on_ticket_events
from services.feedback.settings import FeedbackSettings
from services.feedback.store import SolveStore
from shared.runtime import ServiceRuntime, service_app

SERVICE = "feedback"


def create_app(
    settings: FeedbackSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    settings = settings or FeedbackSettings()
    runtime = runtime or ServiceRuntime(SERVICE, settings)

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        store = SolveStore(rt.db)
        await store.ensure_indexes()

        async def handle(records: Any) -> Any:
            return await on_ticket_events(records, store)

        rt.add_consumer("tickets", [rt.topics.tickets], handle)

    return service_app(
        runtime, title="helpstream feedback", description="Surveys and CSAT.", setup=setup
    )
