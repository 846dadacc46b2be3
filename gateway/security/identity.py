"""Who is calling: identities, their roles and the hospitals they may act for.

An identity is proved by a bearer token (the configuration holds only its SHA-256) or by
a TLS client certificate whose subject CN is configured. Identities come from
``security.identities`` and, optionally, ``security.identities_file``, which is read again
when it changes so that tokens rotate without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import ValidationError

from canonical.errors import ConfigError
from gateway.config import IdentityConfig, SecurityConfig

__all__ = ["IDENTITY", "LOCAL", "Identities", "Identity", "hash_token", "hospital_scope",
           "new_token", "peer_certificate_cn", "request_identity"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller. ``hospitals`` empty: it may act for every hospital."""

    name: str
    role: str
    hospitals: frozenset[str] = frozenset()

    def may_act_for(self, hospital_id: str) -> bool:
        """Whether this identity may send or act for ``hospital_id``."""
        return not self.hospitals or hospital_id in self.hospitals


# the caller on a gateway configured with no identities, reachable from loopback only
LOCAL = Identity("local", "admin")


# where the authentication middleware leaves the caller's identity on a request
IDENTITY: web.RequestKey[Identity] = web.RequestKey("jcgw.identity", Identity)


def request_identity(request: web.Request) -> Identity:
    """The authenticated caller of ``request`` (``LOCAL`` on a gateway with no identities,
    which only listens on loopback). Audit entries take their user from here, never from
    a header the caller writes."""
    ident: Identity = request.get(IDENTITY, LOCAL)
    return ident


def hospital_scope(ident: Identity, given: str | None) -> str | None:
    """The hospital a read covers: the one asked for, or — for an identity limited to
    hospitals — its own (the access middleware has already refused a hospital it may not
    act for).

    Raises:
        ValueError: the identity acts for several hospitals and none was named.
    """
    if given or not ident.hospitals:
        return given
    if len(ident.hospitals) == 1:
        return next(iter(ident.hospitals))
    raise ValueError(f"name a hospital (hospital=…): {ident.name!r} acts for "
                     f"{', '.join(sorted(ident.hospitals))}")


def hash_token(token: str) -> str:
    """The SHA-256 (hex) under which a token is configured."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A new random bearer token (256 bits from the operating system's CSPRNG)."""
    return "jcgw_" + secrets.token_urlsafe(32)


def peer_certificate_cn(cert: Mapping[str, Any] | None) -> str | None:
    """The subject CN of a peer certificate as ``ssl.SSLSocket.getpeercert()`` gives it."""
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def _identity(c: IdentityConfig) -> Identity:
    return Identity(c.name, c.role, frozenset(c.hospitals))


def _read_file(path: Path) -> tuple[IdentityConfig, ...]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    if isinstance(data, dict):
        data = data.get("identities", [])
    if not isinstance(data, list):
        raise ConfigError([f"{path}: expected a list of identities"])
    out, problems = [], []
    for i, item in enumerate(data):
        try:
            out.append(IdentityConfig.model_validate(item))
        except ValidationError as exc:
            problems += [f"{path}: [{i}].{'.'.join(map(str, e['loc']))}: "
                         f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors()]
    if problems:
        raise ConfigError(problems)
    return tuple(out)


class Identities:
    """The identities of one gateway, looked up by token or certificate CN."""

    def __init__(self, cfg: SecurityConfig, api_token: str | None = None, *,
                 on_reload: Callable[[frozenset[str], frozenset[str]], None] | None = None
                 ) -> None:
        # told the identity names before and after each reload of the file (the audit log)
        self.on_reload = on_reload
        self._base = cfg.identities
        self._file = cfg.identities_file
        self._file_stamp: tuple[float, int] | None = None
        # a deprecated http.api_token acts as one admin identity
        self._legacy = () if api_token is None else (IdentityConfig(
            name="api-token", role="admin", token_sha256=(hash_token(api_token),)),)
        self._by_token: dict[str, Identity] = {}
        self._by_cn: dict[str, Identity] = {}
        self._names: dict[str, Identity] = {}
        self._load(self._read_extra())

    @property
    def configured(self) -> bool:
        """Whether any identity exists (then every protected route needs one)."""
        return bool(self._names) or self._file is not None

    def _read_extra(self) -> tuple[IdentityConfig, ...]:
        if self._file is None:
            return ()
        try:
            st = os.stat(self._file)
        except OSError as exc:
            raise ConfigError([f"security.identities_file: {self._file}: cannot be read "
                               f"({exc.strerror or exc})"]) from None
        self._file_stamp = (st.st_mtime, st.st_size)
        return _read_file(self._file)

    def _load(self, extra: Iterable[IdentityConfig]) -> None:
        by_token: dict[str, Identity] = {}
        by_cn: dict[str, Identity] = {}
        names: dict[str, Identity] = {}
        problems = []
        for c in (*self._legacy, *self._base, *extra):
            ident = _identity(c)
            if c.name in names:
                problems.append(f"identity {c.name!r} is defined twice")
            names[c.name] = ident
            for h in c.token_sha256:
                if h in by_token:
                    problems.append(f"identity {c.name!r}: a token hash is also "
                                    f"{by_token[h].name!r}'s")
                by_token[h] = ident
            if c.certificate_cn is not None:
                if c.certificate_cn in by_cn:
                    other = by_cn[c.certificate_cn].name
                    problems.append(f"identity {c.name!r}: certificate_cn "
                                    f"{c.certificate_cn!r} is also {other!r}'s")
                by_cn[c.certificate_cn] = ident
        if problems:
            raise ConfigError(problems)
        self._by_token, self._by_cn, self._names = by_token, by_cn, names

    def reload_if_changed(self) -> bool:
        """Read ``identities_file`` again if it changed; a broken file keeps the identities
        in force (and is logged). Returns whether they changed."""
        if self._file is None:
            return False
        try:
            st = os.stat(self._file)
            if (st.st_mtime, st.st_size) == self._file_stamp:
                return False
            before = frozenset(self._names)
            self._load(self._read_extra())
        except (OSError, ConfigError) as exc:
            log.error("identities file %s not taken (the previous identities stay in force): "
                      "%s", self._file, exc)
            return False
        log.info("identities file %s read again: %d identities", self._file, len(self._names))
        if self.on_reload is not None:
            self.on_reload(before, frozenset(self._names))
        return True

    def by_token(self, token: str) -> Identity | None:
        """The identity a bearer token proves, or None."""
        digest = hash_token(token)
        for known, ident in self._by_token.items():
            if hmac.compare_digest(known, digest):
                return ident
        return None

    def by_certificate(self, cn: str | None) -> Identity | None:
        """The identity a verified client certificate's subject CN proves, or None."""
        return None if cn is None else self._by_cn.get(cn)

    def named(self, name: str) -> Identity | None:
        """An identity by its name."""
        return self._names.get(name)
