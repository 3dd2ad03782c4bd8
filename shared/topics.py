"""Topic names, in one place. A prefix isolates tests and tenants."""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS = "helpstream.commands"
TICKETS = "helpstream.tickets"
SLA = "helpstream.sla"
FEEDBACK = "helpstream.feedback"
NOTIFICATIONS = "helpstream.notifications"
MAIL = "helpstream.mail"  # what the inbound mail gateway learns (bounces) and erases
DLQ_SUFFIX = ".dlq"

# Who may write each event topic: the CloudEvents `source` its events must carry. On a
# real cluster ACLs enforce it; inside, consumers dead-letter anything else (defense in
# depth against a producer that got onto the wrong topic).
OWNERS: dict[str, str] = {
    TICKETS: "/helpstream/intake",
    SLA: "/helpstream/sla_monitor",
    FEEDBACK: "/helpstream/feedback",
    NOTIFICATIONS: "/helpstream/notifier",
    MAIL: "/helpstream/mail_gateway",
}


def owner_of(topic: str) -> str | None:
    """The source allowed on `topic` (any prefix), or None for topics with no owner."""
    for base, source in OWNERS.items():
        if topic.endswith(base):
            return source
    return None


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    @property
    def commands(self) -> str:
        return self.prefix + COMMANDS

    @property
    def tickets(self) -> str:
        return self.prefix + TICKETS

    @property
    def sla(self) -> str:
        return self.prefix + SLA

    @property
    def feedback(self) -> str:
        return self.prefix + FEEDBACK

    @property
    def notifications(self) -> str:
        return self.prefix + NOTIFICATIONS

    @property
    def mail(self) -> str:
        return self.prefix + MAIL

    @staticmethod
    def dlq(topic: str) -> str:
        return topic + DLQ_SUFFIX
