"""The status page shows the incident its ticket is linked to: the public status text and
every update, newest first, in the requester's language, escaped like every other text."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.web.links import TicketLink, sign_ticket_link
from tests.integration.intake.conftest import Intake


def link_path(intake: Intake, ticket: dict[str, Any], locale: str) -> str:
    link = TicketLink(ticket["requester"]["id"], ticket["id"], locale, "UTC")
    secret = intake.settings.requester_link_secret.get_secret_value().encode()
    return "/t/" + sign_ticket_link(secret, link, datetime.now(UTC), timedelta(days=1))


def text(en: str, zh: str) -> dict[str, str]:
    return {"en": en, "zh-CN": zh}


async def linked_incident(intake: Intake, uid: str, *tickets: dict[str, Any]) -> str:
    """An incident whose scope matches nothing else, with the tickets linked by hand."""
    declared = await intake.http.post(
        "/v1/incidents",
        json={
            "title": text("TRC20 USDT withdrawals delayed", "TRC20 USDT 提现延迟"),
            "scope": {"category": "withdrawal_delay", "keywords": [f"kw{uid}"]},
            "status_text": text("We are on it <b>now</b>.", "我们正在处理 <b>中</b>。"),
        },
        headers=intake.auth(),
    )
    assert declared.status_code == 201, declared.text
    incident_id = str(declared.json()["id"])
    for ticket in tickets:
        url = f"/v1/incidents/{incident_id}/tickets"
        linked = await intake.http.post(url, json={"ticket": ticket["id"]}, headers=intake.auth())
        assert linked.status_code == 200, linked.text
    return incident_id


async def post_update(intake: Intake, incident_id: str, en: str, zh: str) -> None:
    response = await intake.http.post(
        f"/v1/incidents/{incident_id}/updates", json={"text": text(en, zh)}, headers=intake.auth()
    )
    assert response.status_code == 201, response.text


def status_text(section: str) -> str:
    found = re.search(r'<p class="incident-status">(.*?)</p>', section, re.S)
    assert found is not None
    return found.group(1)


def updates(section: str) -> list[str]:
    return re.findall(r'<p class="body">(.*?)</p>', section, re.S)


def incident_section(html: str) -> str:
    found = re.search(r'<section class="card notice incident".*?</section>', html, re.S)
    assert found is not None, "no incident on the page"
    return found.group(0)


async def test_the_status_page_shows_the_linked_incident_and_its_updates_newest_first(
    intake: Intake, uid: str
) -> None:
    zh = await intake.open(requester={"id": f"zh-{uid}", "locale": "zh-CN"})
    en = await intake.open(requester={"id": f"en-{uid}", "locale": "en"})
    incident_id = await linked_incident(intake, uid, zh, en)
    await post_update(intake, incident_id, "Nodes resynced.", "节点已重新同步。")
    await post_update(
        intake,
        incident_id,
        "Withdrawals resume at 14:00 UTC <script>x()</script>",
        "UTC 14:00 恢复提现",
    )

    zh_page = (await intake.http.get(link_path(intake, zh, "zh-CN"))).text
    section = incident_section(zh_page)
    assert "您的工单涉及一个已知问题" in section
    assert "TRC20 USDT 提现延迟" in section
    assert status_text(section) == "UTC 14:00 恢复提现"  # the last update is the status now
    assert updates(section) == ["UTC 14:00 恢复提现", "节点已重新同步。"]
    assert "Nodes resynced" not in section

    en_section = incident_section((await intake.http.get(link_path(intake, en, "en"))).text)
    assert "A known issue affects your request" in en_section
    assert updates(en_section) == [
        "Withdrawals resume at 14:00 UTC &lt;script&gt;x()&lt;/script&gt;",
        "Nodes resynced.",
    ]
    assert "<script>" not in en_section
    assert "节点" not in en_section


async def test_a_resolved_incident_says_so_and_an_unlinked_ticket_shows_none(
    intake: Intake, uid: str
) -> None:
    linked = await intake.open(requester={"id": f"a-{uid}", "locale": "en"})
    other = await intake.open(requester={"id": f"b-{uid}", "locale": "en"})
    incident_id = await linked_incident(intake, uid, linked)
    resolved = await intake.http.post(
        f"/v1/incidents/{incident_id}/resolve",
        json={"text": text("Fixed: all withdrawals sent.", "已修复。"), "ticket_status": "pending"},
        headers=intake.auth(),
    )
    assert resolved.status_code == 200, resolved.text

    section = incident_section((await intake.http.get(link_path(intake, linked, "en"))).text)
    assert "This issue is resolved" in section
    assert "Fixed: all withdrawals sent." in section
    other_page = (await intake.http.get(link_path(intake, other, "en"))).text
    assert 'class="card notice incident"' not in other_page
