"""Who an MLLP listener lets in: source addresses, connection caps, client certificates.

One :class:`Door` per listener counts its open connections (in total and per source
address), refuses beyond ``allow_from`` and the caps at once, maps a verified client
certificate to an identity, and runs the listener's one periodic sweep that closes idle
connections and frames that take too long. Refusals are counted by reason and logged at
most once a minute per source and reason, so a flood of connections cannot flood the log.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
from typing import Protocol

from canonical.errors import ConfigError
from gateway.config import ListenerConfig
from gateway.metrics import Metrics
from gateway.security.identity import Identities, Identity, peer_certificate_cn
from gateway.security.tls import server_context

__all__ = ["REFUSALS", "SENDER_ROLES", "Door", "Guarded", "source_address"]

log = logging.getLogger(__name__)

# the reasons a connection is refused or cut off (the metrics' label values: a fixed set)
REFUSALS = ("not_allowed", "max_connections", "max_per_source", "tls_handshake",
            "unknown_certificate", "role", "idle", "frame_deadline")
SENDER_ROLES = frozenset({"sender", "admin"})
LOG_EVERY_S = 60.0
_LOG_KEYS_MAX = 4096  # remembered for the log throttle; beyond, refusals are counted only

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Guarded(Protocol):
    """A connection as the door's sweep and a shutdown see it."""

    def check_timers(self, now: float, idle_s: float, frame_s: float) -> str | None:
        """Close the connection if a timer ran out; return which one ("idle", …)."""
        ...

    def drain(self) -> None:
        """Shutting down: read no more, close once every answer owed is written."""
        ...

    def abort(self) -> None:
        """Close at once, whatever is still owed."""
        ...


def _networks(listener: ListenerConfig) -> tuple[Network, ...]:
    nets, problems = [], []
    for entry in listener.allow_from:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            problems.append(f"listeners[{listener.name}].allow_from: {entry!r} is not an "
                            "address or network (e.g. 10.20.1.15, 10.20.8.0/24, fd00::/8)")
    if problems:
        raise ConfigError(problems)
    return tuple(nets)


def source_address(peername: object) -> str:
    """The peer's address without port or IPv6 zone; an IPv4 client seen through a
    dual-stack socket (``::ffff:a.b.c.d``) as its IPv4 address."""
    host = peername[0] if isinstance(peername, tuple) and peername else str(peername)
    try:
        addr: Address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return str(host)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return str(addr)


class Door:
    """Admission and timers of one MLLP listener."""

    def __init__(self, listener: ListenerConfig, *, metrics: Metrics | None = None,
                 identities: Identities | None = None) -> None:
        self.listener = listener
        self.name = listener.name
        self.networks = _networks(listener)
        self.ssl: ssl.SSLContext | None = (None if listener.tls is None
                                           else server_context(listener.tls))
        self.mutual = listener.tls is not None and listener.tls.client_ca_file is not None
        self.identities = identities
        self.metrics = metrics
        self.open: set[Guarded] = set()
        self.per_source: dict[str, int] = {}
        self._logged: dict[str, float] = {}  # "source reason" → when it was last logged
        # oversize frames are read back from disk to be quarantined one at a time
        self.one_big_frame = asyncio.Lock()
        if metrics is not None:  # every reason exported from the start, at 0
            for reason in REFUSALS:
                metrics.mllp_refused.labels(self.name, reason)
            self._gauge()

    # --- admission -----------------------------------------------------------------------

    def allowed(self, source: str) -> bool:
        """Whether ``allow_from`` lets ``source`` in (an empty list lets everyone in)."""
        if not self.networks:
            return True
        try:
            addr = ipaddress.ip_address(source)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def admit(self, conn: Guarded, source: str) -> str | None:
        """Count ``conn`` in, or return why it is refused (it is then not counted)."""
        if not self.allowed(source):
            return "not_allowed"
        cfg = self.listener
        if len(self.open) >= cfg.max_connections:
            return "max_connections"
        if self.per_source.get(source, 0) >= cfg.max_connections_per_source:
            return "max_per_source"
        self.open.add(conn)
        self.per_source[source] = self.per_source.get(source, 0) + 1
        self._gauge()
        return None

    def release(self, conn: Guarded, source: str) -> None:
        """``conn`` closed: count it out (once; a second call does nothing)."""
        if conn not in self.open:
            return
        self.open.discard(conn)
        left = self.per_source.get(source, 1) - 1
        if left > 0:
            self.per_source[source] = left
        else:
            self.per_source.pop(source, None)
        self._gauge()

    def identify(self, peercert: object) -> tuple[Identity | None, str | None, str]:
        """The identity a verified client certificate proves: (identity, refusal, CN)."""
        cn = peer_certificate_cn(peercert if isinstance(peercert, dict) else None) or ""
        if self.identities is None:
            return None, "unknown_certificate", cn
        # certificates are looked up against the identities file as it is now
        self.identities.reload_if_changed()
        ident = self.identities.by_certificate(cn or None)
        if ident is None:
            return None, "unknown_certificate", cn
        if ident.role not in SENDER_ROLES:
            return ident, "role", cn
        return ident, None, cn

    # --- what happened, counted and logged -------------------------------------------------

    def refused(self, source: str, peer: str, reason: str, detail: str = "") -> None:
        """Count a refusal and log it, at most once a minute per source and reason."""
        assert reason in REFUSALS, reason
        if self.metrics is not None:
            self.metrics.mllp_refused.labels(self.name, reason).inc()
        if self._may_log(f"{source} {reason}"):
            log.warning("MLLP listener %s refused a connection from %s: %s%s (further "
                        "such refusals of this source are counted, logged again in a minute)",
                        self.name, peer, reason, f" ({detail})" if detail else "")

    def cut(self, peer: str, reason: str, detail: str) -> None:
        """Count and log a connection the gateway closed (idle, a frame too slow)."""
        assert reason in REFUSALS, reason
        if self.metrics is not None:
            self.metrics.mllp_refused.labels(self.name, reason).inc()
        log.warning("MLLP listener %s closed the connection from %s: %s", self.name, peer,
                    detail)

    def _may_log(self, key: str) -> bool:
        now = time.monotonic()
        last = self._logged.get(key)
        if last is not None and now - last < LOG_EVERY_S:
            return False
        if last is None and len(self._logged) >= _LOG_KEYS_MAX:
            self._forget(now)
            if len(self._logged) >= _LOG_KEYS_MAX:
                return False
        self._logged[key] = now
        return True

    def _forget(self, now: float) -> None:
        self._logged = {s: t for s, t in self._logged.items() if now - t < LOG_EVERY_S}

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.mllp_open.labels(self.name).set(len(self.open))

    # --- the one timer of the listener -------------------------------------------------------

    @property
    def sweep_every_s(self) -> float:
        """Often enough that a timer is late by a quarter of it at most, at most once a
        second, so a thousand connections cost a thousand comparisons a second."""
        shortest = min(self.listener.idle_timeout_s, self.listener.frame_deadline_s)
        return min(1.0, max(0.05, shortest / 4))

    def sweep(self) -> None:
        """Close every connection whose idle or frame timer ran out."""
        now = time.monotonic()
        cfg = self.listener
        for conn in list(self.open):
            try:
                conn.check_timers(now, cfg.idle_timeout_s, cfg.frame_deadline_s)
            except Exception:  # one connection's fault must not stop the others' timers
                log.exception("MLLP listener %s: checking a connection's timers failed",
                              self.name)

    def run_sweeps(self, server: asyncio.AbstractServer) -> None:
        """Sweep every :attr:`sweep_every_s` while the server serves or a connection it
        accepted is open (one timer for the whole listener, not one per connection)."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            try:
                self.sweep()
            finally:
                if server.is_serving() or self.open:
                    loop.call_later(self.sweep_every_s, tick)

        loop.call_later(self.sweep_every_s, tick)
