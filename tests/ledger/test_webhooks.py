"""Signed webhooks: the receiver can verify them; 5xx is retried, 4xx is final."""

from __future__ import annotations

from aiohttp import web

from gateway.webhooks import WebhookSender, WebhookTarget, sign, verify

SECRET = b"hospital-shared-secret"


async def test_signed_delivery_retried_after_5xx(aiohttp_server):
    seen: list[tuple[int, bool]] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        ok = verify(SECRET, request.headers["X-Jicai-Timestamp"], body,
                    request.headers["X-Jicai-Signature"], now=1_780_000_000)
        seen.append((len(seen), ok))
        return web.Response(status=503 if len(seen) < 3 else 204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    sender = WebhookSender([WebhookTarget(str(server.make_url("/hook")), SECRET)],
                           base_delay=0.01, clock=lambda: 1_780_000_000)
    [result] = await sender.send("cds.warning", {"rule_id": "nonwinning-while-lagging"})
    await sender.close()
    assert result.delivered and result.attempts == 3
    assert all(ok for _, ok in seen)


async def test_client_error_is_not_retried(aiohttp_server):
    calls = []

    async def hook(request: web.Request) -> web.Response:
        calls.append(1)
        return web.Response(status=400)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = await aiohttp_server(app)
    sender = WebhookSender([WebhookTarget(str(server.make_url("/hook")), SECRET)],
                           base_delay=0.01)
    [result] = await sender.send("ledger.alert", {})
    await sender.close()
    assert not result.delivered and len(calls) == 1


def test_signature_rejects_tampering_and_stale_timestamps():
    body = b'{"a":1}'
    sig = sign(SECRET, "1780000000", body)
    assert verify(SECRET, "1780000000", body, sig, now=1_780_000_100)
    assert not verify(SECRET, "1780000000", b'{"a":2}', sig, now=1_780_000_100)
    assert not verify(SECRET, "1780000000", body, sig, now=1_780_000_301)
