"""Reading the `application/x-www-form-urlencoded` bodies page forms send.

Pages post plain HTML forms (no JavaScript needed), and the project has no multipart
parser, so only URL-encoded bodies are accepted: anything else is not one of our forms.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from starlette.requests import Request

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024


class Form:
    """The fields of a posted form; every value is a string, absent fields are None."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self._fields = fields

    def get(self, name: str) -> str | None:
        values = self._fields.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self._fields.get(name, []))


async def read_form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> Form | None:
    """The form, or None when the body is not a URL-encoded form of reasonable size."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        return None
    body = await request.body()
    if len(body) > max_bytes:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return Form(parse_qs(text, keep_blank_values=True, max_num_fields=200))
