"""A solve by article that comes as the `helpstream.ticket.solve_by_article` command counts
as deflection like the status page's form, once however often it is delivered."""

from __future__ import annotations

from shared.infra.modes import Infra
from tests.integration.intake.conftest import Intake
from tests.integration.intake.test_commands import command, produce_signed
from tests.integration.intake.test_http_api import get_ticket
from tests.support import eventually

DEFLECTED = "helpstream_intake_tickets_deflected_total"
COMMANDS = "helpstream_intake_commands_total"


def deflected(intake: Intake, category: str, channel: str) -> float:
    labels = {"category": category, "channel": channel}
    return intake.runtime.registry.get_sample_value(DEFLECTED, labels) or 0.0


async def test_a_solve_by_article_command_counts_as_deflection_once(
    intake: Intake, infra: Infra, uid: str
) -> None:
    ticket = await intake.open(
        requester={"id": f"u-{uid}", "locale": "en"},
        channel="web",
        subject="Deposit not credited",
        description="My BTC deposit has 3 confirmations but is not in my balance yet",
    )
    before = deflected(intake, ticket["category"], "web")
    solve = command(
        "solve_by_article", ticket["id"], {"article_id": "deposit-not-credited-en"}, f"cmd-{uid}"
    )
    topic = intake.runtime.topics.commands
    await produce_signed(infra.kafka_bootstrap, topic, [(ticket["id"].encode(), solve)] * 2)

    async def solved() -> bool:
        return (await get_ticket(intake, ticket["id"]))["status"] == "solved"

    await eventually(solved)

    async def redelivery_seen() -> bool:
        labels = {"type": "helpstream.ticket.solve_by_article", "outcome": "duplicate"}
        return bool(intake.runtime.registry.get_sample_value(COMMANDS, labels))

    await eventually(redelivery_seen)
    assert deflected(intake, ticket["category"], "web") == before + 1
