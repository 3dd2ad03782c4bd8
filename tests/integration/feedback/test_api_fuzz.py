"""schemathesis against the running feedback API: whatever it sends, never a 5xx."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from services.feedback.app import create_app
from services.feedback.domain import issue_token
from services.feedback.settings import FeedbackSettings
from shared.ids import stable_id
from shared.infra.processes import free_port
from tests.integration.feedback.conftest import SECRET, solved
from tests.support import create_topic, produce

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def served(make_settings: Any) -> Iterator[tuple[str, FeedbackSettings]]:
    """The app under uvicorn in a thread of its own (schemathesis calls it synchronously)."""
    port = free_port()
    cfg: FeedbackSettings = make_settings(
        FeedbackSettings,
        survey_secret=SECRET,
        http_port=port,
        log_level="WARNING",
        # hundreds of requests from one address on one link: not what this test is about
        rate_limit_pages_per_ip="100000/minute",
        rate_limit_pages_per_token="100000/minute",
    )
    asyncio.run(create_topic(cfg.kafka_bootstrap, f"{cfg.topic_prefix}helpstream.tickets", 4))
    server = uvicorn.Server(
        uvicorn.Config(create_app(cfg), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "feedback did not start"
    try:
        yield f"http://127.0.0.1:{port}", cfg
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def a_valid_token(base: str, cfg: FeedbackSettings) -> str:
    """Solve a ticket and sign the link of its survey (ids derive from the solve event)."""
    solve = solved("T-fuzz")
    asyncio.run(
        produce(
            cfg.kafka_bootstrap,
            f"{cfg.topic_prefix}helpstream.tickets",
            [(b"T-fuzz", solve.to_bytes())],
        )
    )
    survey_id = stable_id(solve.id, "survey")
    token, _ = issue_token(SECRET.encode(), survey_id, datetime.now(UTC), timedelta(days=1))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/v1/surveys/{token}").status_code == 200:
            return token
        time.sleep(0.1)
    raise AssertionError("the survey of the fuzz ticket never appeared")


# schemathesis' own strategies use `random` internally; not ours to fix
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
def test_no_request_to_the_feedback_api_gets_a_server_error(
    served: tuple[str, FeedbackSettings],
) -> None:
    base, cfg = served
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    token = a_valid_token(base, cfg)
    strategies = [
        schema["/v1/csat"]["GET"].as_strategy(),
        schema["/v1/surveys/{token}"]["GET"].as_strategy(),
        schema["/v1/surveys/{token}"]["POST"].as_strategy(),
        schema["/v1/surveys/{token}"]["GET"].as_strategy(path_parameters={"token": token}),
        schema["/v1/surveys/{token}"]["POST"].as_strategy(path_parameters={"token": token}),
        schema["/v1/surveys/{token}"]["POST"].as_strategy(
            GenerationMode.NEGATIVE, path_parameters={"token": token}
        ),
        schema["/v1/csat"]["GET"].as_strategy(GenerationMode.NEGATIVE),
    ]

    seen: set[tuple[str, int]] = set()

    @FUZZ
    @given(case=st.one_of(*strategies))
    def call(case: Any) -> None:
        response = case.call(base_url=base, timeout=10)
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        case.validate_response(response, checks=[not_a_server_error])
        seen.add((case.method, response.status_code))

    call()
    # the fuzzer got past validation too: ratings were taken and reports made
    assert {("POST", 200), ("GET", 200), ("POST", 422), ("GET", 404), ("GET", 422)} <= seen, seen
