"""The 集采 ledger: contracts, progress, deadlines, the per-hospital report."""

from gateway.ledger.contracts import (
    Contract,
    ContractFormatError,
    WinningProduct,
    generic_key,
    read_contracts,
    read_contracts_csv,
    read_contracts_json,
    read_contracts_xlsx,
)
from gateway.ledger.deadlines import (
    DeadlinePolicy,
    OrderState,
    filing_deadline,
    order_state,
    payment_deadline,
)
from gateway.ledger.http import ledger_app
from gateway.ledger.ledger import (
    DeadlineStatus,
    DraftLine,
    Evaluation,
    Ledger,
    LedgerSettings,
    ResolveItem,
)
from gateway.ledger.metrics import ContractStatus, DemandFlag, demand_flag, time_progress
from gateway.ledger.overrides import override_report, override_report_csv
from gateway.ledger.report import build_report, report_csv

__all__ = [
    "Contract",
    "ContractFormatError",
    "ContractStatus",
    "DeadlinePolicy",
    "DeadlineStatus",
    "DemandFlag",
    "DraftLine",
    "Evaluation",
    "Ledger",
    "LedgerSettings",
    "OrderState",
    "ResolveItem",
    "WinningProduct",
    "build_report",
    "demand_flag",
    "filing_deadline",
    "generic_key",
    "ledger_app",
    "order_state",
    "override_report",
    "override_report_csv",
    "payment_deadline",
    "read_contracts",
    "read_contracts_csv",
    "read_contracts_json",
    "read_contracts_xlsx",
    "report_csv",
    "time_progress",
]
