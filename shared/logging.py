"""Structured logs (structlog): one JSON object a line, with service and correlation id.

Message bodies and contact details are never logged; callers pass ids and codes. That is a
habit, not a guarantee: an exception message may quote its input (pydantic does), a header
such as `X-Correlation-Id` is whatever the caller sent, and a DEBUG line written in a hurry
may carry a body. Logs are shipped and kept like backups, so a seed phrase that reaches one
counts as leaked. Hence the last step before a line is written, at every level, for
structlog and the standard library alike: every text in it goes through
`shared.redaction.redact`.

Cost: most values are short ids, codes and numbers. A text too short to hold any secret
(see `_cannot_hold_secret`) is not scanned, so the common line costs a few length checks;
the rest is scanned in linear time, and a value longer than `LOG_VALUE_LIMIT` is cut (after
scanning a margin past the cut, so a secret across it is removed whole, not halved).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Any

import structlog

from shared.redaction import redact

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping

LOG_VALUE_LIMIT = 16 * 1024  # characters kept of one logged text (a traceback fits)
_CUT_MARGIN = 4 * 1024  # scanned past the cut, as in `shared.dlq_payload`
_MAX_DEPTH = 8  # nested dicts/lists in an event; deeper ones are logged as their repr

# No secret the detectors know fits in fewer characters: a 12-word phrase in Chinese is 12
# characters, the shortest key format (WIF) 51.
_SHORTEST_SECRET = 12
# In ASCII, 12 words of the Latin-script lists (3 letters at least) plus separators or
# numbering need more than this, and every key format is longer still.
_SHORTEST_ASCII_SECRET = 33
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _cannot_hold_secret(text: str) -> bool:
    """The fast path: true for the ids, codes and timestamps most log values are."""
    length = len(text)
    if length < _SHORTEST_SECRET:
        return True
    if length < _SHORTEST_ASCII_SECRET and text.isascii():
        return True
    return length == 36 and _UUID.fullmatch(text) is not None


def redact_log_text(text: str) -> str:
    """`text` as a log may keep it: secrets replaced, at most `LOG_VALUE_LIMIT` characters."""
    if _cannot_hold_secret(text):
        return text
    if len(text) <= LOG_VALUE_LIMIT:
        return redact(text).text
    kept = redact(text[: LOG_VALUE_LIMIT + _CUT_MARGIN]).text[:LOG_VALUE_LIMIT]
    return f"{kept}…[cut from {len(text)} characters]"


def _redact_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_log_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < _MAX_DEPTH:
        if isinstance(value, dict):
            return {key: _redact_value(item, depth + 1) for key, item in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [_redact_value(item, depth + 1) for item in value]
    # Anything else is rendered as its repr (what the JSON renderer would print anyway).
    return redact_log_text(repr(value))


def redact_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every value of the event (the message, bound context, the
    rendered exception) with secrets removed. Runs after `format_exc_info`."""
    for key, value in event_dict.items():
        event_dict[key] = _redact_value(value)
    return event_dict


def _redacting_records(
    make_record: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    """A `LogRecord` factory for the standard library's loggers (uvicorn, aiokafka, pymongo,
    asyncio): the message is formatted at once and redacted, and so are the traceback and
    stack, so no handler or formatter can print the raw text. Records below a logger's level
    are never made, so a quiet logger costs nothing."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the format: keep both, as text
            message = f"{record.msg!r} % {record.args!r}"
        if (redacted := redact_log_text(message)) != message:
            # Only then is the format replaced: formatters that read `args` (uvicorn's access
            # log) see a clean record as it came.
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_log_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_log_text(record.stack_info)
        return record

    factory.redacting = True  # type: ignore[attr-defined]  # installed once per process
    return factory


def install_stdlib_redaction() -> None:
    """Idempotent: `configure_logging` may run more than once in a process (tests)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "redacting", False):
        logging.setLogRecordFactory(_redacting_records(current))


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redact_event,  # last before rendering: sees every value, exceptions as text
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    install_stdlib_redaction()
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # These print protocol traffic (pymongo's command log holds whole documents, aiosmtpd's
    # `mail.log` every line of a mail, where encodings split secrets past recognition) at
    # DEBUG and INFO: they stay at WARNING whatever the service's level.
    for noisy in ("aiokafka", "pymongo", "uvicorn.access", "mail.log"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
