"""A running intake (in this event loop) on the real broker and MongoDB, with API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runtime import ServiceRuntime
from tests.support import running

ADMIN_KEY = "hs_testadmin_0123456789abcdefghijklmnopqrstuv"


@dataclass
class Intake:
    http: httpx.AsyncClient
    settings: IntakeSettings
    runtime: ServiceRuntime

    def auth(self, key: str = ADMIN_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def key_with(self, *scopes: str) -> str:
        response = await self.http.post(
            "/v1/api-keys",
            json={"name": "test", "scopes": list(scopes)},
            headers=self.auth(),
        )
        assert response.status_code == 201, response.text
        return str(response.json()["key"])

    async def open(self, **overrides: Any) -> dict[str, Any]:
        response = await self.http.post(
            "/v1/tickets", json=ticket_body(**overrides), headers=self.auth()
        )
        assert response.status_code == 201, response.text
        return dict(response.json())


def ticket_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requester": {"id": "u-42", "email": "li.wei@example.com", "locale": "zh-CN"},
        "channel": "app",
        "subject": "提现未到账",
        "description": "我的USDT提现已经3小时还没到账",
        "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
    }
    body.update(overrides)
    return body


@pytest.fixture
async def intake(make_settings: Any) -> AsyncIterator[Intake]:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    runtime = ServiceRuntime("intake", settings)
    async with running(create_app(settings, runtime)) as http:
        yield Intake(http, settings, runtime)
