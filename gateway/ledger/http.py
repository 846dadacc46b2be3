"""HTTP API of the ledger: contract import, the per-hospital report, overrides, deadlines
(read, and changed by hand: a payment recorded, a reminder, a manual close).

Mount with ``app.add_subapp("/ledger", ledger_app(ledger))``; an application whose
ledger opens with its store passes a function that returns it instead.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

import orjson
from aiohttp import web

from gateway.ledger.contract_import import ForeignHospitals, audit_fields, checked_import
from gateway.ledger.contracts import (
    Contract,
    ContractFormatError,
    RowCheck,
    read_contracts_csv,
    read_contracts_json,
    read_contracts_xlsx,
)
from gateway.ledger.ledger import Ledger
from gateway.ledger.manual import (
    InputError,
    close_input,
    deadline_json,
    payment_input,
    record_payment,
    reminder_input,
    update_one,
)
from gateway.ledger.overrides import override_report, override_report_csv
from gateway.ledger.report import build_report, report_csv
from gateway.ledger.report_http import add_report_routes, xlsx_response
from gateway.ledger.xlsx import report_xlsx
from gateway.security.audit_log import AuditFields, record, record_many
from gateway.security.identity import request_identity
from gateway.store.ledger_records import DeadlineUpdate

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


async def _body(request: web.Request) -> object:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise InputError("body", f"is not JSON: {exc}") from None


def _bad(exc: InputError) -> web.Response:
    return _json({"error": str(exc), "field": exc.field}, 400)


def _not_theirs(request: web.Request, hospital_id: str) -> web.Response | None:
    # the hospital is in the body, where the access middleware does not look
    ident = request_identity(request)
    if ident.may_act_for(hospital_id):
        return None
    return _json({"error": f"identity {ident.name!r} may not act for hospital {hospital_id}",
                  "field": "hospital_id"}, 403)


def ledger_app(ledger: LedgerRef,
               clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> web.Application:
    """Routes: ``POST /contracts`` (JSON rows, CSV or XLSX body by Content-Type),
    ``GET /contracts``, ``GET /report/{hospital_id}?month=YYYY-MM&format=csv|xlsx``,
    ``GET /deadlines/{hospital_id}``, ``POST /payments``, ``POST /deadlines/reminders``,
    ``POST /deadlines/close``, ``GET /overrides?format=csv``, and the routes of
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
            contracts, n, warnings = await checked_import(
                lg, read, clock(), request_identity(request).may_act_for)
        except ForeignHospitals as exc:
            return _json({"error": str(exc), "field": "hospital_id"}, 403)
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

    async def payment(request: web.Request) -> web.Response:
        try:
            p = payment_input(await _body(request), clock())
        except InputError as exc:
            return _bad(exc)
        if (refused := _not_theirs(request, p.hospital_id)) is not None:
            return refused
        lg = current_ledger(ledger)
        results = await record_payment(lg.tables, p)
        closed = [r for r, outcome, _ in results if outcome == "done"]
        if closed:
            await lg.catch_up()
        await record_many(request, [
            AuditFields("ledger.payment.record", target=f"payment/{receipt}",
                        hospital_id=p.hospital_id, before=deadline_json(before),
                        after={"closed_at": p.paid_at.isoformat(), "payment_no": p.payment_no},
                        detail=f"payment {p.payment_no} {p.supplier} {p.amount or ''}".strip())
            for receipt, outcome, before in results if outcome == "done"])
        answer = {"payment_no": p.payment_no, "closed": closed,
                  "already_closed": [r for r, o, _ in results if o == "closed"],
                  "unknown": [r for r, o, _ in results if o == "unknown"]}
        if not any(o != "unknown" for _, o, _ in results):
            answer["error"] = (f"no payment deadline for receipt(s) {', '.join(p.receipts)} "
                               f"of {p.hospital_id}")
            return _json(answer, 404)
        return _json(answer)

    async def by_hand(request: web.Request, update: DeadlineUpdate, action: str,
                      after: dict[str, str], detail: str, unknown: str, closed: str
                      ) -> web.Response:
        """One deadline reminded or closed: 404 unknown, 409 closed, else audited."""
        if (refused := _not_theirs(request, update.hospital_id)) is not None:
            return refused
        lg = current_ledger(ledger)
        outcome, before = await update_one(lg.tables, update)
        if outcome == "unknown":
            return _json({"error": unknown}, 404)
        if outcome == "closed":
            return _json({"error": closed}, 409)
        await lg.catch_up()
        await record(request, action, target=f"{update.kind}/{update.ref}",
                     hospital_id=update.hospital_id, before=deadline_json(before),
                     after=after, detail=detail)
        return _json({"kind": update.kind, "ref": update.ref, **after})

    async def reminder(request: web.Request) -> web.Response:
        try:
            r = reminder_input(await _body(request), clock())
        except InputError as exc:
            return _bad(exc)
        return await by_hand(
            request, DeadlineUpdate(r.hospital_id, "order", r.order_no, reminded_at=r.at),
            "ledger.order.remind", {"reminded_at": r.at.isoformat()},
            "distributor reminded; escalates 24 h after unanswered",
            f"no order {r.order_no} of {r.hospital_id}",
            f"order {r.order_no} was answered already")

    async def close(request: web.Request) -> web.Response:
        try:
            c = close_input(await _body(request), clock())
        except InputError as exc:
            return _bad(exc)
        return await by_hand(
            request, DeadlineUpdate(c.hospital_id, c.kind, c.ref, closed_at=c.at),
            "ledger.deadline.close", {"closed_at": c.at.isoformat(), "reason": c.reason},
            c.reason, f"no {c.kind} deadline {c.ref} of {c.hospital_id}",
            f"{c.kind} deadline {c.ref} is closed already")

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
    app.router.add_post("/payments", payment)
    app.router.add_post("/deadlines/reminders", reminder)
    app.router.add_post("/deadlines/close", close)
    app.router.add_get("/overrides", overrides)
    add_report_routes(app, lambda: current_ledger(ledger), clock)
    return app
