"""The ledger's HTTP API: import through the API, report as JSON and CSV."""

from __future__ import annotations

from aiohttp import web
from ledger_helpers import DATA, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import ledger_app


async def test_import_then_report(ledger, aiohttp_client):
    app = web.Application()
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: cst(2026, 7, 2)))
    cli = await aiohttp_client(app)
    bad = await cli.post("/ledger/contracts", data=b"hospital_id,project\nH1,x\n",
                         headers={"Content-Type": "text/csv"})
    assert bad.status == 400 and "row 2: missing" in (await bad.json())["problems"][0]
    ok = await cli.post("/ledger/contracts", data=(DATA / "contracts.csv").read_bytes(),
                        headers={"Content-Type": "text/csv"})
    assert (await ok.json())["imported"] == 3
    listed = await (await cli.get(f"/ledger/contracts?hospital_id={HOSPITAL}")).json()
    exemestane = next(c for c in listed if c["generic_name"] == "依西美坦片")
    assert (exemestane["dosage_form"], exemestane["agreement_year"]) == ("口服常释剂型", 1)
    assert (exemestane["year_start"], exemestane["year_end"]) == ("2026-01-01", "2026-12-31")
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 18000, "2.1350")],
                              at=cst(2026, 3, 1))])
    rep = await (await cli.get(f"/ledger/report/{HOSPITAL}")).json()
    item = next(i for i in rep["contracts"] if i["generic_name"] == "依西美坦片")
    assert item["completion"] == "0.5000" and item["lagging"] is True  # 50 % < 50.1 %
    csv_text = await (await cli.get(f"/ledger/report/{HOSPITAL}?month=2026-03&format=csv")).text()
    assert "依西美坦片" in csv_text and "18000" in csv_text
    assert (await cli.get(f"/ledger/report/{HOSPITAL}?month=2026-3x")).status == 400
    # December of year 9999 ends past the last representable day: 400, not a server error
    assert (await cli.get(f"/ledger/report/{HOSPITAL}?month=9999-12")).status == 400
    assert (await cli.get("/ledger/ranking?month=9999-12")).status == 400
