"""Bounds on what one HTTP request may take: its body must arrive within
``http.read_timeout_s`` and stay within ``http.max_body_bytes`` — streamed uploads
included, which are counted as they arrive (:func:`bounded_chunks`).

A body is read in full before the handler runs (handlers read it anyway), so that a
sender trickling bytes holds a connection for the timeout at most, not for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

__all__ = ["STREAMED_UPLOADS", "body_deadline", "bounded_chunks"]

log = logging.getLogger(__name__)

# routes whose handlers stream the body to disk instead of reading it into memory
STREAMED_UPLOADS = frozenset({"/api/mappings/import", "/api/mappings/catalogs"})


def _too_large(limit: int) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=limit + 1,
        text=f"request body exceeds http.max_body_bytes ({limit} bytes)")


def _too_slow(timeout: float) -> web.HTTPRequestTimeout:
    return web.HTTPRequestTimeout(
        text=f"request body not received within http.read_timeout_s ({timeout:g} s)")


async def bounded_chunks(chunks: AsyncIterator[bytes], *, limit: int,
                         timeout: float) -> AsyncIterator[bytes]:
    """``chunks`` while their total stays within ``limit`` bytes and they all arrive
    within ``timeout`` seconds; raises 413 / 408 otherwise."""
    total, deadline = 0, time.monotonic() + timeout
    iterator = aiter(chunks)
    while True:
        left = deadline - time.monotonic()
        try:
            chunk = await asyncio.wait_for(anext(iterator), max(left, 0.001))
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _too_slow(timeout) from None
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        yield chunk


async def _answer_and_close(request: web.Request, status: int, text: str) -> web.StreamResponse:
    # the connection closes after the answer instead of reading the rest of a body
    # nobody will use (aiohttp would otherwise linger for it, 10 s by default)
    resp = web.json_response({"error": text}, status=status, headers={"Connection": "close"})
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    if request.protocol is not None:
        request.protocol.force_close()
    return resp


def body_deadline(timeout: float) -> Middleware:
    """The middleware that reads each request's body within ``timeout`` seconds."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        resource = request.match_info.route.resource
        streamed = resource is not None and resource.canonical in STREAMED_UPLOADS
        if request.body_exists and not streamed:
            try:
                await asyncio.wait_for(request.read(), timeout)
            except TimeoutError:
                log.warning("HTTP %s %s from %s: body not received within %g s", request.method,
                            request.path, request.remote, timeout)
                return await _answer_and_close(request, 408, str(_too_slow(timeout).text))
            except web.HTTPRequestEntityTooLarge:
                limit = request.client_max_size
                log.warning("refused a body over %d bytes from %s for %s (%s bytes announced)",
                            limit, request.remote, request.path, request.content_length)
                return await _answer_and_close(request, 413, str(_too_large(limit).text))
        if not streamed:
            return await handler(request)
        try:
            return await handler(request)
        except (web.HTTPRequestTimeout, web.HTTPRequestEntityTooLarge) as exc:
            log.warning("HTTP %s %s from %s refused: %s", request.method, request.path,
                        request.remote, exc.text)
            return await _answer_and_close(request, exc.status, str(exc.text or exc.reason))

    return deadline
