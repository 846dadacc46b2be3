"""Shared data of the ledger, rules and CDS tests: codes, times, event builders."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from canonical.model import Event, EventKind, Line, Party
from gateway.ledger import Ledger
from gateway.store.base import Incoming

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "ledger"
CST = timezone(timedelta(hours=8))
HOSPITAL = "H36070200012"
# 依西美坦片: 齐鲁 wins, Pfizer's original does not
EXEMESTANE_WIN = "XL02BGY096A001010204021"
EXEMESTANE_PFIZER = "XL02BGY096A001010178720"
ABIRATERONE_WIN_A = "XL02BBA292A001010201523"
ABIRATERONE_WIN_B = "XL02BBA292A001010204021"
ABIRATERONE_OTHER = "XL02BBA292A001010205345"

_ids = itertools.count(1)


def cst(y: int, m: int, d: int, hh: int = 9, mm: int = 0, ss: int = 0) -> datetime:
    """A moment in China time."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=CST)


def event(kind: EventKind, lines: list[tuple[str, str | int | Decimal, str | None]], *,
          at: datetime, hospital: str = HOSPITAL, online: bool = True,
          emergency: bool = False, doc: str = "", event_id: str | None = None,
          extra: tuple[tuple[str, str], ...] = (), name: str = "") -> Event:
    """An event with lines of (national code, quantity in national units, unit price)."""
    built = tuple(
        Line(seq=i, item_code=f"HIS{i:04d}", item_name=name, quantity=Decimal(str(q)),
             price=None if p is None else Decimal(p), national_code=code,
             national_quantity=Decimal(str(q)))
        for i, (code, q, p) in enumerate(lines, start=1))
    return Event(event_id=event_id or f"ev-{next(_ids)}", kind=kind, hospital_id=hospital,
                 source="test", occurred_at=at, lines=built, document_no=doc, online=online,
                 emergency=emergency, supplier=Party("S01", "国药控股赣州有限公司"), extra=extra)


def incoming(events: Sequence[Event], held: Sequence[bool] | None = None) -> Incoming:
    """One message carrying ``events`` (no outbox rows)."""
    return Incoming(adapter="test", sender="ledger-test", control_id=f"msg-{next(_ids)}",
                    message_type="TEST", raw=b"", received_at=datetime.now(UTC),
                    events=tuple(events), held=tuple(held or (False,) * len(events)))


async def fold(ledger: Ledger, events: Sequence[Event], store: Any = None) -> int:
    """Commit ``events`` to the ledger's store as one message, then fold everything
    unfolded; returns how many events were folded."""
    store = store or ledger.tables.store  # type: ignore[attr-defined]
    if events:
        await store.commit(incoming(events))
    total = 0
    while seqs := await ledger.fold():
        total += len(seqs)
    return total


def view_of(ledger: Ledger, now: datetime) -> dict[str, Any]:
    """Everything the in-memory view answers from, as plain data to compare."""
    return {
        "version": ledger.version,
        "contracts": sorted(c.contract_id for c in ledger.contracts()),
        "status": {c.contract_id: ledger.status(c, now) for c in ledger.contracts()},
        "stock": dict(sorted(ledger._stock.items())),
        "online": {k: list(v) for k, v in sorted(ledger._online.items())},
        "orders": sorted((o.hospital_id, o.ref, o.reminded_at) for o in ledger.open_orders()),
    }



async def row_before_migration(make_store: Any, monkeypatch: Any, marker: str, table: str,
                               row: tuple[Any, ...]) -> None:
    """Start a store of ``make_store``'s backend at the schema before the migration whose
    SQL names ``marker``, put ``row`` into ``table`` as that schema has it, and close it:
    the next store started migrates it."""
    from pg import PG_DSN

    from gateway.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
    from gateway.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS

    backend = make_store.backend
    migrations = SQLITE_MIGRATIONS if backend == "sqlite" else PG_MIGRATIONS
    version = next(v for v, sql in migrations.items() if marker in sql)
    monkeypatch.setattr(f"gateway.store.{backend}.store.SCHEMA_VERSION", version - 1)
    old = await make_store()
    if backend == "sqlite":
        con = sqlite3.connect(old.path)
        con.execute(f"INSERT INTO {table} VALUES ({', '.join('?' * len(row))})", row)
        con.commit()
        con.close()
    else:
        import asyncpg

        pg = await asyncpg.connect(PG_DSN, server_settings={"search_path": old.schema})
        marks = ", ".join(f"${i}" for i in range(1, len(row) + 1))
        await pg.execute(f"INSERT INTO {table} VALUES ({marks})", *row)
        await pg.close()
    await old.close()
    monkeypatch.undo()
