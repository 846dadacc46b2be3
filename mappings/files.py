"""Crosswalk import and export as CSV and Excel (XLSX).

Hospitals keep their 对码 tables in Excel with Chinese headers, so import
accepts the Chinese column names (院内编码, 国家医保编码, 换算系数 …) beside the
English ones, numbers and dates as Excel stores them, and reports every bad
row at once: a pharmacist fixing a 3,000-row sheet wants the whole list, not
one error per upload.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from codes import validate
from mappings._bulk import paused_gc
from mappings.entry import (
    CodeValidator,
    CrosswalkEntry,
    CrosswalkEntryError,
    describe_validity,
    entry_problems,
)

__all__ = [
    "CHINESE_HEADERS",
    "FIELDS",
    "CrosswalkFormatError",
    "read_csv",
    "read_rows",
    "read_xlsx",
    "write_csv",
    "write_xlsx",
]

FIELDS = (
    "hospital_id",
    "item_code",
    "national_code",
    "item_name",
    "hospital_unit",
    "national_unit",
    "factor",
    "valid_from",
    "valid_to",
)

CHINESE_HEADERS = {
    "hospital_id": "医疗机构编码",
    "item_code": "院内编码",
    "national_code": "国家医保编码",
    "item_name": "项目名称",
    "hospital_unit": "院内单位",
    "national_unit": "医保单位",
    "factor": "换算系数",
    "valid_from": "生效日期",
    "valid_to": "失效日期",
}

_ALIASES: dict[str, tuple[str, ...]] = {
    "hospital_id": ("医疗机构编码", "定点医药机构编号", "定点医疗机构编码", "机构编码",
                    "医院编码", "fixmedins_code"),
    "item_code": ("院内编码", "院内项目编码", "院内药品编码", "医院项目编码", "本院编码",
                  "项目编码", "fixmedins_hilist_id"),
    "national_code": ("医保编码", "国家医保编码", "医保药品编码", "医保耗材编码", "国家编码",
                      "医保目录编码", "med_list_codg"),
    "item_name": ("项目名称", "院内名称", "药品名称", "院内项目名称", "fixmedins_hilist_name"),
    "hospital_unit": ("院内单位", "医院单位", "院内计价单位"),
    "national_unit": ("医保单位", "最小计价单位", "医保计价单位"),
    "factor": ("换算系数", "转换系数", "换算比"),
    "valid_from": ("生效日期", "开始日期", "启用日期"),
    "valid_to": ("失效日期", "结束日期", "停用日期"),
}

_REQUIRED = ("item_code", "national_code")


def _header_key(text: str) -> str:
    # Excel templates mark required columns with * and wrap hints in brackets.
    text = text.replace("\ufeff", "").strip().lower()
    text = re.sub(r"[（(].*?[)）]", "", text)
    return re.sub(r"[\s*＊:：]", "", text)


_HEADER_TO_FIELD: dict[str, str] = {}
for _field, _names in _ALIASES.items():
    for _name in (_field, *_names):
        _HEADER_TO_FIELD[_header_key(_name)] = _field


class CrosswalkFormatError(CrosswalkEntryError):
    """A crosswalk file is malformed; ``problems`` names the file, row and column of each."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        shown = list(problems[:20])
        if len(problems) > len(shown):
            shown.append(f"… and {len(problems) - len(shown)} more")
        super().__init__(problems)
        self.args = ("\n".join(shown),)

    def __str__(self) -> str:
        return str(self.args[0])


_DATE_RE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def _text(value: object) -> str:
    if type(value) is str:
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel keeps numeric codes as floats
    if isinstance(value, datetime):
        return value.date().isoformat()
    return str(value).strip()


def _date(value: object, where: str, problems: list[str]) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if not text:
        return None
    if re.fullmatch(r"\d{8}", text):
        text = f"{text[:4]}-{text[4:6]}-{text[6:]}"
    m = _DATE_RE.match(text)
    if m:
        try:
            return date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            pass
    problems.append(f"{where}: {text!r} is not a date (YYYY-MM-DD)")
    return None


def _factor(value: object, where: str, problems: list[str]) -> Decimal:
    text = _text(value)
    if not text:
        return Decimal(1)
    try:
        factor = Decimal(text)
    except InvalidOperation:
        problems.append(f"{where}: factor {text!r} is not a number")
        return Decimal(1)
    if not factor.is_finite() or factor <= 0:
        problems.append(f"{where}: factor {text!r} must be a positive number")
        return Decimal(1)
    return factor


def read_rows(
    rows: Iterable[Sequence[object]],
    *,
    name: str = "<crosswalk>",
    hospital_id: str | None = None,
    validate_code: CodeValidator | None = validate,
) -> list[CrosswalkEntry]:
    """Turn a header row and data rows (as from CSV or a sheet) into crosswalk entries.

    Args:
        rows: the header row first; cells may be text, numbers or dates.
        name: the file name used in error messages.
        hospital_id: the hospital the file belongs to; required when the file has
            no hospital column, and then every row's hospital must equal it.
        validate_code: national-code validator, ``codes.validate`` unless given; None skips it.

    Returns:
        The entries in file order.

    Raises:
        CrosswalkFormatError: with every problem found (missing columns, empty or
            malformed cells, invalid national codes, duplicate or overlapping ranges).
    """
    with paused_gc():
        return _read_rows(rows, name=name, hospital_id=hospital_id, validate_code=validate_code)


def _read_rows(
    rows: Iterable[Sequence[object]],
    *,
    name: str,
    hospital_id: str | None,
    validate_code: CodeValidator | None,
) -> list[CrosswalkEntry]:
    it = iter(rows)
    header = next(it, None)
    if header is None:
        raise CrosswalkFormatError([f"{name}: the file is empty (expected a header row)"])
    columns: dict[str, int] = {}
    for i, cell in enumerate(header):
        field = _HEADER_TO_FIELD.get(_header_key(_text(cell)))
        if field is not None and field not in columns:
            columns[field] = i
    needed = list(_REQUIRED) + ([] if hospital_id else ["hospital_id"])
    missing = [f for f in needed if f not in columns]
    if missing:
        hint = ", ".join(f"{f} ({CHINESE_HEADERS[f]})" for f in missing)
        raise CrosswalkFormatError([f"{name}: missing column(s) {hint}"])

    problems: list[str] = []
    entries: list[CrosswalkEntry] = []
    # hospital ids, units, codes and factors repeat across rows: keep one object each
    shared: dict[str, str] = {}
    factors: dict[str, Decimal] = {}
    code_problems: dict[str, list[str]] = {}
    # every field has a position; -1 (absent) reads the empty last cell appended below
    at = {f: columns.get(f, -1) for f in FIELDS}
    i_hospital, i_item, i_code, i_name, i_hunit, i_nunit, i_factor, i_from, i_to = (
        at[f] for f in FIELDS)
    width = max(columns.values()) + 1
    dates: dict[str, date | None] = {"": None}
    for n, raw in enumerate(it, start=2):
        cells = [c.strip() if type(c) is str else c for c in raw[:width]]
        cells.extend([""] * (width + 1 - len(cells)))
        if not any(_text(c) for c in cells):
            continue  # blank lines at the end of a sheet
        texts = [c if type(c) is str else _text(c) for c in cells]
        where = f"{name} row {n}"
        row_problems: list[str] = []
        hospital = texts[i_hospital] or (hospital_id or "")
        item_code, code = texts[i_item], texts[i_code].upper()
        if hospital_id and hospital != hospital_id:
            row_problems.append(f"{where}: hospital {hospital!r} is not {hospital_id!r}")
        if not item_code:
            row_problems.append(f"{where}: column item_code ({CHINESE_HEADERS['item_code']}) "
                                "is empty")
        if not code:
            row_problems.append(f"{where}: column national_code "
                                f"({CHINESE_HEADERS['national_code']}) is empty")
        if not hospital:
            row_problems.append(f"{where}: column hospital_id ({CHINESE_HEADERS['hospital_id']}) "
                                "is empty")
        factor = factors.get(texts[i_factor])
        if factor is None:
            factor = _factor(texts[i_factor], where, row_problems)
            if not row_problems:
                factors[texts[i_factor]] = factor
        span: list[date | None] = []
        for i, label in ((i_from, "valid_from"), (i_to, "valid_to")):
            value = cells[i]
            if isinstance(value, str) and value in dates:
                span.append(dates[value])
            else:
                d = _date(value, f"{where} {label}", row_problems)
                if isinstance(value, str) and d is not None:
                    dates[value] = d
                span.append(d)
        if row_problems:
            problems.extend(row_problems)
            continue
        entry = CrosswalkEntry(
            hospital_id=shared.setdefault(hospital, hospital),
            item_code=item_code,
            national_code=shared.setdefault(code, code),
            item_name=texts[i_name],
            hospital_unit=shared.setdefault(texts[i_hunit], texts[i_hunit]),
            national_unit=shared.setdefault(texts[i_nunit], texts[i_nunit]),
            factor=factor,
            valid_from=span[0],
            valid_to=span[1],
        )
        # the code check runs once per distinct code
        found = code_problems.get(code)
        if found is None:
            found = code_problems[code] = entry_problems(
                CrosswalkEntry(hospital_id="-", item_code="-", national_code=code),
                validate_code=validate_code)
        if found:
            problems.extend(f"{where}: {p}" for p in found)
        if span[0] is not None and span[1] is not None and span[0] > span[1]:
            problems.append(f"{where}: valid_from {span[0]} is after valid_to {span[1]}")
        entries.append(entry)
    problems.extend(overlap_problems(entries, name=name))
    if problems:
        raise CrosswalkFormatError(problems)
    return entries


def overlap_problems(entries: Iterable[CrosswalkEntry], *, name: str = "") -> list[str]:
    """Pairs of entries of the same item whose validity ranges overlap."""
    first: dict[tuple[str, str], CrosswalkEntry] = {}
    by_item: dict[tuple[str, str], list[CrosswalkEntry]] = {}  # only items seen twice
    for e in entries:
        key = (e.hospital_id, e.item_code)
        seen = first.setdefault(key, e)
        if seen is not e:
            by_item.setdefault(key, [seen]).append(e)
    prefix = f"{name}: " if name else ""
    problems = []
    for (hospital, item), found in by_item.items():
        if len(found) < 2:
            continue
        found.sort(key=lambda e: e.valid_from or date.min)
        for a, b in itertools.pairwise(found):
            if a.overlaps(b):
                problems.append(
                    f"{prefix}{hospital}/{item}: ranges {describe_validity(a)} and "
                    f"{describe_validity(b)} overlap (close the first with 失效日期 "
                    "before the second starts)"
                )
    return problems


def read_csv(
    source: Path | str,
    *,
    hospital_id: str | None = None,
    validate_code: CodeValidator | None = validate,
) -> list[CrosswalkEntry]:
    """Read crosswalk entries from a CSV file or CSV text (UTF-8, optional BOM).

    Columns (English or Chinese): hospital_id (医疗机构编码), item_code (院内编码),
    national_code (医保编码 / 国家医保编码), and optionally item_name (项目名称),
    hospital_unit (院内单位), national_unit (医保单位), factor (换算系数),
    valid_from (生效日期), valid_to (失效日期).

    Raises:
        CrosswalkFormatError: a required column is missing or cells are malformed.
    """
    if isinstance(source, Path):
        name, text = str(source), source.read_text(encoding="utf-8-sig")
    else:
        name, text = "<crosswalk>", source.lstrip("\ufeff")
    return read_rows(csv.reader(io.StringIO(text)), name=name, hospital_id=hospital_id,
                     validate_code=validate_code)


def read_xlsx(
    source: Path | IO[bytes],
    *,
    sheet: str | None = None,
    hospital_id: str | None = None,
    validate_code: CodeValidator | None = validate,
) -> list[CrosswalkEntry]:
    """Read crosswalk entries from an Excel workbook (first sheet unless ``sheet`` is named).

    Raises:
        CrosswalkFormatError: the sheet is missing, not a workbook, or rows are malformed.
    """
    from openpyxl import load_workbook  # openpyxl is only needed for Excel files

    name = str(source) if isinstance(source, Path) else "<workbook>"
    try:
        wb = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile/KeyError/InvalidFileException
        raise CrosswalkFormatError([f"{name}: not an Excel .xlsx workbook ({exc})"]) from exc
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise CrosswalkFormatError(
                [f"{name}: no sheet {sheet!r} (sheets: {', '.join(wb.sheetnames)})"])
        ws = wb[sheet] if sheet is not None else wb.worksheets[0]
        rows: Iterator[Sequence[Any]] = ws.iter_rows(values_only=True)
        return read_rows(rows, name=f"{name}[{ws.title}]", hospital_id=hospital_id,
                         validate_code=validate_code)
    finally:
        wb.close()


def _header(chinese: bool) -> list[str]:
    return [CHINESE_HEADERS[f] if chinese else f for f in FIELDS]


def _row(e: CrosswalkEntry) -> list[str]:
    return [
        e.hospital_id, e.item_code, e.national_code, e.item_name, e.hospital_unit,
        e.national_unit, str(e.factor),
        e.valid_from.isoformat() if e.valid_from else "",
        e.valid_to.isoformat() if e.valid_to else "",
    ]


def write_csv(
    entries: Iterable[CrosswalkEntry],
    target: Path | None = None,
    *,
    chinese_headers: bool = False,
) -> str:
    """Write entries as CSV text; with ``target`` also save it (with a BOM, for Excel)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_header(chinese_headers))
    for e in entries:
        w.writerow(_row(e))
    text = buf.getvalue()
    if target is not None:
        target.write_text(text, encoding="utf-8-sig")
    return text


def write_xlsx(
    entries: Iterable[CrosswalkEntry],
    target: Path | IO[bytes],
    *,
    chinese_headers: bool = True,
    sheet: str = "对码",
) -> None:
    """Write entries as an Excel workbook: codes as text (no lost leading zeros), dates as dates."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    ws = wb.create_sheet(sheet)
    ws.append(_header(chinese_headers))
    for e in entries:
        cells: list[Any] = []
        for value in _row(e)[:6]:
            c = WriteOnlyCell(ws, value=value)
            c.number_format = "@"  # text: keeps 00123 and 23-character codes intact
            cells.append(c)
        cells.append(e.factor)
        for d in (e.valid_from, e.valid_to):
            c = WriteOnlyCell(ws, value=d)
            c.number_format = "yyyy-mm-dd"
            cells.append(c)
        ws.append(cells)
    wb.save(target)
