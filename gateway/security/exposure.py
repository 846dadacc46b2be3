"""What ``serve`` refuses to start with: a listener reachable beyond loopback that nobody
has to authenticate to, plain text beyond loopback, or purchases mirrored to the bundled
simulator from a gateway others can reach, unless demo mode says so.

Each problem names the setting that fixes it; :func:`exposure_problems` is pure so that
``check-config`` reports the same list.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from gateway.config import GatewayConfig

__all__ = ["exposure_problems", "is_loopback_host", "mirrors_to_simulator"]


def is_loopback_host(host: str) -> bool:
    """Whether binding ``host`` keeps a port on this machine (``0.0.0.0``, ``::``, an empty
    host and any other name or address do not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mirrors_to_simulator(cfg: GatewayConfig) -> bool:
    """Whether a destination points at the bundled platform simulator."""
    if not cfg.simulator.enabled:
        return False
    for d in cfg.destinations:
        parts = urlsplit(d.url)
        if parts.port == cfg.simulator.port and is_loopback_host(parts.hostname or ""):
            return True
    return False


def exposure_problems(cfg: GatewayConfig) -> list[str]:
    """Every reason not to start ``cfg`` on a hospital network, each with its fix."""
    problems: list[str] = []
    identities = bool(cfg.security.identities or cfg.security.identities_file
                      or cfg.http.api_token)
    http_open = not is_loopback_host(cfg.http.host)
    if http_open and not identities:
        problems.append(
            f"http.host is {cfg.http.host!r} (beyond loopback) and no identity is configured: "
            "add security.identities (tokens: `jicai-gateway token new`) or "
            "security.identities_file, or bind http.host: 127.0.0.1")
    if http_open and cfg.http.tls is None and not cfg.http.allow_plaintext:
        problems.append(
            f"http.host is {cfg.http.host!r} (beyond loopback) without TLS: set http.tls "
            "(cert_file, key_file), or http.allow_plaintext: true when a TLS-terminating "
            "proxy on this host is the only client")
    for i, lst in enumerate(cfg.listeners):
        if lst.transport != "mllp" or is_loopback_host(lst.host):
            continue
        mtls = lst.tls is not None and lst.tls.client_ca_file is not None
        if not mtls and not lst.allow_from:
            problems.append(
                f"listeners[{i}] ({lst.name}) binds {lst.host!r} (beyond loopback) with no "
                f"client authentication: set listeners[{i}].tls.client_ca_file (mutual TLS) "
                f"and/or listeners[{i}].allow_from (the HIS hosts' addresses)")
    exposed = http_open or any(lst.transport == "mllp" and not is_loopback_host(lst.host)
                               for lst in cfg.listeners)
    if exposed and mirrors_to_simulator(cfg) and not cfg.security.demo:
        problems.append(
            "the gateway is reachable beyond loopback and mirrors purchases to the bundled "
            "simulator, not to the platform: set destinations[].url to the platform's "
            "address (and simulator.enabled: false), or security.demo: true for a "
            "demonstration")
    return problems
