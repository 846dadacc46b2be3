"""Hardened XML parsing for documents from outside the hospital's control.

No external entities, no DTD loading, no network, no entity expansion, a size
bound before parsing and a depth bound after (libxml2 itself stops at 256
levels without ``huge_tree``). A document that declares a DOCTYPE at all is
refused before libxml2 sees it: vendor documents never need one, and XXE and
billion-laughs payloads both start with it.

That refusal reads bytes, so the bytes must show the markup as ASCII does: a
UTF-16 or UTF-32 document is transcoded to UTF-8 first, and a declared encoding
must be one in which ``<`` and ``!`` are single ASCII bytes (UTF-8 and the GB
family Chinese systems use). A resolver that refuses every load stands behind
it all.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

from lxml import etree

from adapters.vendor import xml_walk
from canonical.errors import MessageRejected

__all__ = ["ACCEPTED_ENCODINGS", "parse_xml"]

# declared encodings taken as they are: markup bytes are ASCII in all of them. Names are
# compared exactly (upper-cased), not through Python's aliases: libxml2 reads some of
# those ("chinese", "u8") as other charsets or not at all.
ACCEPTED_ENCODINGS = ("UTF-8", "GB18030", "GBK", "GB2312", "CP936", "US-ASCII", "ISO-8859-1")
_ACCEPTED = frozenset({*ACCEPTED_ENCODINGS, "UTF8", "ASCII"})
# what a UTF-16 or UTF-32 document may declare
_WIDE_NAMES = frozenset({"UTF-16", "UTF-16LE", "UTF-16BE", "UTF-32", "UTF-32LE", "UTF-32BE",
                         "UCS-2", "UCS-4", "ISO-10646-UCS-2", "ISO-10646-UCS-4"})


class _LoadRefused(Exception):
    """The parser was asked to load something from outside the document."""


class _NoLoads(etree.Resolver):
    """Every external entity, DTD or XInclude load stops the parse."""

    # lxml-stubs lack the context argument lxml passes
    def resolve(self, system_url: str | None, public_id: str | None,  # type: ignore[override]
                context: Any) -> Any:
        # raising, not resolve_empty(): an empty answer still lets libxml2 open some URLs
        raise _LoadRefused(system_url or public_id or "")


def _parser(encoding: str | None = None) -> etree.XMLParser:
    parser = etree.XMLParser(
        encoding=encoding,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,  # whitespace between elements: never a value, ~15 % of the parse
        collect_ids=False,
    )
    parser.resolvers.add(_NoLoads())
    return parser


_PARSER = _parser()
# for transcoded documents: the bytes are UTF-8 whatever they look like or declare
_UTF8_PARSER = _parser("utf-8")

# (byte-order mark or the first bytes of "<?" / "<", codec), longest first
_WIDE = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"),
)
_WIDE_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)  # also the start of UTF-32 LE's
_DECLARATION = re.compile(rb"^<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
_TEXT_DECLARATION = re.compile(r"^<\?xml\s[^>]*?\?>", re.ASCII)
_TEXT_ENCODING = re.compile(r"\sencoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", re.ASCII)


def _reject(reason: str) -> MessageRejected:
    return MessageRejected(reason, code="100", location="/", reject=True)


def _widened(raw: bytes, codec: str) -> bytes:
    """A UTF-16/32 document as UTF-8, without its XML declaration (it named UTF-16)."""
    try:
        text = raw.decode(codec).removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _reject(f"not well-formed XML: not valid {codec.upper()}: {exc.reason} at byte "
                      f"{exc.start}") from None
    if "\x00" in text:  # not XML in any encoding; also what a wrong byte-order guess gives
        raise _reject(f"not well-formed XML: a NUL character after decoding as {codec.upper()}")
    declaration = _TEXT_DECLARATION.match(text)
    if declaration:
        declared = _TEXT_ENCODING.search(declaration.group())
        if declared and declared.group(1).upper() not in _WIDE_NAMES:
            raise _reject(f"document declares encoding {declared.group(1)!r} but is encoded in "
                          f"{codec.upper()}")
        text = text[declaration.end():]
    if text.lstrip(" \t\r\n").startswith("<?xml"):
        raise _reject("not well-formed XML: a second XML declaration")
    return text.encode("utf-8")


def _ascii_markup(raw: bytes) -> tuple[bytes, etree.XMLParser]:
    """The document in an encoding whose markup bytes are ASCII, and the parser for it.

    Raises:
        MessageRejected: an encoding that is not accepted, or bytes that cannot
            start an XML document in any accepted one.
    """
    head = raw[:4]
    if b"\x00" in head[:2] or head[:2] in _WIDE_MARKS:
        for mark, codec in _WIDE:
            if head.startswith(mark):
                return _widened(raw, codec), _UTF8_PARSER
    body = raw.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    if body and not body.startswith(b"<"):
        raise _reject("not well-formed XML: the document does not start with '<' (an "
                      "encoding other than UTF-8, GB18030 or UTF-16?)")
    declared = _DECLARATION.match(body) if body.startswith(b"<?xml") else None
    if declared:
        name = declared.group(1).decode("ascii")
        if name.upper() not in _ACCEPTED:
            wide = name.upper() in _WIDE_NAMES
            raise _reject(
                f"document declares encoding {name!r}"
                + (" but is not encoded in it" if wide else "")
                + f"; accepted: {', '.join(ACCEPTED_ENCODINGS)}, UTF-16 and UTF-32 with "
                  "their byte-order mark")
    return raw, _PARSER


def _prolog_declares(raw: bytes) -> bool:
    """True when a declaration (``<!DOCTYPE``, ``<!ENTITY`` …) comes before the root element.

    XML allows a DOCTYPE, and with it entity declarations, only in the prolog, so
    only the prolog is scanned, not the whole body. Comments and processing
    instructions there are skipped; anything else opened by ``<!`` is refused.
    ``raw`` is in an encoding whose markup bytes are ASCII (``_ascii_markup``).
    """
    pos = 0
    while True:
        lt = raw.find(b"<", pos)
        if lt < 0:
            return False
        if raw.startswith(b"<?", lt):
            pos = raw.find(b"?>", lt + 2)
        elif raw.startswith(b"<!--", lt):
            pos = raw.find(b"-->", lt + 4)
        else:
            return raw.startswith(b"<!", lt)  # else the root element's start tag
        if pos < 0:
            return False  # unterminated: the parser reports it
        pos += 2


def parse_xml(raw: bytes, *, max_bytes: int, max_depth: int) -> etree._Element:
    """Parse untrusted XML bytes into the root element.

    Raises:
        MessageRejected: too large, in an encoding not accepted, not well-formed,
            declares a DOCTYPE or other declarations, or too deep.
    """
    if len(raw) > max_bytes:
        raise _reject(f"document of {len(raw)} bytes exceeds the limit of {max_bytes}")
    raw, parser = _ascii_markup(raw)
    if _prolog_declares(raw):
        raise _reject("document declares a DOCTYPE, entities or other markup declarations, "
                      "which are refused")
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as exc:
        raise _reject(f"not well-formed XML: {exc}") from None
    except _LoadRefused as exc:
        raise _reject(f"document asks to load {exc}, which is refused") from None
    if root is None:
        raise _reject("empty XML document")
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype:  # cannot get past the scan above; checked all the same
        raise _reject("document declares a DOCTYPE, which is refused")
    if xml_walk.IMPLEMENTATION.exceeds_depth(root, max_depth):
        raise _reject(f"document is nested deeper than {max_depth} levels")
    return root
