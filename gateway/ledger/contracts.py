"""Procurement results (集采中选结果) and each hospital's agreement, imported from files or JSON.

One row per hospital × project/batch × winning product (× agreement year); rows of the
same hospital, project, batch, generic name, dosage-form group and agreement year form
one contract. Products of the same generic name that did not win are known through the
national codes: they share the class and generic-name segments (:func:`generic_key`),
and for western drugs the dosage-form segment's group (``dosage_forms.py``) — a tablet
line never counts into an injection's contract.

A procurement cycle lasts one to three years (R2) and the agreement is signed per year,
with a yearly agreed volume (R1: a share of the hospital's annual use): each contract is
one agreement year, and completion and 序时进度 run over that year. A row without
``year_start`` / ``year_end`` gives the agreed volume of every agreement year of its
cycle; a row with them gives one year's. A renewal (接续) names the project / batch it
continues in ``renews``.

Columns (CSV header / XLSX first row / JSON keys), Chinese aliases accepted:
``hospital_id, project, batch, generic_name, national_code, product_name, winning_price,
supplier, cycle_start, cycle_end, agreed_volume, agreed_ratio`` and optionally
``dosage_form`` (剂型: a group or a form in it; derived from the national code or the
product name when absent), ``year_start``, ``year_end`` (协议年度), ``renews`` (接续),
``category`` (drug / consumable), ``reported_demand``, ``last_year_purchases``, ``unit``,
and per winning product ``reference_price`` (参比价 / 集采前价格: savings),
``product_agreed_volume`` (the product's part of the agreed volume) and
``prepayment_received`` (the fund's prepayment received for it, R15) — see ``product_terms.py``.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from canonical.errors import GatewayError
from gateway.ledger.dosage_forms import DosageForms, current_dosage_forms
from gateway.ledger.product_terms import (
    PRODUCT_ALIASES,
    check_product_volumes,
    product_terms,
)

__all__ = [
    "MAX_CYCLE_YEARS",
    "Contract",
    "ContractFormatError",
    "RowCheck",
    "WinningProduct",
    "agreement_years",
    "contracts_from_rows",
    "generic_key",
    "is_drug_code",
    "overlapping_agreements",
    "read_contracts",
    "read_contracts_csv",
    "read_contracts_json",
    "read_contracts_xlsx",
]

# checks of a row beyond its form (national catalog, R1 band; see import_checks.py):
# (where, national code, agreed volume, agreed ratio, last year's purchases) → problems
RowCheck = Callable[[str, str, Decimal, Decimal, "Decimal | None"], list[str]]

_X = re.compile(r"^X[A-Z]\d\d[A-Z]{2}[A-Z]\d{3}[A-Z]\d{3}\d{2}\d{2}\d{5}$")
_Z = re.compile(r"^Z[A-Z]\d\d[A-Z]{2}[A-Z]\d{4}\d{2}\d{2}\d{5}$")
_C = re.compile(r"^C\d{19}(\d{7})?$")

# 1 winner: one year; 2–3 winners: two years, extended by at most one (R2, SX 五(一))
MAX_CYCLE_YEARS = 3


class ContractFormatError(GatewayError, ValueError):
    """A procurement-result file has bad rows; ``problems`` names each row and column."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = problems


def generic_key(national_code: str) -> str | None:
    """The class + generic-name prefix shared by all products of one generic name.

    X codes: characters 1–10 (X, ATC level 4, generic-name code); Z codes: 1–11;
    consumable C codes: 1–10 (classification and generic-name segments). None for
    anything else.
    """
    code = national_code.strip().upper()
    if _X.match(code):
        return code[:10]
    if _Z.match(code):
        return code[:11]
    if _C.match(code):
        return code[:10]
    return None


def is_drug_code(national_code: str) -> bool:
    """True for drug codes (X, Z, T), False for consumables (C)."""
    return national_code[:1] in ("X", "Z", "T")


@dataclass(frozen=True, slots=True)
class WinningProduct:
    """One winning product of a contract, priced per national minimum unit."""

    national_code: str
    product_name: str
    winning_price: Decimal
    supplier: str = ""
    reference_price: Decimal | None = None  # the price before 集采 (参比价): savings
    agreed_volume: Decimal | None = None  # its part of the contract's agreed volume
    prepayment_received: Decimal | None = None  # the fund's prepayment for it (R15)


@dataclass(frozen=True, slots=True)
class Contract:
    """One hospital's agreement for one generic name in one project / batch."""

    hospital_id: str
    project: str
    batch: str
    generic_name: str
    generic_key: str
    cycle_start: date
    cycle_end: date
    agreed_volume: Decimal  # national units over the cycle
    agreed_ratio: Decimal  # winning share of the generic name's use the hospital agreed to
    products: tuple[WinningProduct, ...]
    category: str = "drug"  # drug | consumable
    unit: str = ""
    reported_demand: Decimal | None = None  # 报量
    last_year_purchases: Decimal | None = None  # 上一年度实际采购量
    # the dosage-form group as results name it (口服常释剂型, 注射剂; "" when unknown)
    dosage_form: str = ""
    # the group lines are matched by: derived from the national codes, "" for codes
    # without a dosage-form segment (Z, C)
    form_key: str = ""
    # the agreement year (协议年度) inside the cycle; None: the cycle is one year
    year_start: date | None = None
    year_end: date | None = None
    renews: str = ""  # the project/batch this cycle continues (接续), "" for a first cycle

    @property
    def contract_id(self) -> str:
        """Stable identifier: hospital / project / batch / generic key, then the dosage-form
        group and the agreement year's start when there are."""
        cid = f"{self.hospital_id}/{self.project}/{self.batch}/{self.generic_key}"
        if self.form_key:
            cid += f"/{self.form_key}"
        if self.year_start is not None:
            cid += f"/{self.year_start.isoformat()}"
        return cid

    @property
    def legacy_id(self) -> str:
        """The identifier of releases that keyed contracts by generic name only."""
        return f"{self.hospital_id}/{self.project}/{self.batch}/{self.generic_key}"

    @property
    def group_key(self) -> tuple[str, str]:
        """(generic key, dosage-form key): the products this contract counts."""
        return self.generic_key, self.form_key

    @property
    def period_start(self) -> date:
        """First day of the agreement year (the cycle's when it is one year)."""
        return self.year_start or self.cycle_start

    @property
    def period_end(self) -> date:
        """Last day of the agreement year."""
        return self.year_end or self.cycle_end

    @property
    def year_no(self) -> int:
        """Which agreement year of the cycle this is (1, 2, 3)."""
        return 1 + sum(1 for s, _ in agreement_years(self.cycle_start, self.cycle_end)
                       if s < self.period_start)

    @property
    def winning_codes(self) -> frozenset[str]:
        """National codes of the winning products."""
        return frozenset(p.national_code for p in self.products)

    def product(self, national_code: str) -> WinningProduct | None:
        """The winning product with ``national_code``, if it is one."""
        for p in self.products:
            if p.national_code == national_code:
                return p
        return None

    def active_on(self, day: date) -> bool:
        """Whether ``day`` lies in this agreement year."""
        return self.period_start <= day <= self.period_end


def _anniversary(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def agreement_years(cycle_start: date, cycle_end: date) -> list[tuple[date, date]]:
    """The agreement years of a cycle: from each anniversary of its start to the day before
    the next, the last one ending with the cycle."""
    out: list[tuple[date, date]] = []
    start = cycle_start
    n = 0
    while start <= cycle_end:
        n += 1
        nxt = _anniversary(cycle_start, n)
        out.append((start, min(nxt - timedelta(days=1), cycle_end)))
        start = nxt
    return out


_ALIASES = {
    "hospital_id": ("hospital_id", "定点医药机构编号", "医疗机构编码", "机构编码"),
    "project": ("project", "项目", "采购项目"),
    "batch": ("batch", "批次"),
    "generic_name": ("generic_name", "通用名", "药品通用名"),
    "national_code": ("national_code", "医保编码", "国家医保编码", "医保药品编码"),
    "product_name": ("product_name", "产品名称", "中选产品"),
    "winning_price": ("winning_price", "中选价格", "中选价"),
    "supplier": ("supplier", "中选企业", "供应企业", "生产企业"),
    "cycle_start": ("cycle_start", "采购周期开始", "周期开始"),
    "cycle_end": ("cycle_end", "采购周期结束", "周期结束"),
    "agreed_volume": ("agreed_volume", "约定采购量"),
    "agreed_ratio": ("agreed_ratio", "约定采购比例"),
    "category": ("category", "类别"),
    "unit": ("unit", "单位"),
    "reported_demand": ("reported_demand", "报量", "填报需求量"),
    "last_year_purchases": ("last_year_purchases", "上年采购量", "上一年度采购量"),
    "dosage_form": ("dosage_form", "剂型", "剂型分组"),
    "year_start": ("year_start", "协议年度开始", "年度开始"),
    "year_end": ("year_end", "协议年度结束", "年度结束"),
    "renews": ("renews", "接续", "接续批次"),
    **PRODUCT_ALIASES,
}
_REQUIRED = ("hospital_id", "project", "batch", "generic_name", "national_code",
             "winning_price", "cycle_start", "cycle_end", "agreed_volume", "agreed_ratio")
_BY_ALIAS = {alias: key for key, aliases in _ALIASES.items() for alias in aliases}


def _canonical_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k is None:
            continue
        key = _BY_ALIAS.get(str(k).strip())
        if key is not None:
            out[key] = v.strip() if isinstance(v, str) else v
    return out


def _dec(value: Any, col: str, where: str, problems: list[str]) -> Decimal | None:
    if value is None or value == "":
        return None
    text = str(value).strip().rstrip("%")
    try:
        d = Decimal(text)
    except InvalidOperation:
        problems.append(f"{where}: {col}: {value!r} is not a number")
        return None
    if str(value).strip().endswith("%"):
        d = d / 100
    if d < 0:
        problems.append(f"{where}: {col}: {value!r} is negative")
        return None
    return d


def _day(value: Any, col: str, where: str, problems: list[str]) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip().replace("/", "-"))
    except ValueError:
        problems.append(f"{where}: {col}: {value!r} is not a date (YYYY-MM-DD)")
        return None


def _form(row: Mapping[str, Any], code: str, name: str, forms: DosageForms, where: str,
          problems: list[str]) -> tuple[str, str] | None:
    """(dosage-form group, form key) of one row, or None after noting a problem."""
    key = forms.code_group(code)
    given = str(row.get("dosage_form") or "").strip()
    if given:
        group = forms.form_group(given)
        if group is None:
            problems.append(f"{where}: dosage_form: {given!r} is in no dosage-form group "
                            f"(known: {', '.join(forms.known())}; add it to "
                            "config/dosage_forms.yaml)")
            return None
        if key and group != key:
            problems.append(f"{where}: dosage_form: {given!r} ({group}) is not the form of "
                            f"national code {code} ({key}); if the code's segment "
                            f"{code[10:14]} belongs to {group}, add it to that group in "
                            "config/dosage_forms.yaml")
            return None
        return group, key
    return key or forms.name_group(name) or "", key


def _years(row: Mapping[str, Any], start: date, end: date, where: str,
           problems: list[str]) -> list[tuple[date, date]] | None:
    """The agreement years a row speaks for: the one it names, or every year of its cycle."""
    cycle = agreement_years(start, end)
    if len(cycle) > MAX_CYCLE_YEARS:
        problems.append(f"{where}: the cycle {start} – {end} is longer than "
                        f"{MAX_CYCLE_YEARS} years")
        return None
    ys, ye = row.get("year_start"), row.get("year_end")
    if ys in (None, "") and ye in (None, ""):
        return cycle
    if ys in (None, "") or ye in (None, ""):
        problems.append(f"{where}: give both year_start and year_end, or neither")
        return None
    y0 = _day(ys, "year_start", where, problems)
    y1 = _day(ye, "year_end", where, problems)
    if y0 is None or y1 is None:
        return None
    if not start <= y0 <= y1 <= end:
        problems.append(f"{where}: the agreement year {y0} – {y1} is not inside the cycle "
                        f"{start} – {end}")
        return None
    if y1 >= _anniversary(y0, 1):
        problems.append(f"{where}: the agreement year {y0} – {y1} is longer than a year")
        return None
    return [(y0, y1)]


def contracts_from_rows(rows: Iterable[Mapping[str, Any]], source: str,
                        forms: DosageForms | None = None,
                        check: RowCheck | None = None) -> list[Contract]:
    """Group procurement-result rows into contracts, checking every row.

    Args:
        rows: mappings from column name (English or Chinese alias) to value.
        source: the file name or "api", used in error messages.
        forms: the dosage-form groups; the process's table when None.
        check: further checks of each well-formed row; their problems are reported with
            the others.

    Returns:
        The contracts, one per agreement year, in the order their first row appeared.

    Raises:
        ContractFormatError: listing every bad row and column at once.
    """
    forms = forms or current_dosage_forms()
    problems: list[str] = []
    GroupKey = tuple[str, str, str, str, str, date]
    groups: dict[GroupKey, dict[str, Any]] = {}
    for n, raw in enumerate(rows, start=2):
        where = f"row {n}"
        row = _canonical_row(raw)
        missing = [c for c in _REQUIRED if row.get(c) in (None, "")]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        code = str(row["national_code"]).upper()
        gkey = generic_key(code)
        if gkey is None:
            problems.append(f"{where}: national_code: {code!r} is not a national drug (X/Z) or "
                            "consumable (C) code")
            continue
        price = _dec(row["winning_price"], "winning_price", where, problems)
        volume = _dec(row["agreed_volume"], "agreed_volume", where, problems)
        ratio = _dec(row["agreed_ratio"], "agreed_ratio", where, problems)
        start = _day(row["cycle_start"], "cycle_start", where, problems)
        end = _day(row["cycle_end"], "cycle_end", where, problems)
        demand = _dec(row.get("reported_demand"), "reported_demand", where, problems)
        last_year = _dec(row.get("last_year_purchases"), "last_year_purchases", where, problems)
        name = str(row.get("product_name") or row["generic_name"])
        form = _form(row, code, name, forms, where, problems)
        terms_of_product = product_terms(row, where, problems, _dec)
        if None in (price, volume, ratio, start, end) or form is None or terms_of_product is None:
            continue
        assert price is not None and volume is not None and ratio is not None
        assert start is not None and end is not None
        if end < start:
            problems.append(f"{where}: cycle_end {end} is before cycle_start {start}")
            continue
        if ratio > 1:
            problems.append(f"{where}: agreed_ratio: {ratio} is above 1 (write 0.7 or 70%)")
            continue
        if check is not None and (found := check(where, code, volume, ratio, last_year)):
            problems.extend(found)
            continue
        category = str(row.get("category") or ("drug" if is_drug_code(code) else "consumable"))
        if category not in ("drug", "consumable"):
            problems.append(f"{where}: category: {category!r} must be drug or consumable")
            continue
        years = _years(row, start, end, where, problems)
        if years is None:
            continue
        if len(years) > 1 and terms_of_product.prepayment_received is not None:
            problems.append(f"{where}: prepayment_received is paid per agreement year: give "
                            "year_start and year_end with it")
            continue
        product = WinningProduct(code, name, price, str(row.get("supplier") or ""),
                                 *terms_of_product)
        terms = (str(row["generic_name"]), start, end, volume, ratio, category, form[0],
                 str(row.get("renews") or ""))
        for y0, y1 in years:
            key = (str(row["hospital_id"]), str(row["project"]), str(row["batch"]), gkey,
                   form[1], y0)
            group = groups.get(key)
            if group is None:
                groups[key] = {"terms": terms, "year_end": y1, "products": [product], "row": n,
                               "unit": str(row.get("unit") or ""), "demand": demand,
                               "last_year": last_year}
                continue
            if group["terms"] != terms or group["year_end"] != y1:
                problems.append(f"{where}: generic name, cycle, agreement year, agreed volume, "
                                f"ratio, category, dosage form or renewal differ from row "
                                f"{group['row']} of the same contract")
                break
            if any(p.national_code == code for p in group["products"]):
                problems.append(f"{where}: national_code {code} repeats row {group['row']}"
                                f" for the agreement year from {y0}")
                break
            group["products"].append(product)
    _check_overlaps(groups, problems)
    check_product_volumes(((g["terms"][3], (p.agreed_volume for p in g["products"]), g["row"])
                           for g in groups.values()), problems)
    if problems:
        raise ContractFormatError(source, problems)
    contracts = []
    for (hospital, project, batch, gkey, form_key, y0), g in groups.items():
        generic, start, end, volume, ratio, category, form_name, renews = g["terms"]
        single = y0 == start and g["year_end"] == end
        contracts.append(Contract(
            hospital, project, batch, generic, gkey, start, end, volume, ratio,
            tuple(g["products"]), category, g["unit"], g["demand"], g["last_year"],
            form_name, form_key, None if single else y0, None if single else g["year_end"],
            renews))
    return contracts


def _check_overlaps(groups: Mapping[tuple[str, str, str, str, str, date], Mapping[str, Any]],
                    problems: list[str]) -> None:
    """Agreement years of one contract must not overlap: a line would count twice."""
    spans: dict[tuple[str, str, str, str, str], list[tuple[date, date, int]]] = {}
    for (h, p, b, gkey, fkey, y0), g in groups.items():
        spans.setdefault((h, p, b, gkey, fkey), []).append((y0, g["year_end"], g["row"]))
    for lst in spans.values():
        lst.sort()
        for (s0, e0, r0), (s1, _, r1) in itertools.pairwise(lst):
            if s1 <= e0:
                problems.append(f"row {r1}: the agreement year from {s1} overlaps the one of "
                                f"row {r0} ({s0} – {e0})")


def overlapping_agreements(new: Sequence[Contract], stored: Iterable[Contract]) -> list[str]:
    """Agreements of one hospital for one product group whose years overlap — across
    projects and batches, and against the stored ones this import does not replace —
    each named once: a line would count into both.

    Within one project and batch the rows are checked by :func:`contracts_from_rows`.
    """
    replaced = {c.contract_id for c in new} | {c.legacy_id for c in new}
    by_group: dict[tuple[str, str, str], list[tuple[Contract, bool]]] = {}
    for c in new:
        by_group.setdefault((c.hospital_id, *c.group_key), []).append((c, True))
    for c in stored:
        key = (c.hospital_id, *c.group_key)
        if key in by_group and c.contract_id not in replaced:
            by_group[key].append((c, False))
    problems: list[str] = []
    for items in by_group.values():
        items.sort(key=lambda x: x[0].period_start)
        for i, (a, a_new) in enumerate(items):
            for b, b_new in items[i + 1:]:
                if b.period_start > a.period_end:
                    break
                if not (a_new or b_new) or (
                        a_new and b_new and (a.project, a.batch) == (b.project, b.batch)):
                    continue
                # the imported agreement first, then the one it runs into
                this, other, stored_other = (b, a, not a_new) if b_new else (a, b, True)
                problems.append(
                    f"{this.hospital_id} {this.generic_name} "
                    f"{this.dosage_form or this.form_key}: {this.project} {this.batch} "
                    f"({this.period_start} – {this.period_end}) overlaps "
                    f"{'the stored ' if stored_other else ''}{other.project} {other.batch} "
                    f"({other.period_start} – {other.period_end}); a line would count "
                    "into both")
    return problems


def read_contracts_csv(text: str, source: str = "csv",
                       check: RowCheck | None = None) -> list[Contract]:
    """Contracts from CSV text (UTF-8, header row; a BOM is tolerated).

    Raises:
        ContractFormatError: bad rows.
    """
    return contracts_from_rows(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))), source,
                               check=check)


def read_contracts_xlsx(data: bytes, source: str = "xlsx",
                        check: RowCheck | None = None) -> list[Contract]:
    """Contracts from the first sheet of an XLSX workbook (header in the first row).

    Raises:
        ContractFormatError: bad rows or an unreadable workbook.
    """
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many unrelated types for a bad file
        raise ContractFormatError(source, [f"not a readable XLSX workbook: {exc}"]) from exc
    ws = wb.worksheets[0]
    rows = ws.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None:
        raise ContractFormatError(source, ["the first sheet is empty"])
    names = [str(h).strip() if h is not None else "" for h in header]
    records = [dict(zip(names, r, strict=False)) for r in rows
               if any(v not in (None, "") for v in r)]
    wb.close()
    return contracts_from_rows(records, source, check=check)


def read_contracts_json(data: Any, source: str = "api",
                        check: RowCheck | None = None) -> list[Contract]:
    """Contracts from decoded JSON: a list of rows, or ``{"rows": [...]}``.

    Raises:
        ContractFormatError: bad shape or bad rows.
    """
    if isinstance(data, Mapping):
        data = data.get("rows")
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        raise ContractFormatError(source, ['expected a list of rows or {"rows": [...]}'])
    if not all(isinstance(r, Mapping) for r in data):
        raise ContractFormatError(source, ["every row must be a JSON object"])
    return contracts_from_rows(data, source, check=check)


def read_contracts(path: Path, check: RowCheck | None = None) -> list[Contract]:
    """Contracts from a ``.csv``, ``.xlsx`` or ``.json`` file.

    Raises:
        ContractFormatError: bad rows or an unknown file type.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return read_contracts_csv(path.read_text(encoding="utf-8-sig"), str(path), check)
    if suffix == ".xlsx":
        return read_contracts_xlsx(path.read_bytes(), str(path), check)
    if suffix == ".json":
        import orjson

        return read_contracts_json(orjson.loads(path.read_bytes()), str(path), check)
    raise ContractFormatError(str(path), ["unknown file type (use .csv, .xlsx or .json)"])
