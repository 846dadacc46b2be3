"""HTTP routes of the ledger's reports beyond the per-hospital one: the ranking of the
deployment's hospitals and the 报量 worksheet (``ledger_app`` mounts them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

import orjson
from aiohttp import web

from gateway.ledger.demand import agreement_year, build_demand, demand_xlsx
from gateway.ledger.ledger import Ledger
from gateway.ledger.ranking import RANK_BY, build_ranking, ranking_csv, ranking_xlsx
from gateway.security.identity import request_identity

__all__ = ["XLSX", "add_report_routes", "xlsx_response"]

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status,
                        content_type="application/json")


def _safe_filename(filename: str) -> str:
    # the name carries a hospital id from the URL: nothing of it may reach the header
    # but letters, digits and - _ . (no quote, control character or path)
    return re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "report.xlsx"


def xlsx_response(body: bytes, filename: str) -> web.Response:
    """A workbook to download as ``filename`` (characters outside A–Z, 0–9, ``-_.``
    replaced by ``_``)."""
    return web.Response(body=body, content_type=XLSX, headers={
        "Content-Disposition": f'attachment; filename="{_safe_filename(filename)}"'})


def add_report_routes(app: web.Application, ledger: Callable[[], Ledger],
                      clock: Callable[[], datetime]) -> None:
    """``GET /ranking?month=YYYY-MM&project=&batch=&by=use|progress&format=csv|xlsx`` and
    ``GET /demand/{hospital_id}?year=YYYY&format=xlsx``."""

    async def ranking(request: web.Request) -> web.Response:
        q = request.query
        by = q.get("by", "use")
        if by not in RANK_BY:
            return _json({"error": f"by must be one of {', '.join(RANK_BY)}"}, 400)
        ident = request_identity(request)
        try:
            rep = await build_ranking(ledger(), clock(), q.get("month"),
                                      visible=ident.may_act_for, project=q.get("project"),
                                      batch=q.get("batch"), by=by)
        except ValueError as exc:
            return _json({"error": f"month must be YYYY-MM: {exc}"}, 400)
        fmt = q.get("format")
        if fmt == "csv":
            return web.Response(text=ranking_csv(rep["hospitals"]), content_type="text/csv",
                                charset="utf-8")
        if fmt == "xlsx":
            return xlsx_response(ranking_xlsx(rep["hospitals"]),
                                 f"ranking-{rep['month'] or 'to-date'}.xlsx")
        return _json(rep)

    async def demand(request: web.Request) -> web.Response:
        hospital = request.match_info["hospital_id"]
        year = agreement_year(request.query.get("year", ""))
        if year is None:
            return _json({"error": "year must be YYYY (2000 or later)"}, 400)
        sheet = await build_demand(ledger(), hospital, year)
        if request.query.get("format") == "xlsx":
            return xlsx_response(demand_xlsx(sheet), f"demand-{hospital}-{year}.xlsx")
        return _json(sheet)

    app.router.add_get("/ranking", ranking)
    app.router.add_get("/demand/{hospital_id}", demand)
