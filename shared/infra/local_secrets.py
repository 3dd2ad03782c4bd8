"""The secrets a local run makes for itself, and which service gets which.

Services refuse to start without their secrets (`shared.secrets`), so `helpstream up`,
the end-to-end tests and the benchmarks generate random ones; the local run keeps them
in `.data/secrets.json` (mode 600) so links mailed yesterday still open today. Each
service is given only the secrets it uses: the admin bootstrap key reaches intake alone.
"""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

# setting name -> the services that take it
USED_BY: dict[str, tuple[str, ...]] = {
    "bootstrap_api_key": ("intake",),
    "requester_link_secret": ("intake", "notifier"),
    "sla_read_api_key": ("intake", "sla_monitor"),
    "operator_api_key": ("sla_monitor",),
    "survey_secret": ("feedback",),
    "reports_api_key": ("feedback",),
    "inbox_secret": ("notifier",),
    # signs reply addresses and Message-IDs (notifier) and checks them (the mail gateway)
    "mail_thread_secret": ("notifier", "mail_gateway"),
    # the API key (tickets:write) the mail gateway signs its commands with
    "mail_gateway_api_key": ("intake", "mail_gateway"),
    # bearer key of the mail gateway's attachment downloads
    "attachments_api_key": ("mail_gateway",),
    # bearer key intake sends to feedback and notifier to gather a requester's data export
    "privacy_api_key": ("intake", "feedback", "notifier"),
}


def generate() -> dict[str, str]:
    """Fresh random values for every secret (API keys in API-key shape)."""
    values = {name: secrets.token_urlsafe(32) for name in USED_BY}
    values["bootstrap_api_key"] = f"hs_local_{secrets.token_urlsafe(32)}"
    values["mail_gateway_api_key"] = f"hs_mailgateway_{secrets.token_urlsafe(32)}"
    return values


def load_or_create(data_dir: Path) -> dict[str, str]:
    """The local run's secrets: made once, kept in the data dir, topped up when new ones
    appear; the bootstrap key is also in `.data/api-key` for shell use."""
    path = data_dir / "secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    legacy = data_dir / "api-key"
    if "bootstrap_api_key" not in stored and legacy.exists():
        stored["bootstrap_api_key"] = legacy.read_text().strip()
    values = {**generate(), **{k: v for k, v in stored.items() if k in USED_BY}}
    if values != stored:
        path.write_text(json.dumps(values, indent=2) + "\n")
        path.chmod(0o600)
    if not legacy.exists():  # where the README's curl examples read the key from
        legacy.write_text(values["bootstrap_api_key"] + "\n")
        legacy.chmod(0o600)
    return values


# Settings whose absence turns a feature off rather than stopping the service.
OPTIONAL = frozenset({"bootstrap_api_key", "inbox_secret"})


def required_for(cls: type[Any], values: dict[str, str]) -> dict[str, str]:
    """The values of the secrets settings class `cls` requires (built in-process)."""
    fields = getattr(cls, "model_fields", {})
    return {k: v for k, v in values.items() if k in fields and k not in OPTIONAL}


def service_env(service: str, values: dict[str, str]) -> dict[str, str]:
    """`HELPSTREAM_*` variables with the secrets `service` uses, and no others."""
    return {
        f"HELPSTREAM_{name.upper()}": values[name]
        for name, users in USED_BY.items()
        if service in users and name in values
    }


# The containers around the services (docker-compose.yml) have secrets of their own: each
# service's Kafka user (SASL/SCRAM; the ACLs are per user) and the Prometheus and Grafana
# logins. They are settings of no service, so they are named without HELPSTREAM_.
KAFKA_USERS: dict[str, str] = {
    "intake": "helpstream-intake",
    "sla_monitor": "helpstream-sla-monitor",
    "feedback": "helpstream-feedback",
    "notifier": "helpstream-notifier",
    "mail_gateway": "helpstream-mail-gateway",
}


def kafka_password_variable(service: str) -> str:
    return f"KAFKA_PASSWORD_{service.upper()}"


def deployment_env() -> dict[str, str]:
    """Everything `helpstream secrets` writes to `.env`: every service secret as
    `HELPSTREAM_<NAME>`, a Kafka password per service, and the Prometheus (with its bcrypt
    hash: Prometheus' web config takes only the hash) and Grafana admin passwords."""
    import bcrypt

    env = {f"HELPSTREAM_{name.upper()}": value for name, value in generate().items()}
    env.update({kafka_password_variable(s): secrets.token_urlsafe(32) for s in KAFKA_USERS})
    prometheus = secrets.token_urlsafe(32)
    env["PROMETHEUS_PASSWORD"] = prometheus
    env["PROMETHEUS_PASSWORD_BCRYPT"] = bcrypt.hashpw(
        prometheus.encode(), bcrypt.gensalt()
    ).decode()
    env["GRAFANA_ADMIN_PASSWORD"] = secrets.token_urlsafe(32)
    return env


def env_file_text(env: dict[str, str]) -> str:
    """`NAME=value` lines; a value holding `$` (a bcrypt hash) in single quotes, which docker
    compose reads literally."""
    return "".join(f"{k}='{v}'\n" if "$" in v else f"{k}={v}\n" for k, v in env.items())
