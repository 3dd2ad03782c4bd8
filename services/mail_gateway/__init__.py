"""Inbound mail gateway: email as a two-way channel into tickets.

Requesters answer helpstream's emails from Gmail, Outlook, Apple Mail, QQ Mail, NetEase
163 or Foxmail; the gateway receives those replies over SMTP and turns each into a
command on `helpstream.commands`, threaded into its ticket by a signed reply address or
Message-ID (`shared/mail_threading.py`).

This package holds the gateway's mail-handling rules, pure and free of I/O: reading raw
RFC 5322 bytes into a typed mail whatever its charset (`parsing`), keeping only the new
text of a reply (`replies`), and telling ordinary mail from auto-replies, bounces and our
own mail coming back, so that nothing loops (`classify`).
"""
