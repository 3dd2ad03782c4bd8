"""Inbound mail gateway: email as a two-way channel into tickets.

Requesters answer helpstream's emails from Gmail, Outlook, Apple Mail, QQ Mail, NetEase
163 or Foxmail; a relay or MX delivers those replies to this service's SMTP server
(`smtp`, aiosmtpd in the service's own event loop), which turns each into a signed
`ReceiveMail` command on `helpstream.commands`, threaded into its ticket by a signed reply
address or Message-ID (`shared/mail_threading.py`); intake decides what the mail becomes.
Bounces become `MailBounced` on `helpstream.mail` (notifier stops mailing the address);
auto-replies and our own mail come back to nothing, so nothing loops. Attachments are
recorded by sha256 and kept in GridFS up to a limit, executables never
(`attachments`, served at `GET /v1/attachments/{sha256}` with a key).

The mail-handling rules are pure and free of I/O: reading raw RFC 5322 bytes into a typed
mail whatever its charset (`parsing`), keeping only the new text of a reply (`replies`),
telling ordinary mail from auto-replies, bounces and our own mail (`classify`), and what a
received mail becomes (`gateway`). `smtp`, `publisher` and `attachments` are the I/O;
`app` wires them.
"""
