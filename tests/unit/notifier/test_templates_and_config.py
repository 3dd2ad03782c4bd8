"""Templates render per language and time zone; a missing one stops the start."""

from __future__ import annotations

import hashlib
import hmac
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from services.notifier.config import DEFAULT_RULES_PATH, DEFAULT_TEMPLATES_DIR, load_rules
from services.notifier.domain import BLOCKS
from services.notifier.templates import Templates
from services.notifier.webhook import signature
from shared.errors import ConfigError

DUE = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)


def test_every_shipped_rule_has_its_templates() -> None:
    Templates(DEFAULT_TEMPLATES_DIR).validate(load_rules())


def test_a_missing_template_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, folder)
    (folder / "status_solved.zh-CN.j2").unlink()
    with pytest.raises(ConfigError, match=r"status_solved\.zh-CN\.j2"):
        Templates(folder).validate(load_rules())


def test_a_rule_for_an_unknown_event_is_a_config_error(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_RULES_PATH.read_text())
    raw["rules"][0]["event"] = "helpstream.ticket.teleported"
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="teleported"):
        load_rules(path)


def test_the_acknowledgement_shows_the_due_time_in_the_requesters_zone_and_language() -> None:
    templates = Templates(DEFAULT_TEMPLATES_DIR)
    values = {"ticket_id": "T-9", "subject": "提现 <未到账>", "first_reply_due": DUE}
    zh = templates.render("ticket_acknowledged", "zh-CN", "Asia/Shanghai", BLOCKS["email"], values)
    assert zh.subject == "[T-9] 我们已收到您的请求：提现 <未到账>"
    assert "2025年3月1日 16:30" in zh.text
    assert "提现 &lt;未到账&gt;" in zh.html
    en = templates.render("ticket_acknowledged", "en", "UTC", BLOCKS["email"], values)
    assert "Mar 1, 2025, 8:30" in en.text


def test_the_acknowledgement_without_a_known_due_time_still_renders() -> None:
    templates = Templates(DEFAULT_TEMPLATES_DIR)
    values = {"ticket_id": "T-9", "subject": "s", "first_reply_due": None}
    en = templates.render("ticket_acknowledged", "en", "UTC", BLOCKS["email"], values)
    assert "as soon as possible" in en.text


def test_the_webhook_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"id":"x"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"s3cret", "1700000000", body) == f"sha256={expected}"
