"""HTML-only mail to the text a person reads, with the standard library's parser.

Many clients (QQ Mail, NetEase, Outlook on the web) send replies as HTML alone. The text
keeps what matters for a support conversation: paragraphs and line breaks, list items,
links with their address, and quoted history marked with `>` so that the reply stripper
can find it. Scripts, styles and the document head are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCKS = {
    "address", "article", "aside", "center", "dd", "div", "dl", "dt", "fieldset",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "main", "nav", "ol", "p", "section", "table", "tr", "ul",
}  # fmt: skip
_PARAGRAPHS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}
_HIDDEN = {"script", "style", "head", "title", "template", "noscript", "xml", "object"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base"}
_SPACES = re.compile(r"[ \t\r\n\f\u00a0]+")
_BLANK_RUNS = re.compile(r"\n{3,}")


class _TextBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self._line: list[str] = []
        self._hidden = 0
        self._pre = 0
        self._quote = 0
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._links: list[str | None] = []
        self._link_text: list[list[str]] = []
        self._pending_blank = False

    # -- output helpers
    def _prefix(self) -> str:
        return "> " * self._quote

    def _break(self, blank: bool = False, keep_empty: bool = False) -> None:
        text = "".join(self._line)
        if self._pre == 0:
            text = text.rstrip(" ")
        if text.strip() or keep_empty:
            if self._pending_blank and self.lines and self.lines[-1]:
                self.lines.append("")
            self.lines.append((self._prefix() + text).rstrip() if text.strip() else "")
            self._pending_blank = False
        self._line = []
        if blank:
            self._pending_blank = True

    def _write(self, text: str) -> None:
        if self._link_text:
            self._link_text[-1].append(text)
        self._line.append(text)

    # -- parser callbacks
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self._hidden += 1
            return
        if self._hidden:
            return
        if tag == "br":
            self._break(keep_empty=True)
        elif tag == "blockquote":
            self._break(blank=True)
            self._quote += 1
        elif tag == "pre":
            self._break(blank=True)
            self._pre += 1
        elif tag in ("ul", "ol"):
            self._break(blank=not self._lists)
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            self._break()
            depth = max(len(self._lists) - 1, 0)
            if self._lists and self._lists[-1][0]:
                self._lists[-1][1] += 1
                self._write("  " * depth + f"{self._lists[-1][1]}. ")
            else:
                self._write("  " * depth + "- ")
        elif tag in ("td", "th"):
            if self._line and "".join(self._line).strip():
                self._write("  ")
        elif tag == "a":
            href = dict(attrs).get("href")
            self._links.append(href)
            self._link_text.append([])
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self._write(f"[{alt}]")
        elif tag in _BLOCKS:
            self._break(blank=tag in _PARAGRAPHS)
            if tag == "hr":
                self._break(blank=True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self._hidden = max(self._hidden - 1, 0)
            return
        if self._hidden:
            return
        if tag == "blockquote":
            self._break(blank=True)
            self._quote = max(self._quote - 1, 0)
        elif tag == "pre":
            self._break(blank=True)
            self._pre = max(self._pre - 1, 0)
        elif tag in ("ul", "ol"):
            self._break(blank=len(self._lists) <= 1)
            if self._lists:
                self._lists.pop()
        elif tag == "a" and self._links:
            href = self._links.pop()
            shown = "".join(self._link_text.pop()).strip()
            if self._link_text:
                self._link_text[-1].append(shown)
            target = _link_target(href)
            if target and target not in shown and shown not in ("", target):
                self._write(f" ({target})")
            elif target and not shown:
                self._write(target)
        elif tag in _BLOCKS or tag == "li":
            self._break(blank=tag in _PARAGRAPHS)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._pre:
            parts = data.replace("\r\n", "\n").split("\n")
            for index, part in enumerate(parts):
                if index:
                    self._break()
                self._write(part)
            return
        text = _SPACES.sub(" ", data)
        current = "".join(self._line)
        if not current.strip():
            text = text.lstrip(" ")
        elif current.endswith(" "):
            text = text.lstrip(" ")
        if text:
            self._write(text)

    def text(self) -> str:
        self._break()
        return _BLANK_RUNS.sub("\n\n", "\n".join(self.lines)).strip("\n")


def _link_target(href: str | None) -> str | None:
    if not href:
        return None
    href = href.strip()
    if href.lower().startswith("mailto:"):
        return href[7:].split("?", 1)[0] or None
    if href.lower().startswith(("http://", "https://")):
        return href
    return None


def html_to_text(html: str) -> str:
    """Readable text of an HTML body; never raises on malformed markup."""
    builder = _TextBuilder()
    try:
        builder.feed(html)
        builder.close()
    except (AssertionError, ValueError):  # pragma: no cover - html.parser is lenient
        pass
    return builder.text()
