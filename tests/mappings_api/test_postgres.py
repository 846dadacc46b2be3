"""The unmapped queue and a release through the API on the PostgreSQL store."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from api_helpers import OPERATOR, held_dispense
from helpers import DATA, HOSPITAL

PG_DSN = os.environ.get("JCGW_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A fresh schema on the test server (skipped without one, failed under CI=true)."""
    import asyncpg

    try:
        con = await asyncpg.connect(PG_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        why = f"PostgreSQL at {PG_DSN} is unreachable: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{why}; CI must run the PostgreSQL tests")
        pytest.skip(why)
    await con.close()
    schema = f"jcgw_t_{uuid.uuid4().hex[:12]}"
    try:
        yield schema
    finally:
        con = await asyncpg.connect(PG_DSN)
        try:
            await con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await con.close()


async def test_queue_and_accept_on_postgres(launcher, pg_schema) -> None:
    gw = await launcher.start(store={"backend": "postgres", "postgres_dsn": PG_DSN,
                                     "postgres_schema": pg_schema})
    await gw.api("POST", "/catalogs", params={"version": "2025-first"},
                 data=CATALOG.read_bytes(), headers={"Content-Type": "text/csv"}, expect=201)
    await gw.send(held_dispense(0), held_dispense(1))
    _, queue = await gw.api("GET", "/unmapped", expect=200)
    [item] = queue["items"]
    assert item["occurrences"] == 2 and item["unit"] == "盒"  # described from the held event
    assert item["suggestions"][0]["national_code"] == "XL02BGA045A001010104641"
    _, answer = await gw.api("POST", f"/unmapped/{HOSPITAL}/Y9990001/accept",
                             json={"rank": 1}, headers=OPERATOR, expect=201)
    assert answer["released"] == 2
    await gw.wait_for(lambda: len(gw.simulator.order) == 2)
    assert [s["rtal_docno"] for s in gw.received()] == ["CFHELD00000", "CFHELD00001"]
    assert {s["sel_retn_cnt"] for s in gw.received()} == {"42"}
