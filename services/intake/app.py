"""intake wiring: HTTP routes and the outbox relay. Thin: logic lives in handlers/domain."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Header, Request, Response

from services.intake.handlers import open_ticket
from services.intake.settings import IntakeSettings
from services.intake.store import TicketStore
from services.intake.views import TicketView
from shared.commands import OpenTicket
from shared.http import ProblemError
from shared.ids import new_id, stable_id
from shared.runtime import ServiceRuntime, service_app

SERVICE = "intake"


def create_app(
    settings: IntakeSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = runtime or ServiceRuntime(SERVICE, settings)
    holder: dict[str, TicketStore] = {}

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        store = TicketStore(rt.db)
        await store.ensure_indexes()
        await rt.add_outbox([store.tickets])
        holder["store"] = store

    app = service_app(
        runtime,
        title="helpstream intake",
        description="Tickets in; ticket events out on helpstream.tickets.",
        setup=setup,
    )

    def store() -> TicketStore:
        return holder["store"]

    @app.post("/v1/tickets", status_code=201, response_model=TicketView, tags=["tickets"])
    async def post_ticket(
        body: OpenTicket,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
        x_correlation_id: Annotated[str | None, Header(max_length=128)] = None,
    ) -> TicketView:
        ticket_id = stable_id("open", idempotency_key) if idempotency_key else None
        opened = await open_ticket(
            body,
            store=store(),
            clock=runtime.clock,
            topics=runtime.topics,
            correlation_id=x_correlation_id or new_id(),
            ticket_id=ticket_id,
        )
        if opened.created and runtime.relay is not None:
            runtime.relay.wake()
        if not opened.created:
            response.status_code = 200
        response.headers["Location"] = f"/v1/tickets/{opened.ticket.id}"
        return TicketView.of(opened.ticket)

    @app.get("/v1/tickets/{ticket_id}", response_model=TicketView, tags=["tickets"])
    async def get_ticket(ticket_id: str) -> TicketView:
        ticket = await store().get(ticket_id)
        if ticket is None:
            raise ProblemError(404, "Ticket not found", f"No ticket {ticket_id!r}.")
        return TicketView.of(ticket)

    return app
