"""Session-scoped real infrastructure; per-test unique topics, groups and databases."""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra, start_infra
from shared.infra.processes import free_port
from shared.settings import InfraMode, ServiceSettings
from tests.support import secret_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

S = TypeVar("S", bound=ServiceSettings)


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    """One broker and one database per test worker (xdist), started once."""
    mode = InfraMode(os.environ.get("HELPSTREAM_INFRA", InfraMode.embedded.value))
    running = start_infra(mode, tmp_path_factory.mktemp("infra"))
    yield running
    running.stop()


@pytest.fixture
def mail() -> Iterator[MailCatcher]:
    """A local SMTP server that keeps what it is sent."""
    catcher = MailCatcher(port=free_port())
    catcher.start()
    yield catcher
    catcher.stop()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:12]


@pytest.fixture
def make_settings(infra: Infra, uid: str) -> Callable[..., Any]:
    """Settings of any service pointed at the test infra, isolated by a unique prefix."""

    def make(cls: type[S], **overrides: Any) -> S:
        values: dict[str, Any] = {
            "kafka_bootstrap": infra.kafka_bootstrap,
            "mongo_url": infra.mongo_url,
            "topic_prefix": f"t{uid}.",
            "mongo_db_prefix": f"t{uid}",
            "kafka_session_timeout_ms": 2000,
            "kafka_heartbeat_interval_ms": 300,
            "log_json": False,
            "retry_backoff_max_s": 0.5,
            **secret_settings(cls),
        }
        values.update(overrides)
        return cls(**values)

    return make
