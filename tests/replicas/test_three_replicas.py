"""Three gateway replicas on one PostgreSQL schema behave as one gateway.

A city-level deployment runs several replicas behind a load balancer: a message or an
operator's request may reach any of them, and what one replica was told every other
one must act on — the crosswalk, the catalogs, the ledger and its contracts, the CDS
tokens already used.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import (
    DATA,
    HOSPITAL,
    ROOT,
    MLLPClient,
    ack_fields,
    eventually,
    free_port,
    make_config,
    numbered_dispense,
    sample,
)
from replica_helpers import API, OPERATOR, PEOPLE, Replica, Replicas, as_

from canonical.model import CHINA_TZ
from gateway.app import build_app
from gateway.keys import STORE
from gateway.security.audit_log import verify_chain
from gateway.store.audit_rows import AuditLogQuery

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
    assert {s["sel_retn_cnt"] for s in sent} == {42}  # 3 boxes × 14 tablets, on every replica
    held = await b.store.query("SELECT count(*) FROM events WHERE held = 1")
    assert held == [(0,)]
    assert replicas.platform.duplicates == 0


async def test_a_crosswalk_change_reaches_every_replica_without_a_restart(
        replicas: Replicas) -> None:
    from gateway.keys import CROSSWALK

    a = await replicas.start("a", security=PEOPLE)
    b = await replicas.start("b", security=PEOPLE)
    c = await replicas.start("c", security=PEOPLE)
    entry = {"hospital_id": HOSPITAL, "item_code": "Y9990001",
             "national_code": ANASTROZOLE_HISUN, "item_name": "阿那曲唑片(海正)",
             "hospital_unit": "盒", "national_unit": "片", "factor": "14"}
    await c.api("POST", f"{API}/entries", json=entry, headers=as_("李娜"), expect=201)
    for replica in (a, b):
        # told by NOTIFY: no message has to arrive first
        await eventually(
            lambda r=replica: r.app[CROSSWALK].current.get((HOSPITAL, "Y9990001", None)),
            timeout=2.0, what=f"the new entry on replica {replica.name}")
    # an update through B replaces it everywhere, and the audit trail is one trail
    await b.api("PUT", f"{API}/entries/{HOSPITAL}/Y9990001", json={"factor": "28"},
                headers=as_("王强"), expect=200)
    for replica in (a, c):
        await eventually(
            lambda r=replica: r.app[CROSSWALK].current.lookup(HOSPITAL, "Y9990001",
                                                             _today()).factor == 28,
            timeout=2.0, what=f"the update on replica {replica.name}")
    _, history = await a.api("GET", f"{API}/entries/{HOSPITAL}/Y9990001",
                             headers=as_("王强"), expect=200)
    assert [(h["action"], h["user"]) for h in history["audit"]] == [
        ("update", "王强"), ("create", "李娜")]


async def test_concurrent_changes_through_two_replicas_never_lose_one(
        replicas: Replicas) -> None:
    import asyncio

    a = await replicas.start("a", security=PEOPLE)
    b = await replicas.start("b", security=PEOPLE)
    items = [f"Y88{n:05d}" for n in range(12)]

    async def create(replica, item: str) -> None:  # type: ignore[no-untyped-def]
        entry = {"hospital_id": HOSPITAL, "item_code": item, "national_code": ANASTROZOLE_HISUN,
                 "factor": "14", "hospital_unit": "盒", "national_unit": "片"}
        await replica.api("POST", f"{API}/entries", json=entry, headers=as_("李娜"),
                          expect=201)

    await asyncio.gather(*(create(a if i % 2 else b, item) for i, item in enumerate(items)))
    for replica in (a, b):
        _, found = await replica.api("GET", f"{API}/entries", params={"q": "Y88"},
                                     headers=as_("王强"), expect=200)
        assert sorted(e["item_code"] for e in found["entries"]) == items
    # each change audited once, in one trail
    _, audit = await a.api("GET", f"{API}/audit", params={"limit": "100"}, headers=as_("王强"),
                           expect=200)
    created = [x["after"]["item_code"] for x in audit["audit"] if x["user"] == "李娜"]
    assert sorted(created) == items
    # and once in the audit log, whose chain two replicas appending at once kept linear
    log = await a.store.audit_log.entries(AuditLogQuery(action="crosswalk.add", limit=100))
    assert sorted(e.target for e in log) == [f"{HOSPITAL}/{i}" for i in items]
    assert {e.identity for e in log} == {"李娜"}
    assert (await verify_chain(a.store.audit_log)).ok


def _today():  # type: ignore[no-untyped-def]
    from datetime import datetime

    from canonical.model import CHINA_TZ
    return datetime.now(CHINA_TZ).date()


# --- the whole scenario: three replicas behave as one gateway ---------------------------

CDS_BASE = "https://gateway.hospital.local/cds-services"
CDS_ISS = "https://his.hospital.local"
CDS_HOSPITAL = "H36070200012"  # the hospital of the ledger test contracts


def _contracts_around_today() -> bytes:
    """The test contracts with an agreement year around today: progress lags from day one.

    Only products the catalog imported before lists: an import naming another is refused.
    """
    today = datetime.now(CHINA_TZ).date()
    listed = {r["医保药品编码"] for r in csv.DictReader(io.StringIO(
        CATALOG.read_text("utf-8-sig")))}
    rows = [r for r in csv.DictReader(io.StringIO((DATA / "ledger" / "contracts.csv").read_text(
        "utf-8"))) if r["national_code"] in listed]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        row.update(cycle_start=(today - timedelta(days=180)).isoformat(),
                   cycle_end=(today + timedelta(days=184)).isoformat())
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def _cds_client(tmp: Path) -> tuple[dict[str, Any], Any]:
    """The HIS as a CDS client: its key set on disk, the configuration naming it."""
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "his-2026", "alg": "ES384"})
    path = tmp / "his.jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}), "utf-8")
    return {"public_base_url": CDS_BASE, "require_auth": True,
            "clients": [{"iss": CDS_ISS, "jwks_file": str(path),
                         "hospital_id": CDS_HOSPITAL}]}, key


def _token(key: Any) -> str:
    now = int(time.time())
    return jwt.encode({"iss": CDS_ISS, "aud": f"{CDS_BASE}/jicai-order-sign", "iat": now,
                       "exp": now + 120, "jti": str(uuid.uuid4())}, key, algorithm="ES384",
                      headers={"kid": "his-2026"})


async def _order_sign(replica: Replica, token: str) -> tuple[int, Any]:
    return await replica.api("POST", "/cds-services/jicai-order-sign",
                             data=(DATA / "ledger" / "order_sign_request.json").read_bytes(),
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})


def _prescription(n: int) -> bytes:
    return (sample("rde_o11_prescription_utf8.hl7")
            .replace(b"RDE20261123000042", f"RDEONE{n:011d}".encode())
            .replace(b"CF20261123000456", f"CFONE{n:011d}".encode()))


def _workload() -> list[bytes]:
    """Dispenses and prescriptions, each message once."""
    return ([numbered_dispense(n, "ONE") for n in range(24)]
            + [_prescription(n) for n in range(12)])


async def _send_all(ports: list[int], messages: list[bytes]) -> None:
    """Send every message once, spread over the ports, several connections at a time."""
    async def lane(i: int) -> None:
        client = await MLLPClient.connect(ports[i % len(ports)])
        try:
            for raw in messages[i::6]:
                assert ack_fields(await client.send(raw))["MSA"][1] == "AA"
        finally:
            await client.close()
    await asyncio.gather(*(lane(i) for i in range(6)))


async def _all_folded(store: Any) -> bool:
    rows = await store.query("SELECT count(*) FROM ledger_pending")
    return bool(rows[0][0] == 0)


async def _ledger_totals(store: Any) -> list[tuple[Any, ...]]:
    return sorted((r.hospital_id, r.national_code, r.kind, r.day, r.online, r.qty, r.amount)
                  for r in await store.ledger.daily())


async def test_three_replicas_act_as_one_gateway(replicas: Replicas, tmp_path: Path) -> None:
    cds, key = _cds_client(tmp_path)
    ledger = {"calendar_dir": str(ROOT / "config" / "calendar"),
              "rules": str(ROOT / "config" / "rules.yaml")}  # no contracts yet
    a, b, c = [await replicas.start(name, cds=cds, ledger=ledger) for name in "abc"]

    # every event folded into the ledger exactly once, whichever replica took it: the
    # totals equal those of one SQLite gateway given the same messages
    work = _workload()
    await _send_all([a.mllp_port, b.mllp_port, c.mllp_port], work)
    single_cfg = make_config(tmp_path / "single", mllp_port=free_port(), http_port=0,
                             platform_url="http://127.0.0.1:9/fsi/api/inventory",
                             ledger=ledger)
    single = TestServer(build_app(single_cfg), host="127.0.0.1")
    await single.start_server()
    try:
        await _send_all([single_cfg.listeners[0].port or 0], work)
        one = single.app[STORE]
        await eventually(lambda: _all_folded(one), what="the single gateway folded all")
        await eventually(lambda: _all_folded(a.store), what="the replicas folded all")
        expected = await _ledger_totals(one)
    finally:
        await single.close()
    assert expected and await _ledger_totals(a.store) == expected
    assert await a.store.query("SELECT count(*) FROM events") == [(len(work),)]
    assert await a.store.query("SELECT count(*) FROM ledger_pending") == [(0,)]

    # a mapping accepted through A: the item's next dispense, sent to B, goes out mapped
    await a.api("POST", f"{API}/catalogs", params={"version": "2025-first"},
                data=CATALOG.read_bytes(), headers={"Content-Type": "text/csv"}, expect=201)
    assert (await c.send(held_dispense(0)))["MSA"][1] == "AA"  # held: nobody mapped it yet
    _, answer = await a.api("POST", f"{API}/unmapped/{HOSPITAL}/Y9990001/accept",
                            json={"rank": 1}, headers=OPERATOR, expect=201)
    assert answer["released"] == 1
    assert (await b.send(held_dispense(1)))["MSA"][1] == "AA"
    docs = {"CFREPL00000", "CFREPL00001"}
    await eventually(lambda: docs <= {s["rtal_docno"] for s in replicas.received()},
                     what="both dispenses of the newly mapped item delivered")
    sent = [s for s in replicas.received() if s["rtal_docno"] in docs]
    assert {s["med_list_codg"] for s in sent} == {ANASTROZOLE_HISUN}
    assert await b.store.query("SELECT count(*) FROM events WHERE held = 1") == [(0,)]
    await eventually(lambda: _all_folded(b.store), what="the released events folded")
    assert await b.store.query("SELECT count(*) FROM events") == [(len(work) + 2,)]
    assert await b.store.query("SELECT count(*) FROM ledger_pending") == [(0,)]

    # contracts imported through B: A's CDS answer warns about the non-winning product
    status, before = await _order_sign(a, _token(key))
    assert status == 200 and before["cards"] == []
    await b.api("POST", "/ledger/contracts", data=_contracts_around_today(),
                headers={"Content-Type": "text/csv"}, expect=200)
    started = time.monotonic()

    async def warned() -> bool:
        status, answer = await _order_sign(a, _token(key))
        return status == 200 and bool(answer["cards"])
    await eventually(warned, timeout=2.0, interval=0.02,
                     what="replica A's CDS cards reflect the contracts imported on B")
    assert time.monotonic() - started < 1.0  # heard at once (NOTIFY), not at a poll

    # a CDS token used on A is refused on B (and on C)
    token = _token(key)
    status, answer = await _order_sign(a, token)
    assert status == 200 and answer["cards"]
    for other in (b, c):
        status, refused = await _order_sign(other, token)
        assert status == 401 and "jti" in refused["error"]
    assert replicas.platform.duplicates == 0
