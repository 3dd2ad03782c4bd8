from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.sla_monitor.calendar import AlwaysOpen, BusinessCalendar
from services.sla_monitor.policy import (
    ALWAYS,
    from_json,
    load_policies,
    parse_duration,
    parse_policies,
)
from shared.errors import ConfigError
from shared.events import Category, Priority, SlaMetric

POLICIES_YAML = """
warnings: [0.75, 0.9]
calendars:
  - name: office
    timezone: UTC
    schedules:
      - weekly:
          mon: ["09:00-17:00"]
          tue: ["09:00-17:00"]
          wed: ["09:00-17:00"]
          thu: ["09:00-17:00"]
          fri: ["09:00-17:00"]
policies:
  - name: security
    match: {category: [account_security, scam_report]}
    targets:
      first_reply: {target: 10m}
  - name: vip
    match: {tier: vip}
    targets:
      first_reply: {target: 15m}
  - name: urgent
    match: {priority: urgent}
    targets:
      first_reply: {target: 30m}
  - name: high_kyc
    match: {priority: high, category: kyc}
    pause_resolution_on_hold: false
    targets:
      first_reply: {target: 45m}
  - name: standard
    targets:
      first_reply: {target: 2h, calendar: office}
      resolution: {target: 1d 2h, calendar: office}
"""

MINIMAL_POLICY = """
policies:
  - name: standard
    targets:
      first_reply: {target: 1h}
"""


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_policies(text, "policies.yaml")
    return str(caught.value)


# --- parse_duration -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("2d", timedelta(days=2)),
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d 2h", timedelta(days=1, hours=2)),
        (" 1d 2h 3m 4s ", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ],
)
def test_parse_duration_reads_day_hour_minute_second_parts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "15 minutes", "h", "1.5h", "-1h", "2m1h", "4 hours"])
def test_parse_duration_rejects_text_that_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


# --- parsing a valid file -------------------------------------------------------------


def test_targets_parse_durations_and_default_to_calendar_time() -> None:
    policies = parse_policies(POLICIES_YAML)

    security = policies.policy("security")
    standard = policies.policy("standard")
    assert security is not None
    assert standard is not None
    assert security.targets[SlaMetric.first_reply].target == timedelta(minutes=10)
    assert security.targets[SlaMetric.first_reply].calendar == ALWAYS
    assert standard.targets[SlaMetric.resolution].target == timedelta(days=1, hours=2)
    assert standard.targets[SlaMetric.resolution].calendar == "office"


def test_pause_resolution_on_hold_defaults_to_true_and_can_be_turned_off() -> None:
    policies = parse_policies(POLICIES_YAML)

    assert policies.select(Priority.normal, Category.other, "standard").pause_resolution_on_hold
    assert not policies.select(Priority.high, Category.kyc, "standard").pause_resolution_on_hold


def test_calendars_are_available_by_name_with_24x7_built_in() -> None:
    policies = parse_policies(POLICIES_YAML)

    assert isinstance(policies.calendar(ALWAYS), AlwaysOpen)
    assert isinstance(policies.calendar("office"), BusinessCalendar)


def test_unknown_policy_name_gives_none() -> None:
    assert parse_policies(POLICIES_YAML).policy("nope") is None


def test_warnings_default_to_three_quarters_and_nine_tenths() -> None:
    assert parse_policies(MINIMAL_POLICY).warnings == [0.75, 0.9]


def test_warnings_are_sorted_and_deduplicated() -> None:
    policies = parse_policies("warnings: [0.9, 0.5, 0.9]\n" + MINIMAL_POLICY)

    assert policies.warnings == [0.5, 0.9]


# --- selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "category", "tier", "expected"),
    [
        (Priority.low, Category.account_security, "standard", "security"),
        (Priority.urgent, Category.scam_report, "vip", "security"),  # earlier policy wins
        (Priority.normal, Category.kyc, "vip", "vip"),
        (Priority.urgent, Category.kyc, "vip", "vip"),  # tier policy listed before priority
        (Priority.urgent, Category.kyc, "standard", "urgent"),
        (Priority.high, Category.kyc, "standard", "high_kyc"),  # every match field must fit
        (Priority.high, Category.fees, "standard", "standard"),
        (Priority.normal, Category.kyc, "standard", "standard"),
        (Priority.low, Category.other, "gold", "standard"),  # last policy is the catch-all
    ],
)
def test_select_takes_the_first_policy_in_file_order_whose_match_fits(
    priority: Priority, category: Category, tier: str, expected: str
) -> None:
    policies = parse_policies(POLICIES_YAML)

    assert policies.select(priority, category, tier).name == expected


def test_match_accepts_a_single_value_or_a_list() -> None:
    policies = parse_policies(POLICIES_YAML)

    urgent = policies.policy("urgent")
    security = policies.policy("security")
    assert urgent is not None
    assert security is not None
    assert urgent.match.priority == [Priority.urgent]
    assert security.match.category == [Category.account_security, Category.scam_report]


# --- versions -------------------------------------------------------------------------


def test_version_ignores_formatting_but_changes_with_meaning() -> None:
    reformatted = MINIMAL_POLICY.replace("{target: 1h}", "\n        target: 1h") + "\n# note\n"
    changed = MINIMAL_POLICY.replace("1h", "2h")

    original = parse_policies(MINIMAL_POLICY).version
    assert parse_policies(reformatted).version == original
    assert parse_policies(changed).version != original


def test_json_round_trip_keeps_the_version() -> None:
    policies = parse_policies(POLICIES_YAML)

    restored = from_json(policies.to_json())

    assert restored.version == policies.version
    assert restored.select(Priority.urgent, Category.kyc, "standard").name == "urgent"


# --- loading --------------------------------------------------------------------------


def test_deployed_policy_file_loads_and_ends_with_a_catch_all() -> None:
    policies = load_policies()

    assert policies.select(Priority.low, Category.other, "standard").name == "standard"
    assert policies.select(Priority.low, Category.scam_report, "vip").name == "security"
    assert policies.select(Priority.urgent, Category.complaint, "standard").name == "complaint"
    assert policies.select(Priority.urgent, Category.kyc, "vip").name == "vip"
    assert policies.select(Priority.urgent, Category.kyc, "standard").name == "urgent"


def test_load_policies_reads_the_given_path(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(MINIMAL_POLICY)

    assert load_policies(path).version == parse_policies(MINIMAL_POLICY).version


def test_missing_policy_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError, match="cannot read SLA policies") as caught:
        load_policies(path)

    assert str(path) in str(caught.value)


def test_invalid_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sla.yaml"
    path.write_text(MINIMAL_POLICY.replace("1h", "soon"))

    with pytest.raises(ConfigError) as caught:
        load_policies(path)

    assert str(path) in str(caught.value)


# --- bad configuration ----------------------------------------------------------------


def test_unknown_calendar_name_is_a_config_error_naming_policy_metric_and_calendar() -> None:
    message = config_error(MINIMAL_POLICY.replace("{target: 1h}", "{target: 1h, calendar: moon}"))

    assert "unknown calendar 'moon'" in message
    assert "'standard'" in message
    assert "first_reply" in message
    assert "24x7" in message  # the known names are listed


def test_last_policy_that_is_not_a_catch_all_is_a_config_error() -> None:
    text = MINIMAL_POLICY.replace("- name: standard", "- name: standard\n    match: {tier: vip}")

    assert "last policy must have an empty `match`" in config_error(text)


def test_duration_in_words_is_a_config_error_naming_the_target_field() -> None:
    message = config_error(MINIMAL_POLICY.replace("1h", '"15 minutes"'))

    assert "policies.0.targets.first_reply.target" in message
    assert "'15 minutes' is not a duration" in message


def test_zero_target_is_a_config_error() -> None:
    message = config_error(MINIMAL_POLICY.replace("1h", "0m"))

    assert "policies.0.targets.first_reply.target" in message
    assert "longer than zero" in message


def test_warning_fraction_outside_zero_and_one_is_a_config_error_naming_warnings() -> None:
    message = config_error("warnings: [0.75, 1.5]\n" + MINIMAL_POLICY)

    assert "warnings:" in message
    assert "strictly between 0 and 1" in message


def test_unknown_metric_key_is_a_config_error_naming_the_key() -> None:
    message = config_error(MINIMAL_POLICY.replace("first_reply", "first_response"))

    assert "policies.0.targets.first_response" in message


def test_extra_key_is_a_config_error_naming_the_key() -> None:
    text = MINIMAL_POLICY.replace("- name: standard", "- name: standard\n    colour: red")

    message = config_error(text)

    assert "policies.0.colour" in message
    assert "Extra inputs are not permitted" in message


def test_extra_top_level_key_is_a_config_error_naming_the_key() -> None:
    assert "escalations" in config_error("escalations: []\n" + MINIMAL_POLICY)


def test_extra_key_in_a_calendar_is_a_config_error_naming_the_key() -> None:
    text = POLICIES_YAML.replace("timezone: UTC", "timezone: UTC\n    holiday_country: CN")

    assert "calendars.0.holiday_country" in config_error(text)


def test_duplicate_policy_names_are_a_config_error() -> None:
    text = MINIMAL_POLICY.replace(
        "policies:\n",
        "policies:\n  - name: standard\n    match: {priority: high}\n"
        "    targets:\n      first_reply: {target: 2h}\n",
    )

    assert "policy names must be unique" in config_error(text)


def test_calendar_named_24x7_is_a_config_error() -> None:
    text = POLICIES_YAML.replace("name: office", "name: 24x7").replace(
        "calendar: office", "calendar: 24x7"
    )

    assert "calendar names must be unique" in config_error(text)


def test_policy_without_targets_is_a_config_error() -> None:
    assert "policies.0.targets" in config_error("policies:\n  - name: standard\n    targets: {}\n")


def test_empty_policy_list_is_a_config_error() -> None:
    assert "policies" in config_error("policies: []\n")


def test_invalid_yaml_is_a_config_error() -> None:
    assert "not valid YAML" in config_error("policies: [\n")


def test_config_error_names_the_source() -> None:
    assert config_error("policies: []\n").startswith("policies.yaml:")
