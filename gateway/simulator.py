"""The platform simulator: a real aiohttp server that answers like the platform.

It validates the inventory-interface envelope and the national codes, records what
it accepted, rejects a repeated ``msgid`` as a duplicate, and can be told to
misbehave (latency, 5xx, business rejections) from tests and the CLI.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiohttp import web

from codes import validate as validate_code
from codes import validate_trace_code

from .model import CHINA_TZ

__all__ = ["SIMULATOR_STATE", "SimulatorState", "simulator_app"]

_MSGID = re.compile(r"^[A-Z0-9]{12}\d{14}\d{4}$")
_WRAPPER = {"3501": "invinfo", "3502": "invinfo", "3503": "purcinfo", "3504": "purcinfo",
            "3505": "selinfo", "3506": "selinfo", "3507": "data"}
_QTY = {"3501": "inv_cnt", "3502": "cnt", "3503": "purc_retn_cnt", "3504": "purc_retn_cnt",
        "3505": "sel_retn_cnt", "3506": "sel_retn_cnt"}
_REQUIRED = ("infno", "msgid", "recer_sys_code", "infver", "opter_type", "opter", "inf_time",
             "fixmedins_code", "input")


@dataclass
class Faults:
    """Misbehaviour to inject; counts are decremented as calls consume them."""

    fail_next: int = 0  # answer the next N calls with ``fail_status``
    fail_status: int = 503
    reject_next: int = 0  # answer the next N calls with a business rejection (infcode -1)
    latency_s: float = 0.0
    down: bool = False  # every call answers 503


@dataclass
class SimulatorState:
    """What the simulator has received, for tests and ``/_sim`` endpoints."""

    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # msgid → envelope
    order: list[str] = field(default_factory=list)
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0
    faults: Faults = field(default_factory=Faults)
    received_at: dict[str, float] = field(default_factory=dict)

    def reset(self) -> None:
        """Forget everything received and clear faults."""
        self.__init__()  # type: ignore[misc]


SIMULATOR_STATE: web.AppKey[SimulatorState] = web.AppKey("simulator_state", SimulatorState)


def _now_str() -> str:
    return datetime.now(CHINA_TZ).strftime("%Y%m%d%H%M%S")


def _answer(infcode: int, msgid: str, err: str = "", output: Any = None) -> web.Response:
    body = {"infcode": infcode, "inf_refmsgid": f"SIM{_now_str()}{abs(hash(msgid)) % 10**8:08d}",
            "refmsg_time": _now_str(), "respond_time": _now_str(), "err_msg": err,
            "output": output if output is not None else {}}
    return web.Response(body=orjson.dumps(body), content_type="application/json")


def validate_envelope(env: Any) -> str | None:
    """The reason an envelope is invalid, or None."""
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
            continue
        code = str(item.get("med_list_codg", ""))
        why = validate_code(code)
        if why:
            return f"医疗目录编码不是有效的国家医保编码: {code!r} ({why})"
        for trace in item.get("drugtracinfo") or ():
            why = validate_trace_code(str(trace.get("drug_trac_codg", "")), allow_long=True)
            if why:
                return f"药品追溯码无效: {why}"
        qty = item.get(_QTY[infno], "")
        try:
            if float(qty) < 0:
                return f"{_QTY[infno]}不能为负数"
        except (TypeError, ValueError):
            return f"{_QTY[infno]}不是数字: {qty!r}"
    return None


async def _handle(request: web.Request) -> web.StreamResponse:
    state = request.app[SIMULATOR_STATE]
    state.calls += 1
    faults = state.faults
    if faults.latency_s:
        await asyncio.sleep(faults.latency_s)
    if faults.down:
        return web.Response(status=503, text="platform down")
    if faults.fail_next > 0:
        faults.fail_next -= 1
        return web.Response(status=faults.fail_status, text="injected failure")
    raw = await request.read()
    try:
        env = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _answer(-1, "", "报文不是有效的JSON")
    reason = validate_envelope(env)
    msgid = str(env.get("msgid", "")) if isinstance(env, dict) else ""
    if reason:
        state.rejected.append({"msgid": msgid, "reason": reason})
        return _answer(-1, msgid, reason)
    if msgid in state.accepted:
        state.duplicates += 1
        return _answer(-1, msgid, f"msgid重复: {msgid} 已处理")
    if faults.reject_next > 0:
        faults.reject_next -= 1
        state.rejected.append({"msgid": msgid, "reason": "injected business rejection"})
        return _answer(-1, msgid, "业务校验不通过(模拟)")
    state.accepted[msgid] = env
    state.order.append(msgid)
    state.received_at[msgid] = time.time()
    return _answer(0, msgid, "", {"platform_ref": f"P{len(state.order):012d}"})


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
    unknown = set(data) - set(Faults.__dataclass_fields__)
    if unknown:
        return web.json_response({"error": f"unknown fault(s): {sorted(unknown)}"}, status=400)
    for k, v in data.items():
        setattr(state.faults, k, type(getattr(state.faults, k))(v))
    return web.json_response(vars(state.faults))


def simulator_app(state: SimulatorState | None = None) -> web.Application:
    """The simulator as an aiohttp application."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[SIMULATOR_STATE] = state or SimulatorState()
    app.router.add_post("/fsi/api/{tail:.*}", _handle)
    app.router.add_get("/_sim/received", _received)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_post("/_sim/reset", _reset)
    app.router.add_post("/_sim/faults", _faults)
    return app
