"""The ledger file of earlier releases (``<data_dir>/ledger.db``), taken over once.

Earlier releases kept the ledger and the CDS cards in their own SQLite file, with a
cursor naming the last event sequence number folded. At the first start of this
release the file's state moves into the deployment's store in one transaction, the
store's events up to that cursor are marked folded (so nothing is counted twice, and
what came after is folded as usual), and the file is renamed ``ledger.db.imported``.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gateway.store.base import Store
from gateway.store.ledger_records import (
    CardRow,
    DailyRow,
    DeadlineRow,
    FeedbackRow,
    LedgerImport,
    PriceFlag,
    TraceFlag,
    TraceSale,
    from_micros,
)

__all__ = ["IMPORTED_SUFFIX", "import_legacy_ledger", "read_legacy_ledger"]

log = logging.getLogger(__name__)

IMPORTED_SUFFIX = ".imported"


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def read_legacy_ledger(path: Path) -> LedgerImport:
    """Everything an old ledger file holds.

    Raises:
        sqlite3.Error: the file is not an old ledger (or is damaged).
    """
    con = sqlite3.connect(path)
    try:
        def rows(sql: str) -> list[Any]:
            return con.execute(sql).fetchall()
        found = con.execute("SELECT seq FROM ledger_cursor WHERE name = 'events'").fetchone()
        return LedgerImport(
            source=str(path),
            cursor=int(found[0]) if found else 0,
            contracts=tuple((cid, orjson.loads(body), at) for cid, body, at in rows(
                "SELECT contract_id, body, imported_at FROM ledger_contracts")),
            daily=tuple(DailyRow(h, c, k, date.fromisoformat(d), bool(o), from_micros(q),
                                 from_micros(a)) for h, c, k, d, o, q, a in rows(
                "SELECT hospital_id, national_code, kind, day, online, qty, amount"
                " FROM ledger_daily")),
            stock=tuple((h, c, from_micros(q)) for h, c, q in rows(
                "SELECT hospital_id, national_code, qty FROM ledger_stock")),
            deadlines=tuple(
                DeadlineRow(h, k, ref, datetime.fromisoformat(opened),
                            datetime.fromisoformat(due), _dt(closed), _dt(reminded),
                            orjson.loads(detail))
                for h, k, ref, opened, due, closed, reminded, detail in rows(
                    "SELECT hospital_id, kind, ref, opened_at, due_at, closed_at, reminded_at,"
                    " detail FROM ledger_deadlines")),
            price_flags=tuple(
                PriceFlag(e, s, h, c, date.fromisoformat(d), Decimal(p), Decimal(w))
                for e, s, h, c, d, p, w in rows(
                    "SELECT event_id, seq, hospital_id, national_code, day, price, winning_price"
                    " FROM ledger_price_flags")),
            trace_sales=tuple(
                TraceSale(h, c, e, n, date.fromisoformat(d)) for h, c, e, n, d in rows(
                    "SELECT hospital_id, code, event_id, national_code, day FROM ledger_trace")),
            trace_flags=tuple(
                TraceFlag(h, c, fe, date.fromisoformat(fd), e, date.fromisoformat(d), n)
                for h, c, fe, fd, e, d, n in rows(
                    "SELECT hospital_id, code, first_event, first_day, event_id, day,"
                    " national_code FROM ledger_trace_flags")),
            cards=tuple(
                CardRow(u, svc, h, doc, dept, rule, code, tuple(orjson.loads(sugg)),
                        datetime.fromisoformat(at))
                for u, svc, h, doc, dept, rule, code, sugg, at in rows(
                    "SELECT uuid, service, hospital_id, doctor, department, rule_id,"
                    " national_code, suggestions, issued_at FROM cds_cards")),
            feedback=tuple(
                FeedbackRow(card, outcome, code, display, comment, tuple(orjson.loads(acc)), at)
                for card, outcome, code, display, comment, acc, at in rows(
                    "SELECT card, outcome, reason_code, reason_display, comment, accepted, at"
                    " FROM cds_feedback")),
        )
    finally:
        con.close()


async def import_legacy_ledger(path: Path, store: Store) -> bool:
    """Move an old ledger file's state into the store, then rename the file.

    Returns:
        False when there is no such file (nothing to do).

    Raises:
        sqlite3.Error: the file cannot be read (it stays where it is).
        StoreError: nothing was imported (the file stays where it is, for the next start).
    """
    if not path.is_file():
        return False
    data = await asyncio.to_thread(read_legacy_ledger, path)
    totals = await store.ledger.import_legacy(data)
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(path.with_name(path.name + IMPORTED_SUFFIX + suffix))
    if totals:
        log.info("ledger: imported %s (%d contracts, %d daily totals, %d deadlines, %d cards);"
                 " events up to %d count as folded", path, len(data.contracts), len(data.daily),
                 len(data.deadlines), len(data.cards), data.cursor)
    else:
        log.warning("ledger: %s came after another ledger file was imported into this store:"
                    " only its contracts, cards and feedback the store lacked were taken",
                    path)
    return True
