"""The unmapped queue and a release through the API on the PostgreSQL store."""

from __future__ import annotations

import pytest
from api_helpers import OPERATOR, held_dispense
from helpers import DATA, HOSPITAL
from pg import PG_DSN

CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"

pytestmark = pytest.mark.postgres




async def test_queue_and_accept_on_postgres(pg_schema, launcher) -> None:
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
    await gw.delivered(2)
    assert [s["rtal_docno"] for s in gw.received()] == ["CFHELD00000", "CFHELD00001"]
    assert {s["sel_retn_cnt"] for s in gw.received()} == {42}
