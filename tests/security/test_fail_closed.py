"""Secrets fail closed, and routes that need a key are closed until given one.

Before: services started on published development secrets (a status link signed by hand
with them showed a stranger's ticket; a survey token signed with `dev-only-change-me`
was accepted), and per-agent CSAT, SLA reads and the operator route answered anyone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from services.feedback.app import create_app as feedback_app
from services.feedback.settings import FeedbackSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.sla_monitor.app import create_app as sla_app
from services.sla_monitor.settings import SlaSettings
from shared.infra.local_secrets import USED_BY, generate, service_env
from shared.runtime import ServiceRuntime
from shared.tokens import sign
from shared.web.links import TicketLink, sign_ticket_link
from tests.integration.intake.conftest import ADMIN_KEY, ticket_body
from tests.support import running

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.integration.intake.conftest import Intake

OLD_LINK_DEFAULT = "dev-only-requester-link-secret-change-me"
OLD_SURVEY_DEFAULT = "dev-only-change-me"
NOW = datetime.now(UTC)


def start_without(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m services.<service>` with the given HELPSTREAM_* variables only."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELPSTREAM_")}
    clean.update(HELPSTREAM_KAFKA_BOOTSTRAP="127.0.0.1:1", HELPSTREAM_HTTP_PORT="0", **env)
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("service", "variable"),
    [
        ("intake", "HELPSTREAM_REQUESTER_LINK_SECRET"),
        ("notifier", "HELPSTREAM_REQUESTER_LINK_SECRET"),
        ("feedback", "HELPSTREAM_SURVEY_SECRET"),
        ("sla_monitor", "HELPSTREAM_OPERATOR_API_KEY"),
    ],
)
def test_a_service_refuses_to_start_without_its_secret_naming_the_variable(
    service: str, variable: str
) -> None:
    env = {k: v for k, v in service_env(service, generate()).items() if k != variable}
    result = start_without(service, **env)
    assert result.returncode == 2, result.stderr[-2000:]
    refusals = [line for line in result.stderr.splitlines() if "refusing to start" in line]
    assert len(refusals) == 1, result.stderr[-2000:]
    assert variable in refusals[0]


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (OLD_SURVEY_DEFAULT, "development default"),
        ("x" * 40, "too few distinct characters"),
        ("short-but-random-9f8e7d", "shorter than 32 bytes"),
    ],
)
def test_a_service_refuses_a_default_or_weak_secret(value: str, why: str) -> None:
    env = {**service_env("feedback", generate()), "HELPSTREAM_SURVEY_SECRET": value}
    result = start_without("feedback", **env)
    assert result.returncode == 2
    assert "HELPSTREAM_SURVEY_SECRET" in result.stderr
    assert why in result.stderr


def test_the_admin_bootstrap_key_reaches_intake_only() -> None:
    values = generate()
    assert USED_BY["bootstrap_api_key"] == ("intake",)
    for service in ("sla_monitor", "feedback", "notifier"):
        assert "HELPSTREAM_BOOTSTRAP_API_KEY" not in service_env(service, values)
    assert (
        service_env("intake", values)["HELPSTREAM_BOOTSTRAP_API_KEY"] == values["bootstrap_api_key"]
    )


async def _opened(intake: Intake) -> dict[str, Any]:
    response = await intake.http.post(
        "/v1/tickets", json=ticket_body(), headers=intake.auth(ADMIN_KEY)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _link(secret: str, ticket: dict[str, Any]) -> str:
    link = TicketLink(ticket["requester"]["id"], ticket["id"], "en", "UTC")
    return "/t/" + sign_ticket_link(secret.encode(), link, NOW, timedelta(days=1))


async def test_a_status_link_signed_with_the_old_default_secret_opens_nothing(
    intake: Intake,
) -> None:
    ticket = await _opened(intake)
    forged = await intake.http.get(_link(OLD_LINK_DEFAULT, ticket))
    genuine = await intake.http.get(
        _link(intake.settings.requester_link_secret.get_secret_value(), ticket)
    )
    assert forged.status_code == 404
    assert ticket["subject"] not in forged.text
    assert genuine.status_code == 200


async def test_links_signed_before_a_secret_rotation_keep_working_until_it_is_dropped(
    make_settings: Callable[..., Any],
) -> None:
    old, new = generate()["requester_link_secret"], generate()["requester_link_secret"]
    rotated = make_settings(
        IntakeSettings,
        bootstrap_api_key=ADMIN_KEY,
        requester_link_secret=new,
        requester_link_previous_secret=old,
    )
    async with running(intake_app(rotated, ServiceRuntime("intake", rotated))) as http:
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        ticket = (await http.post("/v1/tickets", json=ticket_body(), headers=auth)).json()
        assert (await http.get(_link(old, ticket))).status_code == 200
        assert (await http.get(_link(new, ticket))).status_code == 200
    dropped = rotated.model_copy(update={"requester_link_previous_secret": None})
    async with running(intake_app(dropped, ServiceRuntime("intake", dropped))) as http:
        assert (await http.get(_link(old, ticket))).status_code == 404
        assert (await http.get(_link(new, ticket))).status_code == 200


async def test_a_survey_token_signed_with_the_old_default_secret_is_refused(
    make_settings: Callable[..., Any],
) -> None:
    settings = make_settings(FeedbackSettings)
    forged = sign(OLD_SURVEY_DEFAULT.encode(), "survey", {"s": "any"}, NOW, timedelta(days=1))
    async with running(feedback_app(settings, ServiceRuntime("feedback", settings))) as http:
        response = await http.get(f"/v1/surveys/{forged}")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_per_agent_csat_needs_the_reports_key(make_settings: Callable[..., Any]) -> None:
    settings = make_settings(FeedbackSettings)
    assert settings.reports_api_key is not None
    key = {"Authorization": f"Bearer {settings.reports_api_key.get_secret_value()}"}
    async with running(feedback_app(settings, ServiceRuntime("feedback", settings))) as http:
        anonymous = await http.get("/v1/csat", params={"group_by": "agent"})
        allowed = await http.get("/v1/csat", params={"group_by": "agent"}, headers=key)
    assert anonymous.status_code == 401
    assert allowed.status_code == 200


async def test_sla_reads_and_operator_actions_need_their_keys(
    make_settings: Callable[..., Any],
) -> None:
    settings = make_settings(SlaSettings)
    assert settings.sla_read_api_key is not None
    read = {"Authorization": f"Bearer {settings.sla_read_api_key.get_secret_value()}"}
    async with running(sla_app(settings, ServiceRuntime("sla_monitor", settings))) as http:
        anonymous_read = await http.get("/v1/tickets/T-1/sla")
        keyed_read = await http.get("/v1/tickets/T-1/sla", headers=read)
        read_key_on_operator = await http.post("/v1/tickets/T-1/sla/reapply", headers=read)
        anonymous_operator = await http.post("/v1/tickets/T-1/sla/reapply")
    assert anonymous_read.status_code == 401
    assert keyed_read.status_code == 404  # authorized; no such ticket
    assert (read_key_on_operator.status_code, anonymous_operator.status_code) == (401, 401)


def test_leaving_a_keyed_route_open_takes_an_explicit_setting() -> None:
    secrets = {k: v for k, v in generate().items() if k in SlaSettings.model_fields}
    with pytest.raises(ValueError, match="HELPSTREAM_SLA_READ_OPEN"):
        SlaSettings(**{**secrets, "sla_read_api_key": None})
    opened = SlaSettings(**{**secrets, "sla_read_api_key": None, "sla_read_open": True})
    assert opened.sla_read_api_key is None
