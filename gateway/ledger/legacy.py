"""The ledger file of earlier releases (``<data_dir>/ledger.db``), taken over once.

Earlier releases kept the ledger and the CDS cards in their own SQLite file. At the
first start of this release, what that file knows and the store's events do not —
contracts, deadlines closed or reminded by hand, CDS cards and feedback — moves into the
deployment's store in one transaction, and the file is renamed ``ledger.db.imported``.
Totals, stock and flags are folded again from the store's events (the migration queued
them all), so they follow this release's rules whatever the old file counted: it folded
held events' mapped lines before mapping, and on PostgreSQL each replica's file held only
part of the deployment's events.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from gateway.store.base import Store
from gateway.store.ledger_records import (
    CardRow,
    DeadlineRow,
    FeedbackRow,
    LedgerImport,
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
        return LedgerImport(
            source=str(path),
            contracts=tuple((cid, orjson.loads(body), at) for cid, body, at in rows(
                "SELECT contract_id, body, imported_at FROM ledger_contracts")),
            deadlines=tuple(
                DeadlineRow(h, k, ref, datetime.fromisoformat(opened),
                            datetime.fromisoformat(due), _dt(closed), _dt(reminded),
                            orjson.loads(detail))
                for h, k, ref, opened, due, closed, reminded, detail in rows(
                    "SELECT hospital_id, kind, ref, opened_at, due_at, closed_at, reminded_at,"
                    " detail FROM ledger_deadlines")),
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
    await store.ledger.import_legacy(data)
    for suffix in ("", "-wal", "-shm"):
        part = path.with_name(path.name + suffix)
        if part.exists():
            part.replace(path.with_name(path.name + IMPORTED_SUFFIX + suffix))
    log.info("ledger: imported %s (%d contracts, %d deadlines, %d cards); its totals are"
             " folded again from the store's events", path, len(data.contracts),
             len(data.deadlines), len(data.cards))
    return True
