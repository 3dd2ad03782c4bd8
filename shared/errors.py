"""The two ways a message can fail, and what the consumer does about each.

`Retryable`: the world is briefly broken (broker, database, SMTP relay down): back
off and try again; the offset is not committed. `Invalid`: the message itself is
wrong and will never succeed: it goes to the DLQ with the reason and the consumer
moves on.
"""

from __future__ import annotations


class HelpstreamError(Exception):
    """Base of every error the project raises on purpose."""


class Retryable(HelpstreamError):
    """Transient failure; the same input may succeed later."""


class Invalid(HelpstreamError):
    """Poison input; retrying cannot help. `reason` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(HelpstreamError):
    """Configuration that cannot work; raised at start, never at run time."""


class InfraStartError(HelpstreamError):
    """An embedded broker or database did not become ready."""

    def __init__(self, what: str, detail: str, log_tail: str = "") -> None:
        message = f"{what} did not become ready: {detail}"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message)
        self.what = what
        self.log_tail = log_tail
