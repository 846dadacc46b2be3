"""R14: which sales of traceability codes are flagged, computed alike by both stores.

A code stands for one package. A sale takes the part of the package it sold (all of it,
or for a split package (拆零) a few minimum units), a return (DISPENSE_RETURN carrying the
code) gives its part back. A sale is flagged when what is out of the package after it
exceeds the package: the same package sold twice — a returned, switched or counterfeit
drug — while split sales that together sell the package once are not. The flag names
the sale that opened the package (the first since it was last wholly given back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction

from gateway.store.ledger_records import TraceFlag, TraceSale

__all__ = ["TraceKey", "flag_sales", "out_of_package"]

TraceKey = tuple[str, str]  # (hospital, traceability code)


def _part(sale: TraceSale) -> Fraction:
    # exact: thirds of a package add up to one, not to 0.999… or 1.000…1
    return Fraction(sale.qty) / Fraction(sale.package if sale.package > 0 else 1)


def _step(out: Fraction, opened: TraceSale | None, sale: TraceSale
          ) -> tuple[Fraction, TraceSale | None]:
    out = max(Fraction(0), out + _part(sale))
    if out == 0:
        return out, None
    if opened is None and sale.qty > 0:
        return out, sale
    return out, opened


def out_of_package(history: Iterable[TraceSale]) -> tuple[Fraction, TraceSale | None]:
    """What share of the package is sold after ``history`` (in the order folded), and the
    sale that opened it (None when all was given back)."""
    out = Fraction(0)
    opened: TraceSale | None = None
    for sale in history:
        out, opened = _step(out, opened, sale)
    return out, opened


def flag_sales(stored: Mapping[TraceKey, Sequence[TraceSale]], sales: Sequence[TraceSale]
               ) -> tuple[list[TraceSale], list[TraceFlag]]:
    """The sales to store and the flags they raise.

    Args:
        stored: what the store holds of the codes in ``sales``, in the order folded.
        sales: this fold's sales and returns, in event order.

    Returns:
        The sales not stored yet (a fold run again after a crash finds its own, which are
        not sold again), and a flag for each of them that sells beyond its package.
    """
    # each code's state carried forward sale by sale: a code a sender repeats on every
    # message (thousands of sales) costs one step per sale, not its whole history again
    state = {key: out_of_package(found) for key, found in stored.items() if found}
    # the first sale of a code never seen is never flagged: its state is worked out only
    # if the code comes again (a dispense of 10,000 codes sells each once, and this runs
    # on the store's writer, which the acknowledgements wait for)
    fresh: dict[TraceKey, TraceSale] = {}
    known = {(s.hospital_id, s.code, s.event_id) for found in stored.values() for s in found}
    new: list[TraceSale] = []
    flags: list[TraceFlag] = []
    for sale in sales:
        if (sale.hospital_id, sale.code, sale.event_id) in known:
            continue
        known.add((sale.hospital_id, sale.code, sale.event_id))
        key = (sale.hospital_id, sale.code)
        new.append(sale)
        if key not in state:
            first = fresh.pop(key, None)
            if first is None:
                if sale.qty > 0:
                    fresh[key] = sale
                    continue
                state[key] = (Fraction(0), None)
            else:
                state[key] = _step(Fraction(0), None, first)
        out, opened = _step(*state[key], sale)
        state[key] = (out, opened)
        if sale.qty <= 0:
            continue
        if out > 1 and opened is not None and opened is not sale:
            flags.append(TraceFlag(sale.hospital_id, sale.code, opened.event_id, opened.day,
                                   sale.event_id, sale.day, sale.national_code))
    return new, flags
