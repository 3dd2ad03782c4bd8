"""No secret reaches a log line, at any level, through structlog or the standard library."""

from __future__ import annotations

import hashlib
import io
import logging
from typing import TYPE_CHECKING

import pytest
import structlog
from mnemonic import Mnemonic

from bench.redaction_corpus import b58check
from shared.ids import new_id
from shared.logging import LOG_VALUE_LIMIT, configure_logging, redact_log_text

if TYPE_CHECKING:
    from collections.abc import Iterator

PHRASE = Mnemonic("english").to_mnemonic(bytes(range(16)))
HEX_KEY = hashlib.sha256(b"logging test key").hexdigest()


WIF = b58check(b"\x80" + hashlib.sha256(b"logging wif").digest() + b"\x01")


def leaked(text: str) -> list[str]:
    """Pieces of the test's secrets found in `text`: 3 consecutive words, 8 key characters."""
    words = PHRASE.split()
    found = [" ".join(words[i : i + 3]) for i in range(len(words) - 2)]
    found = [run for run in found if run in text]
    for key in (HEX_KEY, WIF):
        found += [key[i : i + 8] for i in range(len(key) - 7) if key[i : i + 8] in text]
    return found


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Logging configured as a service does it (DEBUG), structlog's lines written to the
    returned stream; restored afterwards."""
    factory = logging.getLogRecordFactory()
    configure_logging("test", level="DEBUG")
    stream = io.StringIO()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=stream))
    yield stream
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    logging.setLogRecordFactory(factory)


def test_a_debug_line_loses_the_secrets_in_its_message_context_and_values(
    logs: io.StringIO,
) -> None:
    structlog.contextvars.bind_contextvars(correlation_id=f"ref {PHRASE}")
    log = structlog.get_logger("test")
    log.debug(
        f"body was {PHRASE}",
        body=f"my private key is {HEX_KEY}",
        nested={"items": [f"wif {WIF}", 3, None]},
        model=ValueError(f"private key {HEX_KEY}"),
    )
    out = logs.getvalue()
    assert leaked(out) == []
    assert out.count("[REDACTED:bip39_mnemonic]") == 2  # the message and the bound context
    assert "[REDACTED:hex_private_key]" in out
    assert "[REDACTED:wif_private_key]" in out


def test_a_logged_exception_keeps_its_traceback_without_the_secret(
    logs: io.StringIO,
) -> None:
    log = structlog.get_logger("test")
    try:
        raise ValueError(f"could not parse {PHRASE}")
    except ValueError:
        log.exception("parse_failed")
    out = logs.getvalue()
    assert leaked(out) == []
    assert "Traceback" in out
    assert "ValueError: could not" in out
    assert "[REDACTED:bip39_mnemonic]" in out


def test_standard_library_loggers_are_redacted_message_arguments_and_traceback(
    logs: io.StringIO,
) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("uvicorn.error.test")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("request body %s", f"seed: {PHRASE}")
        try:
            raise RuntimeError(f"wif {WIF}")
        except RuntimeError:
            logger.exception("Exception in ASGI application")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert leaked(out) == []
    assert out.startswith("DEBUG uvicorn.error.test ")
    assert "[REDACTED:bip39_mnemonic]" in out
    assert "RuntimeError: wif [REDACTED:wif_private_key]" in out


def test_ids_and_codes_are_logged_as_they_are() -> None:
    for value in (new_id(), "message_rejected", "helpstream.commands", "2026-11-02T10:00:00Z"):
        assert redact_log_text(value) == value


def test_a_huge_value_is_cut_and_a_secret_across_the_cut_is_removed_whole() -> None:
    text = "x " * (LOG_VALUE_LIMIT // 2 - 20) + f"private key {HEX_KEY} " + "y" * 50_000
    out = redact_log_text(text)
    assert leaked(out) == []
    assert out.endswith(f"…[cut from {len(text)} characters]")
    assert len(out) < LOG_VALUE_LIMIT + 100


def test_configuring_twice_redacts_once(logs: io.StringIO) -> None:
    configure_logging("test", level="DEBUG")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("twice.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("%s", f"private key {HEX_KEY}")
    finally:
        logger.removeHandler(handler)
    assert leaked(stream.getvalue()) == []
    assert stream.getvalue().count("[REDACTED:hex_private_key]") == 1
