"""One message from the HIS over MLLP to the platform simulator, over real sockets."""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import aiohttp
from helpers import (
    HOSPITAL,
    FixedCrosswalk,
    MLLPClient,
    ack_fields,
    eventually,
    numbered_dispense,
    sample,
    settled,
)

from gateway.ingest.framing import END, START

HL7_VALID = Path(__file__).resolve().parents[1] / "data" / "hl7v2" / "valid"


async def test_dispense_reaches_platform_as_3505_within_a_second(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))
    acked_at = time.monotonic()
    await client.close()
    assert ack["MSA"][1] == "AA"
    assert ack["MSA"][2] == "RDS20261123000001"  # MSA-2 = MSH-10
    await gateway.delivered(1, timeout=1.0)
    assert time.monotonic() - acked_at < 1.0
    env = gateway.simulator.accepted[gateway.simulator.order[0]]
    assert env["infno"] == "3505"
    assert env["fixmedins_code"] == HOSPITAL
    assert env["msgid"].startswith(HOSPITAL) and len(env["msgid"]) == 30
    sel = env["input"]["selinfo"]
    assert sel["med_list_codg"] == "XL02BGA045A001010104520"
    # 2 boxes of 14 tablets, converted to the national minimum unit
    assert sel["sel_retn_cnt"] == 28
    assert sel["finl_trns_pric"] == 2.35
    # what the ZJC segment and PV1 add: the platform refuses a sale without them
    assert (sel["manu_date"], sel["expy_end"], sel["rx_flag"], sel["trdn_flag"]) == (
        "2026-08-15", "2028-08-14", "1", "0")
    assert (sel["mdtrt_sn"], sel["hi_feesetl_type"], sel["phar_prac_cert_no"]) == (
        "MZ20261123001", "1", "330102201500231")
    assert (sel["sel_retn_opter_name"], sel["prsc_dr_name"], sel["rxno"]) == (
        "王芳", "李明", "CF20261123000123")
    assert [t["drug_trac_codg"] for t in sel["drugtracinfo"]] == [
        "81234567890123456789", "81234567890123456790"]
    # patient data stays in the hospital by default
    body = str(env)
    for secret in ("张伟", "330102198001010016", "13800138000"):
        assert secret not in body


async def test_operators_see_what_each_destination_keeps_in_order_and_its_pace(
        gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    await client.send(sample("rds_o13_dispense_utf8.hl7"))
    await client.close()
    await gateway.delivered(1)
    async with aiohttp.ClientSession() as s:
        async with s.get(gateway.url("/api/mirror/destinations")) as r:
            assert r.status == 200
            (nhsa,) = await r.json()
        async with s.get(gateway.url("/metrics")) as r:
            text = await r.text()
    assert nhsa["name"] == "nhsa" and nhsa["profile"] == "nhsa-inventory"
    assert "original_no" in nhsa["ordering"]["3506"]  # a return waits for its sale
    assert nhsa["circuit"] == "closed" and nhsa["reachable"] is True
    pace = nhsa["pace"]
    assert (pace["in_flight"], pace["concurrency"], pace["throttled"]) == (0, 16, 0)
    assert 1 <= pace["concurrency_limit"] <= 16 and pace["rate_limit_per_s"] is None
    assert 'jcgw_mirror_in_flight{destination="nhsa"} 0.0' in text
    assert 'jcgw_mirror_concurrency_limit{destination="nhsa"}' in text


async def test_duplicate_control_id_is_acknowledged_again_but_mirrored_once(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    raw = sample("rds_o13_dispense_utf8.hl7")
    first = ack_fields(await client.send(raw))
    second = ack_fields(await client.send(raw))
    await client.close()
    assert first["MSA"][:3] == second["MSA"][:3] == ["MSA", "AA", "RDS20261123000001"]
    await gateway.delivered(1)
    # every outbox row has its outcome recorded: the mirror has nothing left to send
    assert (await settled(gateway.store)).delivered == {"nhsa": 1}
    assert len(gateway.simulator.order) == 1
    assert gateway.simulator.duplicates == 0
    rows = await gateway.store.query("SELECT count(*) FROM messages")
    assert rows[0][0] == 1


async def test_prescription_is_stored_but_not_mirrored_as_a_sale(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = ack_fields(await client.send(sample("rde_o11_prescription_utf8.hl7")))
    await client.close()
    assert ack["MSA"][1] == "AA"
    rows = await gateway.store.query("SELECT kind, held, body FROM events")
    assert len(rows) == 1 and rows[0][0] == "prescription" and rows[0][1] == 0
    assert b"XL02BGA045A001010101359" in rows[0][2]  # mapped, kept for warnings
    # committed before the ACK without an outbox row: the mirror has nothing to send
    assert (await gateway.store.query("SELECT count(*) FROM outbox"))[0][0] == 0
    assert gateway.simulator.order == []


async def test_gb18030_message_keeps_chinese_text_and_is_answered_in_gb18030(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = await client.send(sample("rds_o13_dispense_gb18030.hl7"))
    await client.close()
    fields = ack_fields(ack, "gb18030")
    assert fields["MSA"][1] == "AA"
    assert fields["MSH"][17] == "GB 18030-2000"
    await gateway.delivered(1)
    sel = gateway.simulator.accepted[gateway.simulator.order[0]]["input"]["selinfo"]
    assert sel["fixmedins_hilist_name"] == "他达拉非片"
    assert sel["phar_name"] == "孙丽"
    assert sel["med_list_codg"] == "XG04BET001A001010207360"


async def test_unmapped_item_is_held_not_mirrored_and_queued(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = ack_fields(await client.send(sample("rds_o13_unmapped_item.hl7")))
    await client.close()
    assert ack["MSA"][1] == "AA"  # committed: held, not dropped
    rows = await gateway.store.query("SELECT held FROM events")
    assert rows == [(1,)]
    # a held event gets its outbox rows when it is released: nothing to send until then
    assert (await gateway.store.query("SELECT count(*) FROM outbox"))[0][0] == 0
    assert gateway.simulator.order == []
    async with aiohttp.ClientSession() as s, s.get(gateway.url("/api/unmapped")) as r:
        queue = await r.json()
    assert queue[0]["item_code"] == "Y9990001"
    assert queue[0]["item_name"] == "阿那曲唑片^海正|1mg"  # escapes decoded
    assert queue[0]["occurrences"] == 1


async def test_health_ready_and_metrics(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    await client.send(sample("rds_o13_dispense_utf8.hl7"))
    await client.send(sample("bad_unknown_type_adt.hl7"))
    await client.close()
    await gateway.delivered(1)
    # the gauges are read from the store in the background: the delivery shows in them
    # once a refresh ran after its outcome was recorded
    refreshed = ['jcgw_mirror_units{destination="nhsa",state="delivered"} 1.0',
                 'jcgw_outbox_depth{destination="nhsa"} 0.0']
    async with aiohttp.ClientSession() as s:
        async with s.get(gateway.url("/healthz")) as r:
            assert r.status == 200
        async with s.get(gateway.url("/readyz")) as r:
            assert r.status == 200
            assert (await r.json())["store_writable"] is True

        async def scrape() -> str | None:
            async with s.get(gateway.url("/metrics")) as r:
                text = await r.text()
            return text if all(line in text for line in refreshed) else None

        text = await eventually(scrape, what="the outbox gauges refreshed after the delivery")
    assert 'jcgw_messages_received_total{adapter="hl7v2",type="RDS^O13"} 1.0' in text
    assert 'jcgw_messages_acknowledged_total{adapter="hl7v2",type="RDS^O13"} 1.0' in text
    assert 'jcgw_messages_rejected_total{adapter="hl7v2",status="rejected",type=""} 1.0' in text
    assert 'jcgw_deliveries_total{destination="nhsa",outcome="delivered"} 1.0' in text
    assert 'jcgw_outbox_depth{destination="nhsa"} 0.0' in text
    assert 'jcgw_mirror_latency_seconds_count{destination="nhsa"} 1.0' in text


async def test_commit_failure_gets_ae_never_aa_and_a_resend_is_taken(gateway) -> None:
    import sqlite3

    store = gateway.store
    blocker = sqlite3.connect(store.path, timeout=5)  # waits out a write in progress
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the database
    store._wcon.execute("PRAGMA busy_timeout=50")
    client = await MLLPClient.connect(gateway.mllp_port)
    raw = sample("rds_o13_dispense_utf8.hl7")
    nak = ack_fields(await client.send(raw))
    assert nak["MSA"][1] == "AE"
    assert "not stored" in nak["MSA"][3]
    blocker.rollback()
    blocker.close()
    ok = ack_fields(await client.send(raw))
    await client.close()
    assert ok["MSA"][1] == "AA"
    await gateway.delivered(1)


async def test_held_events_are_released_in_order_once_mapped(gateway) -> None:
    from decimal import Decimal

    from gateway.keys import INGESTOR, MAPPINGS
    from mappings.crosswalk import CrosswalkEntry

    raw = sample("rds_o13_unmapped_item.hl7")
    client = await MLLPClient.connect(gateway.mllp_port)
    for n in range(3):  # three dispenses of the unknown item, in this order
        msg = raw.replace(b"RDS20261123000888", f"RDSHELD{n:05d}".encode()) \
                 .replace(b"CF20261123000888", f"CFHELD{n:05d}".encode())
        assert ack_fields(await client.send(msg))["MSA"][1] == "AA"
    await client.close()
    assert (await gateway.store.query("SELECT count(*) FROM events WHERE held = 1")) == [(3,)]
    assert (await gateway.store.query("SELECT count(*) FROM outbox")) == [(0,)]
    assert gateway.simulator.order == []
    ingestor = gateway.app[INGESTOR]
    entry = CrosswalkEntry(HOSPITAL, "Y9990001", "XL02BGA045A001010104641",
                           item_name="阿那曲唑片(海正)", hospital_unit="盒", national_unit="片",
                           factor=Decimal(14))
    result = await gateway.app[MAPPINGS].create(entry, user="药剂科 李娜")
    assert result.released == 3
    await gateway.delivered(3)
    sent = [gateway.simulator.accepted[m]["input"]["selinfo"] for m in gateway.simulator.order]
    assert [s["rtal_docno"] for s in sent] == ["CFHELD00000", "CFHELD00001", "CFHELD00002"]
    assert {s["med_list_codg"] for s in sent} == {"XL02BGA045A001010104641"}
    assert {s["sel_retn_cnt"] for s in sent} == {42}  # 3 boxes × 14 tablets
    assert (await gateway.store.query("SELECT count(*) FROM events WHERE held = 1"))[0][0] == 0
    assert await gateway.store.unmapped() == []
    assert await ingestor.release_held() == 0  # nothing left, nothing sent twice


async def test_a_message_held_with_the_old_crosswalk_after_a_release_is_followed_up(
        gateway) -> None:
    """A message mapped just before a crosswalk change may commit, held, just after the
    change released the held events: a second release a little later sends it."""
    from decimal import Decimal

    from adapters.hl7v2 import HL7v2Adapter
    from gateway.ingest.pipeline import Ingestor
    from gateway.keys import CROSSWALK, INGESTOR, MAPPINGS
    from gateway.metrics import Metrics
    from mappings.crosswalk import CrosswalkEntry

    ingestor = gateway.app[INGESTOR]
    stale = Ingestor(gateway.store, FixedCrosswalk(gateway.app[CROSSWALK].current),
                     ingestor.routes, Metrics())
    adapter = HL7v2Adapter({"facilities": {"ZJSRMYY": HOSPITAL}})
    release_now = ingestor.release_held
    late: list[bytes] = []

    async def release_then_commit_late(hospital_id: str | None = None) -> int:
        released = await release_now(hospital_id)
        if not late:  # the change's own release is done: the stale message commits now
            late.append((await stale.handle(adapter, sample("rds_o13_unmapped_item.hl7"),
                                            "10.1.2.3:5000")).body)
        return released

    ingestor.release_held = release_then_commit_late  # type: ignore[method-assign]
    entry = CrosswalkEntry(HOSPITAL, "Y9990001", "XL02BGA045A001010104641",
                           item_name="阿那曲唑片(海正)", hospital_unit="盒", national_unit="片",
                           factor=Decimal(14))
    result = await gateway.app[MAPPINGS].create(entry, user="药剂科 李娜")
    assert result.released == 0
    assert ack_fields(late[0])["MSA"][1] == "AA"
    assert (await gateway.store.query("SELECT count(*) FROM events WHERE held = 1")) == [(1,)]
    [msgid] = await gateway.delivered(1)  # released by the follow-up
    sent = gateway.simulator.accepted[msgid]["input"]["selinfo"]
    assert sent["med_list_codg"] == "XL02BGA045A001010104641"
    assert (await gateway.store.query("SELECT count(*) FROM events WHERE held = 1")) == [(0,)]


async def test_operator_api_requires_the_configured_token(tmp_path) -> None:
    from aiohttp.test_utils import TestServer
    from helpers import free_port, make_config

    from gateway.app import build_app

    sim = free_port()
    cfg = make_config(tmp_path, mllp_port=free_port(), http_port=0, simulator_port=sim,
                      platform_url=f"http://127.0.0.1:{sim}/fsi/api/x",
                      http={"host": "127.0.0.1", "port": 0, "api_token": "t0ken-Ab9"})
    server = TestServer(build_app(cfg), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(server.make_url("/api/unmapped")) as r:
                assert r.status == 401
            async with s.get(server.make_url("/ledger/contracts"),
                             headers={"Authorization": "Bearer wrong"}) as r:
                assert r.status == 401
            async with s.get(server.make_url("/api/unmapped"),
                             headers={"Authorization": "Bearer t0ken-Ab9"}) as r:
                assert r.status == 200
            async with s.get(server.make_url("/healthz")) as r:
                assert r.status == 200  # probes stay open
    finally:
        await server.close()


async def test_readyz_reports_an_unreachable_platform_and_recovers(gateway) -> None:
    gateway.simulator.faults.down = True  # every call answers 503
    client = await MLLPClient.connect(gateway.mllp_port)
    assert ack_fields(await client.send(sample("rds_o13_dispense_utf8.hl7")))["MSA"][1] == "AA"
    await client.close()

    async def ready() -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as s, s.get(gateway.url("/readyz")) as r:
            return r.status, await r.json()

    async def not_ready() -> dict[str, object] | None:
        status, body = await ready()
        return body if status == 503 else None

    body = await eventually(not_ready, interval=0.05, what="/readyz answers 503")
    assert body["platforms_reachable"] == {"nhsa": False}
    assert body["store_writable"] is True
    gateway.simulator.faults.down = False
    await gateway.delivered(1, timeout=10)
    status, body = await ready()
    assert status == 200 and body["platforms_reachable"] == {"nhsa": True}


async def test_pipelined_frames_are_answered_in_arrival_order(gateway) -> None:
    """A sender may write many frames before reading: each gets its own answer, in order,
    whether it is taken, refused (quarantined first) or a duplicate."""
    good = [numbered_dispense(n, "PIP") for n in range(6)]
    broken = b"PID|1||0001234567^^^ZJSRMYY^PI||\xe5\xbc\xa0\xe4\xbc\x9f"  # no MSH
    frames = [good[0], good[1], broken, good[2], good[0], good[3], good[4], good[5]]
    client = await MLLPClient.connect(gateway.mllp_port)
    client.writer.write(b"".join(START + f + END for f in frames))  # one write, no waiting
    await client.writer.drain()
    acks = [ack_fields(await client.read_ack()) for _ in frames]
    await client.close()
    assert [a["MSA"][1] for a in acks] == ["AA", "AA", "AR", "AA", "AA", "AA", "AA", "AA"]
    expected_ids = ["PIP000000000000", "PIP000000000001", "", "PIP000000000002",
                    "PIP000000000000", "PIP000000000003", "PIP000000000004",
                    "PIP000000000005"]
    assert [a["MSA"][2] for a in acks] == expected_ids
    rows = await gateway.store.query("SELECT count(*) FROM messages")
    assert rows[0][0] == 6  # the duplicate was acknowledged, not stored again
    quarantined = await gateway.store.query("SELECT count(*) FROM quarantine")
    assert quarantined[0][0] == 1


async def test_item_master_is_answered_mfk_and_queues_unknown_items_for_mapping(
        gateway) -> None:
    raw = (HL7_VALID / "mfn_m16_item_master.hl7").read_bytes()
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = ack_fields(await client.send(raw))
    await client.close()
    assert ack["MSH"][8] == "MFK^M16^MFK_M01"  # a master file is answered with MFK
    assert ack["MSA"][1:3] == ["AA", "SPD20261201000007"]
    assert ack["MFI"][1].startswith("INV^")  # the MFI echoed, as MFK requires
    assert "MFA" not in ack  # MFI-6 is NE: no per-item answers asked for
    async with aiohttp.ClientSession() as s, s.get(gateway.url("/api/unmapped")) as r:
        queue = {q["item_code"]: q for q in await r.json()}
    # the added and the updated item are not in the crosswalk: queued for 对码 with
    # what the warehouse says of them, as known items not yet used (no occurrences)
    assert set(queue) == {"Y0045201", "Y0033107"}
    assert queue["Y0045201"]["item_name"] == "阿那曲唑片"
    assert queue["Y0045201"]["specification"] == "1mg*14片/盒"
    assert queue["Y0033107"]["manufacturer"] == "湖南方盛制药股份有限公司"
    assert {q["occurrences"] for q in queue.values()} == {0}
    # stored, never held (nothing waits for a dictionary) and never sent to the platform
    assert await gateway.store.query("SELECT kind, held FROM events") == [("item_master", 0)]
    assert await gateway.store.query("SELECT count(*) FROM outbox") == [(0,)]
    assert gateway.simulator.order == []


async def test_an_item_the_warehouse_deletes_leaves_the_mapping_queue(gateway) -> None:
    client = await MLLPClient.connect(gateway.mllp_port)
    await client.send(sample("rds_o13_unmapped_item.hl7"))  # queues Y9990001, held
    deletion = ((HL7_VALID / "mfn_m16_item_master.hl7").read_bytes()
                .replace(b"SPD20261201000007", b"SPD20261201000099")
                .replace(b"Y0012345^ZJSRMYY", b"Y9990001^ZJSRMYY"))
    ack = ack_fields(await client.send(deletion))
    await client.close()
    assert ack["MSA"][1] == "AA"
    async with aiohttp.ClientSession() as s, s.get(gateway.url("/api/unmapped")) as r:
        queued = {q["item_code"] for q in await r.json()}
    assert "Y9990001" not in queued  # MDL: nobody should map an item that is going away
    assert {"Y0045201", "Y0033107"} <= queued


async def test_item_master_answers_each_item_when_asked_and_takes_v26(gateway) -> None:
    raw = ((HL7_VALID / "mfn_m16_item_master.hl7").read_bytes()
           .replace(b"|P|2.5|", b"|P|2.6|").replace(b"20261201075500||NE", b"20261201075500||AL"))
    client = await MLLPClient.connect(gateway.mllp_port)
    ack = await client.send(raw)
    bad = await client.send(raw.replace(b"SPD20261201000007", b"SPD20261201000017")
                            .replace(b"MFE|MUP|", b"MFE|MXX|"))
    await client.close()
    segs = [line.split("|") for line in ack.decode().split("\r") if line]
    mfa = [seg for seg in segs if seg[0] == "MFA"]
    # MFI-6 AL: one MFA per MFE: event code, MFE-2 control id, status S, the key
    assert [(m[1], m[2], m[4], m[5]) for m in mfa] == [
        ("MAD", "SPD-ITM-000101", "S", "Y0045201^ZJSRMYY"),
        ("MUP", "SPD-ITM-000102", "S", "Y0033107^ZJSRMYY"),
        ("MDL", "SPD-ITM-000103", "S", "Y0012345^ZJSRMYY")]
    bad_segs = [line.split("|") for line in bad.decode().split("\r") if line]
    assert [seg[1] for seg in bad_segs if seg[0] == "MSA"] == ["AE"]
    assert {seg[4] for seg in bad_segs if seg[0] == "MFA"} == {"U"}


async def test_a_poison_event_degrades_readyz_and_is_counted_while_the_ledger_goes_on(
        gateway) -> None:
    """An event committed before the door checked its values (an earlier release) that the
    ledger cannot fold: set aside with its reason, later events folded, /readyz says so."""
    from msgspec.structs import replace

    from adapters.hl7v2 import HL7v2Adapter
    from canonical.model import CHINA_TZ
    from gateway.store.base import Incoming

    adapter = HL7v2Adapter(HL7v2Adapter.config_model(facilities={"ZJSRMYY": HOSPITAL}))
    parsed = adapter.parse(numbered_dispense(900), received_at=datetime.now(CHINA_TZ))
    [ev] = parsed.events
    bad = ev.with_lines(tuple(replace(li, price=Decimal("81000000000000000123"),
                                      national_code="XL02BGA045A001010104520",
                                      national_quantity=Decimal(28)) for li in ev.lines))
    await gateway.store.commit(Incoming(
        adapter="hl7v2", sender=parsed.sender, control_id="POISON-1", message_type="RDS^O13",
        raw=b"MSH|", received_at=datetime.now(CHINA_TZ), events=(bad,), held=(False,)))
    client = await MLLPClient.connect(gateway.mllp_port)
    assert ack_fields(await client.send(numbered_dispense(901)))["MSA"][1] == "AA"
    await client.close()
    await eventually(lambda: _nothing_pending(gateway), what="the ledger went on")
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url("/readyz")) as r:
            ready = await r.json()
            assert r.status == 200 and ready["status"] == "degraded"
            assert ready["ledger_poison_total"] == 1
        async with http.get(gateway.url("/metrics")) as r:
            assert "jcgw_ledger_poison_events_total 1.0" in await r.text()
        async with http.get(gateway.url("/ledger/poison")) as r:
            [listed] = await r.json()
            assert listed["seq"] == ready["ledger_poison_events"][0]["seq"]


async def _nothing_pending(gateway) -> bool:  # type: ignore[no-untyped-def]
    left = await gateway.store.query("SELECT count(*) FROM ledger_pending")
    poisoned = await gateway.store.query("SELECT count(*) FROM ledger_poison")
    return bool(left == [(0,)] and poisoned == [(1,)])
