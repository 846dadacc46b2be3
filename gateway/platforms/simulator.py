"""The platform simulator: a real aiohttp server that answers like the platform.

It validates the inventory-interface envelope and the national codes, records what
it accepted, rejects a repeated ``msgid`` as a duplicate (and counts the resends),
refuses a second upload of a live batch number (a correction must delete it with
3507 first), a 3507 for an upload it does not have, a 3506 sale return whose sale
(``medins_prod_sel_no`` = the sale's ``rtal_docno``, same item) it has not accepted and a
3504 purchase return before the receipt of its item and lot — counting each as an order
violation (``/_sim/counts``) — and, with ``rate_limit_per_s``, answers calls beyond that
many within any one second with HTTP 429 "请求过于频繁" (or, with ``rate_limit_answer:
business``, with that business error; a refused call is not recorded and does not count
against the limit, so its retry goes through once there is room), reporting the most
calls that arrived in any second, refused or not (``max_per_s``). It checks ``x-tif-*``
signatures and SM4 bodies when given keys, speaks the provincial procurement platform's
dialect with tokens under ``/zc/api/``, and can be told to misbehave — latency
(``latency_jitter_s`` spreads it, drawn from the state's ``seed``), 5xx, hanging past the
client's timeout, dropped connections, malformed answers, business rejections, flapping
at a given ratio — globally or per transaction, from tests (``state.faults``), over HTTP
(``POST /_sim/faults``) and from the CLI (``jicai-gateway sim-faults``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import random
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from canonical.model import CHINA_TZ
from codes import validate as validate_code
from codes import validate_trace_code
from gateway.platforms.fields import check_body
from gateway.platforms.signing import SignatureInvalid, SigningKeys, verify_request
from gateway.platforms.zhaocai_fields import DOCUMENTS, check_document

__all__ = ["SIMULATOR_STATE", "Faults", "SimulatorState", "simulator_app", "validate_envelope"]

_MSGID = re.compile(r"^[A-Z0-9]{12}\d{14}\d{4}$")
_WRAPPER = {"3501": "invinfo", "3502": "invinfo", "3503": "purcinfo", "3504": "purcinfo",
            "3505": "selinfo", "3506": "selinfo", "3507": "data"}
_QTY = {"3501": "inv_cnt", "3502": "cnt", "3503": "purc_retn_cnt", "3504": "purc_retn_cnt",
        "3505": "sel_retn_cnt", "3506": "sel_retn_cnt"}
_REQUIRED = ("infno", "msgid", "recer_sys_code", "infver", "opter_type", "opter", "inf_time",
             "fixmedins_code", "input")


@dataclass
class Faults:
    """Misbehaviour to inject; ``*_next`` counts are used up by the calls they hit.

    Ratios draw from the simulator's seeded random generator, so a run repeats.
    ``transactions`` holds a Faults mapping per infno, applied after the global one.
    """

    fail_next: int = 0  # answer the next N calls with ``fail_status``
    fail_status: int = 503
    fail_ratio: float = 0.0  # flapping: this share of calls answer ``fail_status``
    reject_next: int = 0  # answer the next N calls with a business rejection (infcode -1)
    reject_items: list[str] = field(default_factory=list)  # hospital item ids always refused
    fail_items: list[str] = field(default_factory=list)  # hospital item ids always 500
    latency_s: float = 0.0
    latency_jitter_s: float = 0.0  # each call waits latency_s ± up to this (seeded)
    rate_limit_per_s: int = 0  # global only: more calls than this within one second refused
    rate_limit_answer: str = "http429"  # "http429" | "business" (HTTP 200, infcode -1)
    hang_s: float = 0.0  # wait this long before answering (past the client's timeout)
    hang_ratio: float = 0.0  # share of calls that hang (0 with hang_s > 0: every call)
    drop_next: int = 0  # close the connection without an answer
    drop_ratio: float = 0.0
    malformed_next: int = 0  # answer 200 with a body that is not the envelope
    malformed_ratio: float = 0.0
    down: bool = False  # every call answers 503
    expire_tokens: bool = False  # 招采: every token in use is refused once
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)

    def update(self, data: dict[str, Any]) -> None:
        """Set fields from JSON data.

        Raises:
            ValueError: an unknown field, or a bad per-transaction entry.
        """
        unknown = set(data) - set(Faults.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}")
        for k, v in data.items():
            if k == "transactions":
                for sub in v.values():
                    Faults().update(sub)  # validate
                self.transactions = {str(i): dict(sub) for i, sub in v.items()}
            elif isinstance(getattr(self, k), list):
                setattr(self, k, [str(x) for x in v])
            else:
                setattr(self, k, type(getattr(self, k))(v))


@dataclass
class SimulatorState:
    """What the simulator has received, for tests and ``/_sim`` endpoints."""

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # msgid → envelope
    order: list[str] = field(default_factory=list)
    duplicates: int = 0
    duplicate_msgids: dict[str, int] = field(default_factory=dict)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    faults: Faults = field(default_factory=Faults)
    received_at: dict[str, float] = field(default_factory=dict)
    live: dict[tuple[str, str, str], str] = field(default_factory=dict)  # upload → msgid
    deleted: list[str] = field(default_factory=list)  # msgids removed by 3507
    keys: SigningKeys | None = None  # verify x-tif-* signatures (and SM4 bodies)
    apps: dict[str, bytes] = field(default_factory=dict)  # 招采 app code → secret
    tokens: set[str] = field(default_factory=set)
    injected: dict[str, int] = field(default_factory=dict)  # fault name → times used
    seed: int = 20261123
    rng: random.Random = field(init=False, repr=False)  # seeded from ``seed``
    sub_faults: dict[str, Faults] = field(default_factory=dict)
    # check every body against the field specification, as the platform does; off
    # only for tests of something else that send deliberately partial bodies
    strict: bool = True
    # refuse what arrives out of order, as the platform does: a return before its sale,
    # a purchase return before its receipt (a delete of an unknown upload and a second
    # upload of a live batch are refused whatever this says)
    check_order: bool = True
    order_violations: dict[str, int] = field(default_factory=dict)  # kind → count
    rate_limited: int = 0
    max_per_s: int = 0  # the most inventory calls that arrived within any one second
    arrivals: deque[float] = field(default_factory=deque)  # the last second's calls
    # the last second's calls let through the rate limit (a refused call does not count:
    # a client that keeps to the limit gets the limit through, whatever it offers)
    admitted: deque[float] = field(default_factory=deque)
    # live uploads a later transaction needs: sales by (code, document, item), receipts
    # by (code, item, lot) → how many
    live_sales: dict[tuple[str, str, str], int] = field(default_factory=dict)
    live_receipts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def reset(self) -> None:
        """Forget everything received and clear faults (keys and apps stay)."""
        keys, apps, seed, strict, order = (self.keys, self.apps, self.seed, self.strict,
                                           self.check_order)
        self.__init__()  # type: ignore[misc]
        self.keys, self.apps, self.seed, self.strict, self.check_order = (
            keys, apps, seed, strict, order)
        self.rng = random.Random(seed)

    def set_faults(self, data: dict[str, Any]) -> None:
        """Replace the faults with ``data`` (JSON form); counts start afresh.

        Raises:
            ValueError: an unknown fault.
        """
        faults = Faults()
        faults.update(data)
        self.faults = faults
        self.sub_faults = {}
        for infno, sub in faults.transactions.items():
            f = Faults()
            f.update(sub)
            self.sub_faults[infno] = f

    def counts(self) -> dict[str, Any]:
        """Accepted, duplicates, rejected, calls and faults used, for tests and the CLI."""
        return {"accepted": len(self.order), "duplicates": self.duplicates,
                "rejected": len(self.rejected), "calls": self.calls,
                "deleted": len(self.deleted), "injected": dict(self.injected),
                "order_violations": sum(self.order_violations.values()),
                "order_violations_by_kind": dict(self.order_violations),
                "rate_limited": self.rate_limited, "max_per_s": self.max_per_s}

    def arrive(self, now: float) -> int:
        """Note an inventory call arriving at ``now``; how many arrived in the last second
        (this one included)."""
        window = self.arrivals
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        self.max_per_s = max(self.max_per_s, len(window))
        return len(window)

    def admit(self, now: float, limit: int) -> bool:
        """Whether a call arriving at ``now`` keeps within ``limit`` calls let through in
        the last second (0: no limit); if so it counts as let through."""
        window = self.admitted
        while window and window[0] <= now - 1.0:
            window.popleft()
        if limit and len(window) >= limit:
            return False
        window.append(now)
        return True

    def violation(self, kind: str) -> None:
        """Count a request that came out of order."""
        self.order_violations[kind] = self.order_violations.get(kind, 0) + 1


SIMULATOR_STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)


class _Drop(Exception):
    """Close the connection without answering."""


def _now_str() -> str:
    return datetime.now(CHINA_TZ).strftime("%Y%m%d%H%M%S")


def _answer(infcode: int, msgid: str, err: str = "", output: Any = None) -> web.Response:
    body = {"infcode": infcode, "inf_refmsgid": f"SIM{_now_str()}{abs(hash(msgid)) % 10**8:08d}",
            "refmsg_time": _now_str(), "respond_time": _now_str(), "err_msg": err,
            "output": output if output is not None else {}}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def validate_envelope(env: Any, strict: bool = True) -> str | None:
    """The reason an envelope is invalid, or None.

    ``strict`` also checks each body against the interface's field specification
    (mandatory fields, types, lengths, dates, flags), as the platform does.
    """
    if not isinstance(env, dict):
        return "报文不是JSON对象"
    missing = [k for k in _REQUIRED if k not in env or env[k] in (None, "")]
    if missing:
        return f"缺少必填字段: {', '.join(missing)}"
    infno = str(env["infno"])
    if infno not in _WRAPPER:
        return f"不支持的交易编号 infno={infno}"
    msgid = str(env["msgid"])
    if not _MSGID.match(msgid):
        return f"msgid格式错误(应为30位:机构编号12位+yyyyMMddHHmmss+4位流水): {msgid}"
    if msgid[:12] != env["fixmedins_code"]:
        return "msgid前12位与fixmedins_code不一致"
    try:
        datetime.strptime(str(env["inf_time"]), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return f"inf_time格式错误(yyyy-MM-dd HH:mm:ss): {env['inf_time']}"
    inp = env["input"]
    wrapper = _WRAPPER[infno]
    if not isinstance(inp, dict) or not isinstance(inp.get(wrapper), dict | list):
        return f"input缺少{wrapper}节点"
    items = inp[wrapper] if isinstance(inp[wrapper], list) else [inp[wrapper]]
    for item in items:
        if infno == "3507":
            if strict and isinstance(item, dict):
                why_field = check_body(infno, item)
                if why_field is not None:
                    return f"字段{why_field[0]}校验失败: {why_field[1]}"
            continue
        code = str(item.get("med_list_codg", ""))
        why = validate_code(code)
        if why:
            return f"医疗目录编码不是有效的国家医保编码: {code!r} ({why})"
        for trace in item.get("drugtracinfo") or ():
            why = validate_trace_code(str(trace.get("drug_trac_codg", "")), allow_long=True)
            if why:
                return f"药品追溯码无效: {why}"
        if strict:
            why_field = check_body(infno, item)
            if why_field is not None:
                return f"字段{why_field[0]}校验失败: {why_field[1]}"
        qty = item.get(_QTY[infno], "")
        try:
            if float(qty) < 0:
                return f"{_QTY[infno]}不能为负数"
        except (TypeError, ValueError):
            return f"{_QTY[infno]}不是数字: {qty!r}"
    return None


def _hit(state: SimulatorState, name: str) -> None:
    state.injected[name] = state.injected.get(name, 0) + 1


async def _misbehave(state: SimulatorState, f: Faults) -> web.StreamResponse | None:
    """Apply one Faults set; a response to send instead of the real answer, or None."""
    rng = state.rng
    if f.latency_s or f.latency_jitter_s:
        jitter = f.latency_jitter_s * (2 * rng.random() - 1) if f.latency_jitter_s else 0.0
        await asyncio.sleep(max(0.0, f.latency_s + jitter))
    if f.hang_s and (f.hang_ratio <= 0 or rng.random() < f.hang_ratio):
        _hit(state, "hang")
        await asyncio.sleep(f.hang_s)
    if f.down:
        _hit(state, "down")
        return web.Response(status=503, text="platform down")
    if f.drop_next > 0 or (f.drop_ratio and rng.random() < f.drop_ratio):
        f.drop_next = max(0, f.drop_next - 1)
        _hit(state, "drop")
        raise _Drop
    if f.fail_next > 0 or (f.fail_ratio and rng.random() < f.fail_ratio):
        f.fail_next = max(0, f.fail_next - 1)
        _hit(state, "fail")
        return web.Response(status=f.fail_status, text="injected failure")
    if f.malformed_next > 0 or (f.malformed_ratio and rng.random() < f.malformed_ratio):
        f.malformed_next = max(0, f.malformed_next - 1)
        _hit(state, "malformed")
        return web.Response(body=b"<html>502 Bad Gateway</html>", content_type="text/html")
    return None


def _items(env: dict[str, Any]) -> list[dict[str, Any]]:
    inp = env.get("input")
    if not isinstance(inp, dict):
        return []
    out: list[dict[str, Any]] = []
    for v in inp.values():
        if isinstance(v, dict):
            out.append(v)
            out.extend(x for x in v.get("lines", ()) if isinstance(x, dict))
        elif isinstance(v, list):
            out.extend(x for x in v if isinstance(x, dict))
    return out


TOO_FREQUENT = "请求过于频繁，请稍后再试"


def _rate_limited(state: SimulatorState, now: float) -> web.Response | None:
    """The platform gateway's answer to a call beyond the rate limit, or None."""
    state.arrive(now)
    if state.admit(now, state.faults.rate_limit_per_s):
        return None
    state.rate_limited += 1
    body = orjson.dumps({"infcode": -1, "msgid": "", "err_msg": TOO_FREQUENT, "output": {}})
    status = 200 if state.faults.rate_limit_answer == "business" else 429
    return web.Response(status=status, body=body, content_type="application/json")


def _item_ids(env: dict[str, Any]) -> set[str]:
    return {str(i.get("fixmedins_hilist_id") or i.get("hospitalItemId") or "")
            for i in _items(env)} - {""}


async def _guarded(request: web.Request, dialect: str) -> web.StreamResponse:
    try:
        return await _handle_any(request, dialect)
    except _Drop:
        transport = request.transport
        if transport is not None:
            transport.abort()
        return web.Response(status=500)  # never reaches the client


async def _handle(request: web.Request) -> web.StreamResponse:
    return await _guarded(request, "nhsa")


async def _handle_any(request: web.Request, dialect: str) -> web.StreamResponse:
    state = request.app[SIMULATOR_STATE]
    state.calls += 1
    if dialect == "nhsa":
        limited = _rate_limited(state, time.time())
        if limited is not None:
            return limited
    early = await _misbehave(state, state.faults)
    if early is not None:
        return early
    raw = await request.read()
    if state.keys is not None:
        try:
            raw = verify_request(state.keys, request.headers, raw, time.time())
        except SignatureInvalid as exc:
            state.rejected.append({"msgid": "", "reason": f"signature: {exc}"})
            return web.Response(status=401, text=f"签名校验失败: {exc}")
    try:
        env = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _answer(-1, "", "报文不是有效的JSON") if dialect == "nhsa" \
            else _zc_answer(9001, "报文不是有效的JSON")
    infno = str(env.get("infno", "")) if isinstance(env, dict) else ""
    sub = state.sub_faults.get(infno)
    if sub is not None:
        early = await _misbehave(state, sub)
        if early is not None:
            return early
    if dialect == "zhaocai":
        return _zhaocai(request, state, env)
    reason = validate_envelope(env, state.strict)
    msgid = str(env.get("msgid", "")) if isinstance(env, dict) else ""
    if reason:
        state.rejected.append({"msgid": msgid, "reason": reason})
        return _answer(-1, msgid, reason)
    if msgid in state.accepted:
        state.duplicates += 1
        state.duplicate_msgids[msgid] = state.duplicate_msgids.get(msgid, 0) + 1
        return _answer(-1, msgid, f"msgid重复: {msgid} 已处理")
    faults = sub or state.faults
    ids = _item_ids(env)
    if ids & set(state.faults.fail_items) or (sub and ids & set(sub.fail_items)):
        _hit(state, "fail_item")
        return web.Response(status=500, text="injected failure for this item")
    if faults.reject_next > 0 or ids & set(faults.reject_items):
        faults.reject_next = max(0, faults.reject_next - 1)
        state.rejected.append({"msgid": msgid, "reason": "injected business rejection"})
        return _answer(-1, msgid, "业务校验不通过(模拟)")
    answer = _apply_inventory(state, env, msgid)
    if answer is not None:
        return answer
    state.accepted[msgid] = env
    state.order.append(msgid)
    state.received_at[msgid] = time.time()
    return _answer(0, msgid, "", {"platform_ref": f"P{len(state.order):012d}"})


_DATA_TYPE_INFNO = {"1": ("3501",), "2": ("3502",), "3": ("3503", "3504"), "4": ("3505", "3506")}


def _refuse(state: SimulatorState, msgid: str, reason: str, violation: str) -> web.Response:
    state.rejected.append({"msgid": msgid, "reason": reason})
    state.violation(violation)
    return _answer(-1, msgid, reason)


def _sale_key(code: str, item: dict[str, Any], doc_field: str) -> tuple[str, str, str]:
    return code, str(item.get(doc_field, "")), str(item.get("fixmedins_hilist_id", ""))


def _receipt_key(code: str, item: dict[str, Any]) -> tuple[str, str, str]:
    return code, str(item.get("fixmedins_hilist_id", "")), str(item.get("manu_lotnum", ""))


def _count(counts: dict[tuple[str, str, str], int], key: tuple[str, str, str],
           by: int) -> None:
    counts[key] = counts.get(key, 0) + by
    if counts[key] <= 0:
        del counts[key]


def _apply_inventory(state: SimulatorState, env: dict[str, Any],
                     msgid: str) -> web.Response | None:
    """Keep the live uploads: a batch number goes up once until a 3507 removes it; a
    return needs its sale, a purchase return its receipt."""
    infno = str(env["infno"])
    code = str(env["fixmedins_code"])
    if infno == "3507":
        data = env["input"]["data"]
        bchno = str(data.get("fixmedins_bchno", ""))
        for candidate in _DATA_TYPE_INFNO.get(str(data.get("inv_data_type", "")), ()):
            gone = state.live.pop((code, candidate, bchno), None)
            if gone is not None:
                state.deleted.append(msgid)
                upload = state.accepted[gone]["input"]
                if candidate == "3505":
                    _count(state.live_sales, _sale_key(code, upload["selinfo"], "rtal_docno"),
                           -1)
                elif candidate == "3503":
                    _count(state.live_receipts, _receipt_key(code, upload["purcinfo"]), -1)
                return None
        return _refuse(state, msgid, f"未找到可删除的上传记录: fixmedins_bchno={bchno}",
                       "delete_unknown")
    if infno not in ("3503", "3504", "3505", "3506"):
        return None
    item = env["input"][_WRAPPER[infno]]
    key = (code, infno, str(item.get("fixmedins_bchno", "")))
    if key in state.live:
        return _refuse(state, msgid, f"批次号{key[2]}已上传, 请先调用3507删除后再上传",
                       "reupload_live")
    if state.check_order and infno == "3506" and \
            _sale_key(code, item, "medins_prod_sel_no") not in state.live_sales:
        return _refuse(state, msgid, "未找到原销售记录: medins_prod_sel_no="
                       f"{item.get('medins_prod_sel_no')}, fixmedins_hilist_id="
                       f"{item.get('fixmedins_hilist_id')}", "return_before_sale")
    if state.check_order and infno == "3504" and \
            _receipt_key(code, item) not in state.live_receipts:
        return _refuse(state, msgid, "未找到原采购入库记录: fixmedins_hilist_id="
                       f"{item.get('fixmedins_hilist_id')}, manu_lotnum="
                       f"{item.get('manu_lotnum')}", "purchase_return_before_receipt")
    state.live[key] = msgid
    if infno == "3505":
        _count(state.live_sales, _sale_key(code, item, "rtal_docno"), 1)
    elif infno == "3503":
        _count(state.live_receipts, _receipt_key(code, item), 1)
    return None


def _zc_answer(code: int, msg: str = "", data: Any = None) -> web.Response:
    return web.Response(body=orjson.dumps({"returnCode": code, "returnMsg": msg,
                                           "data": data if data is not None else {}}),
                        content_type="application/json")


def _zhaocai(request: web.Request, state: SimulatorState, env: Any) -> web.Response:
    from gateway.platforms.zhaocai import RETURN_CODES

    auth = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if auth not in state.tokens:
        return _zc_answer(RETURN_CODES["token"], "token无效或已过期")
    if state.faults.expire_tokens:
        state.tokens.clear()
        state.faults.expire_tokens = False
        _hit(state, "expire_tokens")
        return _zc_answer(RETURN_CODES["token"], "token无效或已过期")
    msgid = str(env.get("msgid", "")) if isinstance(env, dict) else ""
    data = (env.get("input") or {}).get("data") if isinstance(env, dict) else None
    if not msgid or not isinstance(data, dict) or not data.get("lines"):
        reason = "缺少msgid或input.data.lines"
        state.rejected.append({"msgid": msgid, "reason": reason})
        return _zc_answer(9002, reason)
    if msgid in state.accepted:
        state.duplicates += 1
        state.duplicate_msgids[msgid] = state.duplicate_msgids.get(msgid, 0) + 1
        return _zc_answer(RETURN_CODES["duplicate"], f"请求流水号重复: {msgid}")
    refusal = validate_document(str(env.get("infno", "")), data, state.strict)
    if refusal is not None:
        code, reason = refusal
        state.rejected.append({"msgid": msgid, "reason": reason})
        return _zc_answer(code, reason)
    if _item_ids(env) & set(state.faults.reject_items):
        state.rejected.append({"msgid": msgid, "reason": "injected business rejection"})
        return _zc_answer(3001, "业务校验不通过(模拟)")
    state.accepted[msgid] = env
    state.order.append(msgid)
    state.received_at[msgid] = time.time()
    return _zc_answer(0, "成功", {"platformRef": f"ZC{len(state.order):012d}"})


def validate_document(infno: str, data: dict[str, Any],
                      strict: bool = True) -> tuple[int, str] | None:
    """(returnCode, returnMsg) of a 招采 document the platform refuses, or None.

    ``strict`` checks the document against the transaction's field specification
    (mandatory fields, types, lengths, dates), as the platform does.
    """
    from gateway.platforms.zhaocai import RETURN_CODES

    spec = DOCUMENTS.get(infno)
    if spec is None:
        return RETURN_CODES["unknown"], f"不支持的交易: {infno!r}"
    if not strict:
        return None
    found = check_document(spec, data)
    if found is None:
        return None
    return RETURN_CODES["invalid"], f"字段{found[0]}校验失败: {found[1]}"


async def _zc_token(request: web.Request) -> web.Response:
    from gateway.platforms.zhaocai import token_sign

    state = request.app[SIMULATOR_STATE]
    body = await request.json()
    app_code, ts = str(body.get("appCode", "")), str(body.get("timestamp", ""))
    secret = state.apps.get(app_code)
    if secret is None or not hmac.compare_digest(str(body.get("sign", "")),
                                                 token_sign(app_code, ts, secret)):
        return _zc_answer(1002, "应用编码或签名错误")
    token = secrets.token_hex(16)
    state.tokens.add(token)
    return _zc_answer(0, "成功", {"accessToken": token, "expiresIn": 7200})


async def _zc_handle(request: web.Request) -> web.StreamResponse:
    return await _guarded(request, "zhaocai")


async def _received(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    infno = request.query.get("infno")
    items = [state.accepted[m] for m in state.order
             if infno is None or state.accepted[m]["infno"] == infno]
    return web.Response(body=orjson.dumps(items), content_type="application/json")


async def _stats(request: web.Request) -> web.Response:
    s = request.app[SIMULATOR_STATE]
    return web.json_response({"accepted": len(s.order), "duplicates": s.duplicates,
                              "rejected": len(s.rejected), "calls": s.calls})


async def _reset(request: web.Request) -> web.Response:
    request.app[SIMULATOR_STATE].reset()
    return web.json_response({"ok": True})


async def _faults(request: web.Request) -> web.Response:
    state = request.app[SIMULATOR_STATE]
    data = await request.json()
    try:
        if request.query.get("replace"):
            state.set_faults(data)
        else:
            state.faults.update(data)
            state.set_faults(dataclasses.asdict(state.faults))
    except (ValueError, TypeError, AttributeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(dataclasses.asdict(state.faults))


async def _counts(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIMULATOR_STATE].counts())


def simulator_app(state: SimulatorState | None = None) -> web.Application:
    """The simulator as an aiohttp application."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SIMULATOR_STATE] = state or SimulatorState()
    app.router.add_post("/fsi/api/{tail:.*}", _handle)
    app.router.add_post("/zc/api/token", _zc_token)
    app.router.add_post("/zc/api/{tail:.*}", _zc_handle)
    app.router.add_get("/_sim/counts", _counts)
    app.router.add_get("/_sim/received", _received)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_post("/_sim/reset", _reset)
    app.router.add_post("/_sim/faults", _faults)
    return app
