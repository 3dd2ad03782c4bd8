"""What a received mail becomes: a `ReceiveMail` command, bounce reports, or nothing.

Pure and free of I/O, so every rule is unit-tested: the SMTP handler parses nothing and
decides nothing, it stores what `Receive.keep` lists, publishes, and replies.

The gateway names a ticket only on proof: a reply address or a Message-ID in
`In-Reply-To`/`References` signed with the thread secret. A From header proves nothing
(it is the phishing path), so the sender is passed on for intake to compare with the
requester; the gateway never looks tickets up. Auto-replies, bounces and our own mail are
never threaded, so nothing loops; a bounce becomes `MailBounced` per failed address.

Secrets a requester mails (a seed phrase in the text, the subject or a file name; a key in
a `.txt` attachment) are redacted here, before anything is published or stored: the
command on Kafka and the attachment store hold placeholders, which intake counts as
redacted and warns the requester about.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from services.mail_gateway.charsets import decode
from services.mail_gateway.classify import Kind, Verdict, classify
from services.mail_gateway.parsing import InboundMail, InvalidMail, parse_mail
from services.mail_gateway.replies import extract_reply
from shared.commands import MAX_TEXT, Attachment, ReceiveMail
from shared.events import MailBounced, normalized_email
from shared.ids import stable_id
from shared.mail_threading import ticket_of_address, ticket_of_references
from shared.redaction import MAX_CHARS, redact

if TYPE_CHECKING:
    from services.mail_gateway import parsing
    from services.mail_gateway.settings import MailGatewaySettings

ONLY_ATTACHMENTS = "(no text; see attachments)"
NO_TEXT = "(no text)"
MAX_ATTACHMENTS = 20  # ReceiveMail's limit; further parts are not recorded
# ELF, Mach-O and Java class files (and Windows PE, see `_is_pe`), whatever their name says
_EXECUTABLE_MAGIC = (
    b"\x7fELF",
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
)
_IDEOGRAPH = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHARS_PER_ZH_WORD = 1.7  # so a mixed text is weighed by words, not characters
_CONTENT_LANGUAGE = re.compile(rb"^content-language:[ \t]*([^\r\n]*)", re.IGNORECASE | re.M)


@dataclass(frozen=True)
class Envelope:
    """What SMTP said, apart from the content: MAIL FROM ("" for `<>`) and RCPT TOs."""

    mail_from: str
    rcpt_tos: tuple[str, ...]


@dataclass(frozen=True)
class Rules:
    thread_secret: bytes
    own_addresses: tuple[str, ...]
    public_url: str
    attachment_max_bytes: int
    executable_extensions: tuple[str, ...]
    executable_types: frozenset[str]
    max_message_bytes: int

    @classmethod
    def of(cls, settings: MailGatewaySettings) -> Rules:
        return cls(
            thread_secret=settings.mail_thread_secret.get_secret_value().encode(),
            own_addresses=(*settings.inbound_addresses, *settings.own_addresses),
            public_url=settings.public_url.rstrip("/"),
            attachment_max_bytes=settings.attachment_max_bytes,
            executable_extensions=tuple(e.lower() for e in settings.executable_extensions),
            executable_types=frozenset(t.lower() for t in settings.executable_types),
            max_message_bytes=settings.max_message_bytes,
        )


@dataclass(frozen=True)
class Kept:
    """An attachment's content to store before the command is published."""

    sha256: str
    content: bytes
    filename: str
    content_type: str


@dataclass(frozen=True)
class Receive:
    command: ReceiveMail
    command_id: str  # CloudEvent id: the same for a relay's second delivery
    subject: str  # CloudEvent subject and Kafka key: the ticket, or `mail:<digest>`
    keep: tuple[Kept, ...]

    @property
    def outcome(self) -> Literal["threaded", "new"]:
        return "new" if self.command.threaded_by == "none" else "threaded"


@dataclass(frozen=True)
class BounceReport:
    event: MailBounced
    event_id: str
    subject: str


@dataclass(frozen=True)
class Bounce:
    reports: tuple[BounceReport, ...]  # empty when the bounce names no failed address
    reason: str
    outcome: Literal["bounce"] = "bounce"


@dataclass(frozen=True)
class Drop:
    """Accepted (250, so the relay does not bounce it back to a robot) and not applied."""

    outcome: Literal["auto_reply", "own"]
    reason: str


@dataclass(frozen=True)
class Refuse:
    """Not mail we can take: the relay gets `reply` (5xx) and returns it to its sender."""

    reply: str
    reason: str
    outcome: Literal["invalid"] = "invalid"


Decision = Receive | Bounce | Drop | Refuse


def decide(raw: bytes, envelope: Envelope, rules: Rules) -> Decision:
    """What `raw`, received with `envelope`, becomes."""
    try:
        parsed = parse_mail(raw, max_bytes=rules.max_message_bytes)
    except InvalidMail as exc:
        return Refuse(f"550 5.6.0 Not a mail message we can read ({exc.reason})", exc.reason)
    mail = parsed.mail
    verdict = classify(mail, own_addresses=rules.own_addresses, envelope_sender=envelope.mail_from)
    identity = _identity(raw, mail)
    if verdict.kind is Kind.BOUNCE:
        return _bounce(mail, verdict, envelope, rules, identity)
    if verdict.kind is Kind.AUTO_REPLY:
        return Drop("auto_reply", verdict.reason)
    if verdict.kind is Kind.OWN_MAIL:
        return Drop("own", verdict.reason)
    return _receive(parsed, raw, envelope, rules, identity)


def _identity(raw: bytes, mail: InboundMail) -> str:
    """The Message-ID, or a digest of the bytes when there is none."""
    if mail.message_id:
        return f"message-id:{mail.message_id}"
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# -- ordinary mail


def _receive(
    parsed: parsing.ParsedMail, raw: bytes, envelope: Envelope, rules: Rules, identity: str
) -> Receive | Refuse:
    mail = parsed.mail
    claimed = mail.from_.address if mail.from_ else envelope.mail_from
    try:
        sender = normalized_email(claimed) if claimed else ""
    except ValueError:
        sender = ""
    if not sender or len(sender) > 254:
        return Refuse("550 5.1.7 The sender's address (From) is missing or invalid", "sender")
    ticket, threaded_by = thread(mail, envelope, rules.thread_secret)
    attachments, keep = _attachments(parsed, rules)
    text = _CONTROL.sub("", extract_reply(mail.text).text).strip()
    body = text or (ONLY_ATTACHMENTS if attachments else NO_TEXT)
    if len(body) > MAX_TEXT:
        body = body[: MAX_TEXT - 1] + "…"
    body = redact(body).text
    name = redact(mail.from_.name[:200]).text if mail.from_ else ""
    command = ReceiveMail(
        sender=sender,
        sender_name=name or None,
        subject=redact(mail.subject[:300]).text[:300],
        body=body,
        attachments=attachments,
        message_id=mail.message_id[:998] if mail.message_id else None,
        threaded_by=threaded_by,
        locale=locale_of(f"{mail.subject}\n{text}", content_language(raw)),
    )
    return Receive(
        command=command,
        command_id=stable_id("mail_gateway", "receive_mail", sender, identity),
        subject=ticket or f"mail:{_digest(sender)}",
        keep=keep,
    )


ThreadedBy = Literal["reply_address", "message_id", "none"]


def thread(mail: InboundMail, envelope: Envelope, secret: bytes) -> tuple[str | None, ThreadedBy]:
    """The ticket a signed reply address names (first), else a signed Message-ID in
    In-Reply-To/References; a tag with a wrong signature names nothing."""
    addresses = [
        *envelope.rcpt_tos,
        *(a.address for a in (*mail.delivered_to, *mail.to, *mail.cc)),
    ]
    for address in addresses:
        ticket = ticket_of_address(secret, address)
        if ticket is not None:
            return ticket, "reply_address"
    ticket = ticket_of_references(secret, " ".join(mail.in_reply_to), " ".join(mail.references))
    if ticket is not None:
        return ticket, "message_id"
    return None, "none"


def _is_pe(content: bytes) -> bool:
    """A Windows executable: "MZ", and at the offset found at 0x3c, "PE\\0\\0"."""
    if not content.startswith(b"MZ") or len(content) < 0x40:
        return False
    offset = int.from_bytes(content[0x3C:0x40], "little")
    return content[offset : offset + 4] == b"PE\0\0"


def is_executable(filename: str, content_type: str, content: bytes, rules: Rules) -> bool:
    """By name, claimed type or content: a renamed `.exe` is still refused."""
    name = filename.lower().rstrip(". ")
    return (
        any(name.endswith(ext) for ext in rules.executable_extensions)
        or content_type.lower() in rules.executable_types
        or content.startswith(_EXECUTABLE_MAGIC)
        or _is_pe(content)
    )


def _attachments(
    parsed: parsing.ParsedMail, rules: Rules
) -> tuple[list[Attachment], tuple[Kept, ...]]:
    recorded: list[Attachment] = []
    keep: dict[str, Kept] = {}
    for part in parsed.mail.attachments[:MAX_ATTACHMENTS]:
        content = parsed.contents.get(part.sha256, b"")
        name, ctype = redact(part.filename[:255]).text[:255], part.content_type[:100]
        refused: Literal["executable", "too_large"] | None = None
        sha256, size = part.sha256, part.size
        if is_executable(part.filename, part.content_type, content, rules):
            refused = "executable"
        elif part.size > rules.attachment_max_bytes:
            refused = "too_large"
        elif (kept := _redacted_text(content, part.filename, ctype)) is None:
            refused = "too_large"  # a text too long to check for secrets is not kept
        else:
            if kept != content:
                sha256, size = hashlib.sha256(kept).hexdigest(), len(kept)
            keep.setdefault(sha256, Kept(sha256, kept, name, ctype))
        recorded.append(
            Attachment(
                name=name,
                content_type=ctype,
                size=size,
                sha256=sha256,
                refused=refused,
                url=None if refused else f"{rules.public_url}/v1/attachments/{sha256}",
            )
        )
    return recorded, tuple(keep.values())


_TEXT_SUFFIXES = (".txt", ".csv", ".json", ".md", ".log", ".text", ".tsv", ".keystore")
_TEXT_TYPES = ("text/", "application/json")


def _redacted_text(content: bytes, filename: str, content_type: str) -> bytes | None:
    """A text file (users export seed phrases, keys and keystores as `.txt` or `.json`)
    with its secrets redacted, as UTF-8; other content, or text without secrets, as is.
    None: a text file too long to check, which is then not kept."""
    texty = content_type.lower().startswith(_TEXT_TYPES) or filename.lower().endswith(
        _TEXT_SUFFIXES
    )
    if not texty:
        return content
    text, _ = decode(content, None)
    if len(text) > MAX_CHARS:
        return None
    result = redact(text)
    return result.text.encode() if result.redacted else content


def content_language(raw: bytes) -> str | None:
    """The top-level Content-Language header, if any (not kept by `parse_mail`)."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=-1)
    found = _CONTENT_LANGUAGE.search(raw[: end if end >= 0 else 64 * 1024])
    return found.group(1).decode("ascii", "replace").strip() if found else None


def locale_of(text: str, declared: str | None) -> str:
    """zh-CN when Content-Language says zh or the text is mostly Chinese (weighed in
    words, a Chinese word being ~1.7 characters), else en."""
    if declared and declared.strip().lower().startswith("zh"):
        return "zh-CN"
    chinese = len(_IDEOGRAPH.findall(text)) / _CHARS_PER_ZH_WORD
    latin = len(_LATIN_WORD.findall(text))
    return "zh-CN" if chinese > 0 and chinese >= latin else "en"


# -- bounces


def _bounce(
    mail: InboundMail, verdict: Verdict, envelope: Envelope, rules: Rules, identity: str
) -> Bounce:
    """One `MailBounced` per failed address, keyed by the ticket the returned mail names
    (its signed Message-ID, or the signed address the bounce came back to)."""
    ticket = ticket_of_references(
        rules.thread_secret, verdict.original_message_id, mail.returned_headers
    ) or next(
        (t for a in envelope.rcpt_tos if (t := ticket_of_address(rules.thread_secret, a))), None
    )
    reports = []
    for address in verdict.failed_recipients:
        if not 3 <= len(address) <= 254:
            continue
        status, diagnostic = _status_of(mail.delivery_status, address)
        event = MailBounced(
            address=address,
            reason=_bounce_reason(status),
            ticket_id=ticket,
            diagnostic=diagnostic[:1000],
        )
        reports.append(
            BounceReport(
                event=event,
                event_id=stable_id("mail_gateway", "mail_bounced", identity, address),
                subject=ticket or f"mail:{_digest(address)}",
            )
        )
    return Bounce(tuple(reports), verdict.reason)


def _status_of(delivery_status: str, address: str) -> tuple[str, str]:
    """(Status, Diagnostic-Code) of `address`'s block in a delivery status report."""
    for block in re.split(r"\n\s*\n", delivery_status.replace("\r\n", "\n")):
        if address not in block.lower():
            continue
        status = re.search(r"^status:\s*(\S+)", block, re.I | re.M)
        diagnostic = re.search(r"^diagnostic-code:\s*(.+)$", block, re.I | re.M)
        return (
            status.group(1) if status else "",
            diagnostic.group(1).strip() if diagnostic else "",
        )
    return "", ""


def _bounce_reason(status: str) -> Literal["hard", "soft", "unknown"]:
    """RFC 3463: 4.x.x transient, 5.2.2 mailbox full (soft), other 5.x.x permanent."""
    if status.startswith("4.") or status.startswith("5.2.2"):
        return "soft"
    if status.startswith("5."):
        return "hard"
    return "unknown"


# -- recipients


def check_recipient(address: str, inbound: tuple[str, ...]) -> str | None:
    """None when mail to `address` is ours to take, else the SMTP refusal: a support
    mailbox or its `+tag` form only; another domain is relaying, which we never do."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not (local and at and domain):
        return "501 5.1.3 Bad recipient address syntax"
    ours = {a.rpartition("@")[2] for a in inbound}
    if domain not in ours:
        return "550 5.7.1 Relaying denied: this server takes mail for its support addresses only"
    if f"{local.split('+', 1)[0]}@{domain}" not in inbound:
        return "550 5.1.1 No such mailbox here"
    return None
