"""Load and check the notification rules file; a bad file stops the start, not a delivery."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.notifier.domain import (
    Audience,
    Category,
    ChannelName,
    Contacts,
    Rule,
    RuleSet,
)
from shared.errors import ConfigError
from shared.events import EVENT_MODELS

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yaml")
DEFAULT_TEMPLATES_DIR = Path(__file__).with_name("templates")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ContactsFile(_Strict):
    emails: list[str] = Field(default_factory=list)
    webhook: str | None = None


class RecipientsFile(_Strict):
    default: ContactsFile = ContactsFile()
    groups: dict[str, ContactsFile] = Field(default_factory=dict)


class RuleFile(_Strict):
    name: str = Field(min_length=1)
    event: str
    when: dict[str, list[Any]] = Field(default_factory=dict)
    template: str = Field(pattern=r"^[a-z0-9_]+$")
    audience: list[Audience] = Field(min_length=1)
    category: Category
    channels: list[ChannelName] = Field(min_length=1)
    digest: bool = False
    wait_for_sla: bool = False


class RulesFile(_Strict):
    languages: list[str] = Field(min_length=1)
    fallback_language: str
    agent_language: str = "en"
    agent_timezone: str = "UTC"
    recipients: RecipientsFile = RecipientsFile()
    rules: list[RuleFile] = Field(min_length=1)


def _contacts(c: ContactsFile) -> Contacts:
    return Contacts(tuple(c.emails), c.webhook)


def parse_rules(raw: Any) -> RuleSet:
    try:
        spec = RulesFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"notification rules: {exc}") from exc
    problems = [
        f"rule {r.name!r}: unknown event {r.event!r}"
        for r in spec.rules
        if r.event not in EVENT_MODELS
    ]
    if spec.fallback_language not in spec.languages:
        problems.append(f"fallback_language {spec.fallback_language!r} is not in languages")
    names = [r.name for r in spec.rules]
    problems += [f"rule name {n!r} used twice" for n in sorted(set(names)) if names.count(n) > 1]
    if problems:
        raise ConfigError("notification rules: " + "; ".join(problems))
    return RuleSet(
        rules=tuple(
            Rule(
                name=r.name,
                event_type=r.event,
                template=r.template,
                audience=tuple(r.audience),
                category=r.category,
                channels=tuple(r.channels),
                when={k: tuple(v) for k, v in r.when.items()},
                digest=r.digest,
                wait_for_sla=r.wait_for_sla,
            )
            for r in spec.rules
        ),
        languages=tuple(spec.languages),
        fallback_language=spec.fallback_language,
        agent_language=spec.agent_language,
        agent_timezone=spec.agent_timezone,
        groups={name: _contacts(c) for name, c in spec.recipients.groups.items()},
        leads=_contacts(spec.recipients.default),
    )


def load_rules(path: Path = DEFAULT_RULES_PATH) -> RuleSet:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"notification rules {path}: {exc}") from exc
    return parse_rules(raw)
