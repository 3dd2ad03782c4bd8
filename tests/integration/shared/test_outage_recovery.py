"""The process's database client recovers from an outage during which readiness probes
and writers kept knocking: each service keeps one client for its whole life.

On Python 3.11 a probe that bounds the ping by cancelling it (`asyncio.wait_for`) can
break the client's own topology lock mid-outage; after that every operation fails with
"Lock is not acquired" or waits forever, and even cancelling it does not end it. So the
scenario runs on its own event loop in a thread the test can give up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.infra.embedded import mongo_process, mongo_url
from shared.infra.processes import free_port
from shared.mongo import make_client, mongo_ready
from shared.settings import ServiceSettings

if TYPE_CHECKING:
    from pathlib import Path

    from shared.infra.processes import ManagedProcess

OUTAGE_S = 8.0
WRITERS = 40
PROBES = 40  # concurrent /readyz-style probes with the probe's own default bound
GIVE_UP_S = 90.0


@dataclass
class Outcome:
    failures: Counter[str] = field(default_factory=Counter)
    probes: Counter[bool] = field(default_factory=Counter)
    first_write_after_s: float | None = None
    ready_after: bool = False
    error: str | None = None  # the scenario itself broke (not the client under test)


class Database:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.process: ManagedProcess | None = None

    def start(self) -> None:
        self.process = mongo_process(self.port, self.root / "logs", self.root / "data")
        self.process.start(timeout=60)

    def kill(self) -> None:
        assert self.process is not None
        assert self.process.process is not None
        self.process.process.kill()
        self.process.process.wait(timeout=30)
        self.process.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


async def outage(database: Database, outcome: Outcome) -> None:
    client = make_client(ServiceSettings(mongo_url=mongo_url(database.port), mongo_timeout_ms=2000))
    docs = client["recovery"]["docs"]

    async def write(n: int) -> None:
        while True:
            try:
                await docs.insert_one({"writer": n})
            except Exception as exc:
                outcome.failures[type(exc).__name__] += 1
                await asyncio.sleep(0.05)

    async def probe() -> None:
        while True:
            outcome.probes[await mongo_ready(client)] += 1
            await asyncio.sleep(0.01)

    workers = [asyncio.create_task(write(n)) for n in range(WRITERS)]
    workers += [asyncio.create_task(probe()) for _ in range(PROBES)]
    await asyncio.sleep(1.0)
    database.kill()
    await asyncio.sleep(OUTAGE_S)
    database.start()
    restarted = time.monotonic()
    for worker in workers:
        worker.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    while outcome.first_write_after_s is None:
        with contextlib.suppress(Exception):
            await docs.insert_one({"after": True})
            outcome.first_write_after_s = time.monotonic() - restarted
        await asyncio.sleep(0.2)
    outcome.ready_after = await mongo_ready(client, timeout_s=2.0)
    await client.close()


def test_a_client_probed_all_through_an_outage_works_when_the_database_returns(
    tmp_path: Path,
) -> None:
    database = Database(tmp_path)
    database.start()
    outcome = Outcome()

    def run() -> None:
        try:
            asyncio.run(outage(database, outcome))
        except BaseException as exc:
            outcome.error = repr(exc)

    scenario = threading.Thread(target=run, daemon=True)
    try:
        scenario.start()
        scenario.join(GIVE_UP_S)
    finally:
        database.stop()
    print(f"\noutage: {outcome}")
    assert outcome.error is None, outcome.error
    assert outcome.probes[False] > PROBES, "the probes never saw the outage; nothing was proven"
    assert "RuntimeError" not in outcome.failures, f"the client's locks broke: {outcome}"
    assert not scenario.is_alive(), f"the client never came back from the outage: {outcome}"
    assert outcome.first_write_after_s is not None
    assert outcome.ready_after
