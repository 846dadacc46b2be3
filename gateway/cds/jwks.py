"""A CDS client's public keys read from its JWKS URL, cached, refreshed on rotation.

CDS Hooks lets a client name its key set in the JWT header (``jku``); a service must
only follow URLs it was told to trust. Here the trust is configuration: a client has
either a JWKS file or one ``jwks_url`` (normally on the hospital network), and a
token's ``jku``, when present, must be exactly that URL. Keys are fetched on first
use, kept for ``ttl_s`` and fetched again early when a token names a key id the set
does not have (the client rotated its key) — at most once per ``min_refetch_s``, so
tokens with made-up key ids cannot turn the gateway into a request loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
import jwt

from gateway.cds.auth import AuthError

__all__ = ["RemoteJwks"]

log = logging.getLogger(__name__)


class RemoteJwks:
    """The key set behind one JWKS URL."""

    def __init__(self, url: str, *, ttl_s: float = 3600.0, min_refetch_s: float = 30.0,
                 timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.ttl_s = ttl_s
        self.min_refetch_s = min_refetch_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.jwks: dict[str, Any] | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()  # one fetch at a time; the others wait and reuse it

    async def keys(self, session: aiohttp.ClientSession, kid: str | None) -> Mapping[str, Any]:
        """The key set to verify a token whose header names ``kid``.

        Raises:
            AuthError: the set was never fetched and cannot be now.
        """
        cached = self._cached(kid)
        if cached is not None:
            return cached
        async with self._lock:
            cached = self._cached(kid)  # fetched while this request waited
            if cached is not None:
                return cached
            now = self.clock()
            if self.jwks is None and now - self._failed_at < self.min_refetch_s:
                # it failed moments ago: do not ask again yet
                raise AuthError("the issuer's key set is unavailable")
            self._fetched_at = now  # also for a failed refresh: no retry storm
            try:
                jwks = await self._fetch(session)
            except AuthError as exc:
                log.warning("key set %s: %s", self.url, exc)
                if self.jwks is None:
                    self._failed_at = now
                    raise AuthError("the issuer's key set is unavailable") from None
                return self.jwks  # keep the keys we had
            self.jwks = jwks
            self._kids = frozenset(str(k.get("kid", "")) for k in jwks["keys"])
            return jwks

    def _cached(self, kid: str | None) -> Mapping[str, Any] | None:
        if self.jwks is None:
            return None
        age = self.clock() - self._fetched_at
        known = kid is None or kid in self._kids
        if (known and age < self.ttl_s) or age < self.min_refetch_s:
            return self.jwks
        return None

    async def _fetch(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        try:
            # no redirects: the configured URL is the only one ever fetched
            async with session.get(self.url, allow_redirects=False,
                                   timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                if resp.status != 200:
                    raise AuthError(f"answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuthError(f"cannot fetch it: {exc!r}") from None
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
            raise AuthError("not a JWK set with keys")
        try:
            jwt.PyJWKSet.from_dict({"keys": keys})
        except jwt.PyJWTError as exc:  # e.g. only key types pyjwt cannot use
            raise AuthError(f"no usable key: {exc}") from None
        return {"keys": keys}
