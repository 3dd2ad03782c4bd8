"""Only the new text of a reply: quoted history and signatures cut off.

A requester answers from whatever client they have, and each client writes the history
below the reply its own way. `mail-parser-reply` knows the Western ones (Gmail's
"On … wrote:", Outlook's "From: … Sent: …") but not the Chinese clients crypto users
mostly write from, so those markers are ours:

- QQ Mail / Foxmail: "------------------ 原始邮件 ------------------" (or "Original");
- Apple Mail zh-CN: "在 2026年11月29日 18:56，… 写道：", Gmail zh-CN: "… 于2026年11月29日周日
  18:56写道：", NetEase 163/126: "在 2026-11-29 18:56:33，"xx" <a@163.com> 写道："; the
  zh-TW forms with 寫道 and 於;
- Outlook zh-CN: "发件人: … 发送时间: …" and "-----邮件原件-----"; 网易邮箱大师's
  "---- 回复的原邮件 ----".

Our markers cut first; the library then cuts what it recognises in what is left.
Signatures are cut only on unmistakable marks (the "-- " delimiter and the mobile
"Sent from my iPhone" / "发自我的iPhone" family): a sign-off such as "Thanks, Li Wei" is
part of what the person wrote and stays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailparser_reply.parser import EmailMessage

_LIBRARY_LANGUAGES = ["en", "zh", "de", "fr", "es", "it", "ja", "ko", "nl", "pl", "sv"]
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff]")
_SEPARATOR = re.compile(
    r"^\s*-{2,}\s*(?:原始邮件|原始郵件|Original(?: Message)?|邮件原件|回复的原邮件|回覆的原郵件"
    r"|Reply Message|回复邮件)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_FROM_LINE = re.compile(r"^\s*[*|]?\s*(?:From|发件人|發件人|寄件者|寄件人)\s*[*|]?\s*[:：|]", re.I)
_HEADER_LINE = re.compile(
    r"^\s*[*|]?\s*(?:Sent|Date|To|Subject|Cc|发送时间|时间|日期|收件人|主题|抄送|傳送時間|寄件日期"
    r"|收件者|主旨|副本)\s*[*|]?\s*[:：|]",
    re.IGNORECASE,
)
_WROTE_ZH = re.compile(r"(?:写道|寫道)\s*[:：]?\s*$")
_WROTE_ZH_LEAD = re.compile(r"^\s*(?:在|於|于|\d{4}[-年/])|(?:于|於)\s*\d{4}")
_WROTE_EN = re.compile(r"\bwrote\s*:\s*$", re.IGNORECASE)
_ON_LEAD = re.compile(r"^\s*On\s", re.IGNORECASE)
_QUOTED = re.compile(r"^\s*>")
_SIGNATURE = re.compile(
    r"^\s*(?:--|—)\s*$"
    r"|^\s*(?:Sent from my \S.{0,40}"
    r"|Sent from (?:Mail|Outlook|Yahoo Mail|Gmail|Proton Mail)\b.{0,40}"
    r"|Get Outlook for (?:iOS|Android)\b.{0,60}|Sent with Proton Mail.{0,30}|Sent via \S.{0,30}"
    r"|发自我的\s?\S.{0,20}|發自我的\s?\S.{0,20}|从我的\s?\S.{0,20}发送|從我的\s?\S.{0,20}傳送"
    r"|(?:发自|来自)(?:网易邮箱大师|网易邮箱手机版|我的网易邮箱.{0,10}|\s?QQ\s?邮箱.{0,10}|手机QQ邮箱)"
    r"|(?:发自|来自)\s?(?:Foxmail|iPad|Android|华为|小米)\S{0,10})\s*$",
    re.IGNORECASE,
)
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Reply:
    """The new text of a mail, and what was cut from it (for audit, never shown)."""

    text: str
    quoted: str
    signature: str

    @property
    def had_history(self) -> bool:
        return bool(self.quoted.strip())


def _normalise(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    text = text.replace("&nbsp;", " ")  # QQ Mail's text/plain part carries it literally
    text = _INVISIBLE.sub("", text)
    return [line.rstrip() for line in text.split("\n")]


def _header_block_at(lines: list[str], index: int) -> bool:
    """A From line followed within four lines by another header line (Outlook, QQ, Foxmail)."""
    if not _FROM_LINE.match(lines[index]):
        return False
    following = [line for line in lines[index + 1 : index + 6] if line.strip()][:4]
    return any(_HEADER_LINE.match(line) for line in following)


def _history_start(lines: list[str]) -> int | None:
    """Index of the first line of quoted history, by our markers; None if there is none."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        if _SEPARATOR.match(stripped):
            return index
        if _header_block_at(lines, index):
            before = index - 1
            while before >= 0 and not lines[before].strip():
                before -= 1
            if before >= 0 and _UNDERSCORES.match(lines[before]):
                return before
            return index
        if len(stripped) <= 240 and _WROTE_ZH.search(stripped):
            if _WROTE_ZH_LEAD.search(stripped) or re.search(r"\d{1,2}:\d{2}", stripped):
                return index
        if _ON_LEAD.match(stripped):
            if _WROTE_EN.search(stripped) and len(stripped) <= 240:
                return index
            following = lines[index + 1 : index + 3]
            for offset, nxt in enumerate(following, start=1):
                if not nxt.strip():
                    break
                if _WROTE_EN.search(nxt):
                    return index if offset <= 2 else None
        if _QUOTED.match(line) and all(
            not rest.strip() or _QUOTED.match(rest) for rest in lines[index:]
        ):
            return index
    return None


def _library_cut(lines: list[str]) -> int:
    """How many of `lines` mail-parser-reply keeps as the latest reply."""
    try:
        message = EmailMessage(
            text="\n".join(lines), languages=list(_LIBRARY_LANGUAGES), keep_hyphen_lists=True
        ).read()
    except Exception:  # the library's regexes on hostile input; keep everything
        return len(lines)
    if len(message.replies) < 2:
        return len(lines)
    kept = [line.strip() for line in message.replies[0].content.split("\n") if line.strip()]
    if not kept:
        return len(lines)
    position = 0
    for wanted in kept:
        while position < len(lines) and lines[position].strip() != wanted:
            position += 1
        if position == len(lines):
            return len(lines)
        position += 1
    return position


def _tidy(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def extract_reply(text: str) -> Reply:
    """Split a mail's text into what the sender wrote now and what they quoted."""
    lines = _normalise(text)
    start = _history_start(lines)
    history: list[str] = []
    if start is not None:
        history = lines[start:]
        lines = lines[:start]
        if not _tidy(lines):
            # Bottom-posted or interleaved: the sender's words are the unquoted lines.
            lines = [line for line in history[1:] if not _QUOTED.match(line)]
            history = [line for line in history if _QUOTED.match(line)] or history[:1]
    keep = _library_cut(lines)
    if _tidy(lines[:keep]):
        history = lines[keep:] + history
        lines = lines[:keep]
    signature: list[str] = []
    for index, line in enumerate(lines):
        if index > 0 and _SIGNATURE.match(line):
            signature = lines[index:]
            lines = lines[:index]
            break
    else:
        if lines and _SIGNATURE.match(lines[0]) and len([x for x in lines if x.strip()]) == 1:
            signature, lines = lines, []
    return Reply(text=_tidy(lines), quoted=_tidy(history), signature=_tidy(signature))
