"""The listeners' TLS context: TLS 1.2 or later, client certificates required with a client
CA, and a start that names the file when one is missing or is not what it should be."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from canonical.errors import ConfigError
from gateway.config import TlsConfig
from gateway.security.tls import server_context


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert("jcgw.hospital.example")
    out = {"cert_file": tmp_path / "server.pem", "key_file": tmp_path / "server.key",
           "client_ca_file": tmp_path / "ca.pem"}
    out["cert_file"].write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    out["key_file"].write_bytes(leaf.private_key_pem.bytes())
    out["client_ca_file"].write_bytes(ca.cert_pem.bytes())
    return out


def test_server_context_without_client_ca(files: dict[str, Path]) -> None:
    ctx = server_context(TlsConfig(cert_file=files["cert_file"], key_file=files["key_file"]))
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode is ssl.CERT_NONE


def test_server_context_with_client_ca_requires_a_certificate(files: dict[str, Path]) -> None:
    ctx = server_context(TlsConfig(**files))
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_2
    assert len(ctx.get_ca_certs()) == 1


@pytest.mark.parametrize("which", ["cert_file", "key_file", "client_ca_file"])
def test_a_missing_file_is_named(files: dict[str, Path], which: str) -> None:
    missing = files[which].with_name("nowhere.pem")
    with pytest.raises(ConfigError) as err:
        server_context(TlsConfig(**{**files, which: missing}))
    assert f"tls.{which}: {missing}: no such file" in str(err.value)


def test_an_unreadable_file_is_named(files: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as err:  # a directory: open() fails like a bad mode
        server_context(TlsConfig(**{**files, "key_file": files["key_file"].parent}))
    assert f"tls.key_file: {files['key_file'].parent}: cannot be read" in str(err.value)


def test_a_key_that_does_not_match_or_is_no_pem_is_named(files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    other = tmp_path / "other.key"
    other.write_bytes(trustme.CA().issue_cert("x.example").private_key_pem.bytes())
    with pytest.raises(ConfigError, match="not a PEM certificate chain and its matching"):
        server_context(TlsConfig(**{**files, "key_file": other}))
    junk = tmp_path / "junk.pem"
    junk.write_text("这不是证书", "utf-8")
    with pytest.raises(ConfigError) as err:
        server_context(TlsConfig(**{**files, "client_ca_file": junk}))
    assert f"tls.client_ca_file: {junk}" in str(err.value)
