"""Crosswalk import/export: CSV and XLSX, Chinese headers, every problem reported."""

from __future__ import annotations

import io
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from mappings.crosswalk import load_csv
from mappings.entry import CrosswalkEntry
from mappings.files import CrosswalkFormatError, read_csv, read_xlsx, write_csv, write_xlsx

H = "310100000001"
CODE = "XG04BET001A001041803307"
CODE2 = "ZD01BAY0318010101951"

CHINESE = (
    "院内编码,国家医保编码,项目名称,院内单位,医保单位,换算系数,生效日期,失效日期\n"
    f"YP000123,{CODE},他达拉非片(希爱力),盒,片,21,2024/1/1,2024年12月31日\n"
    f"YP000124,{CODE2},益母草颗粒,盒,袋,8,20240101,\n"
)


def test_chinese_headers_and_date_spellings_with_hospital_argument() -> None:
    entries = read_csv(CHINESE, hospital_id=H)
    assert entries[0] == CrosswalkEntry(
        hospital_id=H, item_code="YP000123", national_code=CODE, item_name="他达拉非片(希爱力)",
        hospital_unit="盒", national_unit="片", factor=Decimal(21),
        valid_from=date(2024, 1, 1), valid_to=date(2024, 12, 31))
    assert entries[1].valid_from == date(2024, 1, 1) and entries[1].valid_to is None


def test_alias_医保编码_and_starred_template_headers() -> None:
    text = f"*医疗机构编码,*院内编码,医保编码\n{H},YP1,{CODE}\n"
    assert read_csv(text)[0].national_code == CODE


def test_missing_hospital_column_without_argument_names_the_column() -> None:
    with pytest.raises(CrosswalkFormatError, match="hospital_id"):
        read_csv(CHINESE)


def test_every_bad_row_is_reported_at_once() -> None:
    text = (
        "医疗机构编码,院内编码,国家医保编码,换算系数,生效日期\n"
        f"{H},YP1,XG04BET001A00104180330,24,2024-01-01\n"  # 22 characters
        f"{H},YP2,{CODE},zero,2024-01-01\n"
        f"{H},YP3,{CODE},0,2024-01-01\n"
        f"{H},YP4,{CODE},1,2024-13-01\n"
        f"{H},,{CODE},1,\n"
    )
    with pytest.raises(CrosswalkFormatError) as err:
        read_csv(text)
    problems = err.value.problems
    assert any("row 2" in p and "invalid" in p for p in problems)
    assert any("row 3" in p and "not a number" in p for p in problems)
    assert any("row 4" in p and "positive" in p for p in problems)
    assert any("row 5" in p and "not a date" in p for p in problems)
    assert any("row 6" in p and "item_code" in p for p in problems)


def test_overlapping_ranges_of_one_item_are_refused() -> None:
    text = (
        "医疗机构编码,院内编码,国家医保编码,生效日期,失效日期\n"
        f"{H},YP1,{CODE},2024-01-01,2024-12-31\n"
        f"{H},YP1,{CODE2},2024-06-01,\n"
    )
    with pytest.raises(CrosswalkFormatError, match="overlap"):
        read_csv(text)


def test_csv_round_trip_with_both_header_styles(tmp_path: Path) -> None:
    entries = read_csv(CHINESE, hospital_id=H)
    for chinese in (False, True):
        path = tmp_path / f"cw{chinese}.csv"
        write_csv(entries, path, chinese_headers=chinese)
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel needs the BOM
        assert read_csv(path) == entries
    assert len(load_csv(tmp_path / "cwTrue.csv")) == 2


def test_xlsx_round_trip_keeps_codes_as_text(tmp_path: Path) -> None:
    entries = [*read_csv(CHINESE, hospital_id=H),
               CrosswalkEntry(hospital_id=H, item_code="00123", national_code=CODE)]
    path = tmp_path / "对码.xlsx"
    write_xlsx(entries, path)
    assert read_xlsx(path) == entries


def test_xlsx_as_hospitals_fill_it_numbers_and_datetimes() -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["院内编码", "国家医保编码", "换算系数", "生效日期"])
    ws.append([10023, CODE, 24.0, datetime(2024, 3, 1)])
    ws.append([None, None, None, None])
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    (e,) = read_xlsx(buf, hospital_id=H)
    assert (e.item_code, e.factor, e.valid_from) == ("10023", Decimal(24), date(2024, 3, 1))


def test_not_a_workbook_is_a_format_error() -> None:
    with pytest.raises(CrosswalkFormatError, match="not an Excel"):
        read_xlsx(io.BytesIO(b"PK not really"))
