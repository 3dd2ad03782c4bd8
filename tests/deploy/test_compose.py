"""docker-compose.yml works: each service's command runs with that service's environment.

No Docker engine here, so the compose file is read as compose reads it (YAML anchors and
merges, `${VAR}` from the `.env` that `helpstream secrets` writes) and every helpstream
service is started as a process with its `command` and `environment` against the test
session's broker and database. Compose host names are mapped to 127.0.0.1 by rewriting
`host:port` values to the local ports. A missing secret, a wrong URL or command, or a
service that does not start fails here, and a ticket opened with the compose bootstrap key
must get its acknowledgement email.
"""

from __future__ import annotations

import re
import shlex
import smtplib
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import yaml

from helpstream.demo import reply_by_email
from shared.infra.processes import ManagedProcess, free_port
from tests.support import eventually

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.infra.mailcatcher import MailCatcher
    from shared.infra.modes import Infra

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HELPSTREAM = str(Path(sys.executable).parent / "helpstream")
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?[?-])([^}]*))?\}|\$(\w+)")
ADDRESS = re.compile(r"(?://|^)([\w.-]+):\d+|//([\w.-]+)")
REQUIRED = re.compile(r"^\$\{(\w+):\?[^}]+\}$")


class MissingVariable(Exception):
    pass


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def helpstream_services() -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile, in file order."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's interpolation: `$$`, `${VAR}`, `${VAR:?err}`, `${VAR:-default}`, `$VAR`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(4)
        operator, argument = match.group(2), match.group(3)
        found = env.get(name)
        unset = found is None or (found == "" and operator is not None and ":" in operator)
        if unset and operator is not None and operator.endswith("?"):
            raise MissingVariable(f"{name}: {argument}")
        if unset and operator is not None and operator.endswith("-"):
            return argument or ""
        return found or ""

    return VARIABLE.sub(one, value)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as compose reads them (single quotes: literal)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            if len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def written_env_file(folder: Path) -> dict[str, str]:
    path = folder / ".env"
    result = subprocess.run(
        [HELPSTREAM, "secrets", "--env-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return read_env_file(path)


def argv_of(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def published(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) of each published port."""
    pairs = []
    for port in service.get("ports", []):
        host, _, container = str(port).rpartition(":")
        pairs.append((int(host.rpartition(":")[2] or container), int(container)))
    return pairs


# The compose file's structure


def test_every_long_running_container_has_a_healthcheck() -> None:
    for name, service in compose()["services"].items():
        if service.get("restart") == "no":  # one-shot: awaited with service_completed_...
            users = [
                other
                for other in compose()["services"].values()
                if name in other.get("depends_on", {})
            ]
            assert users, f"{name} runs once and nothing waits for it"
            for user in users:
                assert user["depends_on"][name]["condition"] == "service_completed_successfully"
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_every_secret_is_required_from_the_env_file() -> None:
    written = written_env_file_names()
    for name, service in compose()["services"].items():
        for key, value in service.get("environment", {}).items():
            secretive = re.search(r"SECRET|PASSWORD|_API_KEY", key)
            if secretive and "HASH" not in key:
                match = REQUIRED.match(str(value))
                assert match, f"{name}: {key} must be ${{VAR:?...}}, not {value!r}"
                assert match.group(1) in written, f"{name}: `helpstream secrets` lacks {key}"


def written_env_file_names() -> set[str]:
    from shared.infra.local_secrets import deployment_env

    return set(deployment_env())


def test_prometheus_has_no_lifecycle_or_admin_api_and_asks_for_a_password() -> None:
    prometheus = compose()["services"]["prometheus"]
    flags = " ".join(argv_of(prometheus["command"]) + argv_of(prometheus.get("entrypoint", [])))
    assert "--web.enable-lifecycle" not in flags
    assert "--web.enable-admin-api" not in flags
    assert "--web.config.file=" in flags
    assert "basic_auth_users" in flags


def test_prometheus_web_config_as_written_at_start_is_valid(tmp_path: Path) -> None:
    """The entrypoint's script, run with the .env's hash: promtool accepts what it writes."""
    import bcrypt

    promtool = subprocess.run(["which", "promtool"], capture_output=True, text=True, check=False)
    if promtool.returncode != 0:
        pytest.skip("promtool is not installed (`make install` installs it)")
    env = written_env_file(tmp_path)
    prometheus = compose()["services"]["prometheus"]
    script = interpolate(prometheus["entrypoint"][2], {}).replace("/prometheus/", f"{tmp_path}/")
    script = script.split("\nexec ")[0]
    container_env = {k: interpolate(str(v), env) for k, v in prometheus["environment"].items()}
    subprocess.run(["sh", "-c", script], env=container_env, check=True, timeout=10)
    check = subprocess.run(
        [promtool.stdout.strip(), "check", "web-config", str(tmp_path / "web.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    written = yaml.safe_load((tmp_path / "web.yml").read_text())
    hashed = written["basic_auth_users"]["helpstream"].encode()
    assert bcrypt.checkpw(env["PROMETHEUS_PASSWORD"].encode(), hashed)


def test_grafana_has_no_anonymous_access_and_its_admin_password_from_the_env_file() -> None:
    grafana = compose()["services"]["grafana"]["environment"]
    assert str(grafana["GF_AUTH_ANONYMOUS_ENABLED"]) == "false"
    assert str(grafana["GF_USERS_ALLOW_SIGN_UP"]) == "false"
    assert REQUIRED.match(grafana["GF_SECURITY_ADMIN_PASSWORD"])
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    assert [d["secureJsonData"]["basicAuthPassword"] for d in datasources] == [
        "$PROMETHEUS_PASSWORD"
    ]
    assert "PROMETHEUS_PASSWORD" in grafana


def test_mongodb_is_healthy_only_as_the_replica_set_primary() -> None:
    mongodb = compose()["services"]["mongodb"]
    replica_set = argv_of(mongodb["command"])[argv_of(mongodb["command"]).index("--replSet") + 1]
    health = " ".join(argv_of(mongodb["healthcheck"]["test"]))
    assert "myState === 1" in health
    assert f"rs.initiate({{_id:'{replica_set}'" in health
    for name, service in helpstream_services().items():
        url = service["environment"]["HELPSTREAM_MONGO_URL"]
        assert url.endswith(f"replicaSet={replica_set}"), name


def test_each_service_logs_in_to_kafka_as_its_own_user_with_the_acls_kafka_init_gives() -> None:
    from shared.infra.local_secrets import KAFKA_USERS, kafka_password_variable

    init_script = (ROOT / "deploy/kafka/kafka-init.sh").read_text()
    init_env = compose()["services"]["kafka-init"]["environment"]
    for name, service in helpstream_services().items():
        env = service["environment"]
        assert env["HELPSTREAM_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert env["HELPSTREAM_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        user = env["HELPSTREAM_KAFKA_SASL_USERNAME"]
        assert user == KAFKA_USERS[name]
        variable = kafka_password_variable(name)
        password = REQUIRED.match(env["HELPSTREAM_KAFKA_SASL_PASSWORD"])
        assert password is not None
        assert password.group(1) == variable
        assert f'user {user} "${variable}"' in init_script
        assert variable in init_env
    kafka = compose()["services"]["kafka"]["environment"]
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert "StandardAuthorizer" in kafka["KAFKA_AUTHORIZER_CLASS_NAME"]
    assert str(kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"]) == "false"


def test_notifier_names_a_mailbox_the_gateway_accepts() -> None:
    services = helpstream_services()
    address = services["notifier"]["environment"]["HELPSTREAM_INBOUND_MAIL_ADDRESS"]
    accepted = yaml.safe_load(
        services["mail_gateway"]["environment"]["HELPSTREAM_INBOUND_ADDRESSES"]
    )
    assert address in accepted


# Running it


def port_plan(infra: Infra, mail: MailCatcher) -> dict[tuple[str, int], str]:
    """(compose host, port) → the local `host:port` standing in for it."""
    mongo = re.match(r"mongodb://([^/?]+)", infra.mongo_url)
    assert mongo is not None
    plan = {
        ("kafka", 9092): infra.kafka_bootstrap,
        ("mongodb", 27017): mongo.group(1),
        ("mailpit", 1025): f"127.0.0.1:{mail.port}",
    }
    for name, service in helpstream_services().items():
        for host_port, container_port in published(service):
            local = f"127.0.0.1:{free_port()}"
            plan[(name, container_port)] = local
            plan[("localhost", host_port)] = local  # public URLs: the published port
    return plan


def local_env(
    name: str, dotenv: dict[str, str], plan: dict[tuple[str, int], str]
) -> dict[str, str]:
    """The service's compose environment with every compose address made local."""
    raw = {
        k: interpolate(str(v), dotenv)
        for k, v in helpstream_services()[name]["environment"].items()
    }
    hosts = {host for host, _ in plan}

    def rewrite(match: re.Match[str]) -> str:
        return plan.get((match.group(1), int(match.group(2)))) or match.group(0)

    env = {}
    for key, value in raw.items():
        value = re.sub(r"\b([a-z_]+):(\d+)\b", rewrite, value)
        if key.endswith("_HOST") and value == "0.0.0.0":
            value = "127.0.0.1"  # where the container binds all; here, loopback
        env[key] = value
    for key, value in raw.items():  # HOST=name with PORT=port: the pair is one address
        if key.endswith("_HOST") and value in hosts:
            port_key = key.removesuffix("_HOST") + "_PORT"
            local = plan[(value, int(raw[port_key]))]
            env[key], env[port_key] = local.rsplit(":", 1)
        elif key.endswith("_PORT") and (name, int(value) if value.isdigit() else -1) in plan:
            env[key] = plan[(name, int(value))].rsplit(":", 1)[1]  # where it listens
    unresolved = [  # whatever still points elsewhere names no compose service at that port
        f"{key}={value}"
        for key, value in env.items()
        if any((m.group(1) or m.group(2)) != "127.0.0.1" for m in ADDRESS.finditer(value))
        or (key.endswith("_HOST") and value != "127.0.0.1")
    ]
    assert not unresolved, f"{name}: addresses no compose service answers on: {unresolved}"
    return env


@dataclass(frozen=True)
class Running:
    urls: dict[str, str]  # service → its HTTP base URL
    dotenv: dict[str, str]  # what `helpstream secrets` wrote
    inbound_smtp: tuple[str, int]  # where the mail gateway's published SMTP port landed


class HealthCheck:
    """Compose's healthcheck command as the readiness probe, run at most once a second."""

    def __init__(self, argv: list[str]) -> None:
        self.argv, self.last = argv, 0.0

    def __call__(self) -> bool:
        if time.monotonic() - self.last < 1:
            return False
        self.last = time.monotonic()
        done = subprocess.run(self.argv, capture_output=True, timeout=10, check=False)
        return done.returncode == 0


@pytest.fixture
def compose_services(
    infra: Infra, mail: MailCatcher, uid: str, tmp_path: Path
) -> Iterator[Running]:
    """Each helpstream service of docker-compose.yml, started with its own command and
    environment."""
    dotenv = written_env_file(tmp_path)
    plan = port_plan(infra, mail)
    isolation = {
        "HELPSTREAM_TOPIC_PREFIX": f"t{uid}.",
        "HELPSTREAM_MONGO_DB_PREFIX": f"t{uid}",
        "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    }
    # The embedded broker has neither SASL nor the idempotent producer: only these Kafka
    # settings are overridden (compose's users and ACLs are checked above, not here).
    embedded_kafka = {
        "HELPSTREAM_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "HELPSTREAM_KAFKA_IDEMPOTENT_PRODUCER": "false",
    }
    # kafka-init's part: the topics, which the services require to exist.
    topics = subprocess.run(
        [HELPSTREAM, "topics", "apply"],
        env={
            "PATH": "/usr/bin:/bin",
            "HELPSTREAM_KAFKA_BOOTSTRAP": infra.kafka_bootstrap,
            **isolation,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert topics.returncode == 0, topics.stdout + topics.stderr
    started: list[ManagedProcess] = []
    urls: dict[str, str] = {}
    try:
        for name, service in helpstream_services().items():
            env = local_env(name, dotenv, plan)
            # SecantusDB presents itself as the one-member replica set "secantus", not rs0
            env["HELPSTREAM_MONGO_URL"] = env["HELPSTREAM_MONGO_URL"].replace(
                "replicaSet=rs0", "directConnection=true"
            )
            env.update(isolation)
            env.update(embedded_kafka)
            argv = argv_of(service["command"])
            assert argv[0] == "python", f"{name}: the image runs `python …`"
            own = {str(port): plan[(name, port)] for _, port in published(service)}
            health = [
                re.sub(r"127\.0\.0\.1:(\d+)", lambda m, own=own: own[m.group(1)], part)
                for part in argv_of(service["healthcheck"]["test"])[1:]
            ]
            assert health[0] == "python"
            process = ManagedProcess(
                name=name,
                argv=[sys.executable, *argv[1:]],
                log_path=tmp_path / f"{name}.log",
                ready=HealthCheck([sys.executable, *health[1:]]),
                env=env,
            )
            process.start(timeout=90)  # ready when compose's own healthcheck passes
            started.append(process)
            urls[name] = f"http://127.0.0.1:{env['HELPSTREAM_HTTP_PORT']}"
        smtp_host, smtp_port = plan[("mail_gateway", 2525)].rsplit(":", 1)
        yield Running(urls, dotenv, (smtp_host, int(smtp_port)))
    finally:
        for process in reversed(started):
            process.stop()


async def test_a_ticket_opened_with_the_compose_bootstrap_key_gets_its_acknowledgement_email(
    compose_services: Running, mail: MailCatcher
) -> None:
    urls, dotenv = compose_services.urls, compose_services.dotenv
    headers = {"Authorization": f"Bearer {dotenv['HELPSTREAM_BOOTSTRAP_API_KEY']}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        response = await http.post(
            f"{urls['intake']}/v1/tickets",
            json={
                "requester": {"id": "u-7", "email": "ana.silva@example.com", "locale": "en"},
                "channel": "app",
                "subject": "Withdrawal stuck",
                "description": "My BTC withdrawal has been pending for 5 hours",
                "crypto": {"asset": "BTC", "network": "BTC", "amount": "0.4"},
            },
        )
        assert response.status_code == 201, response.text
        ticket_id = response.json()["id"]

        mails = mail.wait_for(1, timeout=60)
        assert [m.rcpt_tos for m in mails] == [("ana.silva@example.com",)]
        text = mails[0].text()
        assert ticket_id in text
        assert "reply to this email" in text.lower()  # notifier knows the gateway's mailbox
        assert str(mails[0].message["Reply-To"]).endswith("@helpstream.local")

        # the status link notifier mailed opens on intake, which reads sla_monitor
        link = re.search(r"Check your request and reply online: (\S+)", text)
        assert link is not None, text
        page = await http.get(link.group(1))
        assert page.status_code == 200
        assert "Withdrawal stuck" in page.text

        # the requester answers by email: the gateway takes it from the relay, intake adds it
        answer = "It arrived just now, thank you."
        with smtplib.SMTP(*compose_services.inbound_smtp, timeout=30) as smtp:
            smtp.send_message(reply_by_email(mails[0].message, answer, "ana.silva@example.com"))

        async def answered() -> bool:
            ticket = (await http.get(f"{urls['intake']}/v1/tickets/{ticket_id}")).json()
            return any(m["body"] == answer for m in ticket["messages"])

        await eventually(answered, timeout=60)
