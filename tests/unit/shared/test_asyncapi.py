"""The published contracts cannot go stale: docs/events and docs/asyncapi.yaml are what the
code generates today, and the AsyncAPI document passes the official AsyncAPI CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from shared.asyncapi import document, write_asyncapi
from shared.command_signing import SIGNATURE_HEADER
from shared.commands import COMMAND_MODELS
from shared.events import EVENT_MODELS
from shared.schemas import write_schemas
from shared.topic_provisioning import ACCESS, TOPICS
from shared.wiring import CONSUMERS

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
ASYNCAPI_CLI = ROOT / "node_modules" / ".bin" / "asyncapi"


def test_committed_event_schemas_are_what_the_models_generate(tmp_path: Path) -> None:
    fresh = {p.name: p.read_text() for p in write_schemas(tmp_path / "events")}
    committed = {p.name: p.read_text() for p in (DOCS / "events").glob("*.json")}
    stale = sorted(n for n in fresh.keys() & committed.keys() if fresh[n] != committed[n])
    assert (sorted(fresh.keys() - committed.keys()), stale) == ([], []), (
        "docs/events is stale: run `helpstream schemas`"
    )
    assert not committed.keys() - fresh.keys(), "docs/events documents a model that is gone"


def test_committed_asyncapi_document_is_what_the_code_generates(tmp_path: Path) -> None:
    fresh = write_asyncapi(tmp_path / "asyncapi.yaml").read_text()
    assert fresh == (DOCS / "asyncapi.yaml").read_text(), (
        "docs/asyncapi.yaml is stale: run `helpstream asyncapi`"
    )


def test_the_official_asyncapi_cli_finds_the_document_valid(tmp_path: Path) -> None:
    assert ASYNCAPI_CLI.exists(), "the AsyncAPI CLI is missing: run `make install` (npm ci)"
    no_metrics = tmp_path / "analytics.json"  # the CLI would try to phone home otherwise
    no_metrics.write_text(json.dumps({"analyticsEnabled": "false", "infoMessageShown": "true"}))
    env = {
        **os.environ,
        "ASYNCAPI_METRICS_CONFIG_PATH": str(no_metrics),
        "SUPPRESS_NO_CONFIG_WARNING": "1",
    }
    result = subprocess.run(
        [str(ASYNCAPI_CLI), "validate", str(DOCS / "asyncapi.yaml"), "--fail-severity", "warn"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid" in result.stdout


def test_every_event_and_command_is_a_message_on_its_channel() -> None:
    doc = document()
    carried = {
        ref["$ref"].rsplit("/", 1)[1]
        for channel in doc["channels"].values()
        for ref in channel["messages"].values()
    }
    assert set(EVENT_MODELS) | set(COMMAND_MODELS) | {"dead_letter"} <= carried
    assert doc["channels"]["commands"]["messages"].keys() == COMMAND_MODELS.keys()
    addresses = {channel["address"] for channel in doc["channels"].values()}
    assert addresses == {spec.name for spec in TOPICS}


def test_commands_require_the_signature_headers_and_events_carry_trace_context() -> None:
    messages = document()["components"]["messages"]
    open_ticket = messages["helpstream.ticket.open"]["headers"]
    assert SIGNATURE_HEADER in open_ticket["required"]
    created = messages["helpstream.ticket.created"]["headers"]["properties"]
    assert "traceparent" in created
    schemas = document()["components"]["schemas"]
    envelope = schemas["CloudEvent"]["properties"]
    assert {"traceparent", "correlationid", "subject"} <= envelope.keys()


def test_receivers_are_the_consumers_each_service_registers() -> None:
    """shared.wiring is the truth the document and ACLs share; the apps must agree."""
    for service, consumers in CONSUMERS.items():
        read = {topic for topics in consumers.values() for topic in topics}
        assert read == set(ACCESS[service].reads), service
        app = (ROOT / "services" / service / "app.py").read_text()
        registered = set(re.findall(r'add_consumer\(\s*"(\w+)"', app))
        assert registered == set(consumers), service
    operations = document()["operations"]
    receivers = {
        op["bindings"]["kafka"]["groupId"]["const"]
        for op in operations.values()
        if op["action"] == "receive"
    }
    assert "helpstream-notifier-events" in receivers


def test_the_document_is_plain_yaml_with_no_dangling_reference() -> None:
    text = (DOCS / "asyncapi.yaml").read_text()
    doc = yaml.safe_load(text)
    for ref in set(re.findall(r"\$ref: '?(#/[^'\s]+)", text)):
        node = doc
        for part in ref[2:].split("/"):
            node = node[part]  # KeyError names the dangling reference
        assert node is not None, ref


@pytest.mark.parametrize("name", sorted(EVENT_MODELS))
def test_each_event_goes_on_the_topic_its_producer_owns(name: str) -> None:
    doc = document()
    channel = next(c for c in doc["channels"].values() if name in c["messages"])
    senders = [
        op_name
        for op_name, op in doc["operations"].items()
        if op["action"] == "send"
        and op["channel"]["$ref"].endswith("/" + channel["address"].removeprefix("helpstream."))
    ]
    assert len(senders) == 1, (name, senders)
