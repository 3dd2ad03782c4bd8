"""Fault tests: each test gets its own broker and database, which it may break.

They never use the session `infra` fixture: SIGSTOP, SIGKILL and restarts would break
every other test sharing it. Select them with `-m faults`, skip them with `-m "not faults"`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared.infra.mailcatcher import MailCatcher
from tests.faults.harness import FaultInfra, System, WebhookReceiver

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def fault_infra(tmp_path: Path) -> Iterator[FaultInfra]:
    """A Tansu broker and a SecantusDB on a data dir (survives kill -9), this test's alone."""
    infra = FaultInfra(tmp_path / "infra")
    infra.start()
    yield infra
    infra.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def system(
    fault_infra: FaultInfra, mail: MailCatcher, webhook: WebhookReceiver, tmp_path: Path
) -> Iterator[System]:
    """The four services as real processes on this test's broker and database."""
    running = System(fault_infra, mail, webhook, tmp_path / "services")
    try:
        running.start()
        yield running
    finally:
        running.stop()
