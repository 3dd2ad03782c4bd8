"""Signed webhooks with bounded retries.

Signature: `X-Helpstream-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`
with the Unix timestamp in `X-Helpstream-Timestamp`, so a receiver can refuse both forged
and replayed requests. `Idempotency-Key` is the delivery key: the same message always
carries the same key, so a receiver can drop the rare duplicate after a crash.

Retries: 5xx, 408, 429, timeouts and connection errors are retried with exponential
backoff and jitter, at most `webhook_max_attempts` times; other 4xx answers are final.
The worst case for one delivery is attempts × timeout + the sum of the backoffs
(defaults: 4 × 5 s + ~7 s ≈ 27 s); deliveries of a batch run concurrently.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from typing import TYPE_CHECKING

import httpx
import structlog

from services.notifier.domain import backoff_delay
from shared.errors import Invalid

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from services.notifier.settings import NotifierSettings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Helpstream-Signature"
TIMESTAMP_HEADER = "X-Helpstream-Timestamp"
RETRY_STATUSES = frozenset({408, 425, 429})


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookSender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: NotifierSettings,
        *,
        now: Callable[[], float],
        on_retry: Callable[[], None] = lambda: None,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value().encode() if secret else b""
        self._client = client
        self._attempts = settings.webhook_max_attempts
        self._base = settings.webhook_backoff_base_s
        self._cap = settings.webhook_backoff_max_s
        self._timeout = settings.webhook_timeout_s
        self._now = now
        self._on_retry = on_retry
        self._jitter = jitter
        self._sleep = sleep

    async def send(self, url: str, body: bytes, idempotency_key: str) -> int:
        """POST until accepted (2xx); returns the attempts used, or raises `Invalid`."""
        last = ""
        for attempt in range(1, self._attempts + 1):
            timestamp = str(int(self._now()))
            headers = {
                "Content-Type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: signature(self._secret, timestamp, body),
                "Idempotency-Key": idempotency_key,
            }
            try:
                response = await self._client.post(
                    url, content=body, headers=headers, timeout=self._timeout
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if 200 <= response.status_code < 300:
                    return attempt
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code not in RETRY_STATUSES:
                    raise Invalid("webhook_refused", last)
            if attempt < self._attempts:
                self._on_retry()
                delay = backoff_delay(attempt, self._base, self._cap, self._jitter())
                log.info("webhook_retry", attempt=attempt, error=last, delay_s=round(delay, 3))
                await self._sleep(delay)
        raise Invalid("webhook_failed", f"{self._attempts} attempts, last: {last}")
