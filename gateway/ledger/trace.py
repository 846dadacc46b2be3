"""R14: what a dispense, or its return, says of each traceability code it carries.

A code is on one package. A line's codes share its quantity: a line of two boxes with
two codes sold a box each; a line of half a box (the hospital's quantity is a fraction
of its unit, as the platform's ``trdn_flag`` reads it) sold half that box's package.
The package size is the line's ``package_size`` (minimum units in the package, in
``Line.extra``, as a sender that counts in minimum units gives it), else the line's minimum
units per hospital unit (the crosswalk's factor): a hospital that counts in boxes has its
split sales recognised without it.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from canonical.model import Event, EventKind, Line
from gateway.store.ledger_records import TraceSale

__all__ = ["code_portion", "trace_sales"]

ONE = Decimal(1)


def code_portion(line: Line) -> tuple[Decimal, Decimal]:
    """(minimum units each traceability code of the line stands for, minimum units in its
    package); no code stands for more than one package."""
    n = len(line.trace_codes) or 1
    hospital_qty = abs(line.quantity)
    national = abs(line.national_quantity) if line.national_quantity is not None else None
    units = national if national is not None else hospital_qty
    package = line.package_size
    if package is None:
        if not (national and hospital_qty):  # nothing to size the package by: a whole one
            return ONE, ONE
        package = national / hospital_qty
    return min(units / n, package), package


def trace_sales(ev: Event, line: Line, national_code: str, day: date) -> list[TraceSale]:
    """The sales (a dispense) or returns (a dispense return) of the line's codes."""
    if not line.trace_codes or ev.kind not in (EventKind.DISPENSE, EventKind.DISPENSE_RETURN):
        return []
    units, package = code_portion(line)
    if ev.kind is EventKind.DISPENSE_RETURN:
        units = -units
    return [TraceSale(ev.hospital_id, code, ev.event_id, national_code, day, units, package)
            for code in line.trace_codes]
