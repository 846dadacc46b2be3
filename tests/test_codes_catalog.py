"""National catalog import (the real messy sample), versions, diff and withdrawn alerts."""

from __future__ import annotations

import csv
import dataclasses
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

from codes import (
    CatalogError,
    CatalogKind,
    CatalogVersion,
    diff,
    import_catalog_file,
    latest_version,
    list_versions,
    load_catalog,
    load_version,
    parse_catalog_rows,
    read_catalog_csv,
    read_catalog_xlsx,
    save_version,
    version_from_import,
    withdrawn_mapped,
)

DATA = Path(__file__).parent / "data" / "codes"
SAMPLE = DATA / "nhsa_drug_catalog_sample.csv"
CONSUMABLES = DATA / "consumable_catalog_sample.csv"
T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)
T1 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)


def _raw_rows() -> list[dict[str, str]]:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


RAW = _raw_rows()


@pytest.fixture(scope="module")
def sample() -> CatalogVersion:
    return version_from_import(read_catalog_csv(SAMPLE), "2025.1", imported_at=T0)


def test_real_sample_keeps_every_valid_code() -> None:
    imported = read_catalog_csv(SAMPLE)
    assert imported.kind is CatalogKind.DRUG
    assert imported.header_row == 1
    assert imported.rows_read == 7_703
    assert len(imported.entries) == 7_703
    assert imported.skipped == ()
    assert set(imported.entries) == {r["医保药品编码"] for r in RAW}
    assert imported.columns["standard_code"] == "药品本位码"
    assert "7703 codes kept from 7703 rows, 0 skipped" in imported.summary()


def test_real_sample_values_and_glued_class_letter() -> None:
    entries = read_catalog_csv(SAMPLE).entries
    entry = entries["ZD03AAA0043010102816"]  # 本位码 cell '86902816000048甲'
    assert entry.standard_code == "86902816000048"
    assert entry.insurance_class == "甲"
    assert entry.name == "艾附暖宫丸"
    assert entry.generic_name == "艾附暖宫丸"
    assert entry.approval_no == "国药准字Z13020707"
    assert entry.min_pack_quantity == "10"
    assert entry.product_name == ""  # published as 无
    # Every kept 本位码 is clean; every glued class letter was split off, none lost.
    assert all(
        re.fullmatch(r"\d{14}", e.standard_code) for e in entries.values() if e.standard_code
    )
    glued = Counter(
        m.group(1) for r in RAW if (m := re.fullmatch(r"\d{14}([甲乙])", r["药品本位码"]))
    )
    classes = Counter(e.insurance_class for e in entries.values())
    assert classes["甲"] >= glued["甲"] == 696
    assert classes["乙"] >= glued["乙"] == 2_168


def test_real_sample_repairs_are_reported_with_rows() -> None:
    imported = read_catalog_csv(SAMPLE)
    by_row = {n.row: n for n in imported.notes}
    # Row 17 (file line 17): the 本位码 cell holds a page number.
    assert by_row[17].code == "ZD03AAA0043010102786"
    assert by_row[17].column == "药品本位码"
    assert "'1034' is not a 14-digit 本位码; dropped" in by_row[17].note
    assert imported.entries["ZD03AAA0043010102786"].standard_code == ""
    # Approval number and 本位码 run together (imported drugs, 国药准字HJ…).
    row = next(
        i for i, r in enumerate(RAW, 2) if r["批准文号"] == "国药准字HJ2014069186901359000300"
    )
    entry = imported.entries[RAW[row - 2]["医保药品编码"]]
    assert entry.approval_no == "国药准字HJ20140691"
    assert entry.standard_code == "86901359000300"
    assert any(n.row == row and "split apart" in n.note for n in imported.notes)
    # A 本位码 shifted into the 批准文号 column is moved back.
    row = next(i for i, r in enumerate(RAW, 2) if re.fullmatch(r"\d{14}", r["批准文号"]))
    moved = imported.entries[RAW[row - 2]["医保药品编码"]]
    assert moved.standard_code == RAW[row - 2]["批准文号"]
    assert moved.approval_no == ""
    # Nothing is dropped without a note: every raw non-empty 本位码 cell is either
    # kept (possibly repaired) or noted.
    noted = {n.code for n in imported.notes}
    for r in RAW:
        e = imported.entries[r["医保药品编码"]]
        if r["药品本位码"] and not e.standard_code:
            assert r["医保药品编码"] in noted


def _messy_copy(tmp_path: Path) -> Path:
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    first = lines[1]
    extra = [
        "xa01abd075a002010100483,地喹氯铵含片,无,含片,0.25mg,铝塑,20,盒,某药业,国药准字H1,,地喹氯铵",
        "XA01ABD075A00201010048,地喹氯铵含片,无,含片,0.25mg,铝塑,20,盒,某药业,国药准字H1,,地喹氯铵",
        "C0101010011303807555,一次性使用无菌注射器,无,,5ml,,1,支,威高,国械注准20153140231,,注射器",
        first,  # the same code again
        ",,,,,,,,,,,",
        ",第9540页，共12000页,,,,,,,,,,",
        "XA01AB3075A002010100483,地喹氯铵含片,无,含片,0.25mg,铝塑,20,盒,某药业,国药准字H1,,地喹氯铵",
    ]
    path = tmp_path / "messy.csv"
    title = "国家基本医疗保险、工伤保险和生育保险药品目录（2025年）,,,,,,,,,,,"
    path.write_text("\n".join([title, *lines, *extra]) + "\n", encoding="utf-8")
    return path


def test_messy_rows_are_skipped_with_row_number_and_reason(tmp_path: Path) -> None:
    imported = read_catalog_csv(_messy_copy(tmp_path))
    assert imported.header_row == 2
    assert len(imported.entries) == 7_703
    last = 2 + 7_703  # header row 2, then the 7,703 sample rows
    skipped = {s.row: s for s in imported.skipped}
    assert sorted(skipped) == [last + 1, last + 2, last + 3, last + 4, last + 6, last + 7]
    assert "position 1 must be upper case" in skipped[last + 1].reason
    assert "must be 23 characters long, got 22" in skipped[last + 2].reason
    assert skipped[last + 3].reason == "consumable code in a drug catalog"
    assert skipped[last + 4].reason == "code repeated; first listed at row 3"
    assert skipped[last + 6].reason == "no code in the code column"
    assert skipped[last + 7].reason == (
        "position 7 must be a letter (pinyin initial of the generic name), got '3'"
    )
    assert imported.rows_read == 7_703 + 6  # the blank row is not a data row


def _write_xlsx(path: Path, rows: list[list[object]], *, leading_sheet: bool) -> None:
    workbook = Workbook(write_only=True)
    if leading_sheet:
        notes = workbook.create_sheet("说明")
        notes.append(["本表由医保信息平台导出，仅供对码使用"])
    sheet = workbook.create_sheet("药品目录")
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def test_xlsx_import_matches_csv(tmp_path: Path) -> None:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        # An Excel cell holds at most 32,767 characters; one run-together cell is longer.
        rows: list[list[object]] = [[c[:32_767] for c in r] for r in csv.reader(fh)]
    expected = parse_catalog_rows(rows)
    header = rows[0]
    header[header.index("药品本位码")] = "药品\n本位码"  # wrapped header cell, as Excel shows
    for row in rows[1:]:
        # Excel stores numeric-looking cells as numbers.
        if isinstance(row[6], str) and row[6].isdigit() and len(row[6]) < 10:
            row[6] = int(row[6])
        if isinstance(row[10], str) and re.fullmatch(r"\d{14}", row[10]):
            row[10] = int(row[10])
    path = tmp_path / "catalog.xlsx"
    _write_xlsx(path, [["国家医保药品目录（节选）"], *rows], leading_sheet=True)
    from_xlsx = read_catalog_xlsx(path)
    assert from_xlsx.header_row == 2
    assert from_xlsx.entries == expected.entries
    assert [(n.row - 1, n.note) for n in from_xlsx.notes] == [
        (n.row, n.note) for n in expected.notes
    ]
    from_csv = read_catalog_csv(SAMPLE).entries
    assert [c for c in from_csv if from_csv[c] != from_xlsx.entries[c]] == [
        "XG04BET001A001010301397"  # the cell Excel had to cut
    ]
    assert import_catalog_file(path).entries == expected.entries
    with pytest.raises(CatalogError, match="no sheet named '目录'"):
        read_catalog_xlsx(path, sheet="目录")


def test_gb18030_csv(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(SAMPLE.read_text(encoding="utf-8").encode("gb18030"))
    assert read_catalog_csv(path).entries == read_catalog_csv(SAMPLE).entries


def test_consumable_catalog() -> None:
    imported = read_catalog_csv(CONSUMABLES)
    assert imported.kind is CatalogKind.CONSUMABLE
    assert imported.header_row == 2
    assert sorted(imported.entries) == [
        "C0101010011303807555",
        "C01010100113038075550000001",
        "C01010100113038075550000002",
        "C0208010020200500120",
        "C0302030011902101938",
        "C03020300119021019380000011",
        "C1405040030400102877",
    ]
    stent = imported.entries["C0208010020200500120"]
    assert stent.name == "冠状动脉药物洗脱支架系统"
    assert stent.generic_name == "冠状动脉支架"
    assert stent.specification == "3.0×18mm Firebird2"  # 规格 and 型号 joined
    assert stent.material == "钴铬合金"
    assert stent.manufacturer == "上海微创医疗器械（集团）有限公司"
    assert stent.approval_no == "国械注准20153130386"
    reasons = {s.row: s.reason for s in imported.skipped}
    assert reasons == {
        9: "consumable code (C) must be 20 or 27 characters long, got 19",
        12: "drug code in a consumable catalog",
        13: "position 1 must be upper case, got 'c'",
        14: "code repeated; first listed at row 6",
    }


def test_no_header_is_an_error() -> None:
    with pytest.raises(CatalogError, match="no header row with a code column"):
        parse_catalog_rows([["编号", "名称"], ["1", "阿莫西林胶囊"]])
    with pytest.raises(CatalogError, match=r"not '\.pdf'"):
        import_catalog_file("目录.pdf")


def _next_version(old: CatalogVersion) -> CatalogVersion:
    entries = dict(old.entries)
    for code in ("ZD03AAA0043010100166", "ZD03AAA0043010100220", "XL02BGA045A001010101003"):
        del entries[code]
    first = entries["ZD03AAA0043010101084"]
    entries[first.code] = dataclasses.replace(first, specification="每丸重6g", min_pack_unit="瓶")
    new_code = "XA01ABD075A002010100483"
    entries[new_code] = dataclasses.replace(first, code=new_code, name="地喹氯铵含片")
    return CatalogVersion(CatalogKind.DRUG, "2025.2", T1, entries)


def test_diff_and_withdrawn_alert(sample: CatalogVersion) -> None:
    assert "XL02BGA045A001010101003" in sample
    new = _next_version(sample)
    change = diff(sample, new)
    assert [e.code for e in change.added] == ["XA01ABD075A002010100483"]
    assert [e.code for e in change.withdrawn] == [
        "XL02BGA045A001010101003",
        "ZD03AAA0043010100166",
        "ZD03AAA0043010100220",
    ]
    assert [c.code for c in change.changed] == ["ZD03AAA0043010101084"]
    fields = {(f.field, f.old, f.new) for f in change.changed[0].changes}
    assert fields == {("specification", "每丸重9g", "每丸重6g"), ("min_pack_unit", "盒", "瓶")}
    assert (change.old_version, change.new_version) == ("2025.1", "2025.2")
    assert diff(sample, sample).is_empty

    alerts = withdrawn_mapped(
        change, {"ZD03AAA0043010100166": ["H0012", "H0003"], "ZD03AAA0043010101084": ["H0100"]}
    )
    assert [a.code for a in alerts] == ["ZD03AAA0043010100166"]
    assert alerts[0].mapped_items == ("H0003", "H0012")
    assert alerts[0].entry == sample.entries["ZD03AAA0043010100166"]
    assert "ZD03AAA0043010100166" in alerts[0].message
    assert "withdrawn in catalog 2025.2 (listed in 2025.1)" in alerts[0].message
    plain = withdrawn_mapped(change, {"XL02BGA045A001010101003", "XA06ADF336P001010100233"})
    assert [(a.code, a.mapped_items) for a in plain] == [("XL02BGA045A001010101003", ())]


def test_diff_refuses_different_kinds(sample: CatalogVersion) -> None:
    other = CatalogVersion(CatalogKind.CONSUMABLE, "2025.1", T0, {})
    with pytest.raises(CatalogError, match="cannot compare"):
        diff(sample, other)


def test_versions_persist_and_reload(tmp_path: Path, sample: CatalogVersion) -> None:
    assert latest_version(tmp_path, CatalogKind.DRUG) is None
    first = save_version(tmp_path, sample)
    assert first == tmp_path / "catalogs" / "drug" / "2025.1.json"
    second = _next_version(sample)
    save_version(tmp_path, second)
    infos = list_versions(tmp_path, CatalogKind.DRUG)
    assert [(i.version, i.entries, i.imported_at) for i in infos] == [
        ("2025.1", 7_703, T0),
        ("2025.2", 7_701, T1),
    ]
    loaded = load_version(tmp_path, CatalogKind.DRUG, "2025.1")
    assert loaded == sample
    latest = latest_version(tmp_path, CatalogKind.DRUG)
    assert latest is not None and latest.entries == second.entries
    assert diff(loaded, latest) == diff(sample, second)
    # Saving a label again replaces it instead of listing it twice.
    save_version(tmp_path, dataclasses.replace(sample, imported_at=T1))
    assert [i.version for i in list_versions(tmp_path, CatalogKind.DRUG)] == ["2025.2", "2025.1"]
    assert list_versions(tmp_path, CatalogKind.CONSUMABLE) == []
    with pytest.raises(CatalogError, match=r"no drug catalog version '2024\.9'"):
        load_version(tmp_path, CatalogKind.DRUG, "2024.9")
    with pytest.raises(CatalogError, match="version label"):
        save_version(tmp_path, dataclasses.replace(sample, version="../escape"))


def test_damaged_version_file_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": 1, "kind": "drug"}', encoding="utf-8")
    with pytest.raises(CatalogError, match="damaged catalog version file"):
        load_catalog(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogError, match="not a catalog version file"):
        load_catalog(bad)


def test_load_catalog_from_csv_is_a_dict_lookup() -> None:
    catalog = load_catalog(CONSUMABLES, imported_at=T0)
    assert catalog.kind is CatalogKind.CONSUMABLE
    assert catalog.version == "consumable_catalog_sample"
    assert isinstance(catalog.entries, dict)
    entry = catalog.get("C1405040030400102877")
    assert entry is not None and entry.name == "医用外科口罩"
    assert catalog.get("C1405040030400102878") is None
