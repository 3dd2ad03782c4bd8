"""One trace runs from the HTTP request that opens a ticket to the email that answers it."""

from __future__ import annotations

import gzip
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from shared.infra.processes import free_port
from tests.e2e.conftest import API_KEY
from tests.support import eventually

if TYPE_CHECKING:
    from collections.abc import Iterator

    from shared.infra.mailcatcher import MailCatcher


class Collector:
    """A tiny OTLP/HTTP receiver: keeps every span it is sent, by service."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, str, str]] = []  # service, name, trace id, parent
        self._lock = threading.Lock()

    def take(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                )
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            (service, span.name, span.trace_id.hex(), span.parent_span_id.hex())
                        )

    def traces(self) -> dict[str, list[tuple[str, str]]]:
        """trace id → (service, span name) of each of its spans."""
        with self._lock:
            found: dict[str, list[tuple[str, str]]] = defaultdict(list)
            for service, name, trace_id, _ in self.spans:
                found[trace_id].append((service, name))
            return dict(found)


PORT = free_port()
COLLECTOR = Collector()


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            COLLECTOR.take(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = ThreadingHTTPServer(("127.0.0.1", PORT), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield COLLECTOR
    finally:
        server.shutdown()
        server.server_close()


TRACED = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{PORT}",
    "OTEL_BSP_SCHEDULE_DELAY": "100",
    "HELPSTREAM_ACK_SLA_WAIT_S": "5",  # the acknowledgement waits for sla_monitor's promise
}


@pytest.mark.parametrize("services", [TRACED], indirect=True)
async def test_one_trace_runs_from_the_ticket_request_to_the_acknowledgement_email(
    collector: Collector, services: dict[str, str], mail: MailCatcher, uid: str
) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(timeout=10, headers=headers) as http:
        response = await http.post(
            f"{services['intake']}/v1/tickets",
            json={
                "requester": {"id": f"u-{uid}", "email": f"trace-{uid}@example.com"},
                "channel": "app",
                "subject": "Withdrawal stuck",
                "description": "My USDT withdrawal has not arrived after 3 hours",
                "crypto": {"asset": "USDT", "network": "TRC20", "amount": "2500"},
            },
        )
    assert response.status_code == 201, response.text
    assert mail.wait_for(1, timeout=30)
    tickets, sla = f"t{uid}.helpstream.tickets", f"t{uid}.helpstream.sla"
    wanted = {
        ("helpstream-intake", "POST /v1/tickets"),
        ("helpstream-intake", f"publish {tickets}"),
        ("helpstream-sla_monitor", f"process {tickets}"),
        ("helpstream-sla_monitor", f"publish {sla}"),
        ("helpstream-notifier", f"process {sla}"),
        ("helpstream-notifier", "smtp send"),
    }

    async def whole_trace() -> list[tuple[str, str]] | None:
        for spans in collector.traces().values():
            if wanted <= set(spans):
                return spans
        return None

    spans = await eventually(whole_trace, timeout=30)
    # the request's MongoDB commands are in the same trace (named `<database>.<command>`)
    assert any(s == "helpstream-intake" and name.startswith(f"t{uid}") for s, name in spans)
