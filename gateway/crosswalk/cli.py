"""``jicai-gateway mappings …`` and ``jicai-gateway catalog …``: the 对码 commands.

They talk to a running gateway's HTTP API (``/api/mappings``), so a change made here
goes through the same checks and audit as one made over HTTP and takes effect in the
running process at once: held events are released as soon as their item is mapped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

__all__ = ["register"]

DEFAULT_URL = "http://127.0.0.1:8080"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class _Failed(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _call(args: argparse.Namespace, method: str, path: str, *,
          query: dict[str, Any] | None = None, body: Any = None, data: bytes | None = None,
          content_type: str = "application/json", write: bool = False) -> bytes:
    params = {k: v for k, v in (query or {}).items() if v not in (None, "", False)}
    url = args.url.rstrip("/") + "/api/mappings" + path
    if params:
        url += "?" + urlencode(params)
    headers = {}
    token = args.token or os.environ.get("JCGW_API_TOKEN", "")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    stated = str(getattr(args, "user", None) or os.environ.get("JCGW_USER", "")).strip()
    if write and stated:
        # only a note: the gateway records the identity the token proves as the author;
        # percent-encoded, as HTTP header values are Latin-1 and names are often Chinese
        headers["X-Operator"] = quote(stated, safe="")
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    if data is not None:
        headers["Content-Type"] = content_type
    req = Request(url, data=data, method=method, headers=headers)
    try:
        with urlopen(req, timeout=args.timeout) as resp:
            return bytes(resp.read())
    except HTTPError as exc:
        raw = exc.read()
        try:
            err = json.loads(raw)
            lines = [f"HTTP {exc.code}: {err.get('error', '')}"]
            lines += [f"  - {p}" for p in err.get("problems", [])]
            text = "\n".join(lines)
        except ValueError:
            text = f"HTTP {exc.code}: {raw.decode('utf-8', 'replace')}"
        if exc.code == 401:
            text += "\n(give the gateway's API token: --token or JCGW_API_TOKEN)"
        raise _Failed(1, text) from None
    except URLError as exc:
        raise _Failed(2, f"cannot reach the gateway at {args.url}: {exc.reason} "
                         "(is it running? give --url)") from None


def _show(raw: bytes) -> None:
    print(json.dumps(json.loads(raw), ensure_ascii=False, indent=2))


def _entry_fields(args: argparse.Namespace) -> dict[str, str]:
    pairs = (("national_code", "national_code"), ("item_name", "name"),
             ("hospital_unit", "hospital_unit"), ("national_unit", "national_unit"),
             ("factor", "factor"), ("valid_from", "start"), ("valid_to", "end"))
    return {field: getattr(args, attr) for field, attr in pairs
            if getattr(args, attr, None) is not None}


def _upload(path: Path) -> tuple[bytes, str]:
    """A multipart body with the file, so the gateway sees its name and type."""
    boundary = uuid.uuid4().hex
    ctype = _XLSX if path.suffix.lower() in (".xlsx", ".xlsm") else "text/csv"
    name = path.name.replace('"', "_")
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: {ctype}\r\n\r\n").encode()
    return (head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode(),
            f"multipart/form-data; boundary={boundary}")


def _run(args: argparse.Namespace) -> int:
    try:
        args.action(args)
    except _Failed as exc:
        print(exc, file=sys.stderr)
        return exc.status
    except OSError as exc:
        print(f"{exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    return 0


def _key_path(args: argparse.Namespace) -> str:
    return f"/entries/{quote(args.hospital, safe='')}/{quote(args.item, safe='')}"


# --- mappings -----------------------------------------------------------------------

def _list(args: argparse.Namespace) -> None:
    _show(_call(args, "GET", "/entries", query={
        "hospital": args.hospital, "q": args.query, "national_code": args.national_code,
        "on": args.on, "limit": args.limit}))


def _get(args: argparse.Namespace) -> None:
    _show(_call(args, "GET", _key_path(args)))


def _add(args: argparse.Namespace) -> None:
    body = {"hospital_id": args.hospital, "item_code": args.item, **_entry_fields(args),
            "note": args.note or ""}
    _show(_call(args, "POST", "/entries", body=body, write=True))


def _update(args: argparse.Namespace) -> None:
    body = {**_entry_fields(args), "note": args.note or ""}
    _show(_call(args, "PUT", _key_path(args), query={"valid_from": args.valid_from}, body=body,
                write=True))


def _delete(args: argparse.Namespace) -> None:
    _show(_call(args, "DELETE", _key_path(args), query={"valid_from": args.valid_from},
                body={"note": args.note or ""}, write=True))


def _import(args: argparse.Namespace) -> None:
    data, ctype = _upload(Path(args.file))
    _show(_call(args, "POST", "/import", query={"hospital": args.hospital, "note": args.note},
                data=data, content_type=ctype, write=True))


def _export(args: argparse.Namespace) -> None:
    target = Path(args.file)
    suffix = "xlsx" if target.suffix.lower() == ".xlsx" else "csv"
    raw = _call(args, "GET", f"/export.{suffix}", query={
        "hospital": args.hospital, "chinese": "1" if args.chinese else ""})
    target.write_bytes(raw)
    print(f"{target}: {len(raw)} bytes")


def _unmapped(args: argparse.Namespace) -> None:
    raw = _call(args, "GET", "/unmapped", query={"hospital": args.hospital, "limit": args.limit})
    if args.json:
        _show(raw)
        return
    doc = json.loads(raw)
    if doc["catalog"].get("message"):
        print(f"note: {doc['catalog']['message']}")
    for item in doc["items"]:
        print(f"{item['hospital_id']}/{item['item_code']}  {item['item_name']}  "
              f"{item['specification']}  {item['manufacturer']}  ×{item['occurrences']} "
              f"(first {item['first_seen']}, last {item['last_seen']})")
        for s in item["suggestions"]:
            conv = s.get("proposed") or {}
            extra = f"  [factor {conv['factor']}]" if conv else ""
            print(f"   {s['rank']}. {s['national_code']}  {s['score']:.2f}{extra}  "
                  f"{'; '.join(s['reasons'])}")
    if not doc["items"]:
        print("no unmapped items")


def _accept(args: argparse.Namespace) -> None:
    body: dict[str, Any] = {k: v for k, v in (
        ("rank", args.rank), ("national_code", args.national_code), ("factor", args.factor),
        ("hospital_unit", args.hospital_unit), ("national_unit", args.national_unit),
        ("valid_from", args.start), ("note", args.note)) if v is not None}
    path = f"/unmapped/{quote(args.hospital, safe='')}/{quote(args.item, safe='')}/accept"
    _show(_call(args, "POST", path, body=body, write=True))


def _audit(args: argparse.Namespace) -> None:
    _show(_call(args, "GET", "/audit", query={"hospital": args.hospital, "item": args.item,
                                              "user": args.by, "limit": args.limit}))


# --- catalogs -----------------------------------------------------------------------

def _catalog_import(args: argparse.Namespace) -> None:
    data, ctype = _upload(Path(args.file))
    raw = _call(args, "POST", "/catalogs", query={
        "version": args.version, "kind": args.kind, "replace": "1" if args.replace else ""},
        data=data, content_type=ctype)
    doc = json.loads(raw)
    print(f"{doc['kind']} catalog version {doc['version']}: {doc['summary']}")
    if doc.get("diff"):
        c = doc["diff"]["counts"]
        print(f"since {doc['diff']['from']}: {c['added']} added, {c['changed']} changed, "
              f"{c['withdrawn']} withdrawn")
    for alert in doc["withdrawn_alerts"]:
        print(f"ALERT: {alert['message']}")
    if args.json:
        _show(raw)


def _catalog_list(args: argparse.Namespace) -> None:
    _show(_call(args, "GET", "/catalogs"))


def _catalog_diff(args: argparse.Namespace) -> None:
    _show(_call(args, "GET", "/catalogs/diff", query={
        "kind": args.kind, "from": args.old, "to": args.new, "limit": args.limit}))


def _catalog_alerts(args: argparse.Namespace) -> None:
    _show(_call(args, "GET", "/alerts/withdrawn"))


def _common(p: argparse.ArgumentParser, *, write: bool = False) -> None:
    p.add_argument("--url", default=os.environ.get("JCGW_URL", DEFAULT_URL),
                   help="the running gateway's HTTP address (default %(default)s)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--token", help="your API token: the change is recorded under the "
                                   "identity it proves (default $JCGW_API_TOKEN)")
    if write:
        p.add_argument("--user", help="optional: the person at the keyboard, kept in the "
                                      "note when the token is a shared one (default "
                                      "$JCGW_USER)")
    p.set_defaults(func=_run, user=None)


def _entry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="item name (项目名称)")
    p.add_argument("--hospital-unit", help="the HIS's unit, e.g. 盒")
    p.add_argument("--national-unit", help="the national minimum pricing unit, e.g. 片")
    p.add_argument("--factor", help="national units per hospital unit, e.g. 14")
    p.add_argument("--start", help="valid from (YYYY-MM-DD)")
    p.add_argument("--end", help="valid to (YYYY-MM-DD)")
    p.add_argument("--note", help="why (kept in the audit record)")


def register(subparsers: Any) -> None:
    """Add the ``mappings`` and ``catalog`` commands to the CLI's sub-parsers."""
    m = subparsers.add_parser("mappings", help="crosswalk (对码): list, change, import, "
                                               "export, unmapped queue, accept a suggestion")
    ms = m.add_subparsers(dest="mappings_command", required=True)

    p = ms.add_parser("list", help="list or search entries")
    _common(p)
    p.add_argument("--hospital")
    p.add_argument("-q", "--query", help="part of an item code, name or national code")
    p.add_argument("--national-code")
    p.add_argument("--on", help="only entries valid on this day (YYYY-MM-DD)")
    p.add_argument("--limit", type=int, default=100)
    p.set_defaults(action=_list)

    p = ms.add_parser("show", help="one item's entries and change history")
    _common(p)
    p.add_argument("hospital")
    p.add_argument("item")
    p.set_defaults(action=_get)

    p = ms.add_parser("add", help="map a hospital item to a national code")
    _common(p, write=True)
    p.add_argument("hospital")
    p.add_argument("item")
    p.add_argument("national_code")
    _entry_options(p)
    p.set_defaults(action=_add)

    p = ms.add_parser("update", help="change an entry")
    _common(p, write=True)
    p.add_argument("hospital")
    p.add_argument("item")
    p.add_argument("--valid-from", help="which range (its start date), when there are several")
    p.add_argument("--national-code")
    _entry_options(p)
    p.set_defaults(action=_update)

    p = ms.add_parser("delete", help="remove an entry")
    _common(p, write=True)
    p.add_argument("hospital")
    p.add_argument("item")
    p.add_argument("--valid-from")
    p.add_argument("--note")
    p.set_defaults(action=_delete)

    p = ms.add_parser("import", help="import a crosswalk CSV or XLSX (all rows or none)")
    _common(p, write=True)
    p.add_argument("file")
    p.add_argument("--hospital", help="the file's hospital, when it has no hospital column")
    p.add_argument("--note")
    p.set_defaults(action=_import)

    p = ms.add_parser("export", help="export the crosswalk to FILE (.csv or .xlsx)")
    _common(p)
    p.add_argument("file")
    p.add_argument("--hospital")
    p.add_argument("--chinese", action="store_true", help="Chinese column headers")
    p.set_defaults(action=_export)

    p = ms.add_parser("unmapped", help="the unmapped queue with suggestions")
    _common(p)
    p.add_argument("--hospital")
    p.add_argument("--limit", type=int, default=5, help="suggestions per item")
    p.add_argument("--json", action="store_true")
    p.set_defaults(action=_unmapped)

    p = ms.add_parser("accept", help="accept a suggestion for a queued item")
    _common(p, write=True)
    p.add_argument("hospital")
    p.add_argument("item")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--rank", type=int, help="the suggestion's rank (1 = best)")
    g.add_argument("--code", dest="national_code", help="the suggested national code")
    p.add_argument("--factor")
    p.add_argument("--hospital-unit")
    p.add_argument("--national-unit")
    p.add_argument("--start")
    p.add_argument("--note")
    p.set_defaults(action=_accept)

    p = ms.add_parser("audit", help="who changed what and when")
    _common(p)
    p.add_argument("--hospital")
    p.add_argument("--item")
    p.add_argument("--by", help="only changes by this user")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(action=_audit)

    c = subparsers.add_parser("catalog", help="national catalogs: import, versions, diff, "
                                              "withdrawn-code alerts")
    cs = c.add_subparsers(dest="catalog_command", required=True)
    p = cs.add_parser("import", help="import a catalog CSV/XLSX as a new version")
    _common(p)
    p.add_argument("file")
    p.add_argument("--version", help="version label (default: the file name)")
    p.add_argument("--kind", choices=("drug", "consumable"))
    p.add_argument("--replace", action="store_true", help="replace a version of the same label")
    p.add_argument("--json", action="store_true", help="also print the full answer")
    p.set_defaults(action=_catalog_import)

    p = cs.add_parser("list", help="stored versions")
    _common(p)
    p.set_defaults(action=_catalog_list)

    p = cs.add_parser("diff", help="what changed between two versions")
    _common(p)
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--kind", default="drug", choices=("drug", "consumable"))
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(action=_catalog_diff)

    p = cs.add_parser("alerts", help="withdrawn codes the crosswalk still maps to")
    _common(p)
    p.set_defaults(action=_catalog_alerts)
