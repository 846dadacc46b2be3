"""The hardened XML parser's last line: nothing outside the document is ever loaded.

The DOCTYPE scan of ``parse_xml`` refuses such documents before libxml2 sees them
(the corpus under ``tests/data/vendor-xml/invalid`` shows it); these tests go
around the scan to the parser itself, so that a gap in the scan could not open
a file either.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from adapters.vendor import safe_xml


@pytest.mark.parametrize("template", [
    '<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><r/>',  # external parameter entity
    '<!DOCTYPE r SYSTEM "{url}"><r/>',  # external subset
])
def test_the_parser_refuses_every_load(tmp_path: Path, template: str) -> None:
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY leaked "住院患者名单">', encoding="utf-8")
    raw = template.format(url=secret.as_uri()).encode()
    with pytest.raises(safe_xml._LoadRefused, match=r"secret\.dtd"):
        etree.fromstring(raw, safe_xml._PARSER)


def test_a_refused_load_is_a_clear_rejection(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # with the scan switched off, the resolver still turns the load into a rejection
    monkeypatch.setattr(safe_xml, "_prolog_declares", lambda raw: False)
    url = (tmp_path / "x.dtd").as_uri()
    with pytest.raises(safe_xml.MessageRejected, match="asks to load file:"):
        safe_xml.parse_xml(f'<!DOCTYPE r SYSTEM "{url}"><r/>'.encode(), max_bytes=4096,
                           max_depth=8)


def test_internal_entities_are_never_expanded() -> None:
    raw = b'<!DOCTYPE r [<!ENTITY x "expanded">]><r>&x;</r>'
    root = etree.fromstring(raw, safe_xml._PARSER)
    assert "expanded" not in (root.text or "")
