"""SMTP adapter: sends one message; says whether a failure is worth retrying."""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING

import aiosmtplib

from shared.errors import Invalid, Retryable

if TYPE_CHECKING:
    from services.notifier.domain import Email
    from services.notifier.settings import NotifierSettings


class SmtpSender:
    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings

    async def send(self, email: Email) -> None:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = email.to
        message["Subject"] = email.subject
        # Stable Message-ID: a resend after a crash can be recognised as the same mail.
        message["Message-ID"] = f"<{email.delivery_key}@helpstream>"
        message["X-Helpstream-Ticket"] = email.ticket_id
        message.set_content(email.text)
        password = self._settings.smtp_password
        try:
            await aiosmtplib.send(
                message,
                hostname=self._settings.smtp_host,
                port=self._settings.smtp_port,
                start_tls=self._settings.smtp_starttls,
                username=self._settings.smtp_username,
                password=password.get_secret_value() if password else None,
                timeout=self._settings.smtp_timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise Invalid("smtp_rejected", f"{exc.code} {exc.message}"[:200]) from exc
            raise Retryable(f"smtp {exc.code}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise Retryable(f"smtp unavailable: {type(exc).__name__}") from exc
