"""The AsyncAPI 3.0 document of every channel, message and operation, built from the code.

Channels are the topics of `shared.topics` and their DLQs (partitions and retention from
`shared.topic_provisioning`); messages are the CloudEvents of `shared.events` and the
commands of `shared.commands` (payload schemas from the pydantic models, so the document
cannot drift from what consumers accept); operations say who sends what (the topic
owners, the mail gateway's commands, every consumer's dead letters) and who receives it
(`shared.wiring.CONSUMERS`, with each group id). `helpstream asyncapi` writes it to
docs/asyncapi.yaml; `make test` validates it with the official AsyncAPI CLI and fails when
the committed file differs from a fresh one.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic.json_schema import models_json_schema

from shared.command_signing import KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from shared.commands import COMMAND_MODELS
from shared.dlq_payload import REDACTED_HEADER, TRUNCATED_HEADER
from shared.events import CONTENT_TYPE, EVENT_MODELS, CloudEvent
from shared.topic_provisioning import ACCESS, TOPICS
from shared.topics import COMMANDS, DLQ_SUFFIX, Topics
from shared.wiring import CONSUMERS, group_id, topic_of_event

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import BaseModel

REF_ROOT = "#/components/schemas/"
KAFKA_BINDING = "0.5.0"
TRACE_HEADERS = {
    "traceparent": {
        "type": "string",
        "description": "W3C trace context of the publishing span (the same trace as the "
        "event's `traceparent` attribute).",
        "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
    },
    "tracestate": {"type": "string", "description": "W3C tracestate, when the trace has one."},
}
CONTENT_TYPE_HEADER = {"content-type": {"type": "string", "const": CONTENT_TYPE}}
DLQ_HEADERS = {
    "error-type": "Why the record was refused (a reason code or the handler's exception).",
    "error-message": "The reason in words, redacted like requester text.",
    "failed-at": "When it was dead-lettered (RFC 3339).",
    "consumer": "`<service>.<consumer>` that refused it.",
    "original-topic": "Where it was read.",
    "original-partition": "Its partition there.",
    "original-offset": "Its offset there.",
    REDACTED_HEADER: "Kinds of secrets redacted from the payload, comma-separated (if any).",
    TRUNCATED_HEADER: "The original size in bytes, when the payload was cut (if it was).",
}
SENDERS_OF_COMMANDS = ("mail_gateway",)  # services; platform services send commands too


def _key(name: str) -> str:
    """A component or channel key AsyncAPI accepts (`^[\\w.-]+$`)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _channel_key(topic: str) -> str:
    return _key(topic.removeprefix("helpstream.").replace(DLQ_SUFFIX, "_dlq"))


def _schemas() -> tuple[dict[str, str], dict[str, Any]]:
    """Message name -> its payload schema's component name, and every component schema."""
    models: dict[str, type[BaseModel]] = {**EVENT_MODELS, **COMMAND_MODELS}
    envelopes: list[tuple[type[BaseModel], Literal["validation"]]] = [
        (CloudEvent[model], "validation")  # type: ignore[valid-type]
        for _, model in sorted(models.items())
    ]
    refs, top = models_json_schema(envelopes, ref_template=REF_ROOT + "{model}")
    names = {
        name: refs[(CloudEvent[model], "validation")]["$ref"].removeprefix(REF_ROOT)  # type: ignore[valid-type]
        for name, model in sorted(models.items())
    }
    schemas: dict[str, Any] = top["$defs"]
    envelope = CloudEvent[dict[str, Any]].model_json_schema(ref_template=REF_ROOT + "{model}")
    envelope["title"] = "CloudEvent"
    envelope["description"] = (
        "CloudEvents 1.0 structured mode, the envelope of every event and command; "
        "`data` is the message's own schema."
    )
    schemas["CloudEvent"] = envelope
    return names, schemas


def _message(name: str, schema: str, *, command: bool) -> dict[str, Any]:
    headers: dict[str, Any] = {**CONTENT_TYPE_HEADER, **TRACE_HEADERS}
    required = ["content-type"]
    if command:
        headers[KEY_ID_HEADER] = {"type": "string", "description": "The API key's id."}
        headers[TIMESTAMP_HEADER] = {"type": "string", "description": "Unix seconds."}
        headers[SIGNATURE_HEADER] = {
            "type": "string",
            "pattern": "^v1=[0-9a-f]{64}$",
            "description": "`v1=` + HMAC-SHA256 over `<timestamp>.` + the exact value, "
            "keyed by HMAC-SHA256(api_key, 'helpstream.commands.v1').",
        }
        required += [KEY_ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]
    model: type[BaseModel] = COMMAND_MODELS[name] if command else EVENT_MODELS[name]
    return {
        "name": name,
        "title": model.__name__,
        "summary": (model.__doc__ or name).strip().splitlines()[0],
        "contentType": CONTENT_TYPE,
        "headers": {"type": "object", "properties": headers, "required": required},
        "payload": {"$ref": REF_ROOT + schema},
        "correlationId": {"location": "$message.payload#/correlationid"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": "The subject: a ticket id (order per ticket).",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _dead_letter() -> dict[str, Any]:
    return {
        "name": "dead_letter",
        "title": "Dead letter",
        "summary": "A record a consumer refused: the original key, headers and payload "
        "(secrets redacted), plus the reason.",
        "contentType": "application/octet-stream",
        "headers": {
            "type": "object",
            "properties": {k: {"type": "string", "description": d} for k, d in DLQ_HEADERS.items()},
            "required": ["error-type", "error-message", "failed-at", "consumer"],
        },
        "payload": {"description": "The original value, redacted; any bytes."},
    }


def _channel(topic: str, messages: list[str], description: str) -> dict[str, Any]:
    spec = next(s for s in TOPICS if s.name == topic)
    return {
        "address": topic,
        "description": description,
        "messages": {_key(m): {"$ref": f"#/components/messages/{_key(m)}"} for m in messages},
        "bindings": {
            "kafka": {
                "topic": topic,
                "partitions": spec.partitions,
                "topicConfiguration": {
                    "retention.ms": spec.retention_ms,
                    "max.message.bytes": int(spec.configs["max.message.bytes"]),
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }


def _operation(
    action: str, topic: str, messages: list[str], summary: str, group: str | None = None
) -> dict[str, Any]:
    channel = _channel_key(topic)
    operation: dict[str, Any] = {
        "action": action,
        "summary": summary,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{_key(m)}"} for m in messages],
    }
    if group is not None:
        operation["bindings"] = {
            "kafka": {
                "groupId": {"type": "string", "const": group},
                "bindingVersion": KAFKA_BINDING,
            }
        }
    return operation


def document() -> dict[str, Any]:
    """The whole AsyncAPI 3.0 document as a mapping (deterministic: sorted, no timestamps)."""
    names, schemas = _schemas()
    on_topic: dict[str, list[str]] = {spec.name: [] for spec in TOPICS}
    for event_type in sorted(EVENT_MODELS):
        on_topic[topic_of_event(event_type)].append(event_type)
    on_topic[COMMANDS] = sorted(COMMAND_MODELS)
    dlqs = [spec.name for spec in TOPICS if spec.name.endswith(DLQ_SUFFIX)]
    for dlq in dlqs:
        on_topic[dlq] = ["dead_letter"]

    channels: dict[str, Any] = {}
    for topic, messages in on_topic.items():
        if topic.endswith(DLQ_SUFFIX):
            what = f"What consumers of {topic.removesuffix(DLQ_SUFFIX)} refused."
        elif topic == COMMANDS:
            what = "Commands for intake, signed with an API key (platform services, mail gateway)."
        else:
            owner = next(s for s, a in ACCESS.items() if topic in a.writes)
            what = f"Events of {owner}; an event with another `source` is dead-lettered."
        channels[_channel_key(topic)] = _channel(topic, messages, what)

    operations: dict[str, Any] = {}
    for service, access in sorted(ACCESS.items()):
        for topic in access.writes:
            operations[_key(f"{service}.send.{_channel_key(topic)}")] = _operation(
                "send", topic, on_topic[topic], f"{service} publishes on {topic}."
            )
    for service, consumers in sorted(CONSUMERS.items()):
        for consumer, topics in sorted(consumers.items()):
            group = group_id(service, consumer)
            for topic in topics:
                operations[_key(f"{service}.{consumer}.receive.{_channel_key(topic)}")] = (
                    _operation("receive", topic, on_topic[topic], f"{group} reads {topic}.", group)
                )
                dlq = Topics.dlq(topic)
                operations[_key(f"{service}.{consumer}.send.{_channel_key(dlq)}")] = _operation(
                    "send", dlq, on_topic[dlq], f"{group} dead-letters what it refuses."
                )

    components: dict[str, Any] = {
        _key(name): _message(name, schema, command=name in COMMAND_MODELS)
        for name, schema in sorted(names.items())
    }
    components["dead_letter"] = _dead_letter()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "helpstream",
            "version": _version(),
            "description": (
                "Event-driven support backend for crypto exchanges. Every message is a "
                "CloudEvents 1.0 structured-mode JSON record keyed by ticket id; W3C trace "
                "context travels in the `traceparent` attribute and header. Generated from "
                "the code by `helpstream asyncapi`."
            ),
            "license": {"name": "Apache-2.0"},
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Any Kafka-compatible cluster (HELPSTREAM_KAFKA_BOOTSTRAP); "
                "topic names take HELPSTREAM_TOPIC_PREFIX in front.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": components, "schemas": dict(sorted(schemas.items()))},
    }


def _version() -> str:
    try:
        return version("helpstream")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0.0.0"


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)


def write_asyncapi(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    return path
