"""The SMTP server a relay or MX delivers to, in the service's own event loop.

aiosmtpd's `Controller` runs its own loop in a thread; here the server is created with
`loop.create_server` in the service's loop, so the handler shares the Kafka producer and
MongoDB client with everything else and is stopped with the runtime.

The replies are the ones a relay acts on (RFC 5321, RFC 3463):
- 250 only once the command (or bounce report) is acknowledged by Kafka and the
  attachments are stored: what we accepted is never lost;
- 451 4.3.0 when Kafka or MongoDB is away (or too slow): the relay keeps the mail and
  delivers it again later; the command id is the same, so intake applies it once;
- 550/554 for what can never succeed (not mail, no sender), so the relay tells its sender;
- 550 5.7.1 for a recipient in another domain (never an open relay), 550 5.1.1 for an
  unknown mailbox, 452 4.5.3 past the recipient limit, 552 over the size limit
  (advertised with SIZE), 421 4.7.0 past the connection limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import Counter
from typing import TYPE_CHECKING, Any, AnyStr, Protocol

import structlog
from aiosmtpd.smtp import SMTP

from services.mail_gateway.gateway import (
    Bounce,
    Decision,
    Drop,
    Envelope,
    Receive,
    Refuse,
    check_recipient,
    decide,
)
from shared.kafka import is_transient

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiosmtpd.smtp import Envelope as SmtpEnvelope
    from aiosmtpd.smtp import Session

    from services.mail_gateway.gateway import BounceReport, Kept, Rules
    from services.mail_gateway.metrics import GatewayMetrics
    from services.mail_gateway.settings import MailGatewaySettings

log = structlog.get_logger(__name__)

RETRY_LATER = "451 4.3.0 Temporary failure storing the message; please try again later"
UNREADABLE = "554 5.6.0 The message could not be read"


class AttachmentStore(Protocol):
    async def put(self, kept: Kept) -> bool: ...


class Publisher(Protocol):
    async def command(self, receive: Receive) -> None: ...

    async def bounces(self, reports: Sequence[BounceReport]) -> None: ...


class GatewayHandler:
    """aiosmtpd hooks: recipients checked as they come, the content decided and applied."""

    def __init__(
        self,
        rules: Rules,
        settings: MailGatewaySettings,
        store: AttachmentStore,
        publisher: Publisher,
        metrics: GatewayMetrics,
    ) -> None:
        self._rules, self._settings = rules, settings
        self._store, self._publisher, self._metrics = store, publisher, metrics
        self._inbound = tuple(settings.inbound_addresses)

    async def handle_RCPT(  # aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self._settings.max_recipients:
            self._metrics.mails.labels("refused").inc()
            return "452 4.5.3 Too many recipients"
        refusal = check_recipient(address, self._inbound)
        if refusal is not None:
            self._metrics.mails.labels("refused").inc()
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: SmtpEnvelope
    ) -> str:
        started = time.perf_counter()
        try:
            return await self._received(envelope)
        finally:
            self._metrics.handling_seconds.observe(time.perf_counter() - started)

    async def _received(self, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        smtp_envelope = Envelope("" if mail_from == "<>" else mail_from, tuple(envelope.rcpt_tos))
        try:  # parsing 25 MB is CPU work: off the loop, so Kafka and HTTP keep running
            decision = await asyncio.to_thread(decide, raw, smtp_envelope, self._rules)
        except Exception as exc:  # a bug on hostile input: refuse it, never retry forever
            log.error("mail_undecidable", error_type=type(exc).__name__, error=str(exc)[:300])
            self._metrics.mails.labels("invalid").inc()
            return UNREADABLE
        try:
            reply = await asyncio.wait_for(self._apply(decision), self._settings.handling_timeout_s)
        except Exception as exc:
            # An outage (or a bug in our own I/O): the relay keeps the mail and tries again;
            # the same command id makes the second delivery a duplicate intake ignores.
            log.warning(
                "mail_deferred",
                transient=is_transient(exc),
                error_type=type(exc).__name__,
                error=str(exc)[:300],
            )
            return RETRY_LATER
        self._metrics.mails.labels(decision.outcome).inc()
        return reply

    async def _apply(self, decision: Decision) -> str:
        match decision:
            case Receive():
                for kept in decision.keep:
                    await self._store.put(kept)
                await self._publisher.command(decision)
                for attachment in decision.command.attachments:
                    self._metrics.attachments.labels(attachment.refused or "kept").inc()
                log.info(
                    "mail_received",
                    outcome=decision.outcome,
                    threaded_by=decision.command.threaded_by,
                    attachments=len(decision.command.attachments),
                    command_id=decision.command_id,
                )
                return "250 2.0.0 Message accepted"
            case Bounce():
                await self._publisher.bounces(decision.reports)
                for report in decision.reports:
                    self._metrics.bounces_reported.labels(report.event.reason).inc()
                log.info("bounce_received", reason=decision.reason, failed=len(decision.reports))
                return "250 2.0.0 Bounce noted"
            case Drop():
                log.info("mail_dropped", outcome=decision.outcome, reason=decision.reason)
                return "250 2.0.0 Message accepted (not threaded: automatic or our own)"
            case Refuse():
                log.info("mail_refused", reason=decision.reason)
                return decision.reply


class SessionLimits:
    """Connections open now, in total and per client address."""

    def __init__(self, total: int, per_ip: int) -> None:
        self.total, self.per_ip = total, per_ip
        self.by_ip: Counter[str] = Counter()
        self.open: set[GatewaySMTP] = set()

    def admit(self, session: GatewaySMTP, ip: str) -> str | None:
        """Registers the session; the refusal when a limit is reached."""
        self.open.add(session)
        self.by_ip[ip] += 1
        if len(self.open) > self.total:
            return "421 4.7.0 Too many connections; try again later"
        if self.by_ip[ip] > self.per_ip:
            return "421 4.7.0 Too many connections from your address; try again later"
        return None

    def release(self, session: GatewaySMTP, ip: str) -> None:
        if session in self.open:
            self.open.discard(session)
            self.by_ip[ip] -= 1
            if self.by_ip[ip] <= 0:
                del self.by_ip[ip]


class GatewaySMTP(SMTP):
    """aiosmtpd's protocol with connection limits and every reply counted by code."""

    def __init__(
        self, handler: GatewayHandler, limits: SessionLimits, metrics: GatewayMetrics, **kw: Any
    ) -> None:
        super().__init__(handler, **kw)
        self._limits, self._metrics = limits, metrics
        self._ip = ""
        self._refusal: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None:  # not the STARTTLS upgrade of a session
            peer = transport.get_extra_info("peername")
            self._ip = str(peer[0]) if peer else ""
            self._refusal = self._limits.admit(self, self._ip)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._limits.release(self, self._ip)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        # aiosmtpd has no hook before its greeting; a refused connection gets 421 instead.
        if self._refusal is not None:
            await self.push(self._refusal)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    async def push(self, status: AnyStr) -> None:
        code = status[:3]
        self._metrics.smtp_replies.labels(code.decode() if isinstance(code, bytes) else code).inc()
        await super().push(status)


def tls_context(settings: MailGatewaySettings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


class SmtpServer:
    """A `shared.runtime.Worker` that listens from `bind()` on (in setup, after the Kafka
    producer and MongoDB client are open; the port is known and accepting once the app
    has started) and is stopped with the runtime, letting a message being stored finish."""

    def __init__(
        self, handler: GatewayHandler, settings: MailGatewaySettings, metrics: GatewayMetrics
    ) -> None:
        self._handler, self._settings, self._metrics = handler, settings, metrics
        self._limits = SessionLimits(settings.max_sessions, settings.max_sessions_per_ip)
        self._tls = tls_context(settings)  # a bad certificate stops the start
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    def _protocol(self) -> GatewaySMTP:
        s = self._settings
        return GatewaySMTP(
            self._handler,
            self._limits,
            self._metrics,
            data_size_limit=s.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=s.inbound_smtp_hostname,
            ident="helpstream mail gateway",
            tls_context=self._tls,
            require_starttls=s.smtp_require_tls,
            timeout=s.smtp_idle_timeout_s,
            command_call_limit=1000,
            loop=asyncio.get_running_loop(),
        )

    async def bind(self) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self._settings.inbound_smtp_host, self._settings.inbound_smtp_port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def start(self) -> None:
        """Serving since `bind()`."""

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.close()
        deadline = time.monotonic() + grace_s
        while any(p.envelope and p.envelope.content for p in self._limits.open):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        for protocol in list(self._limits.open):
            if protocol.transport is not None:
                protocol.transport.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 1.0)
        self._server = None
