"""Request signing and body encryption for the platforms' gateways.

Provincial medical-insurance gateways put four headers on every call —
``x-tif-paasid``, ``x-tif-timestamp``, ``x-tif-nonce``, ``x-tif-signature`` — and
differ in how the signature is made. The gateway signs the canonical string::

    timestamp "\\n" nonce "\\n" paasid "\\n" hex(digest(body))

where body is the bytes actually sent (after encryption), with one of

* ``hmac-sha256``: base64 HMAC-SHA256 under the application secret;
* ``hmac-sm3``: hex HMAC-SM3 under the application secret (GB/T 32905);
* ``sm2``: hex SM2 signature with SM3 digest and the signer's Z value (GB/T 32918),
  under the hospital's private key, with a nonce from the OS CSPRNG; the platform
  verifies with the public key.

``digest`` is SHA-256 for ``hmac-sha256`` and SM3 otherwise. With an SM4 key the
JSON body is first encrypted (SM4-ECB, PKCS#7) and sent as
``{"encType": "SM4", "data": base64}``. SM2 and SM4 come from ``gmssl``; SM3 from
OpenSSL when it has it (same digest, ~100× faster), else from ``gmssl``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import orjson
from gmssl import func as sm_func
from gmssl import sm2, sm3, sm4

__all__ = [
    "SignatureInvalid",
    "Signer",
    "SigningKeys",
    "hmac_sm3",
    "sm2_nonce",
    "sm2_public_key",
    "sm3_digest",
    "sm4_decrypt",
    "sm4_encrypt",
    "verify_request",
]

Scheme = Literal["none", "hmac-sha256", "hmac-sm3", "sm2"]

HEADER_PAASID = "x-tif-paasid"
HEADER_TIMESTAMP = "x-tif-timestamp"
HEADER_NONCE = "x-tif-nonce"
HEADER_SIGNATURE = "x-tif-signature"


class SignatureInvalid(ValueError):
    """A request's signature, timestamp or encryption does not check out."""


def _openssl_has_sm3() -> bool:
    try:
        hashlib.new("sm3", b"")
    except ValueError:
        return False
    return True


_OPENSSL_SM3 = _openssl_has_sm3()


def sm3_digest(data: bytes) -> bytes:
    """The SM3 digest of ``data`` (32 bytes)."""
    if _OPENSSL_SM3:
        return hashlib.new("sm3", data).digest()
    return bytes.fromhex(sm3.sm3_hash(sm_func.bytes_to_list(data)))


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    """HMAC (RFC 2104) over SM3, block size 64."""
    if _OPENSSL_SM3:
        return hmac.new(key, data, "sm3").digest()
    if len(key) > 64:
        key = sm3_digest(key)
    key = key.ljust(64, b"\0")
    inner = sm3_digest(bytes(b ^ 0x36 for b in key) + data)
    return sm3_digest(bytes(b ^ 0x5C for b in key) + inner)


def _sm4_key(key_hex: str) -> bytes:
    key = bytes.fromhex(key_hex)
    if len(key) != 16:
        raise ValueError("an SM4 key is 16 bytes (32 hex digits)")
    return key


def sm4_encrypt(key_hex: str, plain: bytes) -> bytes:
    """SM4-ECB with PKCS#7 padding."""
    c = sm4.CryptSM4()
    c.set_key(_sm4_key(key_hex), sm4.SM4_ENCRYPT)
    return bytes(c.crypt_ecb(plain))


def sm4_decrypt(key_hex: str, cipher: bytes) -> bytes:
    """Inverse of :func:`sm4_encrypt`."""
    c = sm4.CryptSM4()
    c.set_key(_sm4_key(key_hex), sm4.SM4_DECRYPT)
    return bytes(c.crypt_ecb(cipher))


def sm2_public_key(private_key_hex: str) -> str:
    """The uncompressed public key (128 hex digits) of an SM2 private key."""
    signer = sm2.CryptSM2(private_key=private_key_hex, public_key="")
    return str(signer._kg(int(private_key_hex, 16), sm2.default_ecc_table["g"]))


@dataclass(frozen=True, slots=True)
class SigningKeys:
    """What one destination signs with (and what the platform verifies with)."""

    scheme: Scheme = "none"
    paasid: str = ""
    secret: bytes = b""  # HMAC key
    sm4_key: str = ""  # hex; empty: body sent in clear
    sm2_private_key: str = ""  # hex
    sm2_public_key: str = ""  # hex; the verifier's copy


def _canonical(timestamp: str, nonce: str, paasid: str, body: bytes, scheme: Scheme) -> bytes:
    digest = hashlib.sha256(body).hexdigest() if scheme == "hmac-sha256" \
        else sm3_digest(body).hex()
    return "\n".join((timestamp, nonce, paasid, digest)).encode()


_SM2_ORDER = int(sm2.default_ecc_table["n"], 16)
_SM2_HEX_DIGITS = len(sm2.default_ecc_table["n"])


def sm2_nonce() -> str:
    """A fresh SM2 nonce k in [1, n-1] from the OS CSPRNG, as gmssl's ``K`` hex.

    gmssl's own default draws k from ``random`` (Mersenne Twister): its state can be
    recovered from its outputs, and a known or repeated k gives away the private key.
    """
    return f"{secrets.randbelow(_SM2_ORDER - 1) + 1:0{_SM2_HEX_DIGITS}x}"


def _sm2_sign(keys: SigningKeys, canonical: bytes) -> str:
    public = keys.sm2_public_key or sm2_public_key(keys.sm2_private_key)
    signer = sm2.CryptSM2(private_key=keys.sm2_private_key, public_key=public)
    while True:
        # gmssl returns None for the rare k that gives r = 0, r + k = n or s = 0:
        # the standard's answer is another k.
        signature = signer.sign_with_sm3(canonical, sm2_nonce())
        if signature is not None:
            return str(signature)


def _signature(keys: SigningKeys, canonical: bytes) -> str:
    if keys.scheme == "hmac-sha256":
        return base64.b64encode(hmac.new(keys.secret, canonical, hashlib.sha256).digest()).decode()
    if keys.scheme == "hmac-sm3":
        return hmac_sm3(keys.secret, canonical).hex()
    if keys.scheme == "sm2":
        return _sm2_sign(keys, canonical)
    raise ValueError(f"no signature for scheme {keys.scheme!r}")


class Signer:
    """Signs (and if configured encrypts) request bodies for one destination."""

    def __init__(self, keys: SigningKeys) -> None:
        self.keys = keys
        if keys.scheme == "sm2" and not keys.sm2_private_key:
            raise ValueError("signing 'sm2' needs sm2_private_key")
        if keys.scheme in ("hmac-sha256", "hmac-sm3") and not keys.secret:
            raise ValueError(f"signing {keys.scheme!r} needs app_secret")
        if keys.sm4_key:
            _sm4_key(keys.sm4_key)

    def seal(self, body: bytes, now: float, nonce: str | None = None
             ) -> tuple[bytes, dict[str, str]]:
        """The bytes to send and the headers to add.

        Args:
            body: the plain request body.
            now: unix time, for the timestamp header.
            nonce: a fixed nonce (tests); random otherwise.

        Returns:
            The (possibly encrypted) body and the ``x-tif-*`` headers.
        """
        keys = self.keys
        if keys.sm4_key:
            body = orjson.dumps({"encType": "SM4",
                                 "data": base64.b64encode(sm4_encrypt(keys.sm4_key, body))
                                 .decode()})
        if keys.scheme == "none":
            return body, {}
        ts = str(int(now))
        nonce = nonce or secrets.token_hex(16)
        headers = {HEADER_PAASID: keys.paasid, HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce,
                   HEADER_SIGNATURE: _signature(
                       keys, _canonical(ts, nonce, keys.paasid, body, keys.scheme))}
        return body, headers


def verify_request(keys: SigningKeys, headers: Mapping[str, str], body: bytes, now: float,
                   max_skew_s: float = 300.0) -> bytes:
    """Check a signed request as the platform does and return the plain body.

    Raises:
        SignatureInvalid: missing header, stale timestamp, bad signature or cipher text.
    """
    if keys.scheme != "none":
        lower = {k.lower(): v for k, v in headers.items()}
        missing = [h for h in (HEADER_PAASID, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
                   if not lower.get(h)]
        if missing:
            raise SignatureInvalid(f"missing header(s): {', '.join(missing)}")
        if lower[HEADER_PAASID] != keys.paasid:
            raise SignatureInvalid(f"unknown paasid {lower[HEADER_PAASID]!r}")
        try:
            skew = abs(now - int(lower[HEADER_TIMESTAMP]))
        except ValueError:
            raise SignatureInvalid("x-tif-timestamp is not unix seconds") from None
        if skew > max_skew_s:
            raise SignatureInvalid(f"x-tif-timestamp is {skew:.0f}s away from the platform clock")
        canonical = _canonical(lower[HEADER_TIMESTAMP], lower[HEADER_NONCE], keys.paasid, body,
                               keys.scheme)
        given = lower[HEADER_SIGNATURE]
        if keys.scheme == "sm2":
            verifier = sm2.CryptSM2(private_key="", public_key=keys.sm2_public_key)
            try:
                ok = bool(verifier.verify_with_sm3(given, canonical))
            except (ValueError, TypeError):
                ok = False
        else:
            ok = hmac.compare_digest(given, _signature(keys, canonical))
        if not ok:
            raise SignatureInvalid("x-tif-signature does not match the request")
    if keys.sm4_key:
        try:
            wrapped = orjson.loads(body)
            return sm4_decrypt(keys.sm4_key, base64.b64decode(wrapped["data"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SignatureInvalid(f"body is not SM4 cipher text for this key: {exc}") from None
    return body
