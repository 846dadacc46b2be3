"""A hospital's dispensing as it reaches the gateway: prescriptions of one to five drugs,
some lines given back later (3506), some corrected (3507 delete, then the upload again).

Built from the real national drug code list with a fixed seed, so a test or benchmark
that uses it sees the same morning every run, and one it was not written against when
the seed changes. A return always comes after its sale, a correction after its original.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import msgspec
from factory import HOSPITALS, dispense

from canonical.model import Event, EventKind, OrderControl

CODES = Path(__file__).resolve().parents[1] / "data" / "codes" / "nhsa_drug_codes.csv"


@dataclass(frozen=True, slots=True)
class Product:
    """A hospital item and its national code."""

    item_code: str
    national_code: str
    name: str


def products(n: int, seed: int) -> list[Product]:
    """``n`` western drugs drawn from the national code list (hospital codes invented)."""
    with CODES.open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["national_code"].startswith("X")]
    picked = random.Random(seed).sample(rows, n)
    return [Product(f"Y{i + 1:07d}", r["national_code"], r["drug_name"])
            for i, r in enumerate(picked)]


def units(event: Event) -> int:
    """Requests the national interface makes of ``event`` (a change: delete and upload)."""
    return len(event.lines) * (2 if event.order_control is OrderControl.CHANGE else 1)


def dispense_mix(n_lines: int, items: int, seed: int, *, return_share: float = 0.05,
                 correction_share: float = 0.02,
                 hospital: str = HOSPITALS[0]) -> list[Event]:
    """Dispenses totalling ``n_lines`` lines over ``items`` products, with returns and
    corrections of earlier lines interleaved, in the order the hospital sends them."""
    rng = random.Random(seed)
    catalog = products(items, seed)
    out: list[Event] = []
    later: list[tuple[int, Event]] = []  # (position to send at, event)
    lines = 0
    n = 0
    while lines < n_lines:
        n += 1
        width = min(rng.randint(1, 5), n_lines - lines)
        chosen = rng.sample(catalog, width)
        doc = f"CF{seed % 10_000:04d}{n:08d}"
        sale = _with_products(dispense(n, hospital, lines=width, doc=doc,
                                       event_id=f"{hospital}-mix{seed}-{n}"), chosen)
        lines += width
        out.append(sale)
        for line, product in zip(sale.lines, chosen, strict=True):
            if rng.random() < return_share:
                ret = _with_products(dispense(n, hospital, kind=EventKind.DISPENSE_RETURN,
                                              doc=f"TY{seed % 10_000:04d}{n:08d}{line.seq}",
                                              event_id=f"{hospital}-mix{seed}-{n}-ret{line.seq}",
                                              quantity=14), [product])
                kept = tuple(kv for kv in ret.extra if kv[0] != "original_no")
                ret = msgspec.structs.replace(ret, extra=(*kept, ("original_no", doc)))
                later.append((len(out) + rng.randint(1, 40), ret))
            if rng.random() < correction_share:
                fixed = msgspec.structs.replace(line, quantity=line.quantity + 1,
                                                national_quantity=Decimal(42))
                change = msgspec.structs.replace(
                    sale, event_id=f"{hospital}-mix{seed}-{n}-chg{line.seq}",
                    control_id=f"{sale.control_id}C{line.seq}",
                    order_control=OrderControl.CHANGE, lines=(fixed,))
                later.append((len(out) + rng.randint(1, 40), change))
        waiting = []
        for position, ev in later:
            if position <= len(out):
                out.append(ev)
            else:
                waiting.append((position, ev))
        later = waiting
    out.extend(ev for _, ev in sorted(later, key=lambda x: x[0]))
    return out


def _with_products(event: Event, chosen: list[Product]) -> Event:
    return event.with_lines(tuple(
        msgspec.structs.replace(li, item_code=p.item_code, item_name=p.name,
                                national_code=p.national_code)
        for li, p in zip(event.lines, chosen, strict=True)))
