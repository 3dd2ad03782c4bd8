"""An audited request whose audit entry cannot be written while the database is away gets
the API's 503 problem, as every other request does, never a bare 500."""

from __future__ import annotations

from typing import Any

from pymongo.errors import NetworkTimeout

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.runtime import ServiceRuntime
from tests.integration.intake.conftest import ADMIN_KEY, ticket_body
from tests.support import running


class AuditUnreachable:
    """The audit collection, timing out on every write (the database frozen mid-request)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def insert_many(self, *args: Any, **kwargs: Any) -> Any:
        raise NetworkTimeout("127.0.0.1: timed out (configured timeouts: timeoutMS: 5000.0ms)")


async def test_a_request_whose_audit_entry_times_out_gets_503_with_a_problem_body(
    make_settings: Any,
) -> None:
    settings = make_settings(IntakeSettings, bootstrap_api_key=ADMIN_KEY)
    app = create_app(settings, ServiceRuntime("intake", settings))
    async with running(app) as http:
        trail = app.state.intake["audit"]
        trail.audit = AuditUnreachable(trail.audit)
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": "open-1"}

        refused = await http.post("/v1/tickets", json=ticket_body(), headers=headers)

        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "5"
        assert "repeat the request unchanged" in refused.json()["detail"]

        trail.audit = trail.audit._real  # the database is back: the retry answers and audits
        again = await http.post("/v1/tickets", json=ticket_body(), headers=headers)
        assert again.status_code in (200, 201), again.text
        entries = await http.get(
            "/v1/audit", params={"ticket": again.json()["id"]}, headers=headers
        )
        assert [e["action"] for e in entries.json()] == ["POST /v1/tickets"]
