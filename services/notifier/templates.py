"""Jinja2 templates per event and language; each channel renders its own blocks.

`templates/<template>.<language>.j2` holds the blocks `subject`, `text`, `html` (email)
and `title`, `body` (webhook and inbox). The same file is compiled twice: once with
autoescaping for the `html` block, once without for the plain-text blocks, so a
template author cannot forget to escape HTML nor get `&amp;` in a subject line.
Dates print in the recipient's locale and time zone (Babel), naming the zone:
`{{ when|localtime }}` gives "Nov 29, 2026, 6:56 PM (Asia/Shanghai)" or
"2026年11月29日 18:56 (北京时间 / Asia/Shanghai)"; a Babel format name
(`{{ when|localtime("short") }}`) prints just the time, without the zone.

`reply_by_email` is true only when inbound mail is configured: a template promises that
replying to the email works only under `{% if reply_by_email %}`
(tests/unit/notifier/test_template_promises.py checks every template).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time, get_timezone_name
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


PROMISE = "promise"  # the default format: date, hours and minutes, and the zone
# What people in mainland China call their time (CLDR says "中国标准时间").
_BEIJING = frozenset({"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi", "PRC"})


def zone_label(zone: ZoneInfo, locale: Locale) -> str:
    """The IANA name, after the local name in Chinese: "北京时间 / Asia/Shanghai"."""
    key = zone.key
    if key in ("UTC", "Etc/UTC", "Etc/GMT", "GMT"):
        return "UTC"
    if locale.language != "zh":
        return key
    name = "北京时间" if key in _BEIJING else get_timezone_name(zone, "long", locale=locale)
    return f"{name} / {key}"


def promised_time(value: datetime, locale: Locale, zone: ZoneInfo) -> str:
    """A moment someone is promised, as they read it where they are, zone named."""
    local = value.astimezone(zone)
    pattern = str(locale.datetime_formats["medium"])
    day = format_date(local, "medium", locale=locale)
    clock = format_time(local, "short", tzinfo=zone, locale=locale)
    text = pattern.replace("{1}", day).replace("{0}", clock)
    return f"{text} ({zone_label(zone, locale)})".replace("\u202f", " ")


@pass_context
def _localtime(context: Context, value: datetime | None, fmt: str = PROMISE) -> str:
    if not isinstance(value, datetime):
        return ""
    zone = _zone(context["_timezone"])
    if fmt == PROMISE:
        return promised_time(value, context["_locale"], zone)
    return format_datetime(value, format=fmt, locale=context["_locale"], tzinfo=zone)


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
        defaults = {
            "reply_by_email": False,  # promise nothing the configuration does not provide
            "ticket_number": None,  # tickets (and queued items) from before numbers existed
            "ticket_ref": values.get("ticket_id"),
        }
        context = {
            **defaults,
            **values,
            "_locale": _locale(lang),
            "_timezone": timezone,
            "lang": lang,
        }
        out: dict[str, str] = {}
        for block in blocks:
            env = self._html if block == "html" else self._text
            tmpl = env.get_template(name)
            text = "".join(tmpl.blocks[block](tmpl.new_context(context))).strip()
            out[block] = " ".join(text.split()) if block in ("subject", "title") else text
        return Rendered(**out)
