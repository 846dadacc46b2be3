"""The CDS service tells the gateway of every card it issues and every answer it records,
by rule (the gateway counts them as jcgw_warnings_fired_total / jcgw_warning_feedback_total)."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from ledger_helpers import DATA, EXEMESTANE_WIN, HOSPITAL, cst, event, fold

from canonical.model import EventKind
from gateway.cds import CdsSettings, cds_app

REQUEST = orjson.loads((DATA / "order_sign_request.json").read_bytes())


async def _no_fetch(server: str, query: str, auth: Any) -> Any:
    raise LookupError(f"{server}/{query} unreachable")


async def test_cards_and_feedback_are_reported_by_rule(ledger, aiohttp_client) -> None:
    cards_seen: list[str] = []
    answers: list[tuple[str, str]] = []
    settings = CdsSettings(require_auth=False, default_hospital_id=HOSPITAL,
                           clock=lambda: cst(2026, 7, 2, 10), on_card=cards_seen.append,
                           on_feedback=lambda rule, outcome: answers.append((rule, outcome)))
    app = web.Application()
    app.add_subapp("/cds-services", cds_app(ledger, settings, fetch=_no_fetch))
    # lagging on 2026-07-02: the non-winning order gets a card
    await fold(ledger, [event(EventKind.RECEIPT, [(EXEMESTANE_WIN, 10000, "2.1350")],
                              at=cst(2026, 3, 1))])
    client = await aiohttp_client(app)
    resp = await client.post("/cds-services/jicai-order-sign", data=orjson.dumps(REQUEST))
    assert resp.status == 200, await resp.text()
    cards = (await resp.json())["cards"]
    assert cards and sorted(cards_seen) == sorted(
        c["source"]["topic"]["code"] for c in cards)
    fb = {"feedback": [{"card": cards[0]["uuid"], "outcome": "overridden"},
                       {"card": "no-such-card", "outcome": "accepted"}]}
    resp = await client.post("/cds-services/jicai-order-sign/feedback", data=orjson.dumps(fb))
    assert resp.status == 200, await resp.text()
    # the unknown card is not counted: nothing was recorded for it
    assert answers == [(cards[0]["source"]["topic"]["code"], "overridden")]
