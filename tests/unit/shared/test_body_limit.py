"""Oversized and trickling request bodies are refused before a route reads them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from shared.http import BodyLimit
from shared.infra.processes import free_port

LIMIT = 4096
TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    api = FastAPI()
    api.add_middleware(BodyLimit, max_bytes=LIMIT, timeout_s=TIMEOUT_S)

    @api.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"size": len(await request.body())}

    port = free_port()
    running = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    running.should_exit = True
    thread.join(5)


def raw_post(url: str, headers: str, body_parts: list[bytes], pause_s: float) -> bytes:
    """Send headers, then each part after a pause; return what the server answered."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST /echo HTTP/1.1\r\nHost: t\r\n{headers}\r\n".encode())
        for part in body_parts:
            time.sleep(pause_s)
            try:
                sock.sendall(part)
            except OSError:
                break
        answer = b""
        while chunk := sock.recv(4096):  # the server closes after answering
            answer += chunk
        return answer


def test_a_body_within_the_limit_reaches_the_route(server: str) -> None:
    assert httpx.post(f"{server}/echo", content=b"x" * LIMIT).json() == {"size": LIMIT}


def test_a_declared_oversized_body_gets_413_with_a_problem_body_before_it_is_sent(
    server: str,
) -> None:
    answer = raw_post(server, f"Content-Length: {50 * 1024 * 1024}\r\n", [], 0)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in answer
    assert str(LIMIT).encode() in answer


def test_a_streamed_body_without_length_is_cut_off_at_the_limit(server: str) -> None:
    response = httpx.post(f"{server}/echo", content=iter([b"x" * 1024] * 10))
    assert response.status_code == 413


def test_a_body_that_trickles_in_too_slowly_gets_408_and_the_connection_closes(
    server: str,
) -> None:
    started = time.monotonic()
    answer = raw_post(server, "Content-Length: 100\r\n", [b"{"] * 4, TIMEOUT_S / 2)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in answer.lower()
    assert time.monotonic() - started < 5
