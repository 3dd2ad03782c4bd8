"""The headers that make every mail about one ticket one conversation in a mail client.

Each mail gets a Message-ID that names its ticket (`shared.mail_threading.message_id`, the
delivery's key as nonce, so a resend after a crash keeps its id), and refers to the ticket's
thread root with `In-Reply-To` and `References`. The root is deterministic (nonce
`thread`): nothing is stored, and every instance computes the same one. The requester's
acknowledgement IS the root; every later mail answers it. With inbound mail configured,
requester mail also carries `Reply-To:` the ticket's signed reply address, which the mail
gateway verifies.

The key: `mail_thread_secret` (shared with the gateway). Without inbound mail it may be
absent; Message-IDs are then signed with a key derived from `requester_link_secret` (they
still thread in mail clients; nothing reads them back).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from email.utils import parseaddr
from typing import TYPE_CHECKING

from shared.mail_threading import message_id, reply_address

if TYPE_CHECKING:
    from services.notifier.settings import NotifierSettings

ROOT_NONCE = "thread"
_DERIVED = b"helpstream notifier mail threading (no inbound mail)"


@dataclass(frozen=True)
class ThreadHeaders:
    key: bytes
    domain: str
    mailbox: str | None  # the support mailbox replies go to; None = no inbound mail

    @classmethod
    def of(cls, settings: NotifierSettings) -> ThreadHeaders:
        secret = settings.mail_thread_secret
        if secret is not None:
            key = secret.get_secret_value().encode()
        else:
            link = settings.requester_link_secret.get_secret_value().encode()
            key = hmac.new(link, _DERIVED, hashlib.sha256).digest()
        mailbox = settings.inbound_mail_address
        sender = parseaddr(settings.mail_from)[1]
        domain = (mailbox or sender).rpartition("@")[2].lower() or "helpstream.local"
        return cls(key, domain, mailbox)

    def root(self, ticket_id: str) -> str:
        """The Message-ID every mail of the ticket refers to."""
        return message_id(self.key, ticket_id, ROOT_NONCE, self.domain)

    def headers(
        self, ticket_id: str, delivery_key: str, *, is_root: bool, to_requester: bool
    ) -> tuple[tuple[str, str], ...]:
        """Message-ID, In-Reply-To, References and (requester mail, inbound mail on) Reply-To."""
        root = self.root(ticket_id)
        if is_root:
            out = [("Message-ID", root)]
        else:
            own = message_id(self.key, ticket_id, delivery_key, self.domain)
            out = [("Message-ID", own), ("In-Reply-To", root), ("References", root)]
        if to_requester and self.mailbox is not None:
            tagged = reply_address(self.key, ticket_id, self.mailbox)
            out.append(("Reply-To", tagged or self.mailbox))
        return tuple(out)
