"""The container and monitoring files agree with the code they deploy.

No Docker engine is needed: the files are parsed and checked against the settings
models, the source tree and each other. `promtool` checks run where it is installed.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from services.feedback.settings import FeedbackSettings
from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from services.sla_monitor.settings import SlaSettings
from shared.infra import local_secrets
from shared.infra.services import EVERY_SERVICE, SERVICES
from shared.settings import InfraMode, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

SETTINGS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "sla_monitor": SlaSettings,
    "feedback": FeedbackSettings,
    "notifier": NotifierSettings,
}
ENV_PREFIX = "HELPSTREAM_"

# Where each Prometheus config expects to find the services.
SCRAPE_HOSTS = {"prometheus.yml": "{name}", "prometheus.local.yml": "127.0.0.1"}


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def compose_service(name: str) -> dict[str, Any]:
    service: dict[str, Any] = compose()["services"][name]
    return service


COMPOSE_SECRETS = local_secrets.deployment_env()
REQUIRED_VARIABLE = re.compile(r"^\$\{(\w+):\?[^}]+\}$")


def helpstream_env(name: str) -> dict[str, str]:
    """The service's variables as compose passes them with the `.env` that
    `helpstream secrets` writes (a `${VAR:?...}` left unset stops compose)."""
    environment = compose_service(name).get("environment", {})
    assert isinstance(environment, dict), f"{name}: write `environment` as a mapping"
    env = {}
    for key, value in environment.items():
        if key.startswith(ENV_PREFIX):
            required = REQUIRED_VARIABLE.match(str(value))
            env[key] = COMPOSE_SECRETS[required.group(1)] if required else str(value)
    return env


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_compose_takes_every_secret_from_the_environment_never_a_default(name: str) -> None:
    environment = compose_service(name).get("environment", {})
    for key, value in environment.items():
        if "SECRET" in key or key.endswith("_API_KEY"):
            assert REQUIRED_VARIABLE.match(str(value)), f"{name}: {key} must be ${{{key}:?...}}"


def command_argv(name: str) -> list[str]:
    command = compose_service(name)["command"]
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(part) for part in test)


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes are left out."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            if source.startswith((".", "/", "~")):
                mounts.append((source, target))
        elif volume.get("type") == "bind":
            mounts.append((volume["source"], volume["target"]))
    return mounts


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) pairs; short syntax "HOST:CONTAINER" or long syntax."""
    pairs = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            pairs.append((int(port["published"]), int(port["target"])))
        else:
            host, _, container = str(port).rpartition(":")
            pairs.append((int(host.rpartition(":")[2] or container), int(container)))
    return pairs


def prometheus_config(file_name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROMETHEUS_DIR / file_name).read_text("utf-8"))
    return loaded


def scrape_targets(config: dict[str, Any]) -> dict[str, str]:
    """target → its `service` label, over every job and target group."""
    targets = {}
    for job in config["scrape_configs"]:
        for group in job.get("static_configs", []):
            for target in group["targets"]:
                targets[target] = group.get("labels", {}).get("service", "")
    return targets


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def dockerfile_copy_sources() -> list[str]:
    sources = []
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY":
            parts = [part for part in arguments.split() if not part.startswith("--")]
            sources.extend(parts[:-1])
    return sources


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def alert_rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def promtool() -> str:
    """promtool's path; on CI its absence is a failure (`make install` installs it)."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing on CI: `make install` installs Debian's prometheus")
        pytest.skip("promtool is not on PATH (`make install` installs Debian's prometheus)")
    return path


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings built in a test see only the values the test passes."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)


# docker-compose.yml: the four services


def test_compose_defines_the_infrastructure_and_the_four_services() -> None:
    expected = {"kafka", "mongodb", "mailpit", "prometheus", "grafana", *SERVICES}
    assert expected <= set(compose()["services"])
    assert set(SETTINGS) == set(SERVICES)


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_helpstream_variable_names_a_settings_field(name: str) -> None:
    fields = {ENV_PREFIX + field.upper() for field in SETTINGS[name].model_fields}
    unknown = sorted(set(helpstream_env(name)) - fields)
    assert not unknown, f"{name}: {unknown} are not fields of {SETTINGS[name].__name__}"


@pytest.mark.parametrize("name", sorted(SETTINGS))
@pytest.mark.usefixtures("clean_environment")
def test_every_helpstream_value_validates_against_the_settings(name: str) -> None:
    values: dict[str, Any] = {
        key.removeprefix(ENV_PREFIX).lower(): value for key, value in helpstream_env(name).items()
    }
    try:
        settings = SETTINGS[name](**values)
    except ValidationError as exc:
        pytest.fail(f"{name}: compose environment does not validate:\n{exc}")
    assert settings.infra is InfraMode.external
    assert settings.http_port == SERVICES[name]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_services_use_the_compose_broker_database_and_bind_address(name: str) -> None:
    env = helpstream_env(name)
    assert env["HELPSTREAM_INFRA"] == "external"
    assert env["HELPSTREAM_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["HELPSTREAM_KAFKA_IDEMPOTENT_PRODUCER"] == "true"
    assert env["HELPSTREAM_MONGO_URL"] == "mongodb://mongodb:27017/?replicaSet=rs0"
    assert env["HELPSTREAM_HTTP_HOST"] == "0.0.0.0"


def test_notifier_sends_mail_to_the_mail_catcher() -> None:
    env = helpstream_env("notifier")
    assert env["HELPSTREAM_SMTP_HOST"] == "mailpit"
    mailpit_ports = {container for _, container in published_ports(compose_service("mailpit"))}
    assert int(env["HELPSTREAM_SMTP_PORT"]) in mailpit_ports


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_command_runs_its_own_existing_module(name: str) -> None:
    argv = command_argv(name)
    assert argv[:2] == ["python", "-m"], argv
    module = argv[2]
    assert module == f"services.{name}"
    assert (ROOT / Path(*module.split(".")) / "__main__.py").is_file()


@pytest.mark.parametrize(("name", "port"), sorted(SERVICES.items()))
def test_service_port_agrees_in_env_published_ports_and_healthcheck(name: str, port: int) -> None:
    service = compose_service(name)
    assert int(helpstream_env(name)["HELPSTREAM_HTTP_PORT"]) == port
    assert published_ports(service) == [(port, port)]
    health = healthcheck_text(service)
    assert f"http://127.0.0.1:{port}/readyz" in health
    assert "urllib" in health, "the image has no curl: probe with python's urllib"


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_service_is_built_from_the_dockerfile_and_waits_for_healthy_dependencies(
    name: str,
) -> None:
    service = compose_service(name)
    build = service["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    depends_on = service["depends_on"]
    for dependency in ("kafka", "mongodb"):
        assert depends_on[dependency]["condition"] == "service_healthy"
        assert "healthcheck" in compose_service(dependency)


def test_every_bind_mounted_host_path_exists() -> None:
    missing = [
        f"{name}: {source}"
        for name, service in compose()["services"].items()
        for source, _ in bind_mounts(service)
        if not (ROOT / source).exists()
    ]
    assert not missing


# docker-compose.yml: infrastructure


def test_kafka_runs_as_a_single_kraft_node_reachable_by_service_name() -> None:
    kafka = compose_service("kafka")
    env = {key: str(value) for key, value in kafka["environment"].items()}
    assert kafka["image"] == "apache/kafka:3.9.1"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "SASL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@localhost:29093"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # kafka-init creates them
    assert "kafka-broker-api-versions.sh" in healthcheck_text(kafka)


def test_mongodb_runs_a_replica_set_matching_the_services_url() -> None:
    mongodb = compose_service("mongodb")
    command = mongodb["command"]
    argv = shlex.split(command) if isinstance(command, str) else command
    assert argv[argv.index("--replSet") + 1] == "rs0"
    health = healthcheck_text(mongodb)
    assert "rs.initiate" in health
    assert "host:'mongodb:27017'" in health


def test_prometheus_loads_the_mounted_compose_config() -> None:
    prometheus = compose_service("prometheus")
    mounts = dict(bind_mounts(prometheus))
    assert mounts["./deploy/prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


def test_grafana_datasource_and_dashboard_folder_match_compose() -> None:
    grafana = compose_service("grafana")
    mounts = {target: source for source, target in bind_mounts(grafana)}
    assert mounts["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    assert str(grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"]) == "false"

    datasources = yaml.safe_load(
        (GRAFANA_PROVISIONING / "datasources" / "prometheus.yml").read_text()
    )
    prometheus_port = published_ports(compose_service("prometheus"))[0][1]
    assert [source["url"] for source in datasources["datasources"]] == [
        f"http://prometheus:{prometheus_port}"
    ]

    providers = yaml.safe_load((GRAFANA_PROVISIONING / "dashboards" / "helpstream.yml").read_text())
    for provider in providers["providers"]:
        assert provider["options"]["path"] in mounts


# Prometheus


@pytest.mark.parametrize(("file_name", "host"), sorted(SCRAPE_HOSTS.items()))
def test_prometheus_scrapes_every_service(file_name: str, host: str) -> None:
    targets = scrape_targets(prometheus_config(file_name))
    expected = {f"{host.format(name=name)}:{port}": name for name, port in EVERY_SERVICE.items()}
    assert targets == expected


@pytest.mark.parametrize("file_name", sorted(SCRAPE_HOSTS))
def test_prometheus_loads_the_alert_rules_and_the_job_they_watch(file_name: str) -> None:
    config = prometheus_config(file_name)
    assert config["rule_files"] == ["alerts.yml"]
    assert (PROMETHEUS_DIR / config["rule_files"][0]).is_file()
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    watched = {
        match for rule in alert_rules() for match in re.findall(r'job="([^"]+)"', rule["expr"])
    }
    assert watched <= jobs


def test_local_prometheus_scrapes_every_five_seconds() -> None:
    assert prometheus_config("prometheus.local.yml")["global"]["scrape_interval"] == "5s"


def test_every_alert_rule_has_expression_duration_severity_and_summary() -> None:
    rules = alert_rules()
    assert rules
    for rule in rules:
        name = rule.get("alert", rule.get("record"))
        assert rule.get("expr"), name
        assert rule.get("for"), name
        assert rule.get("labels", {}).get("severity"), name
        assert rule.get("annotations", {}).get("summary"), name


@pytest.mark.parametrize("file_name", sorted(SCRAPE_HOSTS))
def test_promtool_accepts_the_prometheus_config(file_name: str) -> None:
    result = subprocess.run(
        [promtool(), "check", "config", str(PROMETHEUS_DIR / file_name)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# deploy/Dockerfile and .dockerignore


@pytest.mark.parametrize("source", dockerfile_copy_sources())
def test_dockerfile_copy_source_exists_and_is_not_ignored(source: str) -> None:
    assert (ROOT / source).exists(), f"deploy/Dockerfile copies {source}, which does not exist"
    ignored = [pattern for pattern in dockerignore_patterns() if fnmatch.fnmatch(source, pattern)]
    assert not ignored, f".dockerignore drops {source} ({ignored})"


def test_dockerfile_installs_runtime_dependencies_only_and_runs_unprivileged() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    runs = " ".join(arguments for keyword, arguments in instructions if keyword == "RUN")
    assert "pip install --no-cache-dir . " in f"{runs} "
    assert "[embedded" not in runs
    assert "[dev" not in runs
    users = [arguments for keyword, arguments in instructions if keyword == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    cmd = next(arguments for keyword, arguments in reversed(instructions) if keyword == "CMD")
    assert cmd == '["python", "-m", "services.intake"]'


def test_dockerignore_keeps_local_state_out_of_the_build_context() -> None:
    patterns = set(dockerignore_patterns())
    assert {".venv", ".data", "tests", "bench", ".git"} <= patterns
