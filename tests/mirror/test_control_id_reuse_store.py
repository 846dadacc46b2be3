"""A repeated (sender, control id) is a resend only when its bytes are the same: both stores."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import msgspec
import pytest
from factory import dispense, incoming
from pg import PG_DSN

from gateway.store.plan import raw_digest
from gateway.store.postgres.migrations import MIGRATIONS as PG_MIGRATIONS
from gateway.store.sqlite.migrations import MIGRATIONS as SQLITE_MIGRATIONS

FIRST = dispense(1)
# the same prescription number and control id, a different quantity: another message
CHANGED = msgspec.structs.replace(dispense(1, quantity=42), event_id="H33010200015-dispense-1b")


def _reusing(raw: bytes) -> Any:
    inc = incoming([CHANGED], [("nhsa", 1)], control_id=FIRST.control_id)
    return msgspec.structs.replace(inc, raw=raw)


async def test_a_resend_is_a_duplicate_and_other_bytes_are_a_reuse(make_store) -> None:
    store = await make_store()
    first = await store.commit(incoming([FIRST], [("nhsa", 1)]))
    resend = await store.commit(incoming([FIRST], [("nhsa", 1)]))
    reuse = await store.commit(_reusing(b"MSH|another message under RDS000000000001"))
    assert not first.duplicate and len(first.outbox_ids) == 1
    assert resend.duplicate and not resend.reused and resend.outbox_ids == ()
    assert reuse.duplicate and reuse.reused and reuse.outbox_ids == ()
    assert resend.message_id == reuse.message_id == first.message_id
    stored = await store.query("SELECT raw, raw_sha256 FROM messages")
    assert len(stored) == 1
    assert bytes(stored[0][1]) == raw_digest(bytes(stored[0][0]))
    assert (await store.query("SELECT count(*) FROM events"))[0][0] == 1
    assert (await store.query("SELECT count(*) FROM outbox"))[0][0] == 1


async def test_a_reuse_within_one_group_commit_is_seen(make_store) -> None:
    store = await make_store()
    # submitted in one turn of the loop: one group, one transaction
    _, first, resend, reuse = await asyncio.gather(
        store.commit(incoming([dispense(2)], [("nhsa", 1)])),
        store.commit(incoming([FIRST], [("nhsa", 1)])),
        store.commit(incoming([FIRST], [("nhsa", 1)])),
        store.commit(_reusing(b"MSH|another message under RDS000000000001")))
    assert not first.duplicate
    assert resend.duplicate and not resend.reused
    assert reuse.duplicate and reuse.reused
    assert (await store.query("SELECT count(*) FROM messages"))[0][0] == 2
    assert store.commits == 1


def _version_of(migrations: dict[int, str]) -> int:
    return next(v for v, sql in migrations.items() if "raw_sha256" in sql)


async def test_messages_stored_before_the_migration_get_their_digest(
        make_store, monkeypatch: pytest.MonkeyPatch) -> None:
    """An existing database: the migration hashes the messages it already holds, so a
    resend of one of them is still a resend and a reuse of its control id is refused."""
    if make_store.backend == "sqlite":
        monkeypatch.setattr("gateway.store.sqlite.store.SCHEMA_VERSION",
                            _version_of(SQLITE_MIGRATIONS) - 1)
    else:
        monkeypatch.setattr("gateway.store.postgres.store.SCHEMA_VERSION",
                            _version_of(PG_MIGRATIONS) - 1)
    old = await make_store()
    raw = f"MSH|{FIRST.event_id}".encode()
    if make_store.backend == "sqlite":
        con = sqlite3.connect(old.path)
        con.execute("INSERT INTO messages (sender, control_id, adapter, message_type, peer,"
                    " received_at, raw) VALUES ('HIS^WINNING', ?, 'hl7v2', 'RDS^O13', '',"
                    " 1795000000, ?)", (FIRST.control_id, raw))
        con.commit()
        con.close()
    else:
        import asyncpg

        con = await asyncpg.connect(PG_DSN, server_settings={"search_path": old.schema})
        await con.execute("INSERT INTO messages (sender, control_id, adapter, message_type,"
                          " peer, received_at, raw) VALUES ('HIS^WINNING', $1, 'hl7v2',"
                          " 'RDS^O13', '', 1795000000, $2)", FIRST.control_id, raw)
        await con.close()
    await old.close()
    monkeypatch.undo()

    store = await make_store()
    digest = await store.query("SELECT raw_sha256 FROM messages")
    assert [bytes(d[0]) for d in digest] == [raw_digest(raw)]
    resend = await store.commit(incoming([FIRST], [("nhsa", 1)]))
    assert resend.duplicate and not resend.reused
    reuse = await store.commit(_reusing(b"MSH|another message under RDS000000000001"))
    assert reuse.duplicate and reuse.reused
