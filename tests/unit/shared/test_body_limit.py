"""Oversized and trickling request bodies are refused before a route reads them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI, Request

from shared.http import BodyLimit

LIMIT = 4096


def app(timeout_s: float = 5.0) -> FastAPI:
    api = FastAPI()
    api.add_middleware(BodyLimit, max_bytes=LIMIT, timeout_s=timeout_s)

    @api.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"size": len(await request.body())}

    return api


async def post(api: FastAPI, content: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.post("/echo", content=content)


async def test_a_body_within_the_limit_reaches_the_route() -> None:
    response = await post(app(), b"x" * LIMIT)
    assert response.json() == {"size": LIMIT}


async def test_a_declared_oversized_body_gets_413_with_a_problem_body() -> None:
    response = await post(app(), b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert str(LIMIT) in response.json()["detail"]


async def test_a_streamed_body_without_length_is_cut_off_at_the_limit() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1024

    response = await post(app(), chunks())
    assert response.status_code == 413


async def test_a_body_that_trickles_in_too_slowly_gets_408() -> None:
    async def trickle() -> AsyncIterator[bytes]:
        yield b"{"
        await asyncio.sleep(0.5)
        yield b"}"

    response = await post(app(timeout_s=0.1), trickle())
    assert response.status_code == 408
