"""`helpstream`: run everything locally, manage the embedded infrastructure, send a demo."""

from __future__ import annotations

import asyncio
import email
import email.policy
import importlib.metadata
import json
import os
import random
import signal
import smtplib
import sys
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from shared.errors import InfraStartError
from shared.infra import local_secrets
from shared.infra.embedded import kafka_answers, mongo_answers, mongo_url
from shared.infra.mailcatcher import MailCatcher
from shared.infra.modes import Infra, start_embedded
from shared.infra.ports import Port, first_taken, taken_message
from shared.infra.processes import ManagedProcess, pid_alive, stop_pid
from shared.infra.prometheus import INSTALL_HINT, prometheus_binary, prometheus_process
from shared.infra.services import (
    EVERY_SERVICE,
    INBOUND_MAIL_ADDRESS,
    inbound_mail_env,
    service_process,
)
from shared.settings import InfraMode, ServiceSettings

app = typer.Typer(help="helpstream: event-driven support backend for crypto exchanges.")
infra_app = typer.Typer(help="The embedded Kafka broker and MongoDB server.")
app.add_typer(infra_app, name="infra")

DataDir = Annotated[Path, typer.Option(help="Where logs, data and caught mail go.")]
KAFKA_PORT, MONGO_PORT, SMTP_PORT, PROMETHEUS_PORT = 19092, 27117, 2525, 9090
INBOUND_SMTP_PORT = 2526  # the mail gateway: replies by email come in here
PROMETHEUS_LOCAL_CONFIG = (
    Path(__file__).resolve().parents[1] / "deploy/prometheus/prometheus.local.yml"
)


def _say(message: str) -> None:
    typer.echo(message)
    sys.stdout.flush()


def _print_version(value: bool) -> None:
    if value:
        _say(f"helpstream {importlib.metadata.version('helpstream')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """helpstream: event-driven support backend for crypto exchanges."""


def _exit_if_a_port_is_taken(ports: list[Port]) -> None:
    """One line naming the port, its component and the flag that moves it; never a
    traceback from deep inside a half-started broker."""
    taken = first_taken(ports)
    if taken is not None:
        typer.echo(taken_message(taken), err=True)
        raise typer.Exit(1)


@app.command()
def up(
    data_dir: DataDir = Path(".data"),
    kafka_port: int = KAFKA_PORT,
    mongo_port: int = MONGO_PORT,
    smtp_port: int = SMTP_PORT,
    prometheus_port: int = PROMETHEUS_PORT,
    inbound_smtp_port: int = INBOUND_SMTP_PORT,
) -> None:
    """Start broker, MongoDB, mail catcher, the services (the mail gateway among them) and
    Prometheus (when installed); Ctrl-C stops them all."""
    settings = ServiceSettings()
    ports = [Port(smtp_port, "mail catcher", "--smtp-port")]
    if settings.infra is InfraMode.embedded:
        ports[:0] = [
            Port(kafka_port, "Kafka", "--kafka-port"),
            Port(mongo_port, "MongoDB", "--mongo-port"),
        ]
    if prometheus_binary() is not None:
        ports.append(Port(prometheus_port, "Prometheus", "--prometheus-port"))
    ports += [Port(port, name, "stop what holds it") for name, port in EVERY_SERVICE.items()]
    ports.append(Port(inbound_smtp_port, "mail gateway (SMTP)", "--inbound-smtp-port"))
    _exit_if_a_port_is_taken(ports)
    data_dir.mkdir(parents=True, exist_ok=True)
    infra: Infra | None = None
    services: list[ManagedProcess] = []
    prometheus: ManagedProcess | None = None
    mail = MailCatcher(port=smtp_port, folder=data_dir / "mail")
    stop = {"now": False}

    def on_signal(signum: int, _: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if settings.infra is InfraMode.embedded:
            _say(
                f"starting Kafka (Tansu) on 127.0.0.1:{kafka_port} and MongoDB (SecantusDB) "
                f"on 127.0.0.1:{mongo_port} ..."
            )
            infra = start_embedded(
                data_dir, kafka_port=kafka_port, mongo_port=mongo_port, persistent=True
            )
            bootstrap, mongo = infra.kafka_bootstrap, infra.mongo_url
        else:
            bootstrap, mongo = settings.kafka_bootstrap, settings.mongo_url
        _say(f"  kafka    {bootstrap}\n  mongodb  {mongo}")
        mail.start()
        _say(f"  mail     smtp://127.0.0.1:{smtp_port} (messages in {data_dir / 'mail'})")
        secrets_ = local_secrets.load_or_create(data_dir)
        _say(f"  secrets  {data_dir / 'secrets.json'} (generated; the API key has every scope)")
        env = {
            "HELPSTREAM_KAFKA_BOOTSTRAP": bootstrap,
            "HELPSTREAM_MONGO_URL": mongo,
            "HELPSTREAM_SMTP_PORT": str(smtp_port),
            "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS": os.environ.get(
                "HELPSTREAM_KAFKA_SESSION_TIMEOUT_MS", "2000"
            ),
            "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS": os.environ.get(
                "HELPSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS", "300"
            ),
            # acknowledgements name the promised first reply time (one user, no flood)
            "HELPSTREAM_ACK_SLA_WAIT_S": os.environ.get("HELPSTREAM_ACK_SLA_WAIT_S", "5"),
            # mail says "reply to this email", and the mail gateway reads the replies
            **inbound_mail_env(inbound_smtp_port),
        }
        for name, port in EVERY_SERVICE.items():
            _say(f"starting {name} ...")
            process = service_process(name, port, env, data_dir / "logs", secrets=secrets_)
            process.start(timeout=60)
            services.append(process)
            _say(f"  {name:<12} http://127.0.0.1:{port}  (/docs, /metrics, /readyz)")
        _say(
            f"  inbound      smtp://127.0.0.1:{inbound_smtp_port}  (replies by email to "
            f"{INBOUND_MAIL_ADDRESS}; `helpstream demo` sends one)"
        )
        prometheus = _start_prometheus(data_dir, prometheus_port)
        _say("helpstream is up. Try `helpstream demo` in another terminal; Ctrl-C stops.")
        while not stop["now"]:
            for process in services:
                if process.process is not None and process.process.poll() is not None:
                    _say(f"{process.name} exited; see {process.log_path}")
                    stop["now"] = True
            if prometheus is not None and prometheus.process is not None:
                if prometheus.process.poll() is not None:
                    _say(
                        f"prometheus exited; see {prometheus.log_path} (the services keep running)"
                    )
                    prometheus = None
            time.sleep(0.3)
    finally:
        _say("stopping ...")
        if prometheus is not None:
            prometheus.stop()
        for process in reversed(services):
            process.stop()
        mail.stop()
        if infra is not None:
            infra.stop()
        _say("stopped.")


def _start_prometheus(data_dir: Path, port: int) -> ManagedProcess | None:
    """Prometheus with deploy/prometheus/prometheus.local.yml, when installed; else a hint."""
    if prometheus_binary() is None:
        _say(f"  prometheus not installed, skipped. To get it: {INSTALL_HINT}")
        return None
    if not PROMETHEUS_LOCAL_CONFIG.is_file():
        _say(f"  prometheus skipped: {PROMETHEUS_LOCAL_CONFIG} not found (run from a checkout)")
        return None
    _say("starting prometheus ...")
    process = prometheus_process(
        PROMETHEUS_LOCAL_CONFIG, data_dir / "prometheus", port, data_dir / "logs"
    )
    try:
        process.start(timeout=30)
    except InfraStartError as exc:
        _say(f"  prometheus did not start (the services keep running): {exc}")
        return None
    _say(f"  prometheus   http://127.0.0.1:{port}  (alerts: /alerts, targets: /targets)")
    return process


def _local_api_key(data_dir: Path) -> str:
    """The local run's admin key (made once with the run's other secrets)."""
    return local_secrets.load_or_create(data_dir)["bootstrap_api_key"]


def _state_file(data_dir: Path) -> Path:
    return data_dir / "infra.json"


@infra_app.command("up")
def infra_up(
    data_dir: DataDir = Path(".data"), kafka_port: int = KAFKA_PORT, mongo_port: int = MONGO_PORT
) -> None:
    """Start the broker and MongoDB detached; returns once both answer."""
    state = _state_file(data_dir)
    if state.exists() and _status(json.loads(state.read_text())):
        _say(f"already running ({state})")
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    infra = start_embedded(
        data_dir, kafka_port=kafka_port, mongo_port=mongo_port, persistent=True, detached=True
    )
    record = {
        "kafka": {"pid": infra.kafka_pid, "port": kafka_port, "bootstrap": infra.kafka_bootstrap},
        "mongodb": {"pid": infra.mongo_pid, "port": mongo_port, "url": infra.mongo_url},
    }
    state.write_text(json.dumps(record, indent=2))
    _say(f"kafka    {infra.kafka_bootstrap} (pid {infra.kafka_pid})")
    _say(f"mongodb  {infra.mongo_url} (pid {infra.mongo_pid})")


def _status(record: dict[str, dict[str, object]]) -> bool:
    kafka = record["kafka"]
    mongo = record["mongodb"]
    return kafka_answers(str(kafka["bootstrap"])) and mongo_answers(
        mongo_url(int(str(mongo["port"])))
    )


@infra_app.command("status")
def infra_status(data_dir: DataDir = Path(".data")) -> None:
    """Exit 0 when both answer, 1 otherwise."""
    state = _state_file(data_dir)
    if not state.exists():
        _say("not running (no state file)")
        raise typer.Exit(1)
    record = json.loads(state.read_text())
    ok = True
    for name, entry in record.items():
        alive = pid_alive(int(entry["pid"]))
        answers = (
            kafka_answers(entry["bootstrap"]) if name == "kafka" else mongo_answers(entry["url"])
        )
        _say(
            f"{name:<8} pid {entry['pid']} {'alive' if alive else 'gone'}, "
            f"{'answering' if answers else 'NOT answering'}"
        )
        ok = ok and alive and answers
    raise typer.Exit(0 if ok else 1)


@infra_app.command("down")
def infra_down(data_dir: DataDir = Path(".data")) -> None:
    """Stop exactly the processes `infra up` started."""
    state = _state_file(data_dir)
    if not state.exists():
        _say("nothing to stop")
        return
    for name, entry in json.loads(state.read_text()).items():
        stop_pid(int(entry["pid"]))
        _say(f"stopped {name} (pid {entry['pid']})")
    state.unlink()


@app.command()
def demo(
    intake_url: str = "http://127.0.0.1:8001",
    api_key: Annotated[
        str | None, typer.Option(help="Default: the local run's key in .data/secrets.json.")
    ] = None,
    count: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    rate: Annotated[float, typer.Option(min=0.1, max=500, help="Tickets per second.")] = 2.0,
    seed: int = 7,
    reply_by_email: Annotated[
        bool,
        typer.Option(
            help="Then answer the last ticket's acknowledgement by email, as its requester "
            "would, through the mail gateway (the local run's mail catcher folder)."
        ),
    ] = True,
    data_dir: DataDir = Path(".data"),
    inbound_smtp_port: int = INBOUND_SMTP_PORT,
) -> None:
    """Send a stream of realistic crypto-support tickets (zh-CN and en) to intake."""
    from helpstream.demo import demo_ticket

    key = api_key or _local_api_key(data_dir)
    last: dict[str, Any] = {}

    async def send() -> None:
        rng = random.Random(seed)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=intake_url, timeout=10, headers=headers) as client:
            for seq in range(count):
                body = demo_ticket(seq, rng)
                response = await client.post("/v1/tickets", json=body)
                _say(
                    f"{response.status_code} {response.json().get('id', response.text)[:60]} "
                    f"{body['subject']}"
                )
                if response.status_code == 201:
                    last.update(ticket=response.json(), body=body)
                await asyncio.sleep(1 / rate)

    asyncio.run(send())
    if reply_by_email and last:
        _reply_to_acknowledgement(last["ticket"], data_dir / "mail", inbound_smtp_port)


def _reply_to_acknowledgement(ticket: dict[str, Any], folder: Path, port: int) -> None:
    """Find the ticket's acknowledgement among the caught mail and answer it by email."""
    from helpstream.demo import DEMO_REPLIES, reply_by_email

    address = ticket["requester"]["email"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml"), reverse=True):
            caught = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if isinstance(caught, EmailMessage) and address in str(caught["To"]):
                text = DEMO_REPLIES.get(ticket["requester"].get("locale", "en"), DEMO_REPLIES["en"])
                reply = reply_by_email(caught, text, address)
                try:
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.send_message(reply)
                except OSError as exc:
                    _say(f"could not reach the mail gateway on 127.0.0.1:{port}: {exc}")
                    return
                _say(
                    f"replied by email as {address} to {reply['To']}; the reply is on ticket "
                    f"{ticket['id']} (GET /v1/tickets/{ticket['id']}) in a moment"
                )
                return
        time.sleep(0.5)
    _say(f"no acknowledgement for {address} in {folder} within 30 s; no email reply sent")


@app.command("api-key")
def api_key_create(
    name: Annotated[str, typer.Option(help="Who uses it, e.g. withdrawal-service.")],
    scope: Annotated[
        list[str], typer.Option(help="tickets:read, tickets:write, tickets:agent, admin.")
    ],
) -> None:
    """Create an intake API key in intake's database (HELPSTREAM_MONGO_URL); prints it once."""
    from prometheus_client import CollectorRegistry
    from pymongo import AsyncMongoClient

    from services.intake.auth import ApiKeyStore, Scope
    from services.intake.metrics import intake_metrics
    from shared.clock import SystemClock
    from shared.mongo import service_database

    try:
        scopes = frozenset(Scope(s) for s in scope)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = ServiceSettings()  # only where the database is: no service secrets needed

    async def create() -> str:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongo_url)
        try:
            metrics = intake_metrics(CollectorRegistry())  # counted nowhere: a one-off
            store = ApiKeyStore(service_database(client, settings, "intake"), metrics)
            issued = await store.create(name, scopes, SystemClock().now())
        finally:
            await client.close()
        return issued.secret

    _say(asyncio.run(create()))


@app.command("secrets")
def secrets_env(
    env_file: Annotated[
        Path, typer.Option(help="Where to write them (docker compose reads `.env`).")
    ] = Path(".env"),
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Generate every secret the services require, as HELPSTREAM_* lines (mode 600)."""
    if env_file.exists() and not force:
        _say(f"{env_file} exists; keep it (rotating breaks outstanding links) or pass --force")
        raise typer.Exit(1)
    values = local_secrets.deployment_env()
    env_file.write_text(local_secrets.env_file_text(values))
    env_file.chmod(0o600)
    _say(f"wrote {len(values)} secrets to {env_file}")


@app.command()
def schemas(out: Path = Path("docs/events")) -> None:
    """Write the JSON Schema of every event and command to `out`."""
    from shared.schemas import write_schemas

    for path in write_schemas(out):
        _say(str(path))


@app.command()
def asyncapi(out: Path = Path("docs/asyncapi.yaml")) -> None:
    """Write the AsyncAPI 3.0 document of every channel, message and operation to `out`."""
    from shared.asyncapi import write_asyncapi

    _say(str(write_asyncapi(out)))


topics_app = typer.Typer(help="Kafka topics and DLQs, for clusters where auto-create is off.")
app.add_typer(topics_app, name="topics")


@topics_app.command("apply")
def topics_apply(
    check: Annotated[bool, typer.Option(help="Only report; create and change nothing.")] = False,
) -> None:
    """Create every topic and DLQ with the configured partitions, replication and retention
    (HELPSTREAM_TOPIC_*), or report how an existing one differs; exit 1 on what is left."""
    from shared.topic_provisioning import TopicSettings, apply_topics

    findings = asyncio.run(apply_topics(TopicSettings(), check_only=check))
    for finding in findings:
        _say(finding.line())
    left = [f for f in findings if f.unresolved]
    _say(f"{len(findings)} topics, {len(left)} not as configured ({len(findings) - len(left)} are)")
    raise typer.Exit(1 if left else 0)


def main() -> None:
    app()
