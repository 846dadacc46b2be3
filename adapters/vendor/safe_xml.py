"""Hardened XML parsing for documents from outside the hospital's control.

No external entities, no DTD loading, no network, no entity expansion, a size
bound before parsing and a depth bound after (libxml2 itself stops at 256
levels without ``huge_tree``). A document that declares a DOCTYPE at all is
refused: vendor documents never need one, and XXE and billion-laughs payloads
both start with it.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from gateway.errors import MessageRejected

from . import xml_walk

__all__ = ["parse_xml"]

_PARSER = etree.XMLParser(
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


def _prolog_declares(raw: bytes) -> bool:
    """True when a declaration (``<!DOCTYPE``, ``<!ENTITY`` …) comes before the root element.

    XML allows a DOCTYPE, and with it entity declarations, only in the prolog, so
    only the prolog is scanned, not the whole body. Comments and processing
    instructions there are skipped; anything else opened by ``<!`` is refused.
    Encodings in which ``<`` is not one byte (UTF-16) are caught after parsing.
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
        MessageRejected: too large, not well-formed, declares a DOCTYPE, or too deep.
    """
    if len(raw) > max_bytes:
        raise MessageRejected(f"document of {len(raw)} bytes exceeds the limit of {max_bytes}",
                              code="100", location="/", reject=True)
    if _prolog_declares(raw):
        raise MessageRejected("document declares a DOCTYPE or entities, which are refused",
                              code="100", location="/", reject=True)
    try:
        root = etree.fromstring(raw, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise MessageRejected(f"not well-formed XML: {exc}", code="100", location="/",
                              reject=True) from None
    if root is None:
        raise MessageRejected("empty XML document", code="100", location="/", reject=True)
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype:  # e.g. a UTF-16 document the byte scan missed
        raise MessageRejected("document declares a DOCTYPE, which is refused", code="100",
                              location="/", reject=True)
    if xml_walk.IMPLEMENTATION.exceeds_depth(root, max_depth):
        raise MessageRejected(f"document is nested deeper than {max_depth} levels",
                              code="100", location="/", reject=True)
    return root
