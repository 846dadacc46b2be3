"""TLS for the gateway's listeners (MLLP and HTTP), from the standard library ``ssl``.

A listener's ``tls`` names its certificate chain and key; with ``client_ca_file`` every
client must present a certificate signed by one of those CAs (mutual TLS), and who it is
comes from the certificate's subject CN (``security.identities[].certificate_cn``).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from canonical.errors import ConfigError
from gateway.config import TlsConfig

__all__ = ["server_context"]


def _readable(path: Path, what: str) -> None:
    """Name the file and the problem, instead of ssl's bare ``[Errno 2]`` or ``PEM lib``."""
    try:
        with path.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        raise ConfigError([f"tls.{what}: {path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"tls.{what}: {path}: cannot be read ({exc.strerror or exc})"]) \
            from None


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or later, the listener's certificate chain, and with
    ``client_ca_file`` a client certificate required and verified against that CA."""
    _readable(tls.cert_file, "cert_file")
    _readable(tls.key_file, "key_file")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise ConfigError([f"tls.cert_file / tls.key_file: {tls.cert_file}, {tls.key_file}: "
                           f"not a PEM certificate chain and its matching private key "
                           f"({exc.reason or exc})"]) from None
    if tls.client_ca_file is not None:
        _readable(tls.client_ca_file, "client_ca_file")
        try:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as exc:
            raise ConfigError([f"tls.client_ca_file: {tls.client_ca_file}: no PEM CA "
                               f"certificate in it ({exc.reason or exc})"]) from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
