"""The signed "check your ticket" link: notifier mails it, intake's status page opens it.

`shared.tokens.sign(secret, "ticket", {requester_id, ticket_id, locale, tz}, now, ttl)`:
the link opens exactly one ticket for exactly one requester, until it expires. Both
services are configured with the same `HELPSTREAM_REQUESTER_LINK_SECRET` (required;
intake also takes the previous one while links signed with it are outstanding).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.tokens import SigningKeys, TokenError, sign, verify

if TYPE_CHECKING:
    from datetime import datetime, timedelta

TICKET_PURPOSE = "ticket"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{1,2048}\.[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class TicketLink:
    requester_id: str
    ticket_id: str
    locale: str
    tz: str


def sign_ticket_link(secret: bytes, link: TicketLink, now: datetime, ttl: timedelta) -> str:
    claims = {
        "requester_id": link.requester_id,
        "ticket_id": link.ticket_id,
        "locale": link.locale,
        "tz": link.tz,
    }
    return sign(secret, TICKET_PURPOSE, claims, now, ttl)


def verify_ticket_link(secret: bytes | SigningKeys, token: str, now: datetime) -> TicketLink:
    """The link's claims, or `TokenError` (`malformed`, `forged`, `wrong_purpose`, `expired`)."""
    if not _TOKEN_SHAPE.match(token):  # also keeps non-ASCII away from compare_digest
        raise TokenError("malformed")
    claims = verify(secret, TICKET_PURPOSE, token, now)
    requester_id, ticket_id = claims.get("requester_id"), claims.get("ticket_id")
    if not isinstance(requester_id, str) or not isinstance(ticket_id, str):
        raise TokenError("malformed")
    if not requester_id or not ticket_id:
        raise TokenError("malformed")
    locale, tz = claims.get("locale"), claims.get("tz")
    return TicketLink(
        requester_id=requester_id,
        ticket_id=ticket_id,
        locale=locale if isinstance(locale, str) else "en",
        tz=tz if isinstance(tz, str) else "UTC",
    )
