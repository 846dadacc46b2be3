"""National catalogs (国家医保药品/医用耗材目录): import, versions and differences.

Catalogs arrive as CSV or XLSX with the Chinese column names as published,
often extracted from PDF: cells cut, shifted into the next column, a class
letter glued to the 本位码. The importer keeps every row whose code is valid,
repairs what it safely can, and lists every row it skipped and every value it
dropped, with the row number a user sees in a spreadsheet (the header is row 1
when it is the first line).

Everything here is pure: rows come in as sequences of cell values; reading
files and persisting versions live in :mod:`codes.catalog_files`.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time
from enum import StrEnum
from typing import Final

from codes.national import is_valid, validate
from codes.standard_code import split_approval_and_standard_code, split_standard_code

__all__ = [
    "ENTRY_FIELDS",
    "CatalogDiff",
    "CatalogEntry",
    "CatalogError",
    "CatalogImport",
    "CatalogKind",
    "CatalogVersion",
    "EntryChange",
    "FieldChange",
    "RowNote",
    "SkippedRow",
    "WithdrawnAlert",
    "diff",
    "find_header",
    "parse_catalog_rows",
    "withdrawn_mapped",
]


class CatalogError(ValueError):
    """A catalog cannot be imported at all (no header, no code column, unknown kind)."""


class CatalogKind(StrEnum):
    """Which national catalog a version belongs to."""

    DRUG = "drug"
    CONSUMABLE = "consumable"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One code of a national catalog, values as published ('' when absent)."""

    code: str
    name: str = ""  # 注册名称 / 耗材名称 / 单件产品名称
    generic_name: str = ""  # 药品通用名 / 通用名称 / 医保通用名
    product_name: str = ""  # 产品名称 (brand)
    dosage_form: str = ""
    specification: str = ""  # 规格 / 规格型号
    packaging: str = ""  # 包装规格 / 包装材质
    min_pack_quantity: str = ""
    min_pack_unit: str = ""
    manufacturer: str = ""
    approval_no: str = ""  # 批准文号 / 注册证号
    standard_code: str = ""  # 14-digit 药品本位码, '' when the cell held none
    insurance_class: str = ""  # 甲 / 乙 / 丙
    material: str = ""  # consumables: 材质
    # prescription-only (处方药): "1", over the counter (OTC): "0", not said: ""; from a
    # 处方药标志 or an OTC 标志 column when the catalog has one
    rx_flag: str = ""


ENTRY_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(CatalogEntry))
_VALUE_FIELDS: Final = ENTRY_FIELDS[1:]


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row left out of the catalog, and why."""

    row: int
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class RowNote:
    """A row that was kept but one of whose values was repaired or dropped."""

    row: int
    code: str
    column: str
    note: str


@dataclass(frozen=True, slots=True)
class CatalogImport:
    """The outcome of importing one catalog file."""

    kind: CatalogKind
    entries: dict[str, CatalogEntry]
    skipped: tuple[SkippedRow, ...]
    notes: tuple[RowNote, ...]
    header_row: int
    columns: Mapping[str, str]  # entry field -> header it was read from
    rows_read: int  # data rows after the header, blank ones excluded

    def summary(self) -> str:
        """One line for logs and the CLI."""
        return (
            f"{self.kind} catalog: {len(self.entries)} codes kept from {self.rows_read} rows, "
            f"{len(self.skipped)} skipped, {len(self.notes)} values repaired or dropped"
        )


@dataclass(frozen=True, slots=True)
class CatalogVersion:
    """One published version of a national catalog; lookup is a dict hit."""

    kind: CatalogKind
    version: str
    imported_at: datetime
    entries: dict[str, CatalogEntry]
    source: str = ""

    def get(self, code: str) -> CatalogEntry | None:
        """Return the entry for ``code``, or None when the catalog does not list it."""
        return self.entries.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self.entries

    def __len__(self) -> int:
        return len(self.entries)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of an entry that differs between two versions."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class EntryChange:
    """A code listed in both versions with different values."""

    code: str
    old: CatalogEntry
    new: CatalogEntry
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class CatalogDiff:
    """What changed from one catalog version to the next (each part sorted by code)."""

    kind: CatalogKind
    old_version: str
    new_version: str
    added: tuple[CatalogEntry, ...]
    changed: tuple[EntryChange, ...]
    withdrawn: tuple[CatalogEntry, ...]

    @property
    def is_empty(self) -> bool:
        """True when the two versions list the same codes with the same values."""
        return not (self.added or self.changed or self.withdrawn)


@dataclass(frozen=True, slots=True)
class WithdrawnAlert:
    """A code the crosswalk maps to is no longer in the national catalog."""

    code: str
    entry: CatalogEntry  # as listed in the old version
    old_version: str
    new_version: str
    mapped_items: tuple[str, ...] = field(default=())  # hospital items mapped to it

    @property
    def message(self) -> str:
        """Human-readable alert text."""
        what = self.entry.name or self.entry.generic_name or "?"
        items = f"; mapped from {', '.join(self.mapped_items)}" if self.mapped_items else ""
        return (
            f"national code {self.code} ({what}, {self.entry.manufacturer or '?'}) "
            f"was withdrawn in catalog {self.new_version} (listed in {self.old_version}){items}"
        )


# Header aliases, matched after normalising (blanks, line breaks and full-width
# parentheses removed). The first group found wins for each field.
_DRUG_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "code": (
        "医保药品编码",
        "国家医保药品编码",
        "医保药品代码",
        "药品代码",
        "药品编码",
        "医保编码",
        "医保目录编码",
    ),
    "name": ("注册名称", "药品名称", "注册药品名称"),
    "generic_name": ("药品通用名", "通用名", "通用名称", "药品通用名称", "医保通用名"),
    "product_name": ("产品名称", "商品名称", "商品名"),
    "dosage_form": ("剂型", "注册剂型", "实际剂型", "药品剂型"),
    "specification": ("规格", "注册规格", "实际规格", "药品规格"),
    "packaging": ("包装规格", "包装材质", "包装"),
    "min_pack_quantity": ("最小包装数量", "包装数量"),
    "min_pack_unit": ("最小包装单位", "包装单位"),
    "manufacturer": ("药品生产企业", "生产企业", "生产企业名称", "生产厂家", "上市许可持有人"),
    "approval_no": ("批准文号", "批准文号/注册证号", "注册证号"),
    "standard_code": ("药品本位码", "本位码"),
    "insurance_class": ("甲乙类", "医保类别", "甲乙分类", "目录类别"),
    # an OTC column says the opposite of a prescription column: see _rx_flag
    "rx_flag": ("处方药标志", "处方药标识", "是否处方药", "处方药", "处方药类别",
                "OTC标志", "OTC标识", "是否OTC", "非处方药标志", "非处方药标识", "OTC"),
}
_OTC_HEADERS: Final = frozenset({"OTC标志", "OTC标识", "是否OTC", "非处方药标志",
                                 "非处方药标识", "OTC"})
# values of a prescription column; an OTC column's "yes" words mean OTC and its "no"
# words prescription-only
_YES: Final = frozenset({"是", "1", "Y", "YES", "TRUE", "√"})
_NO: Final = frozenset({"否", "0", "N", "NO", "FALSE", "×"})
_RX_WORDS: Final = frozenset({"处方药", "处方", "RX", "RX处方药"})
_OTC_WORDS: Final = frozenset({"非处方药", "OTC", "甲类OTC", "乙类OTC", "甲类非处方药",
                               "乙类非处方药", "OTC甲类", "OTC乙类", "甲类", "乙类"})
_CONSUMABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "code": (
        "耗材代码",
        "医保耗材代码",
        "医保医用耗材代码",
        "国家医保耗材代码",
        "医保耗材编码",
        "耗材编码",
        "27位耗材代码",
        "医保耗材分类与代码",
    ),
    "name": ("耗材名称", "单件产品名称", "产品名称", "医用耗材名称"),
    "generic_name": ("通用名称", "医保通用名", "通用名", "耗材通用名"),
    "specification": ("规格型号", "规格", "型号规格"),
    "manufacturer": ("生产企业", "生产企业名称", "生产厂家", "注册人/备案人名称", "注册人名称"),
    "approval_no": (
        "注册证号",
        "注册证编号",
        "注册备案号",
        "注册证编号/备案凭证编号",
        "注册/备案证号",
        "医疗器械注册证号",
    ),
    "material": ("材质", "耗材材质"),
    "packaging": ("包装规格", "包装"),
    "min_pack_unit": ("最小包装单位", "单位"),
    "min_pack_quantity": ("最小包装数量",),
}
# Consumable catalogs sometimes publish 规格 and 型号 apart; they are joined.
_MODEL_COLUMNS: Final = ("型号",)
_COLUMNS: Final = {CatalogKind.DRUG: _DRUG_COLUMNS, CatalogKind.CONSUMABLE: _CONSUMABLE_COLUMNS}
_HEADER_SCAN_ROWS: Final = 20
_ABSENT: Final = frozenset({"无", "/", "-", "—", "－", "NULL", "null", "None"})
# Values repeat across the variants of one product and across products (forms,
# units, manufacturers); sharing one str per value keeps a 300,000-code catalog small.
_POOLED: Final = frozenset(_VALUE_FIELDS) - {"standard_code"}
_DRUG_LETTERS: Final = frozenset("XZT")
_CLASSES: Final = frozenset({"甲", "乙", "丙"})
_RUN_TOGETHER: Final = 300  # longer cells are several rows run together by PDF extraction
_STD_SLOT: Final = _VALUE_FIELDS.index("standard_code")
_APPROVAL_SLOT: Final = _VALUE_FIELDS.index("approval_no")
_CLASS_SLOT: Final = _VALUE_FIELDS.index("insurance_class")
_RX_SLOT: Final = _VALUE_FIELDS.index("rx_flag")
_CLEAN_STD: Final = re.compile(r"(\d{14})([甲乙丙]?)", re.ASCII)
_APPROVAL_MAX: Final = 20  # longer approval cells may hide a glued 本位码


def _norm_header(value: object) -> str:
    text = _cell(value)
    for old, new in (("（", "("), ("）", ")"), ("\n", ""), ("\r", ""), (" ", ""), ("\u3000", "")):
        text = text.replace(old, new)
    return text.lstrip("\ufeff*★")


def _cell(value: object) -> str:
    """Turn a CSV/XLSX cell into text the way a user reads it in the sheet."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        # Excel keeps 14-digit 本位码 and pack counts as numbers.
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value).strip()


def _match_columns(
    header: Sequence[object], kind: CatalogKind
) -> tuple[dict[str, int], dict[str, str], int | None]:
    names = [_norm_header(h) for h in header]
    position: dict[str, int] = {}
    for i, name in enumerate(names):
        position.setdefault(name, i)
    index: dict[str, int] = {}
    used: dict[str, str] = {}
    for fld, aliases in _COLUMNS[kind].items():
        for alias in aliases:
            if alias in position and position[alias] not in index.values():
                index[fld] = position[alias]
                used[fld] = alias
                break
    model = next((position[a] for a in _MODEL_COLUMNS if a in position), None)
    if model is not None and used.get("specification") == "规格型号":
        model = None
    return index, used, model


def find_header(
    rows: Sequence[Sequence[object]], kind: CatalogKind | None = None
) -> tuple[int, CatalogKind]:
    """Find the header row (0-based) among the first rows and the catalog kind it implies.

    Raises:
        CatalogError: no row in the first 20 names a drug or consumable code column.
    """
    kinds = [kind] if kind is not None else [CatalogKind.DRUG, CatalogKind.CONSUMABLE]
    for i, row in enumerate(rows[:_HEADER_SCAN_ROWS]):
        names = {_norm_header(h) for h in row}
        for k in kinds:
            if names.intersection(_COLUMNS[k]["code"]):
                return i, k
    wanted = " / ".join(a for k in kinds for a in _COLUMNS[k]["code"][:2])
    raise CatalogError(
        f"no header row with a code column ({wanted}) in the first {_HEADER_SCAN_ROWS} rows"
    )


def parse_catalog_rows(
    rows: Iterable[Sequence[object]], *, kind: CatalogKind | None = None, first_row: int = 1
) -> CatalogImport:
    """Import catalog rows (header included) into entries, skipped rows and repair notes.

    Args:
        rows: the sheet as rows of cell values, title rows above the header allowed.
        kind: the catalog kind; guessed from the code column's header when None.
        first_row: the number a user sees for the first row (1 for a file).

    Returns:
        A :class:`CatalogImport`; rows with an invalid, foreign or repeated code are
        in ``skipped`` with their row number and reason, never silently dropped.

    Raises:
        CatalogError: no header row with a code column was found.
    """
    iterator = iter(rows)
    head: list[Sequence[object]] = []
    for row in iterator:
        head.append(row)
        if len(head) >= _HEADER_SCAN_ROWS:
            break
    header_at, kind = find_header(head, kind)
    index, used, model_col = _match_columns(head[header_at], kind)
    body = itertools.chain(head[header_at + 1 :], iterator)
    return _import_body(body, kind, index, used, model_col, first_row + header_at)


def _texts(row: Sequence[object]) -> list[str]:
    return [v.strip() if type(v) is str else _cell(v) for v in row]


def _import_body(
    rows: Iterator[Sequence[object]],
    kind: CatalogKind,
    index: dict[str, int],
    used: dict[str, str],
    model_col: int | None,
    header_number: int,
) -> CatalogImport:
    entries: dict[str, CatalogEntry] = {}
    first_seen: dict[str, int] = {}
    skipped: list[SkippedRow] = []
    notes: list[RowNote] = []
    pool: dict[str, str] = {}
    code_col = index["code"]
    # (slot in the positional value list, column in the row, pool the text?)
    plan = [(_VALUE_FIELDS.index(f), index[f], f in _POOLED) for f in _VALUE_FIELDS if f in index]
    spec_slot = _VALUE_FIELDS.index("specification")
    is_drug = kind is CatalogKind.DRUG
    absent = _ABSENT
    blank = [""] * len(_VALUE_FIELDS)
    make = CatalogEntry
    rx_col = used.get("rx_flag", "")
    rows_read = 0
    number = header_number
    for raw_row in rows:
        number += 1
        row = _texts(raw_row)
        width = len(row)
        code = row[code_col] if code_col < width else ""
        if not code and not any(row):
            continue
        rows_read += 1
        if not is_valid(code):
            reason = validate(code) if code else "no code in the code column"
            skipped.append(SkippedRow(number, code, reason or "invalid code"))
            continue
        if (code[0] in _DRUG_LETTERS) is not is_drug:
            other = "drug" if code[0] in _DRUG_LETTERS else "consumable"
            skipped.append(SkippedRow(number, code, f"{other} code in a {kind} catalog"))
            continue
        if code in first_seen:
            skipped.append(
                SkippedRow(number, code, f"code repeated; first listed at row {first_seen[code]}")
            )
            continue
        first_seen[code] = number
        values = blank.copy()
        for slot, col, pool_it in plan:
            if col < width:
                text = row[col]
                if text in absent:
                    continue
                if len(text) > _RUN_TOGETHER and slot != _STD_SLOT:
                    notes.append(_run_together_note(number, code, used, slot, text))
                values[slot] = pool.setdefault(text, text) if pool_it else text
        if model_col is not None and model_col < width:
            model = row[model_col]
            if model and model not in absent:
                values[spec_slot] = f"{values[spec_slot]} {model}".strip()
        if is_drug and not _clean_standard_code(values, code):
            _repair_standard_code(values, number, code, used, notes)
        if rx_col and values[_RX_SLOT]:
            flag = _rx_flag(values[_RX_SLOT], otc=rx_col in _OTC_HEADERS)
            if flag is None:
                notes.append(RowNote(number, code, rx_col, f"{values[_RX_SLOT]!r} says neither "
                                     "prescription-only nor OTC; left empty"))
            values[_RX_SLOT] = flag or ""
        entries[code] = make(code, *values)
    return CatalogImport(
        kind=kind,
        entries=entries,
        skipped=tuple(skipped),
        notes=tuple(notes),
        header_row=header_number,
        columns=dict(used),
        rows_read=rows_read,
    )


def _rx_flag(text: str, *, otc: bool) -> str | None:
    """"1" prescription-only, "0" OTC, or None for a value that says neither; ``otc``
    when the column is an OTC flag (its "yes" means OTC)."""
    word = text.upper().replace(" ", "")
    if word in _RX_WORDS:
        return "1"
    if word in _OTC_WORDS:
        return "0"
    if word in _YES:
        return "0" if otc else "1"
    if word in _NO:
        return "1" if otc else "0"
    return None


def _run_together_note(
    number: int, code: str, used: dict[str, str], slot: int, text: str
) -> RowNote:
    column = used.get(_VALUE_FIELDS[slot], _VALUE_FIELDS[slot])
    return RowNote(
        number, code, column, f"{len(text)} characters: cells of other rows run together; kept"
    )


def _clean_standard_code(values: list[str], code: str) -> bool:
    """Handle the common case in place: a clean 本位码 agreeing with the code's enterprise."""
    m = _CLEAN_STD.fullmatch(values[_STD_SLOT])
    if m is None or len(values[_APPROVAL_SLOT]) > _APPROVAL_MAX:
        return False
    digits, cls = m.groups()
    if digits[3:8] != code[-5:]:
        return False
    values[_STD_SLOT] = digits
    if cls and not values[_CLASS_SLOT]:
        values[_CLASS_SLOT] = cls
    return True


def _repair_standard_code(
    values: list[str], number: int, code: str, used: dict[str, str], notes: list[RowNote]
) -> None:
    """Keep a clean 14-digit 本位码 and its class letter; salvage one shifted or glued."""
    std_col = used.get("standard_code", "药品本位码")
    appr_col = used.get("approval_no", "批准文号")
    raw = values[_STD_SLOT]
    approval = values[_APPROVAL_SLOT]
    class_only = raw in _CLASSES
    found = split_standard_code(raw) if raw and not class_only else None
    glued = split_approval_and_standard_code(approval) if approval else None
    if glued is not None:
        values[_APPROVAL_SLOT] = glued[0]
        notes.append(RowNote(number, code, appr_col, "approval number and 本位码 split apart"))
        if found is None:
            found = glued[1], glued[2]
    if found is None and raw and not class_only:
        glued = split_approval_and_standard_code(raw)
        if glued is not None:
            if not values[_APPROVAL_SLOT]:
                values[_APPROVAL_SLOT] = glued[0]
            found = glued[1], glued[2]
            notes.append(RowNote(number, code, std_col, "approval number and 本位码 split apart"))
    if found is None and approval and glued is None:
        found = split_standard_code(approval)
        if found is not None:
            values[_APPROVAL_SLOT] = ""
            notes.append(
                RowNote(
                    number, code, appr_col, "a 本位码, not an approval number; moved to 药品本位码"
                )
            )
    if found is not None:
        values[_STD_SLOT], cls = found
        if cls and not values[_CLASS_SLOT]:
            values[_CLASS_SLOT] = cls
        if values[_STD_SLOT][3:8] != code[-5:]:
            notes.append(
                RowNote(
                    number,
                    code,
                    std_col,
                    f"本位码 enterprise {values[_STD_SLOT][3:8]} differs from the "
                    f"code's enterprise segment {code[-5:]}",
                )
            )
        return
    values[_STD_SLOT] = ""
    if class_only:
        if not values[_CLASS_SLOT]:
            values[_CLASS_SLOT] = raw
        notes.append(RowNote(number, code, std_col, f"no 本位码, only the class {raw!r}"))
    elif raw:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        notes.append(RowNote(number, code, std_col, f"{shown!r} is not a 14-digit 本位码; dropped"))


def diff(old: CatalogVersion, new: CatalogVersion) -> CatalogDiff:
    """Compare two versions of one catalog: codes added, changed (per field) and withdrawn.

    Raises:
        CatalogError: the versions belong to different catalog kinds.
    """
    if old.kind is not new.kind:
        raise CatalogError(f"cannot compare a {old.kind} catalog with a {new.kind} catalog")
    old_entries, new_entries = old.entries, new.entries
    added = tuple(new_entries[c] for c in sorted(new_entries.keys() - old_entries.keys()))
    withdrawn = tuple(old_entries[c] for c in sorted(old_entries.keys() - new_entries.keys()))
    changed: list[EntryChange] = []
    for code in sorted(old_entries.keys() & new_entries.keys()):
        before, after = old_entries[code], new_entries[code]
        if before == after:
            continue
        changes = tuple(
            FieldChange(name, getattr(before, name), getattr(after, name))
            for name in _VALUE_FIELDS
            if getattr(before, name) != getattr(after, name)
        )
        changed.append(EntryChange(code, before, after, changes))
    return CatalogDiff(
        kind=new.kind,
        old_version=old.version,
        new_version=new.version,
        added=added,
        changed=tuple(changed),
        withdrawn=withdrawn,
    )


def withdrawn_mapped(
    catalog_diff: CatalogDiff, mapped_codes: Iterable[str] | Mapping[str, Iterable[str]]
) -> list[WithdrawnAlert]:
    """Alerts for withdrawn codes that the crosswalk still maps hospital items to.

    Args:
        catalog_diff: the difference between the previous and the new catalog version.
        mapped_codes: national codes in use, or a mapping national code -> hospital
            item ids mapped to it (named in the alert).

    Returns:
        One alert per withdrawn code in use, sorted by code.
    """
    items: Mapping[str, Iterable[str]] | None = (
        mapped_codes if isinstance(mapped_codes, Mapping) else None
    )
    in_use = set(mapped_codes)
    return [
        WithdrawnAlert(
            code=entry.code,
            entry=entry,
            old_version=catalog_diff.old_version,
            new_version=catalog_diff.new_version,
            mapped_items=tuple(sorted(items[entry.code])) if items is not None else (),
        )
        for entry in catalog_diff.withdrawn
        if entry.code in in_use
    ]
