"""What a detector returns: (start, end, kind) of each secret it found in a text."""

from __future__ import annotations

Span = tuple[int, int, str]
