"""SLA policies from a versioned YAML file: which targets a ticket gets, on which calendar.

Policies are tried in file order and the first whose `match` fits wins; the last one
must match everything, so no ticket goes without a policy. The version is the hash of
the parsed content: any edit that changes meaning is a new version, a reformat is not.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.sla_monitor.calendar import AlwaysOpen, BusinessCalendar, CalendarSpec
from shared.errors import ConfigError
from shared.events import Category, Priority, SlaMetric

ALWAYS = "24x7"
DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[2] / "deploy" / "sla_policies.yaml"
_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?\s*$")


def parse_duration(text: str) -> timedelta:
    """`"15m"`, `"4h"`, `"1d 2h"`, `"90s"` → timedelta."""
    found = _DURATION.match(text)
    if found is None or not any(found.groups()):
        raise ValueError(f"{text!r} is not a duration like 15m, 4h, 2d, 1h30m")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetSpec(_Model):
    target: timedelta
    calendar: str = Field(ALWAYS, description=f"A calendar name, or {ALWAYS} for calendar time.")

    @field_validator("target", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        """Short forms (`15m`) from the YAML; ISO 8601 (`PT15M`) from stored versions."""
        if isinstance(value, str) and not value.startswith("P"):
            return parse_duration(value)
        return value

    @field_validator("target")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a target must be longer than zero")
        return value


class Match(_Model):
    priority: list[Priority] | None = None
    category: list[Category] | None = None
    tier: list[str] | None = None

    @field_validator("priority", "category", "tier", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def fits(self, priority: Priority, category: Category, tier: str) -> bool:
        return (
            (self.priority is None or priority in self.priority)
            and (self.category is None or category in self.category)
            and (self.tier is None or tier in self.tier)
        )

    @property
    def is_catch_all(self) -> bool:
        return self.priority is None and self.category is None and self.tier is None


class PolicySpec(_Model):
    name: str = Field(min_length=1, max_length=64)
    match: Match = Match()
    targets: dict[SlaMetric, TargetSpec] = Field(min_length=1)
    pause_resolution_on_hold: bool = True
    pause_resolution_in_incident: bool = Field(
        True,
        description="While the ticket is linked to an open incident its resolution clock "
        "pauses; resolving the incident solves it (or unlinking resumes the clock).",
    )
    incident_updates_satisfy: list[SlaMetric] = Field(
        default_factory=lambda: [SlaMetric.next_reply, SlaMetric.periodic_update],
        description="Clocks a public update of the ticket's incident answers, as a reply would.",
    )

    @field_validator("incident_updates_satisfy")
    @classmethod
    def _answerable(cls, value: list[SlaMetric]) -> list[SlaMetric]:
        if SlaMetric.resolution in value:
            raise ValueError("an update cannot satisfy resolution: resolving the incident does")
        return value


class PolicyFile(_Model):
    warnings: list[float] = Field(default_factory=lambda: [0.75, 0.9])
    calendars: list[CalendarSpec] = Field(default_factory=list)
    policies: list[PolicySpec] = Field(min_length=1)

    @field_validator("warnings")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in value):
            raise ValueError("warning fractions lie strictly between 0 and 1")
        return sorted(set(value))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.calendars]
        if len(set(names)) != len(names) or ALWAYS in names:
            raise ValueError(f"calendar names must be unique and not {ALWAYS!r}")
        for policy in self.policies:
            for metric, target in policy.targets.items():
                if target.calendar != ALWAYS and target.calendar not in names:
                    raise ValueError(
                        f"policy {policy.name!r} {metric.value}: unknown calendar "
                        f"{target.calendar!r} (known: {', '.join([ALWAYS, *names])})"
                    )
        if not self.policies[-1].match.is_catch_all:
            raise ValueError("the last policy must have an empty `match`, so every ticket fits")
        if len({p.name for p in self.policies}) != len(self.policies):
            raise ValueError("policy names must be unique")
        return self


class PolicySet:
    """One version of the policy file, ready to use."""

    def __init__(self, spec: PolicyFile, version: str) -> None:
        self.spec = spec
        self.version = version  # content hash; the store numbers versions
        self._calendars: dict[str, AlwaysOpen | BusinessCalendar] = {ALWAYS: AlwaysOpen()}
        self._calendars.update({c.name: BusinessCalendar(c) for c in spec.calendars})

    def select(self, priority: Priority, category: Category, tier: str) -> PolicySpec:
        for policy in self.spec.policies:
            if policy.match.fits(priority, category, tier):
                return policy
        return self.spec.policies[-1]

    def policy(self, name: str) -> PolicySpec | None:
        return next((p for p in self.spec.policies if p.name == name), None)

    def calendar(self, name: str) -> AlwaysOpen | BusinessCalendar:
        return self._calendars[name]

    @property
    def warnings(self) -> list[float]:
        return self.spec.warnings

    def to_json(self) -> str:
        return self.spec.model_dump_json()


class RecordedOnly(PolicySet):
    """Stands in for a policy version found nowhere (not in this instance's file, not in the
    store): a ticket's SLA timers keep the targets and calendars they recorded, and nothing is
    taken from the current file's policies, so no new cycle starts from someone else's
    targets. Calendars the current file also names are used by name; others count
    calendar time. Warning fractions are the current file's."""

    def __init__(self, current: PolicySet, version: str) -> None:  # no calendars of its own
        self.spec, self.version, self._current = current.spec, version, current
        self._calendars = {ALWAYS: AlwaysOpen()}

    def policy(self, name: str) -> PolicySpec | None:
        return None

    def calendar(self, name: str) -> AlwaysOpen | BusinessCalendar:
        try:
            return self._current.calendar(name)
        except KeyError:
            return self._calendars[ALWAYS]


def content_hash(spec: PolicyFile) -> str:
    canonical = json.dumps(spec.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_policies(text: str, source: str = "<string>") -> PolicySet:
    try:
        raw = yaml.safe_load(text)
        spec = PolicyFile.model_validate(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()[:10]
        )
        raise ConfigError(f"{source}: invalid SLA policies: {problems}") from exc
    return PolicySet(spec, content_hash(spec))


def load_policies(path: Path | None = None) -> PolicySet:
    path = path or DEFAULT_POLICY_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read SLA policies at {path}: {exc}") from exc
    return parse_policies(text, str(path))


def from_json(text: str) -> PolicySet:
    spec = PolicyFile.model_validate_json(text)
    return PolicySet(spec, content_hash(spec))
