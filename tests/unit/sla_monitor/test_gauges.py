"""sla_monitor's recounted gauges: what an SRE sees when a count fails."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from services.sla_monitor.app import timer_gauge
from services.sla_monitor.metrics import sla_metrics


async def test_a_failed_at_risk_count_keeps_the_last_values_says_why_and_counts_again() -> None:
    registry = CollectorRegistry()
    gauge = sla_metrics(registry).at_risk_clocks
    answers: list[dict[str, int] | Exception] = [
        {"first_response": 3},
        TimeoutError("database timed out"),
        {"first_response": 5},
    ]
    seen: list[float | None] = []

    async def count() -> dict[str, int]:
        answer = answers.pop(0) if answers else {"first_response": 5}
        seen.append(
            registry.get_sample_value(
                "helpstream_sla_monitor_at_risk_clocks", {"metric": "first_response"}
            )
        )
        if isinstance(answer, Exception):
            raise answer
        return answer

    worker = timer_gauge("sla-at-risk-clocks", count, gauge, every_s=0.01)
    with capture_logs() as logs:
        worker.start()
        try:
            for _ in range(200):
                if len(seen) >= 4:
                    break
                await asyncio.sleep(0.01)
        finally:
            await worker.stop()

    assert seen[:4] == [None, 3.0, 3.0, 5.0]  # the failure left 3 standing; the next count set 5
    failures = [entry for entry in logs if entry["event"] == "sla_gauge_unread"]
    assert len(failures) == 1
    assert failures[0]["gauge"] == "sla-at-risk-clocks"
    assert "TimeoutError: database timed out" in failures[0]["error"]
