"""HTTP mechanics every service shares: problem bodies, health, metrics, RED timing.

Errors follow RFC 9457 (application/problem+json): a client always gets a 4xx with
a body that says what to fix, never a stack trace or a 500 for its own mistake.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import TYPE_CHECKING, Any

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, SecretStr
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.ids import new_id
from shared.mongo import is_unavailable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from prometheus_client import CollectorRegistry
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from shared.metrics import HttpMetrics

PROBLEM = "application/problem+json"
log = structlog.get_logger(__name__)


class Problem(BaseModel):
    """RFC 9457 problem details, as every 4xx of every service answers."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = Field(None, description="Machine-readable reason, where one exists.")
    errors: list[dict[str, Any]] | None = Field(
        None, description="Each field that failed validation (422 only)."
    )


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": Problem.model_json_schema()}},
    }


# Documented on every route, so generated clients read the bodies the API really sends.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: _problem_response("The request does not match the schema."),
    "4XX": _problem_response("The request cannot be served as it is; the body says why."),
}


class ProblemError(Exception):
    """Raised by routes and handlers to answer with a problem body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})  # e.g. Retry-After on 429 and 503
        self.extra = extra


def require_bearer(key: SecretStr | None, authorization: str | None, what: str) -> None:
    """An optional shared key for an operator or reporting route: when `key` is set, the
    request must carry it as `Authorization: Bearer <key>` (compared in constant time)."""
    if key is None:
        return
    sent = (authorization or "").removeprefix("Bearer ").strip().encode()
    if not hmac.compare_digest(key.get_secret_value().encode(), sent):
        raise ProblemError(
            401, "Unauthenticated", f"Send the {what} as `Authorization: Bearer <key>`."
        )


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def database_problem(exc: PyMongoError) -> Response:
    """503 with Retry-After while the database is away (500 for any other database
    error); for exception handlers, and for middleware, which they do not cover."""
    if not is_unavailable(exc):
        log.error("database_error", error=type(exc).__name__, exc_info=exc)
        return problem(500, "Internal Server Error", "The request could not be completed.")
    log.warning("database_unavailable", error=type(exc).__name__)
    # A write that timed out may still be applied once the database answers again.
    response = problem(
        503,
        "Service Unavailable",
        "The database is not answering; retry shortly. A write may still be applied:"
        " repeat the request unchanged (with the same Idempotency-Key where the route"
        " takes one) to get its result rather than a second one.",
    )
    response.headers["Retry-After"] = "5"
    return response


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ProblemError)
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    async def on_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))}
            for err in exc.errors()[:20]
        ]
        return problem(
            422, "Invalid request", "The request does not match the schema.", errors=errors
        )

    async def on_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem(exc.status_code, _title(exc.status_code), str(exc.detail))

    async def on_unavailable(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, PyMongoError)
        return database_problem(exc)

    app.add_exception_handler(PyMongoError, on_unavailable)
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install_operational_routes(
    app: FastAPI,
    registry: CollectorRegistry,
    ready: Callable[[], Awaitable[dict[str, bool]]],
) -> None:
    """/healthz (the process answers), /readyz (its dependencies do), /metrics."""

    @app.get("/healthz", tags=["operations"], summary="Process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Broker, database and consumers ready")
    async def readyz() -> Response:
        checks = await ready()
        status = 200 if all(checks.values()) else 503
        return JSONResponse({"ready": status == 200, "checks": checks}, status_code=status)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install_red_metrics(app: FastAPI, metrics: HttpMetrics) -> None:
    """Counts and times every request by route template (bounded labels), logs one line per
    request with its correlation id (ids and codes only, never bodies)."""

    @app.middleware("http")
    async def red(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        status = 500
        correlation = request.headers.get("x-correlation-id", "")[:128] or new_id()
        structlog.contextvars.bind_contextvars(correlation_id=correlation)
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers.setdefault("X-Correlation-Id", correlation)
            return response
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id")
            route: BaseRoute | None = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            if template not in ("/metrics", "/healthz", "/readyz"):
                elapsed = time.perf_counter() - started
                metrics.requests.labels(template, request.method, str(status)).inc()
                metrics.duration.labels(template, request.method).observe(elapsed)
                log.info(
                    "http_request",
                    method=request.method,
                    route=template,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                    correlation_id=correlation,
                )


class _BodyRefused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class BodyLimit:
    """Refuses bodies over `max_bytes` (413) and bodies not complete within `timeout_s` of
    the request (408, slow clients), before a route reads them into memory.

    The refusal is answered here, with `Connection: close`, and the route then sees a
    disconnected client: frameworks turn errors raised while reading a body into their own
    400, so raising through them would neither say why nor free the connection.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send, self._too_large())
            return
        seen = 0
        started = refused = False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            remaining = deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), max(remaining, 0.001))
            except TimeoutError:
                problem_ = _BodyRefused(
                    408, "Request Timeout", "The request body did not arrive in time."
                )
            else:
                if message["type"] != "http.request":
                    return message
                seen += len(message.get("body", b""))
                if seen <= self.max_bytes:
                    return message
                problem_ = self._too_large()
            if not started:
                refused = True
                await self._refuse(scope, send, problem_)
            return {"type": "http.disconnect"}

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the client already has its answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, limited_receive, tracking_send)

    def _too_large(self) -> _BodyRefused:
        return _BodyRefused(
            413, "Content Too Large", f"Request bodies are limited to {self.max_bytes} bytes."
        )

    @staticmethod
    async def _refuse(scope: Scope, send: Send, refused: _BodyRefused) -> None:
        response = problem(refused.status, refused.title, refused.detail)
        response.headers["Connection"] = "close"

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)
