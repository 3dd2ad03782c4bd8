"""Identifiers: UUIDv7 (time-ordered, so indexes stay compact and ids sort by creation)."""

from __future__ import annotations

import uuid

import uuid6


def new_id() -> str:
    return str(uuid6.uuid7())


def stable_id(*parts: str) -> str:
    """A deterministic id from its causes, so a retried effect gets the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "helpstream:" + "/".join(parts)))
