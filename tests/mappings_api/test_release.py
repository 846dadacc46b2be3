"""Held events go out, in their original order, once their item is mapped — by any route."""

from __future__ import annotations

from datetime import date

from api_helpers import OPERATOR, held_dispense
from helpers import DATA, HOSPITAL

from gateway.app import CROSSWALK, LEDGER

ANASTROZOLE_HISUN = "XL02BGA045A001010104641"  # 阿那曲唑片 1mg×14 浙江海正
CATALOG = DATA / "codes" / "nhsa_drug_catalog_sample.csv"


async def _three_held(gw) -> None:
    await gw.send(*(held_dispense(n) for n in range(3)))
    # committed before their ACKs, held: no outbox rows, nothing for the mirror to send
    rows = await gw.store.query("SELECT count(*) FROM events WHERE held = 1")
    assert rows[0][0] == 3
    assert (await gw.store.query("SELECT count(*) FROM outbox"))[0][0] == 0
    assert gw.simulator.order == []


async def _assert_released_in_order(gw, released: int) -> None:
    assert released == 3
    await gw.delivered(3)
    sent = gw.received()
    assert [s["rtal_docno"] for s in sent] == ["CFHELD00000", "CFHELD00001", "CFHELD00002"]
    assert {s["med_list_codg"] for s in sent} == {ANASTROZOLE_HISUN}
    assert {s["sel_retn_cnt"] for s in sent} == {42}  # 3 boxes × 14 tablets
    assert (await gw.store.query("SELECT count(*) FROM events WHERE held = 1"))[0][0] == 0
    _, queue = await gw.api("GET", "/unmapped", expect=200)
    assert queue["items"] == []


async def test_mapping_through_the_api_releases_held_events_in_order(gateway) -> None:
    await _three_held(gateway)
    entry = {"hospital_id": HOSPITAL, "item_code": "Y9990001",
             "national_code": ANASTROZOLE_HISUN, "item_name": "阿那曲唑片(海正)",
             "hospital_unit": "盒", "national_unit": "片", "factor": "14"}
    _, answer = await gateway.api("POST", "/entries", json=entry, headers=OPERATOR, expect=201)
    await _assert_released_in_order(gateway, answer["released"])
    # no identities configured: the author is the loopback caller, not the name in X-Operator
    assert answer["audit"][0]["user"] == "local"
    assert OPERATOR["X-Operator"] in answer["audit"][0]["note"]
    # the rest of the gateway sees the new crosswalk too (prescription warnings, app state)
    assert gateway.app[LEDGER].resolve_item(HOSPITAL, "Y9990001") == ANASTROZOLE_HISUN
    assert gateway.app[CROSSWALK].current.lookup(HOSPITAL, "Y9990001", date.today()) is not None
    # the running ingest path uses the new entry for the next message at once
    await gateway.send(held_dispense(9))
    await gateway.delivered(4)
    assert gateway.received()[-1]["med_list_codg"] == ANASTROZOLE_HISUN


async def test_accepting_a_suggestion_releases_held_events(gateway) -> None:
    await gateway.api("POST", "/catalogs", params={"version": "2025-first"},
                      data=CATALOG.read_bytes(), headers={"Content-Type": "text/csv"},
                      expect=201)
    await _three_held(gateway)
    _, queue = await gateway.api("GET", "/unmapped", expect=200)
    [item] = queue["items"]
    best = item["suggestions"][0]
    assert best["national_code"] == ANASTROZOLE_HISUN
    assert best["proposed"]["factor"] == "14" and best["proposed"]["national_unit"] == "片"
    _, answer = await gateway.api("POST", f"/unmapped/{HOSPITAL}/Y9990001/accept",
                                  json={"rank": 1}, headers=OPERATOR, expect=201)
    assert answer["entry"]["national_code"] == ANASTROZOLE_HISUN
    assert "accepted suggestion" in answer["audit"][0]["note"]
    await _assert_released_in_order(gateway, answer["released"])


async def test_a_suggestion_is_not_applied_until_a_person_accepts_it(gateway) -> None:
    await gateway.api("POST", "/catalogs", params={"version": "2025-first"},
                      data=CATALOG.read_bytes(), headers={"Content-Type": "text/csv"},
                      expect=201)
    await _three_held(gateway)
    for _ in range(2):
        _, queue = await gateway.api("GET", "/unmapped", expect=200)
        assert queue["items"][0]["suggestions"]
    # listing suggestions stored nothing: no outbox rows, nothing was sent
    assert (await gateway.store.query("SELECT count(*) FROM outbox"))[0][0] == 0
    assert gateway.simulator.order == []
    _, found = await gateway.api("GET", "/entries", params={"q": "Y9990001"}, expect=200)
    assert found["total"] == 0
    # a code that was not suggested cannot be "accepted"
    status, _ = await gateway.api("POST", f"/unmapped/{HOSPITAL}/Y9990001/accept",
                                    json={"national_code": "XL02BBB085A001010100665"},
                                    headers=OPERATOR)
    assert status == 409
    assert (await gateway.store.query("SELECT count(*) FROM events WHERE held = 1"))[0][0] == 3


async def test_importing_a_csv_releases_held_events(gateway) -> None:
    await _three_held(gateway)
    csv_text = ("医疗机构编码,院内编码,国家医保编码,项目名称,院内单位,医保单位,换算系数,生效日期\n"
                f"{HOSPITAL},Y9990001,{ANASTROZOLE_HISUN},阿那曲唑片(海正),盒,片,14,2026-01-01\n"
                f"{HOSPITAL},Y9990002,XL02BBB085A001010100665,比卡鲁胺片,盒,片,14,2026-01-01\n")
    _, answer = await gateway.api("POST", "/import", data=csv_text.encode("utf-8"),
                                  params={"filename": "对码表.csv"}, headers=OPERATOR,
                                  expect=200)
    assert (answer["created"], answer["updated"], answer["unchanged"]) == (2, 0, 0)
    await _assert_released_in_order(gateway, answer["released"])


async def test_queue_lists_each_item_once_and_says_when_no_catalog_is_imported(gateway) -> None:
    await _three_held(gateway)
    _, queue = await gateway.api("GET", "/unmapped", expect=200)
    assert queue["catalog"]["versions"] == []
    assert "no national catalog imported" in queue["catalog"]["message"]
    [item] = queue["items"]
    assert item["item_code"] == "Y9990001" and item["occurrences"] == 3
    assert item["first_seen"] <= item["last_seen"]
    assert item["unit"] == "盒"
    assert item["suggestions"] == []
    status, err = await gateway.api("POST", f"/unmapped/{HOSPITAL}/Y9990001/accept",
                                    json={"rank": 1}, headers=OPERATOR)
    assert status == 409 and "no national catalog" in err["problems"][0]
