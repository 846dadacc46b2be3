"""Deadlines that close, through a whole gateway: a payment message (vendor JSON, HL7 v2
ZWH^Z01 FK) closes the payment deadline of every receipt it names, the supplier's
ORS^O06 closes the order clock, reminders and manual closes go through the API with an
audit entry, and a deadline counted without its year's calendar is marked provisional
until the calendar file appears."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from helpers import HOSPITAL, ROOT, MLLPClient, ack_fields, eventually, free_port, make_config

from gateway.app import build_app
from gateway.keys import LEDGER, SIMULATOR
from gateway.security.identity import hash_token, new_token
from gateway.timings import Timings

DATA = ROOT / "tests" / "data"
ROLES = {"周敏": "procurement", "刘洋": "pharmacist", "孙丽": "auditor", "spd": "sender"}
TOKENS = {name: new_token() for name in ROLES}
ZC_APP, ZC_SECRET = "JCGW-HZ-001", "zc-secret"


def as_(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def _sample(name: str, *folders: str) -> bytes:
    for folder in folders:
        path = DATA / folder / name
        if path.exists():
            return path.read_bytes()
    raise FileNotFoundError(name)


def vendor(name: str) -> bytes:
    return _sample(name, "vendor-json/valid", "vendor-json/payments/valid")


def hl7(name: str) -> bytes:
    return _sample(name, "hl7v2/valid", "hl7v2")


@dataclass
class Gateway:
    app: Any
    server: TestServer
    http: ClientSession
    mllp_port: int
    calendar_dir: Path

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post(self, path: str, who: str, body: Any = None, data: bytes | None = None
                   ) -> tuple[int, Any]:
        async with self.http.post(self.url(path), json=body, data=data,
                                  headers=as_(who)) as r:
            return r.status, await r.json(content_type=None)

    async def deadlines(self) -> dict[tuple[str, str], dict[str, Any]]:
        async with self.http.get(self.url(f"/ledger/deadlines/{HOSPITAL}"),
                                 headers=as_("周敏")) as r:
            assert r.status == 200
            return {(d["kind"], d["ref"]): d for d in await r.json()}

    async def deadline(self, kind: str, ref: str, **wanted: Any) -> dict[str, Any]:
        """Wait until the deadline exists with the wanted values (the fold follows the
        commit by a moment)."""
        async def found() -> dict[str, Any] | None:
            d = (await self.deadlines()).get((kind, ref))
            if d is not None and all(d.get(k) == v for k, v in wanted.items()):
                return d
            return None
        return await eventually(found, what=f"{kind} deadline {ref} with {wanted}")

    async def send_hl7(self, raw: bytes) -> dict[str, list[str]]:
        client = await MLLPClient.connect(self.mllp_port)
        try:
            return ack_fields(await client.send(raw))
        finally:
            await client.close()


@pytest.fixture
async def gateway(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Gateway]:
    """A gateway with the simulator as the national platform; with the parameter
    ``{"zhaocai": True}`` also as a provincial 招采 platform."""
    calendar_dir = tmp_path / "calendar"
    calendar_dir.mkdir()
    for year in ("2025", "2026"):  # no 2027 yet: the State Council has not published it
        shutil.copy(ROOT / "config" / "calendar" / f"{year}.yaml", calendar_dir)
    mllp_port, sim_port = free_port(), free_port()
    sim = f"http://127.0.0.1:{sim_port}"
    base = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=sim_port,
                       platform_url=f"{sim}/fsi/api/inventory")
    listeners = [dict(lst.model_dump()) for lst in base.listeners] + [
        {"name": "spd-json", "adapter": "vendor-json", "transport": "http",
         "config": {"profile": "warehouse-stock-json"}},
        {"name": "finance-json", "adapter": "vendor-json", "transport": "http",
         "config": {"profile": "finance-payment-json"}}]
    zhaocai = getattr(request, "param", {}).get("zhaocai", False)
    destinations = [dict(d.model_dump(mode="json")) for d in base.destinations] + [
        {"name": "zhejiang", "profile": "zhaocai", "url": f"{sim}/zc/api", "timeout_s": 2,
         "app_code": ZC_APP, "app_secret": ZC_SECRET, "backoff_initial_s": 0.05,
         "backoff_max_s": 0.5}] * zhaocai
    ledger = {"calendar_dir": str(calendar_dir),
              "rules": str(ROOT / "config" / "rules.yaml"),
              "contracts": str(ROOT / "config" / "contracts.sample.csv"),
              "path": str(tmp_path / "var" / "ledger.db")}
    security = {"identities": [{"name": n, "role": r, "token_sha256": hash_token(TOKENS[n])}
                               for n, r in ROLES.items()]}
    cfg = make_config(tmp_path, mllp_port=mllp_port, http_port=0, simulator_port=sim_port,
                      platform_url=f"{sim}/fsi/api/inventory", listeners=listeners,
                      destinations=destinations, ledger=ledger, security=security)
    app = build_app(cfg, timings=Timings(stats_s=0.02, follow_up_s=0.02, calendar_s=0.05))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    app[SIMULATOR].apps[ZC_APP] = ZC_SECRET.encode()
    http = ClientSession()
    try:
        yield Gateway(app, server, http, mllp_port, calendar_dir)
    finally:
        await http.close()
        await server.close()


@pytest.mark.parametrize("gateway", [{"zhaocai": True}], indirect=True)
async def test_vendor_json_payment_closes_each_receipt_it_pays(gateway: Gateway) -> None:
    status, answer = await gateway.post("/ingest/spd-json", "spd",
                                        data=vendor("receipts_for_payment.json"))
    assert status == 200 and answer["resultCode"] == "0", answer
    first = await gateway.deadline("payment", "RK20261201001")
    assert first["closed_at"] is None
    assert first["due_at"] == "2026-12-31T23:59:59.999999+08:00"  # 30 days after acceptance
    await gateway.deadline("payment", "RK20261203002", closed_at=None)

    status, answer = await gateway.post("/ingest/finance-json", "spd",
                                        data=vendor("payment_two_receipts.json"))
    assert status == 200 and answer["resultCode"] == "0", answer
    for receipt in ("RK20261201001", "RK20261203002"):
        paid = await gateway.deadline("payment", receipt, state="met")
        assert paid["closed_at"] == "2026-12-15T14:30:00+08:00"
    # the itemised payment reaches the provincial platform as one settlement statement
    sim = gateway.app[SIMULATOR]
    await eventually(lambda: any(env["infno"] == "settlement.submit"
                                 for env in sim.accepted.values()),
                     what="the settlement at the 招采 platform")
    settlement = next(env for env in sim.accepted.values()
                      if env["infno"] == "settlement.submit")
    data = settlement["input"]["data"]
    assert data["settlementNo"] == "FK20261215001"
    assert set(data["receiptNos"].split("|")) == {"RK20261201001", "RK20261203002"}
    assert len(data["lines"]) == 2


async def test_payment_without_lines_is_taken_and_closes_its_receipt(gateway: Gateway) -> None:
    receipt = vendor("receipts_for_payment.json").replace(b"RK20261201001", b"RK20261126003")
    assert (await gateway.post("/ingest/spd-json", "spd", data=receipt))[0] == 200
    await gateway.deadline("payment", "RK20261126003", closed_at=None)
    status, answer = await gateway.post("/ingest/finance-json", "spd",
                                        data=vendor("payment_without_lines.json"))
    assert status == 200 and answer["resultCode"] == "0", answer
    paid = await gateway.deadline("payment", "RK20261126003", state="met")
    assert paid["closed_at"] == "2026-12-16T09:58:00+08:00"


async def test_hl7_payment_closes_the_receipt_it_names(gateway: Gateway) -> None:
    ack = await gateway.send_hl7(hl7("zwh_z01_receipt_for_payment.hl7"))
    assert ack["MSA"][1] == "AA", ack
    await gateway.deadline("payment", "RK20261201007", closed_at=None)
    ack = await gateway.send_hl7(hl7("zwh_z01_payment.hl7"))
    assert ack["MSA"][1] == "AA", ack
    paid = await gateway.deadline("payment", "RK20261201007", state="met")
    assert paid["closed_at"] == "2026-12-18T10:25:00+08:00"
    # the other receipt it names was never received here: nothing is opened for it
    assert ("payment", "RK20261126003") not in await gateway.deadlines()


async def test_supplier_answer_closes_the_order_clock(gateway: Gateway) -> None:
    ack = await gateway.send_hl7(hl7("oms_o05_order_to_answer.hl7"))
    assert ack["MSA"][1] == "AA", ack
    order = await gateway.deadline("order", "PO20261202003")
    assert order["closed_at"] is None
    ack = await gateway.send_hl7(hl7("ors_o06_partly_refused.hl7"))
    assert ack["MSA"][1] == "AA", ack
    answered = await gateway.deadline("order", "PO20261202003", state="answered")
    assert answered["closed_at"] == "2026-12-02T15:30:00+08:00"
    # the answer is not an order of its own: no second clock, never overdue later
    ledger = gateway.app[LEDGER]
    later = await ledger.deadlines(HOSPITAL, datetime.fromisoformat(
        "2026-12-20T09:00:00+08:00"))
    assert [(d.kind, d.ref, d.state) for d in later if d.kind == "order"] == [
        ("order", "PO20261202003", "answered")]


async def test_reminder_through_the_api_then_escalation(gateway: Gateway) -> None:
    assert (await gateway.send_hl7(hl7("oms_o05_order_to_answer.hl7")))["MSA"][1] == "AA"
    await gateway.deadline("order", "PO20261202003", closed_at=None)
    reminded_at = "2026-12-04T09:00:00+08:00"
    body = {"hospital_id": HOSPITAL, "order_no": "PO20261202003", "at": reminded_at}
    status, _ = await gateway.post("/ledger/deadlines/reminders", "刘洋", body)
    assert status == 403  # pharmacists read the ledger; procurement staff chase orders
    status, answer = await gateway.post("/ledger/deadlines/reminders", "周敏", body)
    assert status == 200, answer
    at = datetime.fromisoformat(reminded_at)
    ledger = gateway.app[LEDGER]

    async def state(now: datetime) -> str:
        [order] = [d for d in await ledger.deadlines(HOSPITAL, now) if d.kind == "order"]
        return order.state
    assert await state(at - timedelta(minutes=20)) == "overdue"  # 48 h passed unanswered
    assert await state(at + timedelta(hours=1)) == "reminded"
    assert await state(at + timedelta(hours=24)) == "reminded"  # 24 h exactly: in time
    assert await state(at + timedelta(hours=24, seconds=1)) == "escalate"
    status, answer = await gateway.post("/ledger/deadlines/reminders", "周敏",
                                        {"hospital_id": HOSPITAL, "order_no": "PO404"})
    assert status == 404 and "PO404" in answer["error"]


async def test_manual_close_is_audited_under_the_caller(gateway: Gateway) -> None:
    assert (await gateway.post("/ingest/spd-json", "spd",
                               data=vendor("receipts_for_payment.json")))[0] == 200
    await gateway.deadline("payment", "RK20261201001", closed_at=None)
    body = {"hospital_id": HOSPITAL, "kind": "payment", "ref": "RK20261201001",
            "reason": "已通过医保基金直接结算，财务系统未回传", "at": "2026-12-20T10:00:00+08:00"}
    status, answer = await gateway.post("/ledger/deadlines/close", "周敏", body)
    assert status == 200, answer
    closed = await gateway.deadline("payment", "RK20261201001", state="met")
    assert closed["closed_at"] == "2026-12-20T10:00:00+08:00"
    status, answer = await gateway.post("/ledger/deadlines/close", "周敏", body)
    assert status == 409 and "closed already" in answer["error"]
    async with gateway.http.get(gateway.url("/api/audit-log"),
                                params={"action": "ledger.deadline.close"},
                                headers=as_("孙丽")) as r:
        entries = (await r.json())["entries"]
    [entry] = entries
    assert (entry["identity"], entry["role"]) == ("周敏", "procurement")
    assert entry["target"] == "payment/RK20261201001" and entry["hospital_id"] == HOSPITAL
    assert entry["detail"] == body["reason"]
    assert entry["before"]["closed_at"] is None
    assert entry["after"] == {"closed_at": body["at"], "reason": body["reason"]}


async def test_payment_through_the_api_is_audited(gateway: Gateway) -> None:
    assert (await gateway.post("/ingest/spd-json", "spd",
                               data=vendor("receipts_for_payment.json")))[0] == 200
    await gateway.deadline("payment", "RK20261203002", closed_at=None)
    status, answer = await gateway.post("/ledger/payments", "周敏", {
        "hospital_id": HOSPITAL, "payment_no": "FK20261220009", "paid_at": "2026-12-20 16:00:00",
        "receipts": ["RK20261203002", "RK20260101999"], "amount": "1316.00",
        "supplier": "国药控股浙江有限公司"})
    assert status == 200, answer
    assert (answer["closed"], answer["unknown"]) == (["RK20261203002"], ["RK20260101999"])
    paid = await gateway.deadline("payment", "RK20261203002", state="met")
    assert paid["closed_at"] == "2026-12-20T16:00:00+08:00"  # local time without a zone
    async with gateway.http.get(gateway.url("/api/audit-log"),
                                params={"action": "ledger.payment.record"},
                                headers=as_("孙丽")) as r:
        [entry] = (await r.json())["entries"]
    assert entry["identity"] == "周敏" and entry["target"] == "payment/RK20261203002"
    assert entry["after"]["payment_no"] == "FK20261220009"
    status, answer = await gateway.post("/ledger/payments", "周敏", {
        "hospital_id": HOSPITAL, "payment_no": "FK1", "receipts": ["RK20260101999"]})
    assert status == 404 and "RK20260101999" in answer["error"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/ledger/payments", {"hospital_id": HOSPITAL, "payment_no": "FK1"}, "receipts"),
    ("/ledger/payments", {"hospital_id": HOSPITAL, "payment_no": "FK1",
                          "receipts": ["RK1", 7]}, "receipts[1]"),
    ("/ledger/payments", {"hospital_id": HOSPITAL, "payment_no": "FK1", "receipts": ["RK1"],
                          "amount": "一千"}, "amount"),
    ("/ledger/payments", {"payment_no": "FK1", "receipts": ["RK1"]}, "hospital_id"),
    ("/ledger/payments", {"hospital_id": HOSPITAL, "receipts": ["RK1"],
                          "paid_at": "2026-13-01"}, "payment_no"),
    ("/ledger/payments", {"hospital_id": HOSPITAL, "payment_no": "FK1", "receipts": ["RK1"],
                          "paid_at": "2026-13-01"}, "paid_at"),
    ("/ledger/deadlines/reminders", {"hospital_id": HOSPITAL}, "order_no"),
    ("/ledger/deadlines/close", {"hospital_id": HOSPITAL, "kind": "invoice", "ref": "X",
                                 "reason": "r"}, "kind"),
    ("/ledger/deadlines/close", {"hospital_id": HOSPITAL, "kind": "filing", "ref": "X"},
     "reason"),
    ("/ledger/deadlines/close", ["not", "an", "object"], "body"),
])
async def test_bad_input_is_refused_naming_the_field(gateway: Gateway, path: str, body: Any,
                                                     field: str) -> None:
    status, answer = await gateway.post(path, "周敏", body)
    assert status == 400, answer
    assert answer["field"] == field and answer["error"].startswith(f"{field}:")


async def test_unknown_deadline_is_404(gateway: Gateway) -> None:
    status, answer = await gateway.post("/ledger/deadlines/close", "周敏", {
        "hospital_id": HOSPITAL, "kind": "filing", "ref": "RK19990101001", "reason": "纸质备案"})
    assert status == 404 and "RK19990101001" in answer["error"]


async def test_provisional_deadline_is_counted_again_when_the_calendar_appears(
        gateway: Gateway) -> None:
    status, _ = await gateway.post("/ingest/spd-json", "spd",
                                   data=vendor("off_platform_receipt_year_end.json"))
    assert status == 200
    # 7 working days from Monday 28 December run into 2027, which has no file yet
    filing = await gateway.deadline("filing", "RK20261228015", provisional=True)
    assert filing["due_at"] == "2027-01-06T23:59:59.999999+08:00"  # weekdays alone

    async def readiness() -> dict[str, Any]:
        async with gateway.http.get(gateway.url("/readyz")) as r:
            return dict(await r.json())
    ready = await eventually(lambda: _degraded(readiness), what="readyz degraded")
    assert ready["ledger_provisional_deadlines"] == 1
    assert "config/calendar/2027.yaml" in ready["ledger_provisional_reason"]
    async with gateway.http.get(gateway.url("/metrics")) as r:
        assert "jcgw_ledger_provisional_deadlines 1.0" in await r.text()

    shutil.copy(DATA / "ledger" / "calendar-2027" / "2027.yaml", gateway.calendar_dir)
    # 元旦 (1 January) is now a holiday: one working day later
    counted = await gateway.deadline("filing", "RK20261228015", provisional=False)
    assert counted["due_at"] == "2027-01-07T23:59:59.999999+08:00"
    assert counted["detail"]["provisional_due_at"] == "2027-01-06T23:59:59.999999+08:00"

    async def ready_again() -> dict[str, Any] | None:
        body = await readiness()
        return body if body["status"] == "ready" else None
    assert "ledger_provisional_deadlines" not in await eventually(ready_again,
                                                                  what="readyz ready")
    async with gateway.http.get(gateway.url("/metrics")) as r:
        assert "jcgw_ledger_provisional_deadlines 0.0" in await r.text()


async def _degraded(readiness: Any) -> dict[str, Any] | None:
    body: dict[str, Any] = await readiness()
    return body if body.get("ledger_provisional_deadlines") else None


async def test_cli_closes_and_lists_through_the_running_gateway(
        gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from gateway.cli.main import main

    assert (await gateway.post("/ingest/spd-json", "spd",
                               data=vendor("off_platform_receipt_year_end.json")))[0] == 200
    await gateway.deadline("filing", "RK20261228015", closed_at=None)
    common = ["--url", gateway.url("/"), "--token", TOKENS["周敏"]]
    rc = await asyncio.to_thread(main, ["deadlines", "close", HOSPITAL, "filing",
                                        "RK20261228015", "--reason", "已线下备案",
                                        "--at", "2026-12-30T10:00:00", *common])
    assert rc == 0
    closed = await gateway.deadline("filing", "RK20261228015", state="met")
    assert closed["closed_at"] == "2026-12-30T10:00:00+08:00"
    rc = await asyncio.to_thread(main, ["deadlines", "close", HOSPITAL, "filing",
                                        "RK20261228015", "--reason", "again", *common])
    assert rc == 1 and "closed already" in capsys.readouterr().err
    rc = await asyncio.to_thread(main, ["deadlines", "list", HOSPITAL, *common])
    out = capsys.readouterr().out
    assert rc == 0 and "filing\tRK20261228015\tmet" in out
    rc = await asyncio.to_thread(main, ["deadlines", "remind", HOSPITAL, "PO404",
                                        "--url", gateway.url("/"), "--token", TOKENS["刘洋"]])
    assert rc == 1 and "HTTP 403" in capsys.readouterr().err


async def test_payment_before_its_receipt_arrives_closes_it(gateway: Gateway) -> None:
    status, answer = await gateway.post("/ingest/finance-json", "spd",
                                        data=vendor("payment_without_lines.json"))
    assert status == 200 and answer["resultCode"] == "0", answer
    tables = gateway.app[LEDGER].tables

    async def folded() -> bool:
        return not await tables.pending()
    # the payment is folded on its own, before the ledger knows its receipt
    await eventually(folded, what="the payment folded")
    assert ("payment", "RK20261126003") not in await gateway.deadlines()
    receipt = vendor("receipts_for_payment.json").replace(b"RK20261201001", b"RK20261126003")
    assert (await gateway.post("/ingest/spd-json", "spd", data=receipt))[0] == 200
    paid = await gateway.deadline("payment", "RK20261126003", state="met")
    assert paid["closed_at"] == "2026-12-16T09:58:00+08:00"
    await gateway.deadline("payment", "RK20261203002", state="open", closed_at=None)
