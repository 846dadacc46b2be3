"""``jicai-gateway messages search|show``: the message browser from a shell.

It asks a running gateway (``GET /api/messages``), so the answer is masked for the
identity the token proves, exactly as in the console.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote, urlencode

from gateway.api_client import add_common, call_json

__all__ = ["register"]


def _call(args: argparse.Namespace, path: str, query: dict[str, Any] | None = None) -> Any:
    params = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    return call_json(args, "/api/messages" + path + ("?" + urlencode(params) if params else ""))


def _line(item: dict[str, Any]) -> str:
    where = ",".join(item.get("hospitals") or []) or "-"
    what = item.get("control_id") or item.get("reason", "")
    return "\t".join([str(item["id"]), str(item.get("received_at")), item["state"], where,
                      item.get("sender") or item.get("peer") or "-", what,
                      item.get("message_type") or "-"])


def _search(args: argparse.Namespace) -> None:
    page = _call(args, "", {
        "control_id": args.control_id, "event_id": args.event_id, "sender": args.sender,
        "hospital": args.hospital, "item": args.item, "state": args.state,
        "since": args.since, "until": args.until, "limit": args.limit,
        "after_id": args.after_id})
    if args.json:
        print(json.dumps(page, ensure_ascii=False, indent=2))
        return
    for item in page["items"]:
        print(_line(item))
    window = page.get("window") or {}
    if window.get("defaulted"):
        print("(the last 24 hours only: give --since for longer)", file=sys.stderr)
    if page.get("next_after_id"):
        print(f"(more: --after-id {page['next_after_id']})", file=sys.stderr)


def _show(args: argparse.Namespace) -> None:
    print(json.dumps(_call(args, "/" + quote(args.id, safe="")), ensure_ascii=False,
                     indent=2))


def _common(p: argparse.ArgumentParser) -> None:
    add_common(p, "your API token (default $JCGW_API_TOKEN)")


def register(subparsers: Any) -> None:
    """Add the ``messages`` command to the CLI's sub-parsers."""
    m = subparsers.add_parser("messages", help="find a message and what became of it")
    ms = m.add_subparsers(dest="messages_command", required=True)

    p = ms.add_parser("search", help="messages received, newest first")
    _common(p)
    p.add_argument("--control-id", help="MSH-10, FHIR resource id or vendor message id")
    p.add_argument("--event-id")
    p.add_argument("--sender", help="the sender as stored, e.g. HIS^ZJSRMYY")
    p.add_argument("--hospital")
    p.add_argument("--item", help="hospital item code or national code")
    p.add_argument("--state", help="acknowledged, held, quarantined, delivered, "
                                   "dead_letter or pending")
    p.add_argument("--since", help="received at or after (ISO 8601; default: 24 h ago)")
    p.add_argument("--until", help="received before (ISO 8601)")
    p.add_argument("--limit", type=int)
    p.add_argument("--after-id", help="the next page after this id")
    p.add_argument("--json", action="store_true", help="the API's answer as it is")
    p.set_defaults(action=_search)

    p = ms.add_parser("show", help="one message: text, answer, events, deliveries")
    _common(p)
    p.add_argument("id", help="a message id, or q<n> for a quarantined input")
    p.set_defaults(action=_show)
