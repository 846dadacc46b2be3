"""JWT bearer authentication of CDS clients (CDS Hooks 2.0.1 "Trusting CDS Clients").

The client signs a short-lived JWT with its private key (ES384 or RS384; the
specification names these two), header ``kid`` naming the key. The service keeps an
allow-list of issuers with their public keys — a JWK set configured as a file, or the one
URL the client publishes it at on the hospital network (``jwks.py``; a token's ``jku``
must be that URL, nothing else is fetched) — checks ``aud`` against the URL that was
called and bounds ``exp`` to five minutes. Checking here is pure; refusing a ``jti`` seen
before is the caller's next step (:func:`refuse_replay` with the store's claim, which
every replica sharing the store sees).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

from canonical.errors import GatewayError

__all__ = ["AuthError", "ClaimJti", "TrustedClient", "Verified", "bearer_token", "refuse_replay",
           "verify_bearer"]

ALGORITHMS = ("ES384", "RS384")


class AuthError(GatewayError, PermissionError):
    """The bearer token is missing or not acceptable (HTTP 401)."""


@dataclass(frozen=True, slots=True)
class TrustedClient:
    """One allowed issuer: its JWK set and which hospitals it may speak for."""

    iss: str
    jwks: Mapping[str, Any]  # {"keys": [...]}; empty when the keys come from jwks_url
    hospital_id: str = ""  # used when the token has no tenant claim
    hospitals: frozenset[str] = frozenset()  # allowed tenants (empty: only hospital_id)
    jwks_url: str = ""  # where the keys are fetched from, the only jku accepted
    # base URLs of the FHIR servers the service may fetch a missing prefetch from, with the
    # fhirAuthorization the client sends; any other fhirServer is never contacted
    fhir_servers: tuple[str, ...] = ()
    _keys: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _loaded: list[Mapping[str, Any]] = field(default_factory=list, compare=False, repr=False)

    def use(self, jwks: Mapping[str, Any]) -> None:
        """Verify with this key set from now on (keys fetched from ``jwks_url``)."""
        if self._loaded and self._loaded[0] is jwks:
            return
        keys = {k.key_id or "": k.key for k in jwt.PyJWKSet.from_dict(dict(jwks)).keys}
        self._keys.clear()
        self._keys.update(keys)
        self._loaded[:] = [jwks]

    def key(self, kid: str | None) -> Any:
        """The public key for ``kid`` (the only key when the set has one and no kid)."""
        if not self._keys and self.jwks.get("keys"):
            self.use(self.jwks)
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise AuthError(f"unknown key id {kid!r} for issuer {self.iss!r}")
        return found


# records (iss, jti, exp, now); False when the id was used before (the store's claim_jti)
ClaimJti = Callable[[str, str, float, float], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Verified:
    """A verified client call."""

    iss: str
    hospital_id: str
    claims: Mapping[str, Any]
    checked_at: float  # the time the token was checked against (seconds since the epoch)

    @property
    def jti(self) -> str:
        """The token id."""
        return str(self.claims["jti"])

    @property
    def exp(self) -> float:
        """When the token expires."""
        return float(self.claims["exp"])


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, None for any other; the
    scheme is case-insensitive (RFC 9110 §11.1)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def verify_bearer(header: str | None, *, audience: str,
                  clients: Mapping[str, TrustedClient],
                  now: float | None = None, leeway: float = 30,
                  max_lifetime: float = 300,
                  algorithms: Sequence[str] = ALGORITHMS) -> Verified:
    """Check an ``Authorization: Bearer <jwt>`` header.

    Args:
        header: the Authorization header value.
        audience: the URL of the endpoint called (the ``aud`` the token must carry).
        clients: trusted issuers by ``iss``.
        now: the time (seconds since the epoch); the clock when None.
        leeway: clock skew allowed, seconds.
        max_lifetime: the longest ``exp`` accepted from now, seconds (5 minutes).

    Returns:
        The issuer, the hospital the call is for, and the claims; the token id is not
        claimed yet (:func:`refuse_replay`).

    Raises:
        AuthError: with the reason.
    """
    token = bearer_token(header)
    if token is None:
        raise AuthError("missing Authorization: Bearer token")
    try:
        unverified = jwt.get_unverified_header(token)
        claims_unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthError(f"malformed token: {exc}") from exc
    alg = unverified.get("alg")
    if alg not in algorithms:
        raise AuthError(f"algorithm {alg!r} not accepted (use {', '.join(algorithms)})")
    iss = claims_unverified.get("iss")
    client = clients.get(iss) if isinstance(iss, str) else None
    if client is None:
        raise AuthError(f"issuer {iss!r} is not on the allow-list")
    t = time.time() if now is None else now
    try:
        claims: dict[str, Any] = jwt.decode(
            token, client.key(unverified.get("kid")), algorithms=list(algorithms),
            audience=audience, issuer=client.iss, leeway=leeway,
            options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_iat": False},
        ) if now is None else _decode_at(token, client, audience, leeway, algorithms, t)
    except jwt.PyJWTError as exc:
        raise AuthError(f"token rejected: {exc}") from exc
    if float(claims["exp"]) > t + max_lifetime + leeway:
        raise AuthError("token lifetime exceeds 5 minutes")
    tenant = claims.get("tenant")
    if tenant:
        allowed = client.hospitals or frozenset({client.hospital_id})
        if tenant not in allowed:
            raise AuthError(f"issuer {client.iss!r} may not act for tenant {tenant!r}")
        hospital = str(tenant)
    else:
        hospital = client.hospital_id
    if not hospital:
        raise AuthError("no tenant claim and no hospital configured for the issuer")
    return Verified(client.iss, hospital, claims, t)


async def refuse_replay(verified: Verified, claim: ClaimJti) -> Verified:
    """Claim the token's id; a token whose id was used before is refused.

    Raises:
        AuthError: the id was used before.
    """
    if not await claim(verified.iss, verified.jti, verified.exp, verified.checked_at):
        raise AuthError("token id (jti) already used")
    return verified


def _decode_at(token: str, client: TrustedClient, audience: str, leeway: float,
               algorithms: Sequence[str], t: float) -> dict[str, Any]:
    # pyjwt checks exp against the clock; with a given time, check it here instead
    claims: dict[str, Any] = jwt.decode(
        token, client.key(jwt.get_unverified_header(token).get("kid")),
        algorithms=list(algorithms), audience=audience, issuer=client.iss,
        options={"require": ["iss", "aud", "exp", "iat", "jti"], "verify_exp": False,
                 "verify_iat": False})
    if float(claims["exp"]) + leeway < t:
        raise jwt.ExpiredSignatureError("Signature has expired")
    return claims
