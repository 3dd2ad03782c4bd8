"""Topic names, in one place. A prefix isolates tests and tenants."""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS = "helpstream.commands"
TICKETS = "helpstream.tickets"
SLA = "helpstream.sla"
FEEDBACK = "helpstream.feedback"
NOTIFICATIONS = "helpstream.notifications"
DLQ_SUFFIX = ".dlq"


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

    @staticmethod
    def dlq(topic: str) -> str:
        return topic + DLQ_SUFFIX
