"""SMTP adapter: multipart text+HTML, a fallback relay, failures classified.

The primary relay is tried first; when it refuses (any SMTP error reply, connection
refused) or times out, the fallback relay gets the same message. A permanent (5xx)
answer from the last relay tried is `Invalid`; anything else is `Retryable`.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import TYPE_CHECKING

import aiosmtplib
import structlog

from shared.errors import Invalid, Retryable

if TYPE_CHECKING:
    from pydantic import SecretStr

    from services.notifier.settings import NotifierSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Email:
    key: str
    ticket_id: str
    to: str
    subject: str
    text: str
    html: str


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
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    # Stable Message-ID: a resend after a crash can be recognised as the same mail.
    message["Message-ID"] = f"<{email.key}@helpstream>"
    message["X-Helpstream-Ticket"] = email.ticket_id
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    return message


class SmtpSender:
    def __init__(self, settings: NotifierSettings) -> None:
        self._from = settings.mail_from
        self._relays = relays(settings)

    async def send(self, email: Email) -> str:
        """Send through the first relay that accepts; returns which one ("primary"/"fallback")."""
        message = build_message(email, self._from)
        error: Invalid | Retryable | None = None
        for index, relay in enumerate(self._relays):
            try:
                await self._send_via(relay, message)
            except (Invalid, Retryable) as exc:
                error = exc
                log.warning("smtp_relay_failed", relay=index, error=str(exc))
                continue
            return "primary" if index == 0 else "fallback"
        assert error is not None
        raise error

    @staticmethod
    async def _send_via(relay: Relay, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=relay.host,
                port=relay.port,
                start_tls=relay.starttls,
                username=relay.username,
                password=relay.password.get_secret_value() if relay.password else None,
                timeout=relay.timeout_s,
            )
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
