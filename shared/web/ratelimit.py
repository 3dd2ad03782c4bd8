"""Rate limits on public pages and write routes, and caps on open streams.

A client that goes over answers 429 with a problem body and `Retry-After` (seconds until
the window lets it in again), before the route reads a body or touches the database.

- `Limit`: a route template, method, what is counted (client address, link token, API
  key), a rate such as `60/minute` and a group: the routes of one group share one
  budget (all requester pages of a service, all its writes), so spreading requests over
  routes does not multiply it. `install_rate_limits` checks every template names
  a real route (a typo would silently limit nothing) and adds the middleware.
- Counting is `limits`' moving window in this process's memory: exact ("at most N in any
  window"), no extra infrastructure, and a restart forgets. With N instances behind a load
  balancer a client may get up to N× the limit; a shared storage (Redis) would make it
  global, at the price of a round trip on every request.
- Tokens and keys are counted under a hash, so the limiter holds no credential. A key
  limit falls back to the client address when no key is sent, so going without one is no
  way around it. The client address is uvicorn's: `X-Forwarded-For` is believed only from
  the proxies it trusts (`--forwarded-allow-ips`), so clients cannot pick their own.
- `StreamCaps`: long-lived streams (SSE) are limited by how many are open at once, per
  key and in total, not by rate.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette._utils import get_route_path
from starlette.routing import compile_path

from shared.http import ProblemError, problem
from shared.metrics import LimitMetrics, limit_metrics

if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Sequence

    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send

    from shared.settings import ServiceSettings


class Counted(StrEnum):
    ip = "ip"  # the client address
    token = "token"  # the link token: path `{token}`, `?token=` or a Bearer token
    key = "key"  # the API key (Bearer or X-API-Key); the client address without one


@dataclass(frozen=True)
class Limit:
    method: str
    path: str  # the route template, as declared: `/t/{token}`
    counted: Counted
    rate: str  # `limits` notation: `60/minute`
    group: str  # routes of a group share their budget: "pages", "writes"


@dataclass(frozen=True)
class _Rule:
    limit: Limit
    item: RateLimitItem
    pattern: re.Pattern[str]


def page_limits(settings: ServiceSettings, *routes: str) -> list[Limit]:
    """Per client address and per link token on each public route (`"GET /t/{token}"`)."""
    return [
        Limit(method, path, counted, rate, "pages")
        for method, path in (route.split(" ", 1) for route in routes)
        for counted, rate in (
            (Counted.ip, settings.rate_limit_pages_per_ip),
            (Counted.token, settings.rate_limit_pages_per_token),
        )
    ]


def write_limits(settings: ServiceSettings, *routes: str) -> list[Limit]:
    """Per API key on each write route (`"POST /v1/tickets"`)."""
    return [
        Limit(method, path, Counted.key, settings.rate_limit_writes_per_key, "writes")
        for method, path in (route.split(" ", 1) for route in routes)
    ]


def limit_metrics_of(app: FastAPI) -> LimitMetrics:
    """The app's limit metrics, registered once in its runtime's registry."""
    found: LimitMetrics | None = getattr(app.state, "limit_metrics", None)
    if found is None:
        runtime = app.state.runtime
        found = limit_metrics(runtime.registry, runtime.service)
        app.state.limit_metrics = found
    return found


def install_rate_limits(app: FastAPI, limits: Sequence[Limit]) -> None:
    routes = {
        (method, route.path)
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    unknown = [f"{lim.method} {lim.path}" for lim in limits if (lim.method, lim.path) not in routes]
    if unknown:
        raise ValueError(f"rate limits name routes that do not exist: {unknown}")
    app.add_middleware(RateLimits, limits=limits, metrics=limit_metrics_of(app))


class RateLimits:
    """ASGI middleware: refuses a request over any limit that applies to its route."""

    def __init__(self, app: ASGIApp, limits: Sequence[Limit], metrics: LimitMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.rules = [_Rule(lim, parse(lim.rate), compile_path(lim.path)[0]) for lim in limits]
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = get_route_path(scope)
        applying: list[tuple[_Rule, tuple[str, ...]]] = []
        for rule in self.rules:
            if rule.limit.method != scope["method"]:
                continue
            match = rule.pattern.match(path)
            if match is not None:
                identity = _identity(rule.limit.counted, scope, match.groupdict())
                applying.append((rule, (rule.limit.group, rule.limit.counted.value, identity)))
        # Test all before counting any, so a refused request uses up none of its limits.
        for rule, key in applying:
            if not self.limiter.test(rule.item, *key):
                await self._refuse(scope, receive, send, rule, key)
                return
        for rule, key in applying:
            self.limiter.hit(rule.item, *key)
        await self.app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, rule: _Rule, who: tuple[str, ...]
    ) -> None:
        self.metrics.rate_limited.labels(rule.limit.path, rule.limit.counted.value).inc()
        stats = self.limiter.get_window_stats(rule.item, *who)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        response = problem(
            429,
            "Too Many Requests",
            f"At most {rule.limit.rate} per {_WHAT[rule.limit.counted]} here; "
            f"retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
            code="rate_limited",
        )
        await response(scope, receive, send)


_WHAT = {Counted.ip: "client address", Counted.token: "link", Counted.key: "API key"}


def _identity(counted: Counted, scope: Scope, params: dict[str, Any]) -> str:
    address = str(scope["client"][0]) if scope.get("client") else "unknown"
    if counted is Counted.ip:
        return address
    headers = {name.lower(): value for name, value in scope.get("headers") or []}
    bearer = _bearer(headers.get(b"authorization", b""))
    if counted is Counted.token:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = params.get("token") or next(iter(query.get("token", [])), None) or bearer
        return _hashed(str(token)) if token else f"none:{address}"
    key = bearer or headers.get(b"x-api-key", b"").decode("latin-1").strip()
    return _hashed(key) if key else f"none:{address}"


def _bearer(value: bytes) -> str:
    text = value.decode("latin-1")
    return text[7:].strip() if text[:7].lower() == "bearer " else ""


def _hashed(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()[:32]


class StreamCaps:
    """Streams open at once, per key (an inbox's requester) and in this process; one past
    either cap is refused with 429. Each stream holds a request slot, a socket and a
    database poll, so one token must not be able to open hundreds."""

    RETRY_AFTER_S = 10

    def __init__(self, route: str, per_key: int, total: int, metrics: LimitMetrics) -> None:
        self.route, self.per_key, self.total, self.metrics = route, per_key, total, metrics
        self._open: Counter[str] = Counter()

    def open(self, key: str) -> Callable[[], None]:
        """Takes a slot for `key`, or raises the 429; returns what gives it back (once)."""
        if self._open[key] >= self.per_key:
            self._refuse("per_key", f"At most {self.per_key} streams may be open per inbox.")
        if self._open.total() >= self.total:
            self._refuse("total", "Too many streams are open; retry shortly.")
        self._open[key] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[key] -= 1
                if self._open[key] <= 0:
                    del self._open[key]

        return release

    def _refuse(self, cap: str, detail: str) -> None:
        self.metrics.streams_refused.labels(self.route, cap).inc()
        raise ProblemError(
            429,
            "Too Many Requests",
            detail,
            headers={"Retry-After": str(self.RETRY_AFTER_S)},
            code="too_many_streams",
        )


class SlotStreamingResponse(StreamingResponse):
    """A streaming response that gives its `StreamCaps` slot back however it ends: done,
    client gone, cancelled, or never started."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
