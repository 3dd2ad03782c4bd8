"""Topics as they should be on the broker, who uses which, and how they get there.

Production clusters turn broker auto-create off, and an auto-created topic gets the
broker's defaults (partition count, a week's retention, 1 MB records) rather than ours.
So `helpstream topics apply` creates every topic and DLQ with the partitions, replication
and retention configured here, or reports how an existing one differs; and a service run
with `HELPSTREAM_REQUIRE_TOPICS=true` refuses to start, naming the topics it lacks,
instead of letting its first subscription auto-create them. The Kubernetes manifests
(Strimzi `KafkaTopic`s and `KafkaUser` ACLs) follow the same tables; a test checks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from pydantic import Field

from shared.errors import ConfigError
from shared.kafka import connection_options
from shared.settings import ServiceSettings
from shared.topics import COMMANDS, FEEDBACK, MAIL, NOTIFICATIONS, SLA, TICKETS, Topics

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
TOPIC_ALREADY_EXISTS = 36  # Kafka error code: another apply (or a service) was first
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # producers send up to 4 MiB (shared.kafka)
DLQ_MAX_MESSAGE_BYTES = 5 * 1024 * 1024  # the original plus the reason headers


@dataclass(frozen=True)
class TopicSpec:
    """One topic as configured (name without the tenant prefix)."""

    name: str
    partitions: int
    retention_ms: int
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Access:
    """What one service's Kafka user reads (in its own groups) and writes."""

    reads: tuple[str, ...]
    writes: tuple[str, ...]

    @property
    def dead_letters(self) -> tuple[str, ...]:
        """Every consumer writes the poison it meets to its input's DLQ."""
        return tuple(Topics.dlq(topic) for topic in self.reads)


# Who reads and writes what: the README's ACL table, the KafkaUsers' ACLs, and the topics
# each service checks for at start.
ACCESS: dict[str, Access] = {
    "intake": Access(reads=(COMMANDS, SLA, FEEDBACK, NOTIFICATIONS, MAIL), writes=(TICKETS,)),
    "sla_monitor": Access(reads=(TICKETS,), writes=(SLA,)),
    "feedback": Access(reads=(TICKETS,), writes=(FEEDBACK,)),
    "notifier": Access(reads=(TICKETS, SLA, FEEDBACK, MAIL), writes=(NOTIFICATIONS,)),
    "mail_gateway": Access(reads=(TICKETS,), writes=(COMMANDS, MAIL)),
}

# Partitions bound how far a consumer group scales out (KEDA's maxReplicaCount); keys are
# ticket ids, so more partitions never reorder one ticket's events.
_EVENT_TOPICS: tuple[TopicSpec, ...] = (
    # stamped by the broker: the replay window counts from arrival (README, Signed commands)
    TopicSpec(COMMANDS, 12, 7 * DAY_MS, {"message.timestamp.type": "LogAppendTime"}),
    TopicSpec(TICKETS, 12, 7 * DAY_MS),
    TopicSpec(SLA, 12, 7 * DAY_MS),
    TopicSpec(FEEDBACK, 6, 7 * DAY_MS),
    TopicSpec(NOTIFICATIONS, 6, 7 * DAY_MS),
    TopicSpec(MAIL, 6, 7 * DAY_MS),
)
CONSUMED = tuple(sorted({topic for access in ACCESS.values() for topic in access.reads}))
# Dead letters wait for a person: kept longer, few partitions.
TOPICS: tuple[TopicSpec, ...] = (
    *(
        TopicSpec(
            s.name,
            s.partitions,
            s.retention_ms,
            {"max.message.bytes": str(MAX_MESSAGE_BYTES), **s.configs},
        )
        for s in _EVENT_TOPICS
    ),
    *(
        TopicSpec(
            Topics.dlq(name), 3, 30 * DAY_MS, {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES)}
        )
        for name in CONSUMED
    ),
)


def spec_of(name: str) -> TopicSpec:
    return next(spec for spec in TOPICS if spec.name == name)


def topics_of(service: str) -> tuple[str, ...]:
    """Every topic `service` reads or writes (its inputs' DLQs included), unprefixed."""
    access = ACCESS[service]
    return (*access.reads, *access.writes, *access.dead_letters)


class TopicSettings(ServiceSettings):
    """How `helpstream topics apply` shapes topics on this cluster (`HELPSTREAM_TOPIC_*`)."""

    topic_replication_factor: int = Field(
        1, ge=1, description="Copies of each partition (3 on a production cluster)."
    )
    topic_min_insync_replicas: int | None = Field(
        None, ge=1, description="min.insync.replicas of every topic (2 with replication 3)."
    )
    topic_partitions: int | None = Field(
        None, ge=1, description="One partition count for every topic instead of the defaults."
    )
    # Bounded (no -1, "keep forever"): events and dead letters carry requester data, which
    # must be gone some time after an erasure (README, Privacy).
    topic_retention_ms: int | None = Field(
        None,
        ge=HOUR_MS,
        le=90 * DAY_MS,
        description="Retention of the event topics (default 7 days; 1 hour to 90 days).",
    )
    dlq_retention_ms: int | None = Field(
        None,
        ge=HOUR_MS,
        le=90 * DAY_MS,
        description="Retention of the dead-letter topics (default 30 days; 1 hour to 90 days).",
    )


@dataclass(frozen=True)
class Desired:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str]


def desired_topics(settings: TopicSettings) -> list[Desired]:
    """Every topic and DLQ with this cluster's prefix, partitions, replication, configs."""
    out = []
    for spec in TOPICS:
        dlq = spec.name.endswith(Topics.dlq(""))
        retention = settings.dlq_retention_ms if dlq else settings.topic_retention_ms
        configs = {
            "cleanup.policy": "delete",
            "retention.ms": str(retention if retention is not None else spec.retention_ms),
            **spec.configs,
        }
        if settings.topic_min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
        out.append(
            Desired(
                name=settings.topic_prefix + spec.name,
                partitions=settings.topic_partitions or spec.partitions,
                replication=settings.topic_replication_factor,
                configs=configs,
            )
        )
    return out


State = Literal["created", "ok", "fixed", "drift", "missing"]


@dataclass(frozen=True)
class Finding:
    """What apply found (or did) for one topic; `drift` and `missing` are not fixed."""

    topic: str
    state: State
    detail: str = ""

    @property
    def unresolved(self) -> bool:
        return self.state in ("drift", "missing")

    def line(self) -> str:
        return f"{self.state:<8} {self.topic}" + (f": {self.detail}" if self.detail else "")


class MissingTopics(ConfigError):
    """A service started with HELPSTREAM_REQUIRE_TOPICS finds some of its topics absent."""

    def __init__(self, service: str, missing: Sequence[str]) -> None:
        super().__init__(
            f"{service} will not start: missing Kafka topics {', '.join(missing)} "
            "(create them with `helpstream topics apply`, or HELPSTREAM_REQUIRE_TOPICS=false "
            "to let the broker auto-create them)"
        )
        self.service = service
        self.missing = list(missing)


def _admin(settings: ServiceSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        **connection_options(settings), client_id="helpstream-topics", request_timeout_ms=15_000
    )


async def existing_topics(settings: ServiceSettings) -> set[str]:
    """Topic names on the broker. A metadata request for *all* topics: asking for named
    ones would make a broker with auto-create on create them."""
    admin = _admin(settings)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def require_topics(settings: ServiceSettings, service: str) -> None:
    """Raises MissingTopics naming every topic of `service` the broker does not have."""
    wanted = [settings.topic_prefix + name for name in topics_of(service)]
    present = await existing_topics(settings)
    missing = [name for name in wanted if name not in present]
    if missing:
        raise MissingTopics(service, missing)


async def apply_topics(settings: TopicSettings, *, check_only: bool = False) -> list[Finding]:
    """Creates the missing topics and aligns the configs of the others where the broker
    lets it; reports what differs and could not be changed (idempotent)."""
    desired = desired_topics(settings)
    admin = _admin(settings)
    await admin.start()
    try:
        present = set(await admin.list_topics())
        findings: dict[str, Finding] = {}
        absent = [d for d in desired if d.name not in present]
        if absent and check_only:
            findings.update({d.name: Finding(d.name, "missing") for d in absent})
        elif absent:
            created = await _create(admin, absent)
            findings.update(
                {name: Finding(name, "created", _shape(d)) for name, d in created.items()}
            )
            present |= {d.name for d in absent}  # created now, or by someone else meanwhile
        to_check = [d for d in desired if d.name in present and d.name not in findings]
        if to_check:
            described = {
                t["topic"]: t for t in await admin.describe_topics([d.name for d in to_check])
            }
            configs = await _configs(admin, [d.name for d in to_check])
            for d in to_check:
                findings[d.name] = await _reconcile(
                    admin, d, described[d.name], configs.get(d.name), check_only
                )
        return [findings[d.name] for d in desired]
    finally:
        await admin.close()


def _shape(d: Desired) -> str:
    retention = d.configs["retention.ms"]
    return f"{d.partitions} partitions, replication {d.replication}, retention.ms {retention}"


async def _create(admin: AIOKafkaAdminClient, topics: Sequence[Desired]) -> dict[str, Desired]:
    """Creates `topics`; returns those this call created (the others already existed)."""
    response = await admin.create_topics(
        [NewTopic(d.name, d.partitions, d.replication, topic_configs=d.configs) for d in topics]
    )
    by_name = {d.name: d for d in topics}
    created = {}
    for entry in response.to_object()["topic_errors"]:
        code, name = entry["error_code"], entry["topic"]
        if code == 0:
            created[name] = by_name[name]
        elif code != TOPIC_ALREADY_EXISTS:
            raise ConfigError(
                f"could not create topic {name}: {entry.get('error_message') or code}"
            )
    return created


async def _configs(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """Each topic's configs as the broker reports them; empty where it does not say."""
    try:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
    except KafkaError:
        return {}
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"] == 0:
                out[resource["resource_name"]] = {
                    entry["config_names"]: entry["config_value"]
                    for entry in resource["config_entries"]
                }
    return out


async def _reconcile(
    admin: AIOKafkaAdminClient,
    d: Desired,
    described: dict[str, Any],
    actual_configs: dict[str, str] | None,
    check_only: bool,
) -> Finding:
    unfixable: list[str] = []
    fixed: list[str] = []
    partitions = len(described["partitions"])
    if partitions < d.partitions:
        reason = await _add_partitions(admin, d, check_only)
        (unfixable if reason else fixed).append(
            f"{partitions} partitions, configured {d.partitions}"
            + (f" ({reason})" if reason else "")
        )
    elif partitions > d.partitions:
        unfixable.append(
            f"{partitions} partitions, configured {d.partitions} (partitions cannot be removed)"
        )
    replication = min((len(p["replicas"]) for p in described["partitions"]), default=0)
    if replication != d.replication:
        unfixable.append(
            f"replication {replication}, configured {d.replication} "
            "(change it with a partition reassignment)"
        )
    if actual_configs is None:
        unfixable.append("the broker did not report its configs (retention not checked)")
    else:
        differing = {k: v for k, v in d.configs.items() if actual_configs.get(k) != v}
        if differing:
            what = ", ".join(
                f"{k} {actual_configs.get(k, 'unset')} -> {v}" for k, v in sorted(differing.items())
            )
            reason = await _alter_configs(admin, d, check_only)
            (unfixable if reason else fixed).append(what + (f" ({reason})" if reason else ""))
    if unfixable:
        return Finding(d.name, "drift", "; ".join(unfixable + [f"fixed {f}" for f in fixed]))
    if fixed:
        return Finding(d.name, "fixed", "; ".join(fixed))
    return Finding(d.name, "ok")


async def _add_partitions(admin: AIOKafkaAdminClient, d: Desired, check_only: bool) -> str:
    """Empty when the partitions were added; else why not."""
    if check_only:
        return "check only"
    try:
        await admin.create_partitions({d.name: NewPartitions(d.partitions)})
    except KafkaError as exc:
        return f"the broker refused to add partitions: {type(exc).__name__}"
    return ""


async def _alter_configs(admin: AIOKafkaAdminClient, d: Desired, check_only: bool) -> str:
    """Empty when the configs were changed; else why not. AlterConfigs replaces a topic's
    whole dynamic config, so every config we manage is sent."""
    if check_only:
        return "check only"
    try:
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, d.name, configs=d.configs)]
        )
    except KafkaError as exc:
        return f"the broker refused to change configs: {type(exc).__name__}"
    for response in responses:
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                return f"the broker refused to change configs: {resource.get('error_message')}"
    return ""
