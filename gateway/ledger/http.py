"""HTTP API of the ledger: contract import, the per-hospital report, overrides, deadlines.

Mount with ``app.add_subapp("/ledger", ledger_app(ledger))``; an application whose
ledger opens with its store passes a function that returns it instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

import orjson
from aiohttp import web

from gateway.ledger.contract_import import audit_fields, checked_import
from gateway.ledger.contracts import (
    Contract,
    ContractFormatError,
    RowCheck,
    read_contracts_csv,
    read_contracts_json,
    read_contracts_xlsx,
)
from gateway.ledger.ledger import Ledger
from gateway.ledger.overrides import override_report, override_report_csv
from gateway.ledger.report import build_report, report_csv
from gateway.ledger.report_http import add_report_routes, xlsx_response
from gateway.ledger.xlsx import report_xlsx
from gateway.security.audit_log import record, record_many
from gateway.security.identity import request_identity

__all__ = ["LedgerRef", "current_ledger", "ledger_app"]

# the ledger, or what returns it once it is open
LedgerRef: TypeAlias = Ledger | Callable[[], Ledger]


def current_ledger(ref: LedgerRef) -> Ledger:
    """The ledger ``ref`` names."""
    return ref if isinstance(ref, Ledger) else ref()

_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data, default=str), status=status,
                        content_type="application/json")


def ledger_app(ledger: LedgerRef,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> web.Application:
    """Routes: ``POST /contracts`` (JSON rows, CSV or XLSX body by Content-Type),
    ``GET /contracts``, ``GET /report/{hospital_id}?month=YYYY-MM&format=csv|xlsx``,
    ``GET /deadlines/{hospital_id}``, ``GET /overrides?format=csv``, and the routes of
    :func:`~gateway.ledger.report_http.add_report_routes` (ranking, 报量 worksheet)."""
    app = web.Application()

    async def import_contracts(request: web.Request) -> web.Response:
        body = await request.read()
        ctype = request.content_type

        def read(check: RowCheck) -> list[Contract]:
            if ctype == "text/csv":
                return read_contracts_csv(body.decode("utf-8-sig"), "request", check)
            if ctype == _XLSX:
                return read_contracts_xlsx(body, "request", check)
            return read_contracts_json(orjson.loads(body), "request", check)
        lg = current_ledger(ledger)
        before = {c.contract_id: c for c in lg.contracts()}
        try:
            contracts, n, warnings = await checked_import(lg, read, clock())
        except (ContractFormatError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
            problems = exc.problems if isinstance(exc, ContractFormatError) else [str(exc)]
            return _json({"error": "bad procurement results", "problems": problems}, 400)
        await record_many(request, audit_fields(contracts, before, n, warnings))
        return _json({"imported": n, "warnings": warnings})

    async def list_contracts(request: web.Request) -> web.Response:
        hospital = request.query.get("hospital_id")
        now = clock()
        out = []
        lg = current_ledger(ledger)
        # without hospital_id: only the hospitals the caller may act for
        visible = request_identity(request).may_act_for
        for c in lg.contracts(hospital):
            if not visible(c.hospital_id):
                continue
            st = lg.status(c, now)
            out.append({"contract_id": c.contract_id, "generic_name": c.generic_name,
                        "dosage_form": c.dosage_form, "agreement_year": c.year_no,
                        "year_start": c.period_start.isoformat(),
                        "year_end": c.period_end.isoformat(),
                        "completion": st.completion, "time_progress": st.time_progress,
                        "lagging": st.lagging})
        return _json(out)

    async def report(request: web.Request) -> web.Response:
        try:
            rep = await build_report(current_ledger(ledger), request.match_info["hospital_id"],
                                     clock(), request.query.get("month"))
        except ValueError as exc:
            return _json({"error": f"month must be YYYY-MM: {exc}"}, 400)
        if request.query.get("format") == "csv":
            return web.Response(text=report_csv(rep), content_type="text/csv", charset="utf-8")
        if request.query.get("format") == "xlsx":
            return xlsx_response(report_xlsx(rep), f"report-{rep['hospital_id']}-"
                                 f"{rep['period']['month'] or 'to-date'}.xlsx")
        return _json(rep)

    async def deadlines(request: web.Request) -> web.Response:
        found = await current_ledger(ledger).deadlines(request.match_info["hospital_id"], clock())
        return _json([d.to_json() for d in found])

    async def overrides(request: web.Request) -> web.Response:
        visible = request_identity(request).may_act_for
        rep = override_report((card, fb) for card, fb
                              in await current_ledger(ledger).cds.feedback_rows()
                              if visible(card.hospital_id))
        if request.query.get("format") == "csv":
            return web.Response(text=override_report_csv(rep), content_type="text/csv",
                                charset="utf-8")
        return _json(rep)

    async def poison(request: web.Request) -> web.Response:
        tables = current_ledger(ledger).tables
        return _json([{"seq": s, "reason": r, "at": datetime.fromtimestamp(a, UTC).isoformat()}
                      for s, r, a in await tables.poisoned()])

    async def refold(request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            return _json({"error": f"the body is not JSON: {exc}"}, 400)
        seqs = body.get("seqs") if isinstance(body, dict) else None
        if seqs is not None and not (isinstance(seqs, list)
                                     and all(isinstance(s, int) for s in seqs)):
            return _json({"error": "seqs must be a list of event sequence numbers"}, 400)
        n = await current_ledger(ledger).tables.refold(seqs)
        await record(request, "ledger.poison.refold", target="ledger_poison",
                     before={"seqs": seqs if seqs is not None else "all"},
                     after={"queued": n}, detail=f"{n} poison event(s) queued to be folded again")
        return _json({"queued": n})

    app.router.add_get("/poison", poison)
    app.router.add_post("/poison/refold", refold)
    app.router.add_post("/contracts", import_contracts)
    app.router.add_get("/contracts", list_contracts)
    app.router.add_get("/report/{hospital_id}", report)
    app.router.add_get("/deadlines/{hospital_id}", deadlines)
    app.router.add_get("/overrides", overrides)
    add_report_routes(app, lambda: current_ledger(ledger), clock)
    return app
