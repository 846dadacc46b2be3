"""The audit log: its hash chain (pure), and the table on SQLite and PostgreSQL.

Tampering is done the way someone with database access would: SQL on the table.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pg import StoreFactory, backend_stores

from canonical.model import CHINA_TZ
from gateway.security.audit import (
    GENESIS,
    AuditDraft,
    AuditEntry,
    chain_hash,
    format_at,
    seal,
    verify,
)
from gateway.security.audit_log import verify_chain
from gateway.store.audit_rows import AuditLogQuery

T0 = datetime(2026, 11, 23, 9, 30, tzinfo=CHINA_TZ)
BEFORE = {"hospital_id": "H11010800123", "item_code": "YP000123", "item_name": "阿托伐他汀钙片",
          "national_code": "XC10AAA059A001010104520", "factor": "14"}
AFTER = {**BEFORE, "national_code": "XC10AAA059A001010104641", "factor": "28"}


def _draft(i: int, **kw: Any) -> AuditDraft:
    base: dict[str, Any] = {
        "identity": "药剂科 李娜", "role": "pharmacist", "action": "crosswalk.update",
        "target": f"H11010800123/YP{i:06d}", "hospital_id": "H11010800123",
        "before": BEFORE, "after": AFTER, "detail": "", "at": T0 + timedelta(minutes=i)}
    base.update(kw)
    return AuditDraft(**base)


def _chain(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i in range(1, n + 1):
        out.append(seal(_draft(i), i, out[-1].hash if out else GENESIS))
    return out


# --- the chain, pure ------------------------------------------------------------------

def test_a_sealed_chain_verifies_and_its_head_is_the_last_hash() -> None:
    chain = _chain(5)
    verdict = verify(chain)
    assert verdict.ok and verdict.entries == 5 and verdict.broken_at is None
    assert verdict.head == chain[-1].hash
    assert chain[0].prev_hash == GENESIS and chain[1].prev_hash == chain[0].hash


def test_the_hash_covers_every_field_and_the_predecessor() -> None:
    e = _chain(1)[0]
    assert e.hash == chain_hash(GENESIS, e.fields())
    for name, other in (("identity", "admin"), ("role", "admin"), ("action", "crosswalk.delete"),
                        ("target", "H11010800123/YP999999"), ("hospital_id", "H11010800999"),
                        ("before", None), ("after", {**AFTER, "factor": "14"}),
                        ("detail", "x"), ("at", format_at(T0)), ("id", 2)):
        assert chain_hash(GENESIS, {**e.fields(), name: other}) != e.hash, name
    assert chain_hash("1" * 64, e.fields()) != e.hash


def test_canonical_encoding_ignores_key_order_and_keeps_chinese() -> None:
    a = seal(_draft(1, after={"b": 1, "a": "盒"}), 1, GENESIS)
    b = seal(_draft(1, after={"a": "盒", "b": 1}), 1, GENESIS)
    assert a.hash == b.hash


def test_times_are_stored_in_utc_and_naive_times_are_refused() -> None:
    assert format_at(T0) == "2026-11-23T01:30:00.000000+00:00"
    with pytest.raises(ValueError):
        format_at(datetime(2026, 11, 23, 9, 30))


def test_an_edited_entry_is_reported_with_its_id() -> None:
    chain = _chain(4)
    chain[2] = dataclasses.replace(chain[2], after={**AFTER, "factor": "1"})
    verdict = verify(chain)
    assert not verdict.ok and verdict.broken_at == 3 and "edited" in verdict.reason
    assert verdict.head == chain[1].hash


def test_an_edit_resealed_in_place_breaks_the_next_link() -> None:
    chain = _chain(4)
    forged = seal(_draft(2, identity="admin"), 2, chain[0].hash)
    chain[1] = forged
    verdict = verify(chain)
    assert verdict.broken_at == 3 and "prev_hash" in verdict.reason


def test_a_deleted_entry_and_a_reordering_are_reported() -> None:
    chain = _chain(5)
    gone = verify(chain[:2] + chain[3:])
    assert gone.broken_at == 4 and "missing" in gone.reason
    first_gone = verify(chain[1:])
    assert first_gone.broken_at == 2
    swapped = verify([chain[0], chain[2], chain[1], *chain[3:]])
    assert swapped.broken_at == 3 and not swapped.ok


def test_an_empty_log_verifies() -> None:
    assert verify([]).to_dict() == {"ok": True, "entries": 0, "broken_at": None,
                                    "reason": None, "head": GENESIS}


def test_decimals_and_dates_are_kept_as_the_text_that_was_hashed() -> None:
    from datetime import date
    from decimal import Decimal

    e = seal(_draft(1, after={"factor": Decimal("0.1"), "valid_from": date(2026, 1, 1)}),
             1, GENESIS)
    assert e.after == {"factor": "0.1", "valid_from": "2026-01-01"}
    assert verify([e]).ok


# --- the table, on both backends ------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
async def make_store(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[StoreFactory]:
    async with backend_stores(request.param, tmp_path) as factory:
        yield factory


async def tamper(store: Any, sql: str) -> None:
    """Change the table behind the gateway's back (the SQL uses ? placeholders)."""
    if store.shared:
        await store.pool.execute(sql.replace("?", "$1"))
    else:
        await store.write(lambda con: con.execute(sql))


async def test_appends_are_chained_and_read_back_exactly(make_store: StoreFactory) -> None:
    store = await make_store()
    for i in range(1, 4):
        await store.audit_log.append(_draft(i))
    await store.audit_log.append(_draft(4, action="mirror.replay", before={"all": True},
                                        after={"queued": 12}, hospital_id=""))
    got = await store.audit_log.entries(AuditLogQuery())
    assert [e.id for e in got] == [1, 2, 3, 4]
    assert got[0].identity == "药剂科 李娜" and got[0].after == AFTER
    assert got[3].before == {"all": True} and got[3].prev_hash == got[2].hash
    assert verify(got).ok
    assert (await verify_chain(store.audit_log, page=2)).to_dict()["entries"] == 4


async def test_filters_and_paging(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.audit_log.append(_draft(1))
    await store.audit_log.append(_draft(2, identity="admin", role="admin",
                                        action="ledger.contracts.import", hospital_id=""))
    await store.audit_log.append(_draft(3, hospital_id="H11010800999"))
    log = store.audit_log

    async def ids(**kw: Any) -> list[int]:
        return [e.id for e in await log.entries(AuditLogQuery(**kw))]

    assert await ids(identity="admin") == [2]
    assert await ids(action="crosswalk.") == [1, 3]
    assert await ids(action="ledger.contracts.import") == [2]
    assert await ids(hospital_id="H11010800999") == [3]
    # 09:32 China time is 01:32 UTC: text comparison must see the instants
    assert await ids(since=T0 + timedelta(minutes=2)) == [2, 3]
    assert await ids(until=(T0 + timedelta(minutes=2)).astimezone(UTC)) == [1]
    assert await ids(after_id=1, limit=1) == [2]


async def test_a_row_edited_in_the_database_is_found(make_store: StoreFactory) -> None:
    store = await make_store()
    for i in range(1, 5):
        await store.audit_log.append(_draft(i))
    await tamper(store, "UPDATE audit_log SET after = '{\"factor\": \"1\"}' WHERE id = 3")
    verdict = await verify_chain(store.audit_log)
    assert (verdict.ok, verdict.broken_at) == (False, 3)
    assert "edited" in verdict.reason


async def test_a_row_deleted_from_the_database_is_found(make_store: StoreFactory) -> None:
    store = await make_store()
    for i in range(1, 5):
        await store.audit_log.append(_draft(i))
    await tamper(store, "DELETE FROM audit_log WHERE id = 2")
    verdict = await verify_chain(store.audit_log)
    assert (verdict.ok, verdict.broken_at) == (False, 3)


async def test_the_log_is_added_to_an_existing_database(make_store: StoreFactory) -> None:
    store = await make_store()
    await store.close()
    again = await make_store()  # migrations already applied: nothing breaks, log works
    await again.audit_log.append(_draft(1))
    assert len(await again.audit_log.entries(AuditLogQuery())) == 1


async def test_replicas_appending_at_once_keep_one_chain(make_store: StoreFactory) -> None:
    if make_store.backend != "postgres":  # type: ignore[attr-defined]
        pytest.skip("one SQLite file has one writer")
    a, b = await make_store(), await make_store()

    async def burst(store: Any, who: str) -> None:
        await asyncio.gather(*(store.audit_log.append(_draft(i, identity=who))
                               for i in range(40)))

    await asyncio.gather(burst(a, "replica-a"), burst(b, "replica-b"))
    entries = await a.audit_log.entries(AuditLogQuery(limit=1000))
    assert len(entries) == 80 and [e.id for e in entries] == list(range(1, 81))
    assert {e.identity for e in entries} == {"replica-a", "replica-b"}
    assert verify(entries).ok
