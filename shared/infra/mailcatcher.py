"""A local SMTP server that keeps what it receives (aiosmtpd), for the demo and tests.

Each message is kept in memory and, when given a directory, written there as an
`.eml` file so a person can open it.
"""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class CaughtMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""


class _Handler:
    def __init__(self, catcher: MailCatcher) -> None:
        self._catcher = catcher

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        self._catcher.keep(envelope.mail_from, tuple(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


class MailCatcher:
    def __init__(self, host: str = "127.0.0.1", port: int = 2525, folder: Path | None = None):
        self.host = host
        self.port = port
        self.folder = folder
        self.messages: list[CaughtMail] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._controller = Controller(_Handler(self), hostname=host, port=port)

    def keep(self, mail_from: str, rcpt_tos: tuple[str, ...], raw: bytes) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.messages.append(CaughtMail(mail_from, rcpt_tos, message))
            count = len(self.messages)
            self._arrived.notify_all()
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{count:06d}.eml").write_bytes(raw)

    def wait_for(self, count: int, timeout: float) -> list[CaughtMail]:
        """Block until `count` messages arrived or the timeout passed; returns what arrived."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
