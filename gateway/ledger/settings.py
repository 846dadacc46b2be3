"""The ledger's settings from the configuration's ``ledger.thresholds``."""

from __future__ import annotations

from gateway.config import LedgerThresholds
from gateway.ledger.calendar import WorkCalendar
from gateway.ledger.ledger import LedgerSettings
from gateway.ledger.prices import PriceBands

__all__ = ["ledger_settings"]


def ledger_settings(thresholds: LedgerThresholds, calendar: WorkCalendar) -> LedgerSettings:
    """The settings the configured thresholds describe (validated by the config model)."""
    t = thresholds
    return LedgerSettings(
        calendar=calendar, online_rate_drug=t.online_rate_drug,
        online_rate_consumable=t.online_rate_consumable,
        high_value_prefixes=tuple(t.high_value_prefixes), demand_threshold=t.demand_threshold,
        prepayment_ratio=t.prepayment_ratio,
        agreed_ratio_band=(t.agreed_ratio_min, t.agreed_ratio_max),
        price_bands=PriceBands(t.price_blue_max, t.price_yellow_max),
        price_reference=t.price_reference,
        trace_codes_mandatory_from=t.trace_codes_mandatory_from)
