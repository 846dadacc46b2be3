"""The ranking of a deployment's hospitals: winning use share against the agreed ratio
(R4) given completion against 序时进度 (R3), ties, filters, formats and who sees what."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import openpyxl
import pytest
from aiohttp import web
from ledger_helpers import EXEMESTANE_PFIZER, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import Ledger, ledger_app
from gateway.ledger.ranking import HospitalStanding, rank_hospitals
from gateway.security.access import allowed_roles
from gateway.security.identity import IDENTITY, Identity

H2, H3, H4 = "H36070200023", "H36072100011", "H36073200035"


async def _march(ledger: Ledger) -> None:
    """序时进度 on 31 March is 90/365: 8877 of 36000 keeps up, 5000 does not."""
    plan = {HOSPITAL: (9000, 800, 200),  # use 80 % against 70 % agreed
            H2: (9000, 700, 300),  # 70 %: exactly the agreed ratio
            H3: (12000, 700, 300),  # the same use as H2, more received
            H4: (5000, 900, 100)}  # the highest use, but behind 序时进度
    await fold(ledger, [
        e for h, (received, win, other) in plan.items() for e in (
            event(EventKind.RECEIPT, [(EXEMESTANE_WIN, received, "2.1350")],
                  at=cst(2026, 3, 2), hospital=h),
            event(EventKind.DISPENSE, [(EXEMESTANE_WIN, win, None),
                                       (EXEMESTANE_PFIZER, other, None)],
                  at=cst(2026, 3, 20), hospital=h))])


def _client_app(ledger: Ledger, who: Identity | None = None) -> web.Application:
    app = web.Application()
    if who is not None:
        @web.middleware
        async def authenticated(request: web.Request, handler):  # type: ignore[no-untyped-def]
            request[IDENTITY] = who  # as the access middleware leaves it
            return await handler(request)
        app.middlewares.append(authenticated)
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: cst(2026, 4, 2)))
    return app


def _order(body: dict) -> list[tuple[int, str]]:
    return [(h["rank"], h["hospital_id"]) for h in body["hospitals"]]


async def test_ranked_by_use_given_progress_with_a_tie(deployment: Ledger, aiohttp_client):
    await _march(deployment)
    cli = await aiohttp_client(_client_app(deployment))
    body = await (await cli.get("/ledger/ranking?month=2026-03&batch=第五批")).json()
    # H4 uses most but lags, so it ranks last (GZ annex 1: use ranks once volumes are kept)
    assert _order(body) == [(1, HOSPITAL), (2, H2), (2, H3), (4, H4)]
    first, second = body["hospitals"][0], body["hospitals"][1]
    assert first["use_attainment"] == "1.1429" and first["tied"] is False  # 0.80 ÷ 0.70
    assert (second["use_attainment"], second["use_ratio_met"], second["tied"]) == (
        "1.0000", 1, True)
    assert body["hospitals"][3]["lagging"] == 1 and body["hospitals"][3]["on_schedule"] == "0.0000"


async def test_ranked_by_progress(deployment: Ledger, aiohttp_client):
    await _march(deployment)
    cli = await aiohttp_client(_client_app(deployment))
    body = await (await cli.get(
        "/ledger/ranking?month=2026-03&batch=第五批&by=progress")).json()
    # H3 received most; H1 and H2 received alike, H1's use breaks the tie
    assert _order(body) == [(1, H3), (2, HOSPITAL), (3, H2), (4, H4)]
    assert body["hospitals"][0]["progress_ratio"] == "1.3519"  # (12000/36000) ÷ (90/365)
    assert (await cli.get("/ledger/ranking?by=amount")).status == 400
    assert (await cli.get("/ledger/ranking?month=2026-13")).status == 400


async def test_every_contract_counts_without_a_filter(deployment: Ledger, aiohttp_client):
    await _march(deployment)
    cli = await aiohttp_client(_client_app(deployment))
    body = await (await cli.get("/ledger/ranking?month=2026-03")).json()
    # H1 bought none of its abiraterone: behind 序时进度 there, it falls behind H2 and H3
    assert _order(body) == [(1, H2), (1, H3), (3, H4), (4, HOSPITAL)]
    assert body["hospitals"][3]["contracts"] == 2
    by_project = await (await cli.get(
        "/ledger/ranking?month=2026-03&project=江西省药品集中带量采购")).json()
    assert by_project["hospitals"] == []


async def test_csv_and_xlsx(deployment: Ledger, aiohttp_client):
    await _march(deployment)
    cli = await aiohttp_client(_client_app(deployment))
    text = await (await cli.get("/ledger/ranking?month=2026-03&batch=第五批&format=csv")).text()
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [(r["rank"], r["hospital_id"], r["tied"]) for r in rows] == [
        ("1", HOSPITAL, "False"), ("2", H2, "True"), ("2", H3, "True"), ("4", H4, "False")]
    resp = await cli.get("/ledger/ranking?month=2026-03&batch=第五批&format=xlsx")
    ws = openpyxl.load_workbook(io.BytesIO(await resp.read()))["排名"]
    assert [c.value for c in ws[1]][:3] == ["排名", "医疗机构", "品种数"]
    values = [r for r in ws.iter_rows(min_row=2, values_only=True)]
    assert [(r[0], r[1], r[-1]) for r in values] == [
        (1, HOSPITAL, "否"), (2, H2, "是"), (2, H3, "是"), (4, H4, "否")]
    header = [c.value for c in ws[1]]
    col = header.index("使用比例/约定比例") + 1
    assert ws.cell(row=2, column=col).value == pytest.approx(1.1429)
    assert ws.cell(row=2, column=col).number_format == "0.00%"


async def test_an_identity_sees_only_its_hospitals(deployment: Ledger, aiohttp_client):
    await _march(deployment)
    district = Identity("章贡区医保分局", "procurement", frozenset({H3, H4}))
    cli = await aiohttp_client(_client_app(deployment, district))
    body = await (await cli.get("/ledger/ranking?month=2026-03&batch=第五批")).json()
    assert _order(body) == [(1, H3), (2, H4)]
    # the read roles of the other ledger reports, not the senders
    roles = allowed_roles("GET", "/ledger/ranking")
    assert {"procurement", "auditor"} <= roles and "sender" not in roles


def test_equal_figures_share_a_rank_listed_by_code():
    def s(h: str, use: str | None) -> HospitalStanding:
        return HospitalStanding(h, 1, 0, Decimal(1), Decimal(1),
                                None if use is None else Decimal(use), 1, 1)

    ranked = rank_hospitals([s("H3", "0.9"), s("H9", None), s("H1", "0.9"), s("H2", "1.1")])
    # a hospital without use figures ranks after those with them
    assert [(r, x.hospital_id) for r, x in ranked] == [(1, "H2"), (2, "H1"), (2, "H3"),
                                                       (4, "H9")]


async def test_contract_list_without_a_hospital_shows_only_the_callers_hospitals(
        deployment: Ledger, aiohttp_client):
    district = Identity("章贡区医保分局", "procurement", frozenset({H3}))
    cli = await aiohttp_client(_client_app(deployment, district))
    listed = await (await cli.get("/ledger/contracts")).json()
    assert listed and {c["contract_id"] for c in listed} == {
        c.contract_id for c in deployment.contracts(H3)}
    everyone = await aiohttp_client(_client_app(deployment))
    assert len(await (await everyone.get("/ledger/contracts")).json()) > len(listed)
