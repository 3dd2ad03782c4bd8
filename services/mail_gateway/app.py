"""mail_gateway wiring: the SMTP server (a runtime worker), the attachment store and route,
/healthz, /readyz and /metrics. The bound SMTP port is `app.state.smtp_port`."""

from __future__ import annotations

import structlog
from fastapi import FastAPI

from services.mail_gateway.attachments import GridFsAttachments, attachment_routes
from services.mail_gateway.gateway import Rules
from services.mail_gateway.metrics import gateway_metrics
from services.mail_gateway.publisher import KafkaPublisher
from services.mail_gateway.settings import MailGatewaySettings
from services.mail_gateway.smtp import GatewayHandler, SmtpServer
from shared.runtime import ServiceRuntime, service_app

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
            rt.kafka, rt.topics, cfg.mail_gateway_api_key.get_secret_value(), rt.clock
        )
        server = SmtpServer(GatewayHandler(rules, cfg, store, publisher, metrics), cfg, metrics)
        app.state.smtp_port = await server.bind()
        app.state.attachments = store
        rt.workers.append(server)
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
