"""``jicai-gateway deadlines list|pay|remind|close``: the ledger's deadlines from a shell.

The commands call a running gateway's HTTP API (``/ledger/…``), so a change made here
passes the same checks, is recorded in the audit log under the identity the token proves,
and reaches the running ledger at once.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from gateway.api_client import add_common, call_json

__all__ = ["register"]


def _call(args: argparse.Namespace, path: str, body: dict[str, Any] | None = None) -> Any:
    return call_json(args, "/ledger" + path, body)


def _given(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _list(args: argparse.Namespace) -> Any:
    rows = _call(args, f"/deadlines/{quote(args.hospital, safe='')}")
    for d in rows:
        if args.open and d["closed_at"] is not None:
            continue
        mark = " (provisional)" if d.get("provisional") else ""
        print(f"{d['kind']}\t{d['ref']}\t{d['state']}\tdue {d['due_at']}{mark}")
    return None


def _pay(args: argparse.Namespace) -> Any:
    return _call(args, "/payments", _given(
        hospital_id=args.hospital, payment_no=args.payment_no, receipts=args.receipts,
        paid_at=args.at, amount=args.amount, supplier=args.supplier))


def _remind(args: argparse.Namespace) -> Any:
    return _call(args, "/deadlines/reminders", _given(
        hospital_id=args.hospital, order_no=args.order_no, at=args.at))


def _close(args: argparse.Namespace) -> Any:
    return _call(args, "/deadlines/close", _given(
        hospital_id=args.hospital, kind=args.kind, ref=args.ref, reason=args.reason,
        at=args.at))


def _common(p: argparse.ArgumentParser) -> None:
    add_common(p, "your API token: a change is recorded under the identity it proves "
                  "(default $JCGW_API_TOKEN)")


def register(subparsers: Any) -> None:
    """Add the ``deadlines`` command to the CLI's sub-parsers."""
    d = subparsers.add_parser("deadlines", help="ledger deadlines: list, record a payment, "
                                                "a reminder, close one by hand")
    ds = d.add_subparsers(dest="deadlines_command", required=True)

    p = ds.add_parser("list", help="a hospital's deadlines and their states")
    _common(p)
    p.add_argument("hospital")
    p.add_argument("--open", action="store_true", help="only those not closed")
    p.set_defaults(action=_list)

    p = ds.add_parser("pay", help="record a payment: closes each receipt's payment deadline")
    _common(p)
    p.add_argument("hospital")
    p.add_argument("payment_no", help="付款单号")
    p.add_argument("receipts", nargs="+", help="the receipts (入库单号) it pays")
    p.add_argument("--at", help="when paid (ISO 8601; default now)")
    p.add_argument("--amount")
    p.add_argument("--supplier")
    p.set_defaults(action=_pay)

    p = ds.add_parser("remind", help="the distributor of an order was reminded")
    _common(p)
    p.add_argument("hospital")
    p.add_argument("order_no")
    p.add_argument("--at", help="when reminded (ISO 8601; default now)")
    p.set_defaults(action=_remind)

    p = ds.add_parser("close", help="close a deadline by hand, with the reason")
    _common(p)
    p.add_argument("hospital")
    p.add_argument("kind", choices=("filing", "order", "payment"))
    p.add_argument("ref", help="the document number the deadline belongs to")
    p.add_argument("--reason", required=True, help="why (kept in the audit log)")
    p.add_argument("--at", help="when it was met (ISO 8601; default now)")
    p.set_defaults(action=_close)
