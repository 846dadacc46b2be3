"""HTTP API of the ledger: contract import, the per-hospital report, overrides, deadlines.

Mount with ``app.add_subapp("/ledger", ledger_app(ledger))``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from aiohttp import web

from gateway.ledger.contracts import (
    ContractFormatError,
    read_contracts_csv,
    read_contracts_json,
    read_contracts_xlsx,
)
from gateway.ledger.ledger import Ledger
from gateway.ledger.overrides import override_report, override_report_csv
from gateway.ledger.report import build_report, report_csv

__all__ = ["ledger_app"]

_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status,
                        content_type="application/json")


def ledger_app(ledger: Ledger,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> web.Application:
    """Routes: ``POST /contracts`` (JSON rows, CSV or XLSX body by Content-Type),
    ``GET /contracts``, ``GET /report/{hospital_id}?month=YYYY-MM&format=csv``,
    ``GET /deadlines/{hospital_id}``, ``GET /overrides?format=csv``."""
    app = web.Application()

    async def import_contracts(request: web.Request) -> web.Response:
        body = await request.read()
        ctype = request.content_type
        try:
            if ctype == "text/csv":
                contracts = read_contracts_csv(body.decode("utf-8-sig"), "request")
            elif ctype == _XLSX:
                contracts = read_contracts_xlsx(body, "request")
            else:
                contracts = read_contracts_json(orjson.loads(body), "request")
        except (ContractFormatError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            problems = getattr(exc, "problems", [str(exc)])
            return _json({"error": "bad procurement results", "problems": problems}, 400)
        n = ledger.load_contracts(contracts, clock())
        return _json({"imported": n})

    async def list_contracts(request: web.Request) -> web.Response:
        hospital = request.query.get("hospital_id")
        now = clock()
        out = []
        for c in ledger.contracts(hospital):
            st = ledger.status(c, now)
            out.append({"contract_id": c.contract_id, "generic_name": c.generic_name,
                        "completion": st.completion, "time_progress": st.time_progress,
                        "lagging": st.lagging})
        return _json(out)

    async def report(request: web.Request) -> web.Response:
        try:
            rep = build_report(ledger, request.match_info["hospital_id"], clock(),
                               request.query.get("month"))
        except ValueError as exc:
            return _json({"error": f"month must be YYYY-MM: {exc}"}, 400)
        if request.query.get("format") == "csv":
            return web.Response(text=report_csv(rep), content_type="text/csv", charset="utf-8")
        return _json(rep)

    async def deadlines(request: web.Request) -> web.Response:
        return _json([d.to_json() for d in ledger.deadlines(request.match_info["hospital_id"],
                                                           clock())])

    async def overrides(request: web.Request) -> web.Response:
        rep = override_report(ledger.store)
        if request.query.get("format") == "csv":
            return web.Response(text=override_report_csv(rep), content_type="text/csv",
                                charset="utf-8")
        return _json(rep)

    app.router.add_post("/contracts", import_contracts)
    app.router.add_get("/contracts", list_contracts)
    app.router.add_get("/report/{hospital_id}", report)
    app.router.add_get("/deadlines/{hospital_id}", deadlines)
    app.router.add_get("/overrides", overrides)
    return app
