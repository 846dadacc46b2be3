"""Payments, reminders and closes by hand name their hospital in the body, where the
access middleware does not look: an identity limited to some hospitals may change only
their deadlines, and another hospital's are refused without being touched."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from ledger_helpers import EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.ledger import Ledger, ledger_app
from gateway.security.identity import IDENTITY, Identity

OTHER = "H36072100011"


def _app(ledger: Ledger, who: Identity) -> web.Application:
    @web.middleware
    async def authenticated(request: web.Request, handler: Any) -> web.StreamResponse:
        request[IDENTITY] = who  # as the access middleware leaves it
        return await handler(request)

    app = web.Application(middlewares=[authenticated])
    app.add_subapp("/ledger", ledger_app(ledger, clock=lambda: cst(2026, 3, 20)))
    return app


@pytest.mark.parametrize(("path", "body"), [
    ("/ledger/payments", {"payment_no": "FK20260320001", "receipts": ["RK20260302001"],
                          "paid_at": "2026-03-20T10:00:00+08:00"}),
    ("/ledger/deadlines/reminders", {"order_no": "PO20260302001",
                                     "at": "2026-03-05T10:00:00+08:00"}),
    ("/ledger/deadlines/close", {"kind": "payment", "ref": "RK20260302001",
                                 "reason": "财务线下已付款"}),
])
async def test_another_hospitals_deadline_is_refused_and_left_as_it_was(
        ledger: Ledger, aiohttp_client: Any, path: str, body: dict[str, Any]) -> None:
    for hospital in (HOSPITAL, OTHER):
        await fold(ledger, [
            event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 100, "2.1350")], at=cst(2026, 3, 2),
                  hospital=hospital, doc="RK20260302001", event_id=f"rk-{hospital}"),
            event(EventKind.PURCHASE_ORDER, [(EXEMESTANE_WIN, 100, "2.1350")],
                  at=cst(2026, 3, 2), hospital=hospital, doc="PO20260302001",
                  event_id=f"po-{hospital}")])
    who = Identity("赣州市人民医院采购科", "procurement", frozenset({HOSPITAL}))
    cli = await aiohttp_client(_app(ledger, who))

    refused = await cli.post(path, json={**body, "hospital_id": OTHER})
    assert refused.status == 403
    assert (await refused.json())["field"] == "hospital_id"
    before = {(d.kind, d.ref): d for d in await ledger.deadlines(OTHER, cst(2026, 3, 20))}
    assert all(d.closed_at is None for d in before.values())
    assert before[("order", "PO20260302001")].state == "overdue"  # not reminded either

    allowed = await cli.post(path, json={**body, "hospital_id": HOSPITAL})
    assert allowed.status == 200, await allowed.text()
