"""notifier wiring: consumers of ticket events, SMTP sender."""

from __future__ import annotations

from fastapi import FastAPI

from services.notifier.handlers import Notifications
from services.notifier.mail import SmtpSender
from services.notifier.settings import NotifierSettings
from services.notifier.store import DeliveryStore
from shared.runtime import ServiceRuntime, service_app

SERVICE = "notifier"


def create_app(
    settings: NotifierSettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    cfg = settings or NotifierSettings()
    runtime = runtime or ServiceRuntime(SERVICE, cfg)

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        store = DeliveryStore(rt.db)
        await store.ensure_indexes()
        notifications = Notifications(
            store, SmtpSender(cfg), rt.clock, rt.registry, cfg.max_parallel_sends
        )
        rt.add_consumer("tickets", [rt.topics.tickets], notifications.on_ticket_events)

    return service_app(
        runtime, title="helpstream notifier", description="Tells users and agents.", setup=setup
    )
