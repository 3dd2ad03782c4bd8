"""`python -m services.<name>`: run one service's app under uvicorn, guarded against idle
and half-sent connections.

Why these guards: uvicorn's `limit_concurrency` counts open *connections*, and it has no
deadline for request headers (its keep-alive timer only runs between requests, and the
first bytes of a request cancel it). So 1,000 sockets that send a request line and a few
headers and then wait made every other client get 503 for as long as they stayed open.
What costs memory and CPU is requests in flight; an idle socket costs a file descriptor
and at most one buffered header block (h11's 16 KiB cap). Hence:

1. A header deadline (`http_header_timeout_s`, 5 s): the h11 protocol below closes a
   connection whose request headers are not complete that long after it connected, or
   after the first byte of its next request on a keep-alive connection. A trickle of one
   header byte a second does not extend it.
2. A cap on connections still waiting for headers (`http_max_pending_connections`): past
   it the oldest is closed, so a flood cannot fill the process. A real client sends its
   headers within milliseconds and leaves the pending set long before it is the oldest.
3. `http_limit_concurrency` caps requests in flight (an ASGI middleware, 503 problem with
   `Retry-After`); idle connections no longer count. Open SSE streams are requests in
   flight, so their own cap (notifier) stays below this one.
4. The open-files soft limit is raised to the hard limit, so thousands of sockets do not
   run into EMFILE (which would stop accepting everyone).

Considered instead: hypercorn and granian have header/read timeouts, but neither is a
dependency, uvicorn is, and the guard is ~60 lines over uvicorn's documented `http=`
protocol-class hook. uvicorn runs on h11 here (httptools is not installed); the guarded
class is passed explicitly, so installing httptools later cannot silently drop the guard.
A reverse proxy in front (nginx `client_header_timeout`) adds the same defence
again; this one holds without it.
"""

from __future__ import annotations

import asyncio
import resource
from collections import OrderedDict
from typing import TYPE_CHECKING

import h11
import structlog
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from shared.http import problem
from shared.topic_provisioning import MissingTopics, require_topics
from shared.web.ratelimit import limit_metrics_of

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client import Counter
    from starlette.types import ASGIApp, Receive, Scope, Send

    from shared.settings import ServiceSettings

log = structlog.get_logger(__name__)
RETRY_AFTER_S = 1


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    refuse_without_topics(app, settings)
    raise_open_files_limit()
    metrics = limit_metrics_of(app)
    uvicorn.run(
        InFlightLimit(app, settings.http_limit_concurrency, metrics.overloaded),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
        http=header_deadline_protocol(
            settings.http_header_timeout_s,
            settings.http_max_pending_connections,
            metrics.connections_dropped,
        ),
        limit_concurrency=None,  # counts idle connections; InFlightLimit replaces it
    )


def refuse_without_topics(app: FastAPI, settings: ServiceSettings) -> None:
    """With HELPSTREAM_REQUIRE_TOPICS, exit with one line naming the missing topics (the
    runtime checks again at start, where a refusal would come wrapped in a traceback)."""
    runtime = getattr(app.state, "runtime", None)
    if settings.require_topics and runtime is not None:
        try:
            asyncio.run(require_topics(settings, runtime.service))
        except MissingTopics as exc:
            raise SystemExit(str(exc)) from None


def raise_open_files_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as exc:
            log.warning("open_files_limit_not_raised", soft=soft, hard=hard, error=str(exc))
            return soft
        return wanted
    return soft


def header_deadline_protocol(
    timeout_s: float, max_pending: int, dropped: Counter
) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a request-header deadline and a pending-connection cap
    (one class per server: the pending set is the server's)."""
    pending: OrderedDict[HeaderDeadline, None] = OrderedDict()  # oldest first

    class HeaderDeadline(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            if self._deadline is None and self.conn.their_state is h11.IDLE:
                self._await_headers()  # the next request on a keep-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._headers_done()

        def connection_lost(self, exc: Exception | None) -> None:
            self._headers_done()
            super().connection_lost(exc)

        def _await_headers(self) -> None:
            self._deadline = self.loop.call_later(timeout_s, self._drop, "timeout")
            pending[self] = None
            while len(pending) > max_pending:
                next(iter(pending))._drop("evicted")

        def _headers_done(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            pending.pop(self, None)

        def _drop(self, reason: str) -> None:
            self._headers_done()
            dropped.labels(reason).inc()
            if not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadline


class InFlightLimit:
    """Requests in flight at once (SSE streams included); one more gets 503 at once."""

    def __init__(self, app: ASGIApp, limit: int, refused: Counter) -> None:
        self.app, self.limit, self.refused = app, limit, refused
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # lifespan
            return
        if self.in_flight >= self.limit:
            self.refused.inc()
            response = problem(
                503,
                "Service Unavailable",
                "Too many requests are in progress; retry shortly.",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                code="overloaded",
            )
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
