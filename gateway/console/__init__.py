"""The web console for pharmacists and procurement staff, served under ``/console``.

The pages and their scripts are static files and hold no data: every datum comes from the
JSON API with the bearer token the user pastes at login (kept in ``sessionStorage``, never
in a cookie, so the API has no cross-site request surface). The access policy makes
``GET /console…`` public and ``GET /api/whoami`` open to every role.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.keys import CONFIG
from gateway.security.identity import request_identity

__all__ = ["STATIC", "add_console_routes", "whoami"]

STATIC = Path(__file__).resolve().parent / "static"

# the console loads nothing from elsewhere and is never framed; data reaches the DOM as text
_PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


async def whoami(request: web.Request) -> web.Response:
    """GET /api/whoami: the caller as the access middleware authenticated it, and the
    configured hospitals it may act for (for the console's hospital pickers)."""
    ident = request_identity(request)
    hospitals = request.config_dict[CONFIG].hospitals
    return web.json_response({
        "name": ident.name, "role": ident.role, "hospitals": sorted(ident.hospitals),
        "known_hospitals": [{"code": h.code, "name": h.name} for h in hospitals
                            if ident.may_act_for(h.code)],
    })


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)


def add_console_routes(app: web.Application) -> None:
    """Mount the console's page, its assets and ``GET /api/whoami`` on the gateway."""
    app.router.add_get("/console", _index)
    app.router.add_get("/console/", _index)
    app.router.add_static("/console/static", STATIC, append_version=False)
    app.router.add_get("/api/whoami", whoami)
