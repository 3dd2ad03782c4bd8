"""Jinja2 templates per event and language; each channel renders its own blocks.

`templates/<template>.<language>.j2` holds the blocks `subject`, `text`, `html` (email)
and `title`, `body` (webhook and inbox). The same file is compiled twice: once with
autoescaping for the `html` block, once without for the plain-text blocks, so a
template author cannot forget to escape HTML nor get `&amp;` in a subject line.
Dates print in the recipient's locale and time zone (Babel): `{{ when|localtime }}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_datetime
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    pass_context,
)

from services.notifier.domain import BLOCKS, DIGEST_TEMPLATE
from shared.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from jinja2.runtime import Context

    from services.notifier.domain import RuleSet


@dataclass(frozen=True)
class Rendered:
    """What the channels need; blocks a channel does not use are empty."""

    subject: str = ""
    text: str = ""
    html: str = ""
    title: str = ""
    body: str = ""


def file_name(template: str, lang: str) -> str:
    return f"{template}.{lang}.j2"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _locale(lang: str) -> Locale:
    try:
        return Locale.parse(lang.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


@pass_context
def _localtime(context: Context, value: datetime | None, fmt: str = "medium") -> str:
    if not isinstance(value, datetime):
        return ""
    return format_datetime(
        value, format=fmt, locale=context["_locale"], tzinfo=_zone(context["_timezone"])
    )


class Templates:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._text = self._env(autoescape=False)
        self._html = self._env(autoescape=True)

    def _env(self, *, autoescape: bool) -> Environment:
        env = Environment(
            loader=FileSystemLoader(self.folder),
            autoescape=autoescape,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
        env.filters["localtime"] = _localtime
        return env

    def validate(self, rules: RuleSet) -> None:
        """Every block every rule can need, in every language it can use; else `ConfigError`."""
        problems: list[str] = []
        wanted: dict[tuple[str, str], set[str]] = {}
        for rule in rules.rules:
            blocks = {b for ch in rule.channels for b in BLOCKS[ch]}
            if rule.digest:
                blocks |= set(BLOCKS["inbox"])  # items of a digest print their title and body
                for lang in rules.languages_of(rule):
                    digest_blocks = wanted.setdefault((DIGEST_TEMPLATE, lang), set())
                    digest_blocks |= {b for ch in rule.channels for b in BLOCKS[ch]}
            for lang in rules.languages_of(rule):
                wanted.setdefault((rule.template, lang), set()).update(blocks)
        for (template, lang), blocks in sorted(wanted.items()):
            name = file_name(template, lang)
            try:
                found = set(self._text.get_template(name).blocks) & set(
                    self._html.get_template(name).blocks
                )
            except TemplateNotFound:
                problems.append(f"missing template {self.folder / name}")
                continue
            except TemplateError as exc:
                problems.append(f"template {name}: {exc}")
                continue
            missing = sorted(blocks - found)
            if missing:
                problems.append(f"template {name} lacks blocks {missing}")
        if problems:
            raise ConfigError("notification templates: " + "; ".join(problems))

    def render(
        self,
        template: str,
        lang: str,
        timezone: str,
        blocks: tuple[str, ...],
        values: Mapping[str, Any],
    ) -> Rendered:
        name = file_name(template, lang)
        context = {**values, "_locale": _locale(lang), "_timezone": timezone, "lang": lang}
        out: dict[str, str] = {}
        for block in blocks:
            env = self._html if block == "html" else self._text
            tmpl = env.get_template(name)
            text = "".join(tmpl.blocks[block](tmpl.new_context(context))).strip()
            out[block] = " ".join(text.split()) if block in ("subject", "title") else text
        return Rendered(**out)
