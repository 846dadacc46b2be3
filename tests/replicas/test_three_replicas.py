"""Three gateway replicas on one PostgreSQL schema behave as one gateway.

A city-level deployment runs several replicas behind a load balancer: a message or an
operator's request may reach any of them, and what one replica was told every other
one must act on — the crosswalk, the catalogs, the ledger and its contracts, the CDS
tokens already used.
"""

from __future__ import annotations

import pytest
from helpers import DATA, HOSPITAL, eventually, sample
from replica_helpers import API, OPERATOR, Replicas

pytestmark = pytest.mark.postgres

CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"
ANASTROZOLE_HISUN = "XL02BGA045A001010104641"


def held_dispense(n: int) -> bytes:
    """The sample dispense of item Y9990001, which the sample crosswalk does not know."""
    return (sample("rds_o13_unmapped_item.hl7")
            .replace(b"RDS20261123000888", f"RDSREPL{n:05d}".encode())
            .replace(b"CF20261123000888", f"CFREPL{n:05d}".encode()))


async def test_a_mapping_accepted_on_one_replica_maps_the_next_message_on_another(
        replicas: Replicas) -> None:
    a = await replicas.start("a")
    b = await replicas.start("b")
    c = await replicas.start("c")
    # C holds a dispense of an item nobody has mapped; the 对码 queue is the deployment's
    assert (await c.send(held_dispense(0)))["MSA"][1] == "AA"
    _, queue = await a.api("GET", f"{API}/unmapped", expect=200)
    assert [i["item_code"] for i in queue["items"]] == ["Y9990001"]
    # a catalog imported through B is what A suggests from
    await b.api("POST", f"{API}/catalogs", params={"version": "2025-first"},
                data=CATALOG.read_bytes(), headers={"Content-Type": "text/csv"}, expect=201)
    _, answer = await a.api("POST", f"{API}/unmapped/{HOSPITAL}/Y9990001/accept",
                            json={"rank": 1}, headers=OPERATOR, expect=201)
    assert answer["entry"]["national_code"] == ANASTROZOLE_HISUN
    assert answer["released"] == 1  # C's held dispense, released by A from the shared store
    # the next dispense of the item, sent to B straight away: mapped, not held
    assert (await b.send(held_dispense(1)))["MSA"][1] == "AA"
    await eventually(lambda: len(replicas.platform.order) == 2, what="both dispenses delivered")
    sent = replicas.received()
    assert sorted(s["rtal_docno"] for s in sent) == ["CFREPL00000", "CFREPL00001"]
    assert {s["med_list_codg"] for s in sent} == {ANASTROZOLE_HISUN}
    assert {s["sel_retn_cnt"] for s in sent} == {"42"}  # 3 boxes × 14 tablets, on every replica
    held = await b.store.query("SELECT count(*) FROM events WHERE held = 1")
    assert held == [(0,)]
    assert replicas.platform.duplicates == 0


async def test_a_crosswalk_change_reaches_every_replica_without_a_restart(
        replicas: Replicas) -> None:
    from gateway.keys import CROSSWALK

    a = await replicas.start("a")
    b = await replicas.start("b")
    c = await replicas.start("c")
    entry = {"hospital_id": HOSPITAL, "item_code": "Y9990001",
             "national_code": ANASTROZOLE_HISUN, "item_name": "阿那曲唑片(海正)",
             "hospital_unit": "盒", "national_unit": "片", "factor": "14"}
    await c.api("POST", f"{API}/entries", json=entry, headers=OPERATOR, expect=201)
    for replica in (a, b):
        # told by NOTIFY: no message has to arrive first
        await eventually(
            lambda r=replica: r.app[CROSSWALK].current.get((HOSPITAL, "Y9990001", None)),
            timeout=2.0, what=f"the new entry on replica {replica.name}")
    # an update through B replaces it everywhere, and the audit trail is one trail
    await b.api("PUT", f"{API}/entries/{HOSPITAL}/Y9990001", json={"factor": "28"},
                headers={"X-Operator": "信息科 王强"}, expect=200)
    for replica in (a, c):
        await eventually(
            lambda r=replica: r.app[CROSSWALK].current.lookup(HOSPITAL, "Y9990001",
                                                             _today()).factor == 28,
            timeout=2.0, what=f"the update on replica {replica.name}")
    _, history = await a.api("GET", f"{API}/entries/{HOSPITAL}/Y9990001", expect=200)
    assert [(h["action"], h["user"]) for h in history["audit"]] == [
        ("update", "信息科 王强"), ("create", "药剂科 李娜")]


async def test_concurrent_changes_through_two_replicas_never_lose_one(
        replicas: Replicas) -> None:
    import asyncio

    a = await replicas.start("a")
    b = await replicas.start("b")
    items = [f"Y88{n:05d}" for n in range(12)]

    async def create(replica, item: str) -> None:  # type: ignore[no-untyped-def]
        entry = {"hospital_id": HOSPITAL, "item_code": item, "national_code": ANASTROZOLE_HISUN,
                 "factor": "14", "hospital_unit": "盒", "national_unit": "片"}
        await replica.api("POST", f"{API}/entries", json=entry, headers=OPERATOR, expect=201)

    await asyncio.gather(*(create(a if i % 2 else b, item) for i, item in enumerate(items)))
    for replica in (a, b):
        _, found = await replica.api("GET", f"{API}/entries", params={"q": "Y88"}, expect=200)
        assert sorted(e["item_code"] for e in found["entries"]) == items
    # each change audited once, in one trail
    _, audit = await a.api("GET", f"{API}/audit", params={"limit": "100"}, expect=200)
    created = [x["after"]["item_code"] for x in audit["audit"] if x["user"] == "药剂科 李娜"]
    assert sorted(created) == items


def _today():  # type: ignore[no-untyped-def]
    from datetime import datetime

    from canonical.model import CHINA_TZ
    return datetime.now(CHINA_TZ).date()
