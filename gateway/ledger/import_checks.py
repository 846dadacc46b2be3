"""Checks of procurement results beyond each row's own form, run while they are imported.

- Every national code must be listed in the latest imported national catalog of its kind
  (drug or consumable): a code the catalog does not know is an error, like a bad row.
  Without an imported catalog the codes cannot be checked; that is a warning.
- R1 [SX 三(一)]: the agreed volume is the base volume × the agreed ratio, "原则上按照医疗机构
  年度总用量的50%-80%确定". "In principle" leaves the province room, so a ratio outside
  the band — or, when the results give last year's purchases, an agreed volume outside
  the band of them — is a warning: the import goes ahead, the answer and the audit log
  say which rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from codes.catalog import CatalogKind, CatalogVersion
from gateway.ledger.contracts import is_drug_code
from gateway.store.state import CatalogTables

__all__ = ["ImportChecks", "RowChecker", "latest_catalogs"]


@dataclass(frozen=True, slots=True)
class ImportChecks:
    """What rows are checked against."""

    # the latest imported version of each catalog; None when none is imported
    catalogs: Mapping[CatalogKind, CatalogVersion | None]
    ratio_band: tuple[Decimal, Decimal]  # R1, inclusive


async def latest_catalogs(tables: CatalogTables) -> dict[CatalogKind, CatalogVersion | None]:
    """The latest imported version of each national catalog (None for a kind never
    imported)."""
    out: dict[CatalogKind, CatalogVersion | None] = {}
    for kind in CatalogKind:
        versions = await tables.versions(kind)
        out[kind] = await tables.load(kind, versions[-1].version) if versions else None
    return out


def _pct(value: Decimal) -> str:
    return f"{value * 100:.1f} %"


class RowChecker:
    """Checks one import's rows (``contracts_from_rows``' ``check``) and gathers warnings."""

    def __init__(self, checks: ImportChecks) -> None:
        self.checks = checks
        self._unchecked: set[CatalogKind] = set()
        # the same warning for several rows (every product of a contract repeats its
        # ratio) is said once, naming the rows
        self._warned: dict[str, list[str]] = {}

    def __call__(self, where: str, code: str, volume: Decimal, ratio: Decimal,
                 last_year: Decimal | None) -> list[str]:
        """The row's problems (errors); its warnings are kept for :meth:`warnings`."""
        problems = []
        kind = CatalogKind.DRUG if is_drug_code(code) else CatalogKind.CONSUMABLE
        catalog = self.checks.catalogs.get(kind)
        if catalog is None:
            self._unchecked.add(kind)
        elif code not in catalog:
            problems.append(f"{where}: national_code: {code} is not in the national {kind} "
                            f"catalog {catalog.version!r} (the latest imported): check the "
                            "code, or import the catalog version that lists it")
        lo, hi = self.checks.ratio_band
        if not lo <= ratio <= hi:
            self._warn(where, f"agreed_ratio {_pct(ratio)} is outside {_pct(lo)}–{_pct(hi)} "
                              "of the year's use (R1, SX 三(一))")
        if last_year:
            share = volume / last_year
            if not lo <= share <= hi:
                self._warn(where, f"agreed_volume {volume} is {_pct(share)} of "
                                  f"last_year_purchases {last_year}, outside "
                                  f"{_pct(lo)}–{_pct(hi)} (R1, SX 三(一))")
        return problems

    def _warn(self, where: str, text: str) -> None:
        self._warned.setdefault(text, []).append(where.removeprefix("row "))

    def warnings(self) -> list[str]:
        """Every warning of the rows checked so far, the catalogs not checked first."""
        out = [f"no national {kind} catalog is imported: the {kind} codes were not checked "
               "against it" for kind in CatalogKind if kind in self._unchecked]
        for text, rows in self._warned.items():
            out.append(f"row{'s' if len(rows) > 1 else ''} {', '.join(rows)}: {text}")
        return out
