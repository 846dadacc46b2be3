"""Prescription-only status (处方药标志) and manufacturer from the national catalog.

A catalog may carry a prescription column or an OTC column (saying the opposite); the
importer reads either into ``rx_flag``. Mapping fills a line's prescription status and
manufacturer from the catalog when the message left them out, and never overrides what
the message says.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from canonical.model import CHINA_TZ, Event, EventKind, Line
from codes import CatalogKind, parse_catalog_rows
from codes.catalog_files import (
    import_catalog_file,
    version_from_bytes,
    version_from_import,
    version_to_bytes,
)
from mappings.crosswalk import Crosswalk, CrosswalkEntry, map_event
from mappings.products import product_facts

RX_CATALOG = Path(__file__).parent / "data" / "codes" / "nhsa_drug_catalog_rx_flag.csv"
HOSPITAL = "H33010200015"
ANASTROZOLE = "XL02BGA045A001010104520"  # 阿那曲唑片, 杭州中美华东, prescription-only
AIFU = "ZD03AAA0043010100166"  # 艾附暖宫丸, OTC; its manufacturer cell is cut in the catalog
HEADER = ["医保药品编码", "注册名称", "药品生产企业"]


def test_a_prescription_column_is_read_into_rx_flag() -> None:
    imported = import_catalog_file(RX_CATALOG)
    assert imported.columns["rx_flag"] == "处方药标志"
    flags = {code: e.rx_flag for code, e in imported.entries.items()}
    assert flags == {ANASTROZOLE: "1", "XL02BGA045A001010101359": "1",
                     "XL02BBB085A001010100665": "1", AIFU: "0",
                     "ZD03AAA0043010100220": ""}
    (note,) = [n for n in imported.notes if n.column == "处方药标志"]
    assert note.code == "ZD03AAA0043010100220" and "'待定'" in note.note


@pytest.mark.parametrize(("header", "cell", "flag"), [
    ("OTC标志", "是", "0"), ("OTC标志", "否", "1"), ("OTC 标志", "甲类", "0"),
    ("是否处方药", "Y", "1"), ("是否处方药", "N", "0"), ("处方药标志", "乙类OTC", "0"),
    ("处方药标志", "Rx", "1"), ("非处方药标志", "1", "0"),
])
def test_an_otc_column_says_the_opposite_of_a_prescription_column(
        header: str, cell: str, flag: str) -> None:
    imported = parse_catalog_rows([[*HEADER, header],
                                   [ANASTROZOLE, "阿那曲唑片", "杭州中美华东制药有限公司", cell]])
    assert imported.entries[ANASTROZOLE].rx_flag == flag


def test_rx_flag_survives_storing_and_a_catalog_without_the_column_has_none() -> None:
    version = version_from_import(import_catalog_file(RX_CATALOG), "2026-rx",
                                  imported_at=datetime(2026, 12, 1, tzinfo=CHINA_TZ))
    again = version_from_bytes(version_to_bytes(version), "test")
    assert again.entries[ANASTROZOLE].rx_flag == "1"
    plain = parse_catalog_rows([HEADER, [ANASTROZOLE, "阿那曲唑片", "杭州中美华东制药有限公司"]])
    assert plain.entries[ANASTROZOLE].rx_flag == ""
    assert product_facts(plain.entries.values()) == {
        ANASTROZOLE: (None, "杭州中美华东制药有限公司")}


def test_facts_leave_out_cut_manufacturer_cells() -> None:
    facts = product_facts(import_catalog_file(RX_CATALOG, kind=CatalogKind.DRUG)
                          .entries.values())
    assert facts[ANASTROZOLE] == (True, "杭州中美华东制药有限公司")
    assert facts[AIFU] == (False, "")  # "限公司同仁堂制药厂": a cut cell, not a maker


def _event(**line: object) -> Event:
    return Event(event_id="e1", kind=EventKind.RECEIPT, hospital_id=HOSPITAL, source="test",
                 occurred_at=datetime(2026, 12, 3, 15, 40, tzinfo=CHINA_TZ),
                 lines=(Line(seq=1, item_code="Y0012345", quantity=Decimal(2), **line),))


CROSSWALK = Crosswalk([CrosswalkEntry(HOSPITAL, "Y0012345", ANASTROZOLE, factor=Decimal(14),
                                      hospital_unit="盒", national_unit="片")])
FACTS = product_facts(import_catalog_file(RX_CATALOG).entries.values())


def test_mapping_fills_what_the_message_left_out_from_the_catalog() -> None:
    mapped, _ = map_event(_event(), CROSSWALK, date(2026, 12, 3), FACTS)
    (line,) = mapped.lines
    assert (line.rx_only, line.manufacturer) == (True, "杭州中美华东制药有限公司")
    # without the catalog's facts nothing is guessed
    bare, _ = map_event(_event(), CROSSWALK, date(2026, 12, 3))
    assert (bare.lines[0].rx_only, bare.lines[0].manufacturer) == (None, "")


def test_what_the_message_says_is_never_overridden() -> None:
    mapped, _ = map_event(_event(rx_only=False, manufacturer="华东医药(西安)博华制药有限公司"),
                          CROSSWALK, date(2026, 12, 3), FACTS)
    (line,) = mapped.lines
    assert (line.rx_only, line.manufacturer) == (False, "华东医药(西安)博华制药有限公司")
