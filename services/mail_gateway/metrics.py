"""mail_gateway metric names, each with what it counts. Labels are bounded (no addresses)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class GatewayMetrics:
    # received mail by outcome: threaded (names its ticket), new (threads nowhere),
    # auto_reply, bounce, own (our own mail back), invalid (not mail), refused (a recipient
    # or size refused before the content was taken)
    mails: Counter
    # every SMTP reply the server sent, by its three-digit code (421, 250, 451, 550, 552 …)
    smtp_replies: Counter
    # attachments by outcome: kept (stored), executable and too_large (recorded, not kept)
    attachments: Counter
    # bounce reports published on helpstream.mail, by reason (hard, soft, …)
    bounces_reported: Counter
    # attachment downloads, by outcome (served, not_found, unauthenticated)
    downloads: Counter
    # from the end of DATA to the reply: parse, store attachments, publish, acked
    handling_seconds: Histogram


def gateway_metrics(registry: CollectorRegistry) -> GatewayMetrics:
    p = "helpstream_mail_gateway"
    return GatewayMetrics(
        mails=Counter(f"{p}_mails", "Received mail by outcome.", ("outcome",), registry=registry),
        smtp_replies=Counter(
            f"{p}_smtp_replies", "SMTP replies sent, by code.", ("code",), registry=registry
        ),
        attachments=Counter(
            f"{p}_attachments", "Attachments by outcome.", ("outcome",), registry=registry
        ),
        bounces_reported=Counter(
            f"{p}_bounces_reported", "Bounce reports published.", ("reason",), registry=registry
        ),
        downloads=Counter(
            f"{p}_attachment_downloads",
            "Attachment downloads by outcome.",
            ("outcome",),
            registry=registry,
        ),
        handling_seconds=Histogram(
            f"{p}_handling_seconds",
            "Time from the end of DATA to the reply.",
            buckets=HANDLING_BUCKETS,
            registry=registry,
        ),
    )
