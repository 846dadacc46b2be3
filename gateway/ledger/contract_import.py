"""Importing procurement results into the ledger with the checks of ``import_checks``:
from the HTTP API, the configured file at start, and ``jicai-gateway ledger-contracts``.
Each import is audited: one entry per contract it changed, and one with its warnings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from canonical.errors import GatewayError
from gateway.config import GatewayConfig
from gateway.ledger.calendar import load_calendar
from gateway.ledger.contracts import (
    Contract,
    ContractFormatError,
    RowCheck,
    overlapping_agreements,
    read_contracts,
)
from gateway.ledger.dosage_forms import configure_dosage_forms, load_dosage_forms
from gateway.ledger.import_checks import ImportChecks, RowChecker, latest_catalogs
from gateway.ledger.ledger import Ledger
from gateway.ledger.settings import ledger_settings
from gateway.security.audit_log import AuditFields, record_as
from gateway.store.base import Store

__all__ = ["ForeignHospitals", "audit_fields", "checked_import", "import_contracts_file"]


class ForeignHospitals(GatewayError):
    """The results name hospitals the importing identity may not act for."""

    def __init__(self, hospitals: list[str]) -> None:
        super().__init__(f"the results name hospitals this identity may not act for: "
                         f"{', '.join(hospitals)}")
        self.hospitals = hospitals


async def checked_import(ledger: Ledger, read: Callable[[RowCheck], list[Contract]],
                         now: datetime, may_act_for: Callable[[str], bool] = lambda h: True
                         ) -> tuple[list[Contract], int, list[str]]:
    """Read procurement results with the checks of the ledger's store and settings, and
    import them.

    Args:
        ledger: where the contracts go (its store's catalogs are checked against).
        read: reads the rows with the check it is given (``read_contracts_csv`` …).
        now: the import time.

    Returns:
        The contracts read, how many were imported, and the warnings.

    Raises:
        ContractFormatError: bad rows, codes not in the catalog, or agreements overlapping
            others of the same hospital and product group (nothing imported).
        ForeignHospitals: contracts of hospitals ``may_act_for`` refuses (nothing imported).
        StoreError: nothing was stored.
    """
    checker = RowChecker(ImportChecks(await latest_catalogs(ledger.catalogs),
                                      ledger.settings.agreed_ratio_band))
    contracts = read(checker)
    foreign = sorted({c.hospital_id for c in contracts if not may_act_for(c.hospital_id)})
    if foreign:
        raise ForeignHospitals(foreign)
    await ledger.catch_up()
    overlaps = overlapping_agreements(contracts, ledger.contracts())
    if overlaps:
        raise ContractFormatError("request", overlaps)
    n = await ledger.load_contracts(contracts, now)
    return contracts, n, checker.warnings()


def _json(c: Contract | None) -> dict[str, object] | None:
    return None if c is None else dataclasses.asdict(c)


def audit_fields(contracts: list[Contract], before: Mapping[str, Contract], n: int,
                 warnings: list[str]) -> list[AuditFields]:
    """The audit entries of one import: each contract it changed, then its warnings."""
    out = [AuditFields("ledger.contracts.import", target=c.contract_id,
                       hospital_id=c.hospital_id, before=_json(before.get(c.contract_id)),
                       after=_json(c), detail=f"{c.project} {c.batch} {c.generic_name}")
           for c in contracts if before.get(c.contract_id) != c]
    if warnings:
        out.append(AuditFields("ledger.contracts.warnings", target="ledger_contracts",
                               after={"imported": n, "warnings": warnings},
                               detail=f"{len(warnings)} warning(s) on importing {n} "
                                      "contract(s)"))
    return out


async def import_contracts_file(cfg: GatewayConfig, store: Store, path: Path,
                                identity: tuple[str, str], now: datetime
                                ) -> tuple[int, list[str]]:
    """Import a results file into a started store as ``identity`` (name, role) would
    through the API: returns how many contracts, and the warnings.

    Raises:
        ContractFormatError: bad rows, or codes not in the catalog (nothing imported).
        ConfigError: the calendar or dosage-form file is invalid.
        StoreError: nothing was stored.
    """
    lc = cfg.ledger
    configure_dosage_forms(load_dosage_forms(lc.dosage_forms))
    ledger = Ledger(store, ledger_settings(lc.thresholds, load_calendar(lc.calendar_dir)))
    await ledger.load()
    before = {c.contract_id: c for c in ledger.contracts()}
    contracts, n, warnings = await checked_import(
        ledger, lambda check: read_contracts(path, check), now)
    for e in audit_fields(contracts, before, n, warnings):
        await record_as(store.audit_log, *identity, e.action, target=e.target,
                        hospital_id=e.hospital_id, before=e.before, after=e.after,
                        detail=e.detail)
    return n, warnings
