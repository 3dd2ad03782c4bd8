"""Slow clients and oversized bodies against intake running as a real process."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.faults.harness import API_KEY, System, ticket_body

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.infra.mailcatcher import MailCatcher
    from tests.faults.harness import FaultInfra, WebhookReceiver

pytestmark = pytest.mark.faults

SLOW_CLIENTS = 20
TRICKLE_S = 15.0  # one body byte per second for this long
CUT_OFF_BOUND_S = 13.0  # HELPSTREAM_HTTP_BODY_TIMEOUT_S (10 s) + the 1 s probe loop + slack
HUGE_BODY_MB = 50
HUGE_ANSWER_S = 5.0
HUGE_MEMORY_MB = 20.0


@pytest.fixture
def intake(
    fault_infra: FaultInfra, mail: MailCatcher, webhook: WebhookReceiver, tmp_path: Path
) -> Iterator[System]:
    running = System(fault_infra, mail, webhook, tmp_path / "services", names=("intake",))
    try:
        running.start()
        yield running
    finally:
        running.stop()


def open_slow(port: int) -> socket.socket:
    """Headers of a 1000-byte POST, then nothing yet."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(
        b"POST /v1/tickets HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {API_KEY}\r\nContent-Length: 1000\r\n\r\n".encode()
    )
    sock.settimeout(0.01)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        sock.sendall(b" ")
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


async def trickle(intake: System, seconds: float) -> tuple[list[float], list[float | None]]:
    """SLOW_CLIENTS connections trickle their bodies; meanwhile, time ordinary requests.
    Returns the ordinary latencies and, per slow client, when the server dropped it."""
    port = intake.ports["intake"]
    socks = [open_slow(port) for _ in range(SLOW_CLIENTS)]
    dropped: list[float | None] = [None] * len(socks)
    latencies: list[float] = []
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        n = 0
        while time.monotonic() - started < seconds:
            for i, sock in enumerate(socks):
                if dropped[i] is None and closed_by_server(sock):
                    dropped[i] = time.monotonic() - started
            begun = time.monotonic()
            response = await http.post(
                f"{intake.url('intake')}/v1/tickets", json=ticket_body(n, "slow")
            )
            assert response.status_code == 201, response.text
            latencies.append(time.monotonic() - begun)
            n += 1
            await asyncio.sleep(max(0.0, begun + 1.0 - time.monotonic()))
    for sock in socks:
        sock.close()
    return latencies, dropped


async def test_clients_trickling_their_bodies_do_not_hold_up_other_requests(
    intake: System,
) -> None:
    latencies, dropped = await trickle(intake, TRICKLE_S)
    print(
        f"\n[slow] {SLOW_CLIENTS} clients at 1 B/s for {TRICKLE_S:.0f}s: {len(latencies)} "
        f"ordinary requests, slowest {max(latencies):.2f}s; dropped by the server after "
        f"{[d if d is None else round(d, 1) for d in dropped]}"
    )
    assert max(latencies) < 2.0, latencies


async def test_a_client_trickling_its_body_is_cut_off_within_a_bound(intake: System) -> None:
    _, dropped = await trickle(intake, CUT_OFF_BOUND_S + 2)
    print(f"\n[slow] dropped after: {dropped} (bound {CUT_OFF_BOUND_S:.0f}s)")
    assert all(d is not None and d <= CUT_OFF_BOUND_S for d in dropped), dropped


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_a_50_mb_body_is_refused_quickly_without_being_read_into_memory(
    intake: System,
) -> None:
    pid = intake.processes["intake"].pid
    size = HUGE_BODY_MB * 1024 * 1024
    peak_before = peak_rss_mb(pid)
    begun = time.monotonic()
    answer: int | str
    host, port = intake.url("intake").removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        # A client that announces 50 MB and starts sending: the answer must come from the
        # announced length, before the server reads (or the client finishes) the body.
        writer.write(
            f"POST /v1/tickets HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
            + b'{"requester":{"id":"u-1"},"description":"'
            + b"x" * 65536
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), HUGE_ANSWER_S)
        answer = int(status_line.split()[1]) if status_line else "closed without an answer"
    except (OSError, TimeoutError, ValueError, IndexError) as exc:
        answer = type(exc).__name__
    finally:
        writer.close()
    took = time.monotonic() - begun
    await asyncio.sleep(0.5)
    grown = peak_rss_mb(pid) - peak_before
    alive = intake.alive()
    print(
        f"\n[huge] {HUGE_BODY_MB} MB body: answer {answer} after {took:.2f}s; peak RSS of "
        f"intake grew {grown:.0f} MB ({peak_before:.0f} → {peak_before + grown:.0f}); "
        f"alive={alive}"
    )
    assert all(alive.values()), alive
    assert answer in (413, 422), answer
    assert took < HUGE_ANSWER_S, took
    assert grown < HUGE_MEMORY_MB, f"peak RSS grew {grown:.0f} MB for one request"
