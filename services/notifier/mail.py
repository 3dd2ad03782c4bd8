"""SMTP adapter: multipart text+HTML, a fallback relay, failures classified.

The primary relay is tried first; when it refuses (any SMTP error reply, connection
refused) or times out, the fallback relay gets the same message. A permanent (5xx)
answer from the last relay tried is `Invalid`; anything else is `Retryable`.

Connections are kept and reused (`ConnectionPool`, one per relay): a message costs
MAIL, RCPT and DATA, not a connect, banner, EHLO and QUIT each time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import unicodedata
from dataclasses import dataclass, replace
from email.charset import QP, Charset
from email.errors import MessageError
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.policy import compat32
from email.utils import formataddr, formatdate, parseaddr
from typing import TYPE_CHECKING, cast

import aiosmtplib
import structlog
from aiosmtplib.email import flatten_message

from shared.errors import Invalid, Retryable

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import Message

    from pydantic import SecretStr

    from services.notifier.settings import NotifierSettings

log = structlog.get_logger(__name__)
SERVICE_CLOSING = 421  # the server is closing the connection (idle timeout, shutdown)
_BODY_CHARSET = Charset("utf-8")
_BODY_CHARSET.body_encoding = QP  # readable in the raw message, 7-bit clean for any relay
_WIRE = compat32.clone(linesep="\r\n")


THREAD_HEADERS = frozenset({"Message-ID", "In-Reply-To", "References", "Reply-To"})


@dataclass(frozen=True)
class Email:
    key: str
    ticket_id: str
    to: str
    subject: str
    text: str
    html: str
    # threading headers (`threads.ThreadHeaders`): Message-ID, In-Reply-To, References,
    # Reply-To; without a Message-ID among them the delivery key makes one
    headers: tuple[tuple[str, str], ...] = ()

    def thread_lines(self) -> bytes:
        """The threading headers, each written on one line as given: Message-ID first
        (stable: a resend after a crash is recognisable as the same mail). The email
        package would fold a long Message-ID, or turn In-Reply-To into encoded words no
        client threads by. Their values are ASCII by construction; anything else is refused."""
        given = dict(self.headers)
        lines = [("Message-ID", given.pop("Message-ID", f"<{self.key}@helpstream>"))]
        lines += [(name, value) for name, value in given.items() if name in THREAD_HEADERS]
        for name, value in lines:
            if not value.isascii() or len(name) + len(value) > 990:
                raise Invalid("bad_header", f"{name} must be short ASCII: {value[:80]!r}")
        return "".join(f"{name}: {value}\r\n" for name, value in lines).encode("ascii")


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    starttls: bool
    username: str | None
    password: SecretStr | None
    timeout_s: float


def relays(settings: NotifierSettings) -> list[Relay]:
    found = [
        Relay(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_starttls,
            settings.smtp_username,
            settings.smtp_password,
            settings.smtp_timeout_s,
        )
    ]
    if settings.smtp_fallback_host:
        found.append(
            Relay(
                settings.smtp_fallback_host,
                settings.smtp_fallback_port,
                settings.smtp_fallback_starttls,
                settings.smtp_fallback_username,
                settings.smtp_fallback_password,
                settings.smtp_timeout_s,
            )
        )
    return found


def build_message(email: Email, sender: str) -> EmailMessage:
    """The message with the stdlib's modern email API (used when an address is not ASCII);
    the threading headers are added to its bytes (`Email.thread_lines`)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    message["X-Helpstream-Ticket"] = email.ticket_id
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    return message


@dataclass(frozen=True)
class Outgoing:
    """A message as it goes over the wire: envelope and bytes, built once for every relay."""

    sender: str
    to: str
    data: bytes
    smtputf8: bool = False


def prepare(email: Email, sender: str) -> Outgoing:
    """multipart/alternative (text, HTML), quoted-printable UTF-8 bodies, the same headers
    as `build_message`. Built with the compat32 email classes, several times cheaper than
    `EmailMessage`, whose every header is parsed into objects.

    A recipient no relay could take is `Invalid` (this message fails, the others go on):
    intake validates requester addresses, but events from before that, or forged ones,
    may still carry anything."""
    name, address = parseaddr(sender)
    check_recipient(email.to)
    # A subject quotes the requester's: a line break they typed (or U+2028) is a space.
    email = replace(email, subject=" ".join(email.subject.splitlines()))
    for value in (
        email.to,
        email.subject,
        email.key,
        email.ticket_id,
        *dict(email.headers).values(),
    ):
        if "\r" in value or "\n" in value:
            raise Invalid("bad_header", f"line break in a header value: {value[:80]!r}")
    if not (email.to.isascii() and address.isascii()):
        try:
            modern = build_message(email, sender)
            data = email.thread_lines() + flatten_message(modern, utf8=True, cte_type="7bit")
        except (MessageError, ValueError, TypeError, AttributeError, IndexError) as exc:
            # the stdlib's header parser fails in many ways on hostile input
            raise Invalid("bad_message", f"{type(exc).__name__}: {exc}"[:200]) from exc
        return Outgoing(address, email.to, data, smtputf8=True)
    message: Message
    if email.html:
        message = MIMEMultipart("alternative")
        message.attach(_text_part(email.text, "plain"))
        message.attach(_text_part(email.html, "html"))
    else:
        message = _text_part(email.text, "plain")
    message["From"] = formataddr((name, address), charset="utf-8")
    message["To"] = email.to
    # a compat32 message folds a `Header` into encoded words (typeshed only knows str here)
    subject = Header(email.subject, "utf-8", header_name="Subject")
    message["Subject"] = email.subject if email.subject.isascii() else cast("str", subject)
    message["Date"] = formatdate(localtime=False)
    message["X-Helpstream-Ticket"] = email.ticket_id
    data = email.thread_lines() + message.as_bytes(policy=_WIRE)
    return Outgoing(address, email.to, data)


_LOCAL = re.compile(r"[^\s\"(),:;<>@\[\\\]]{1,64}")  # dot-atom-ish, Unicode allowed
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_recipient(to: str) -> None:
    """One `local@domain`: no whitespace, control or quoting characters, a domain IDNA can
    encode into host-name labels (no address literals). Structural only, so the team
    addresses of the rules file (`@helpstream.local`) pass; requester addresses were held
    to email-validator at intake."""
    local, at, domain = to.rpartition("@")
    unprintable = any(unicodedata.category(ch)[0] in "CZ" for ch in to)
    if not at or unprintable or len(to) > 254 or not _LOCAL.fullmatch(local):
        raise Invalid("bad_address", f"not a deliverable address: {to[:80]!r}")
    try:
        labels = domain.encode("idna").decode("ascii").split(".")
    except UnicodeError:
        raise Invalid("bad_address", f"not a deliverable domain: {domain[:80]!r}") from None
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise Invalid("bad_address", f"not a deliverable domain: {domain[:80]!r}")


def _text_part(text: str, subtype: str) -> MIMENonMultipart:
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part.set_payload(text, _BODY_CHARSET)
    return part


class SmtpSender:
    """Sends through pooled connections, one pool per relay (closed by `close`)."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._from = settings.mail_from
        self._pools = [
            ConnectionPool(relay, settings.max_parallel_sends, settings.smtp_local_hostname)
            for relay in relays(settings)
        ]

    async def send(self, email: Email) -> str:
        """Send through the first relay that accepts; returns which one ("primary"/"fallback")."""
        message = prepare(email, self._from)
        error: Invalid | Retryable | None = None
        for index, pool in enumerate(self._pools):
            try:
                await pool.send(message)
            except (Invalid, Retryable) as exc:
                error = exc
                log.warning("smtp_relay_failed", relay=index, error=str(exc))
                continue
            return "primary" if index == 0 else "fallback"
        assert error is not None
        raise error

    async def close(self) -> None:
        for pool in self._pools:
            await pool.close()


class ConnectionPool:
    """Connected clients of one relay, each used by one message at a time and kept for the
    next (at most `size` idle). A client that saw any error is closed, never reused. A
    message that fails on a kept connection because the server had dropped it is sent once
    more on a fresh connection, so a stale connection never turns into a failed delivery."""

    def __init__(self, relay: Relay, size: int, local_hostname: str | None) -> None:
        self._relay = relay
        self._size = size
        self._local_hostname = local_hostname
        self._idle: list[aiosmtplib.SMTP] = []
        self._closed = False

    async def send(self, message: Outgoing) -> None:
        client = self._take()
        if client is not None:
            try:
                await self._send_on(client, message)
                return
            except (Invalid, Retryable) as exc:
                if not _dropped(exc.__cause__):
                    raise
                log.info("smtp_connection_dropped", relay=self._relay.host, error=str(exc))
        await self._send_on(await self._connect(), message)

    async def close(self) -> None:
        """Says goodbye on the idle connections; any in use are closed when they come back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await client.quit(timeout=1.0)
            client.close()

    def _take(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
            client.close()
        return None

    def _keep(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or len(self._idle) >= self._size:
            client.close()
        else:
            self._idle.append(client)

    async def _connect(self) -> aiosmtplib.SMTP:
        relay = self._relay
        if self._local_hostname is None:
            # looked up once per relay, not once per connection as aiosmtplib would
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(
            hostname=relay.host,
            port=relay.port,
            start_tls=relay.starttls,
            username=relay.username,
            password=relay.password.get_secret_value() if relay.password else None,
            local_hostname=self._local_hostname,
            timeout=relay.timeout_s,
        )
        with _classified():
            await client.connect()
        return client

    async def _send_on(self, client: aiosmtplib.SMTP, message: Outgoing) -> None:
        """One message on `client`, kept for the next on success, closed on any error."""
        try:
            with _classified():
                await client.sendmail(
                    message.sender,
                    [message.to],
                    message.data,
                    mail_options=["SMTPUTF8"] if message.smtputf8 else [],
                )
        except BaseException:
            client.close()
            raise
        self._keep(client)


def _dropped(exc: BaseException | None) -> bool:
    """The server had closed the connection (or says it is closing it): worth a fresh one."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return any(r.code == SERVICE_CLOSING for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return exc.code == SERVICE_CLOSING
    return isinstance(exc, ConnectionError) or (
        isinstance(exc, OSError) and not isinstance(exc, TimeoutError)
    )


@contextlib.contextmanager
def _classified() -> Iterator[None]:
    """5xx or an extension the relay lacks → `Invalid`; any other SMTP error, refusal or
    timeout → `Retryable`."""
    try:
        yield
    except aiosmtplib.SMTPNotSupported as exc:  # e.g. SMTPUTF8 for an international address
        raise Invalid("smtp_unsupported", str(exc)[:200]) from exc
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        if codes and all(500 <= c < 600 for c in codes):
            raise Invalid("smtp_rejected", f"recipients refused {codes}") from exc
        raise Retryable(f"smtp recipients refused {codes}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if 500 <= exc.code < 600:
            raise Invalid("smtp_rejected", f"{exc.code} {exc.message}"[:200]) from exc
        raise Retryable(f"smtp {exc.code}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise Retryable(f"smtp unavailable: {type(exc).__name__}") from exc
