"""Who consumes what: each service's consumer groups and the topics they read.

One truth for the consumers themselves (`ServiceRuntime.add_consumer` subscribes to these
topics and nothing else), the AsyncAPI document (receive operations, group ids), the Kafka
ACLs (`shared.topic_provisioning.ACCESS` reads, checked against this by a test) and the
tests that feed every consumer. Each service's app registers exactly these consumers.
"""

from __future__ import annotations

from shared.topics import COMMANDS, FEEDBACK, MAIL, NOTIFICATIONS, SLA, TICKETS

# service -> consumer name -> topics it reads (unprefixed). The group id is
# `<prefix>helpstream-<service>-<consumer>` (shared.runtime).
CONSUMERS: dict[str, dict[str, tuple[str, ...]]] = {
    "intake": {
        "commands": (COMMANDS,),
        "escalations": (SLA, FEEDBACK),  # and sla_monitor's, feedback's erasure confirmations
        "erasures": (NOTIFICATIONS, MAIL),  # notifier's, mail_gateway's erasure confirmations
    },
    "sla_monitor": {"tickets": (TICKETS,)},
    "feedback": {"tickets": (TICKETS,)},
    "notifier": {"events": (TICKETS, SLA, FEEDBACK, MAIL)},
    "mail_gateway": {"tickets": (TICKETS,)},  # erasure requests only (attachment contents)
}

# The topic each event goes on, by the entity of its type (`helpstream.<entity>.<verb>`).
EVENT_TOPIC_OF_ENTITY: dict[str, str] = {
    "ticket": TICKETS,
    "incident": TICKETS,  # intake's too, keyed by incident id
    "requester": TICKETS,  # intake's erasure requests, keyed by requester id
    "sla": SLA,
    "feedback": FEEDBACK,
    "notification": NOTIFICATIONS,
    "mail": MAIL,
}


def group_id(service: str, consumer: str, prefix: str = "") -> str:
    return f"{prefix}helpstream-{service}-{consumer}"


def topic_of_event(event_type: str) -> str:
    """The topic an event of `event_type` is published on (KeyError for an unknown entity)."""
    return EVENT_TOPIC_OF_ENTITY[event_type.split(".")[1]]
