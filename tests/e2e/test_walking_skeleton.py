"""A ticket walks through all four services, each a real process."""

from __future__ import annotations

import re

import httpx
import pytest

from shared.infra.mailcatcher import MailCatcher
from tests.e2e.conftest import API_KEY, SLA_READ
from tests.support import eventually


# The acknowledgement waits for sla_monitor's promise, as the local run does.
@pytest.mark.parametrize("services", [{"HELPSTREAM_ACK_SLA_WAIT_S": "5"}], indirect=True)
async def test_a_ticket_opened_over_http_gets_an_acknowledgement_email_and_a_clock(
    services: dict[str, str], mail: MailCatcher
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        response = await http.post(
            f"{services['intake']}/v1/tickets",
            json={
                "requester": {"id": "u-42", "email": "li.wei@example.com", "locale": "zh-CN"},
                "channel": "app",
                "subject": "提现未到账",
                "description": "我的USDT提现已经3小时还没到账",
                "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
            },
        )
        assert response.status_code == 201, response.text
        ticket_id = response.json()["id"]

        mails = mail.wait_for(1, timeout=30)
        assert [m.rcpt_tos for m in mails] == [("li.wei@example.com",)]
        assert ticket_id in mails[0].text()  # beside the short number (`#482913`)
        assert "我们已收到您的请求" in mails[0].text()
        assert "预计首次回复时间" in mails[0].text()  # sla_monitor's promise, waited for
        # three suggested help articles, each linked to its public page on intake
        assert len(re.findall(r"/help/articles/[a-z0-9-]+-zh\b", mails[0].text())) == 3

        async def clock_started() -> bool:
            url = f"{services['sla_monitor']}/v1/tickets/{ticket_id}/sla"
            sla = await http.get(url, headers=SLA_READ)
            clocks = sla.json().get("clocks", []) if sla.status_code == 200 else []
            return "first_reply" in [c["metric"] for c in clocks]

        await eventually(clock_started, timeout=30)

        metrics: dict[str, str] = {}

        async def counted() -> bool:  # each consumer counts after its commit
            for name, url in services.items():
                metrics[name] = (await http.get(f"{url}/metrics")).text
            return all(
                f"helpstream_{name}_consumer_messages_processed_total{{" in metrics[name]
                for name in ("sla_monitor", "feedback", "notifier")
            )

        await eventually(counted, timeout=30)
    assert "helpstream_intake_outbox_events_relayed_total{topic=" in metrics["intake"]
    assert 'helpstream_notifier_messages_sent_total{channel="email"' in metrics["notifier"]
