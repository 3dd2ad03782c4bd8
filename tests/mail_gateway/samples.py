"""The raw reply corpus: .eml files, their expected new text, and manifest.json.

Each sample is written as its client formats it (headers, boundaries, transfer
encodings, quote blocks). `manifest.json` says per sample: client, language, the
classification (`kind`), and where relevant attachments, bounced recipients, charset.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EMAILS = Path(__file__).parent / "emails"


@dataclass(frozen=True)
class Sample:
    name: str
    raw: bytes
    meta: dict[str, Any]
    expected: str | None

    def __str__(self) -> str:
        return self.name


def load() -> list[Sample]:
    manifest = json.loads((EMAILS / "manifest.json").read_text(encoding="utf-8"))
    samples = []
    for name in sorted(manifest):
        expected_file = EMAILS / f"{name}.expected.txt"
        expected = expected_file.read_text(encoding="utf-8") if expected_file.exists() else None
        raw = (EMAILS / f"{name}.eml").read_bytes()
        samples.append(Sample(name, raw, manifest[name], expected))
    return samples


SAMPLES = load()
REPLIES = [s for s in SAMPLES if s.expected is not None]


def squash(text: str) -> str:
    """Whitespace-normalised text: what 'exact match' compares."""
    return re.sub(r"\s+", " ", text).strip()


def loosely_equal(got: str, expected: str) -> bool:
    """Same words give or take a sign-off or stray line: 90% similar after squashing."""
    a, b = squash(got), squash(expected)
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= 0.9
