"""``jicai-gateway audit-log``: read and verify the audit log.

It asks a running gateway (``GET /api/audit-log``, ``/api/audit-log/verify``) with the
caller's token, as the ``mappings`` commands do, so reading the log is itself done as an
identity with the ``admin`` or ``auditor`` role. ``--verify --offline`` walks the chain in
the store the configuration names, for when no gateway runs (or to check one that may be
lying). Exit status 1 when the chain is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

from canonical.errors import ConfigError, StoreError
from gateway.security.audit import Verdict

__all__ = ["register"]

DEFAULT_URL = "http://127.0.0.1:8080"
_PAGE = 1000


class _Failed(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _get(args: argparse.Namespace, path: str, query: dict[str, Any] | None = None) -> Any:
    params = {k: v for k, v in (query or {}).items() if v not in (None, "")}
    url = args.url.rstrip("/") + path + ("?" + urlencode(params) if params else "")
    token = args.token or os.environ.get("JCGW_API_TOKEN", "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urlopen(Request(url, headers=headers), timeout=args.timeout) as resp:
            return json.loads(resp.read())
    except HTTPError as exc:
        text = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')}"
        if exc.code in (401, 403):
            text += "\n(give a token of an admin or auditor: --token or JCGW_API_TOKEN)"
        raise _Failed(2, text) from None
    except URLError as exc:
        raise _Failed(2, f"cannot reach the gateway at {args.url}: {exc.reason} (is it "
                         "running? give --url, or --offline with --config)") from None


def _line(e: dict[str, Any]) -> str:
    where = f" [{e['hospital_id']}]" if e.get("hospital_id") else ""
    detail = f" — {e['detail']}" if e.get("detail") else ""
    return (f"{e['id']}\t{e['at']}\t{e['identity']} ({e['role']})\t{e['action']}\t"
            f"{e['target']}{where}{detail}")


def _list(args: argparse.Namespace) -> int:
    after_id, shown = 0, 0
    query = {"identity": args.identity, "action": args.action, "hospital": args.hospital,
             "since": args.since, "until": args.until}
    while shown < args.limit:
        page = _get(args, "/api/audit-log", {**query, "after_id": after_id,
                                             "limit": min(_PAGE, args.limit - shown)})
        for e in page["entries"]:
            print(json.dumps(e, ensure_ascii=False) if args.json else _line(e))
        shown += len(page["entries"])
        if page["next_after_id"] is None:
            break
        after_id = page["next_after_id"]
    print(f"{shown} entr{'y' if shown == 1 else 'ies'}", file=sys.stderr)
    return 0


def _report(verdict: dict[str, Any]) -> int:
    if verdict["ok"]:
        print(f"audit log intact: {verdict['entries']} entries, head {verdict['head']}")
        return 0
    print(f"audit log BROKEN at entry {verdict['broken_at']}: {verdict['reason']} "
          f"({verdict['entries']} entries read)", file=sys.stderr)
    return 1


async def _verify_store(config: str) -> Verdict:
    from gateway.app import make_store
    from gateway.config import load_config
    from gateway.security.audit_log import verify_chain

    store = make_store(load_config(config))
    await store.start()
    try:
        return await verify_chain(store.audit_log)
    finally:
        await store.close()


def _run(args: argparse.Namespace) -> int:
    try:
        if args.offline:
            if not args.verify:
                raise _Failed(2, "--offline only verifies: add --verify")
            return _report(asyncio.run(_verify_store(args.config)).to_dict())
        if args.verify:
            return _report(_get(args, "/api/audit-log/verify"))
        return _list(args)
    except _Failed as exc:
        print(exc, file=sys.stderr)
        return exc.status
    except (ConfigError, StoreError) as exc:
        print(exc, file=sys.stderr)
        return 2


def register(subparsers: Any) -> None:
    """Add the ``audit-log`` command to the CLI's sub-parsers."""
    p = subparsers.add_parser("audit-log", help="who changed what; --verify checks the "
                                                "hash chain (exit status 1 when broken)")
    p.add_argument("--url", default=os.environ.get("JCGW_URL", DEFAULT_URL),
                   help="the running gateway's HTTP address (default %(default)s)")
    p.add_argument("--token", help="an admin's or auditor's API token "
                                   "(default $JCGW_API_TOKEN)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--since", help="from this time (ISO 8601, China time without offset)")
    p.add_argument("--until", help="before this time")
    p.add_argument("--identity", help="only this identity's entries")
    p.add_argument("--action", help="only this action, or a family ending in '.' "
                                    "(crosswalk.)")
    p.add_argument("--hospital", help="定点医药机构编号")
    p.add_argument("--limit", type=int, default=1000, help="entries to show at most")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--verify", action="store_true", help="walk the whole chain")
    p.add_argument("--offline", action="store_true",
                   help="with --verify: read the store the configuration names, no gateway")
    p.add_argument("-c", "--config", default="config/gateway.yaml")
    p.set_defaults(func=_run)
