"""Secrets fail closed: a service does not start on a missing, default or short one.

A forged status link shows a stranger's ticket and a reply form that speaks as its
requester; a forged survey token rates it. So a setting typed `Secret` refuses values
shorter than 32 bytes and the development placeholders earlier versions shipped with,
and `load_settings` turns the refusal into one line naming the environment variable.
`helpstream up` generates its own (see `shared.infra.local_secrets`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, TypeVar

from pydantic import AfterValidator, SecretStr, ValidationError

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

S = TypeVar("S", bound="ServiceSettings")

MIN_SECRET_BYTES = 32

# Values that were ever shipped as defaults or are typical placeholders: never secret.
KNOWN_DEFAULTS = frozenset(
    {
        "dev-only-change-me",
        "dev-only-requester-link-secret-change-me",
        "change-me",
        "changeme",
        "secret",
        "password",
        "helpstream",
    }
)


def _strong(value: SecretStr) -> SecretStr:
    text = value.get_secret_value()
    if text.strip().lower() in KNOWN_DEFAULTS or "change-me" in text or "changeme" in text:
        raise ValueError("is a known development default; generate one (openssl rand -hex 32)")
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise ValueError(
            f"is shorter than {MIN_SECRET_BYTES} bytes; generate one (openssl rand -hex 32)"
        )
    if len(set(text)) < 8:
        raise ValueError("has too few distinct characters to be random")
    return value


Secret = Annotated[SecretStr, AfterValidator(_strong)]
"""A secret setting: at least 32 bytes, not a placeholder."""


def settings_error_lines(cls: type[ServiceSettings], exc: ValidationError) -> list[str]:
    """One line per refused setting, named as the operator sets it (`HELPSTREAM_X`)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    lines = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing":
            message = "is required and not set"
        if not loc:  # a rule across fields names its variables itself
            lines.append(message)
            continue
        lines.append(f"{(prefix + '_'.join(str(p) for p in loc)).upper()}: {message}")
    return lines


def load_settings(cls: type[S]) -> S:
    """Settings from the environment, or exit 2 with one line per refused variable."""
    try:
        return cls()
    except ValidationError as exc:
        for line in settings_error_lines(cls, exc):
            print(f"{cls.__name__}: refusing to start: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def key_or_explicitly_open(
    key: SecretStr | None, is_open: bool, key_name: str, open_name: str
) -> None:
    """A route guarded by `key` is closed unless the key is set or openness is chosen."""
    if key is None and not is_open:
        raise ValueError(
            f"HELPSTREAM_{key_name.upper()} is required (or set HELPSTREAM_{open_name.upper()}"
            "=true to leave the route open to anyone who reaches the port)"
        )
