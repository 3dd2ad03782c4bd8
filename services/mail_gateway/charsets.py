"""Bytes of a mail body or header to text, the way mail clients read them.

Declared charsets are often wrong or narrower than the bytes: Chinese clients label
GBK/GB18030 text `gb2312`, Big5 mail carries Hong Kong and Windows extensions, webmail
sends UTF-8 labelled `iso-8859-1`, and some mail declares nothing at all. So a label is a
hint: it is widened to the superset clients actually decode with, and when the bytes do
not fit it, the common encodings are tried before anything is replaced.
"""

from __future__ import annotations

import codecs
import re

# Labels mapped to the superset mail clients (and the WHATWG Encoding Standard) decode with.
_WIDER = {
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gb231280": "gb18030",
    "euc-cn": "gb18030",
    "euccn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "gb18030": "gb18030",
    "big5": "big5hkscs",
    "big-5": "big5hkscs",
    "x-x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    "big5-hkscs": "big5hkscs",
    "cp950": "cp950",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}
_SINGLE_BYTE = {"cp1252", "iso-8859-15", "iso-8859-2", "cp1250", "cp1251", "koi8-r"}
# Tried in order when the label is missing or the bytes do not decode under it.
_FALLBACKS = ("utf-8", "gb18030", "big5hkscs", "cp950")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def normalise_label(label: str | None) -> str | None:
    """The codec Python should use for a declared charset, or None if unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _WIDER.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError, ValueError):
        return None


def _mostly_cjk(text: str) -> bool:
    non_ascii = [c for c in text if ord(c) > 0x7F]
    return bool(non_ascii) and sum(1 for c in non_ascii if _CJK.match(c)) >= 0.9 * len(non_ascii)


def decode(data: bytes, declared: str | None) -> tuple[str, str]:
    """Decode `data`; return the text and the codec that produced it (`+replace` if lossy).

    Never raises. Valid UTF-8 with non-ASCII bytes wins over any other label (a stray
    GBK or Big5 text is almost never valid UTF-8); a single-byte label on bytes that read
    as Chinese is taken as a mislabel.
    """
    codec = normalise_label(declared)
    if data.isascii():
        return data.decode("ascii"), codec or "ascii"
    utf8 = _strict(data, "utf-8")
    if utf8 is not None:
        return utf8, "utf-8"
    if codec is not None and codec not in _SINGLE_BYTE and codec != "cp1252":
        text = _strict(data, codec)
        if text is not None:
            return text, codec
    for fallback in _FALLBACKS[1:]:
        text = _strict(data, fallback)
        if text is not None and (codec is None or _mostly_cjk(text)):
            return text, fallback
    if codec is not None:
        text = _strict(data, codec)
        if text is not None:
            return text, codec
    chosen = codec or "utf-8"
    return data.decode(chosen, errors="replace"), f"{chosen}+replace"
