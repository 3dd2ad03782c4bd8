"""mail_gateway wiring: the SMTP server (a runtime worker), the attachment store and route,
the erasure consumer (helpstream.tickets, erasure requests only) and its outbox relay,
/healthz, /readyz and /metrics. The bound SMTP port is `app.state.smtp_port`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI

from services.mail_gateway.attachments import GridFsAttachments, attachment_routes
from services.mail_gateway.gateway import Rules
from services.mail_gateway.metrics import gateway_metrics
from services.mail_gateway.privacy import AttachmentEraser
from services.mail_gateway.publisher import KafkaPublisher
from services.mail_gateway.settings import MailGatewaySettings
from services.mail_gateway.smtp import GatewayHandler, SmtpServer
from shared.events import MailRequesterErased
from shared.kafka import decode_events
from shared.privacy import COLLECTION, confirm_erasures, with_erasures
from shared.runtime import ServiceRuntime, service_app

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka.structs import ConsumerRecord

    from shared.kafka import Rejected

SERVICE = "mail_gateway"
log = structlog.get_logger(__name__)


def create_app(
    settings: MailGatewaySettings | None = None, runtime: ServiceRuntime | None = None
) -> FastAPI:
    cfg = settings or MailGatewaySettings()  # secrets from the env
    runtime = runtime or ServiceRuntime(SERVICE, cfg)
    metrics = gateway_metrics(runtime.registry)
    rules = Rules.of(cfg)

    async def setup(rt: ServiceRuntime, app: FastAPI) -> None:
        if cfg.attachments_api_key is None:
            log.warning(
                "attachments_open_by_choice",
                setting="HELPSTREAM_ATTACHMENTS_OPEN",
                hint="anyone reaching the port can download mail attachments",
            )
        store = GridFsAttachments(rt.db)
        await store.ensure_indexes()
        publisher = KafkaPublisher(
            rt.kafka, rt.topics, cfg.mail_gateway_api_key.get_secret_value(), rt.clock, rt.keyring
        )
        server = SmtpServer(GatewayHandler(rules, cfg, store, publisher, metrics), cfg, metrics)
        app.state.smtp_port = await server.bind()
        app.state.attachments = store
        rt.workers.append(server)
        relay = await rt.add_outbox([rt.db[COLLECTION]])  # erasure confirmations
        erasures = confirm_erasures(
            rt, AttachmentEraser(store), MailRequesterErased, rt.topics.mail, relay.wake
        )
        rt.add_consumer(
            "tickets",
            with_erasures(_poison_only, erasures),
            personal_fields=False,  # reads erasure requests only
        )
        log.info("smtp_listening", host=cfg.inbound_smtp_host, port=app.state.smtp_port)

    app = service_app(
        runtime,
        title="helpstream mail_gateway",
        description="Inbound email: SMTP in, ReceiveMail commands and bounce reports out.",
        setup=setup,
    )
    app.include_router(attachment_routes(cfg, metrics))
    return app


build_app = create_app


async def _poison_only(records: Sequence[ConsumerRecord[bytes, bytes]]) -> list[Rejected]:
    """Ticket events are not the gateway's business; like every consumer, it dead-letters
    what it cannot read."""
    return decode_events(records)[1]
