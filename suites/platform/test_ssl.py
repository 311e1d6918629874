"""ssl: OpenSSL build facts and complete TLS handshakes over memory BIOs."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

# A throwaway P-256 test CA and a leaf for "leapfrog.test" (valid 2000-2099),
# generated for this suite only. The key protects nothing.
CA_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBazCCARKgAwIBAgIBATAKBggqhkjOPQQDAjAbMRkwFwYDVQQDDBBsZWFwZnJv
ZyB0ZXN0IENBMCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMDAwMDAwWjAbMRkw
FwYDVQQDDBBsZWFwZnJvZyB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD
QgAE+8Som/ugKb99J1Y+SsxiFmIcF2LemY18irniJUB1aADp0FtGgurcvfnaRj8O
FKk5N7LgJ4dXakqWfquAz9E3vaNFMEMwEgYDVR0TAQH/BAgwBgEB/wIBADAOBgNV
HQ8BAf8EBAMCAQYwHQYDVR0OBBYEFCAA0y9szFviUImp7hJM5J1L/MUIMAoGCCqG
SM49BAMCA0cAMEQCIBzQ0l/54a7BXxp4T1pOmQA2/vWgo4UNL41R5bAMmocZAiA4
OpO7j5ND0qW0miJNTP5ismIifSThpHM/uQcYE7bcAQ==
-----END CERTIFICATE-----
"""

LEAF_PEM = """\
-----BEGIN CERTIFICATE-----
MIIBtTCCAVugAwIBAgIBAjAKBggqhkjOPQQDAjAbMRkwFwYDVQQDDBBsZWFwZnJv
ZyB0ZXN0IENBMCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMDAwMDAwWjAYMRYw
FAYDVQQDDA1sZWFwZnJvZy50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
p7qYTV5ESOlrJGq+W8a73bfspI5KCh9QE8GbQ4I6xJWMRKxwOX8fCDLcDHy6IJbI
j7GwhSIyqswjZDgPgJGiHqOBkDCBjTAMBgNVHRMBAf8EAjAAMA4GA1UdDwEB/wQE
AwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAYBgNVHREEETAPgg1sZWFwZnJvZy50
ZXN0MB0GA1UdDgQWBBQJCPqAqgfMFFiwVFWHFrii6SUemjAfBgNVHSMEGDAWgBQg
ANMvbMxb4lCJqe4STOSdS/zFCDAKBggqhkjOPQQDAgNIADBFAiAg2IUxb1Azl9W0
PjapZKSpJEQIR0CDZOISz0dkIe+IRwIhAOPAMjgnkmHEjJpeJvAtgdNgZ2UF0WJ3
jyrKOBrAesGS
-----END CERTIFICATE-----
"""

LEAF_KEY_PEM = """\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgs6b9KYkCSF+4+d6t
XBMXrKwQJV/UwE84gsBa2z3bLZ+hRANCAASnuphNXkRI6Wskar5bxrvdt+ykjkoK
H1ATwZtDgjrElYxErHA5fx8IMtwMfLoglsiPsbCFIjKqzCNkOA+AkaIe
-----END PRIVATE KEY-----
"""

HOSTNAME = "leapfrog.test"


def _server_context(tmp_path: Path) -> ssl.SSLContext:
    cert = tmp_path / "leaf.pem"
    key = tmp_path / "leaf.key"
    cert.write_text(LEAF_PEM)
    key.write_text(LEAF_KEY_PEM)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def _client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=CA_PEM)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname
    return ctx


def _handshake(
    client: ssl.SSLObject,
    server: ssl.SSLObject,
    c_in: ssl.MemoryBIO,
    c_out: ssl.MemoryBIO,
    s_in: ssl.MemoryBIO,
    s_out: ssl.MemoryBIO,
) -> None:
    """Pump bytes between two in-memory TLS endpoints until both are done."""
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, obj in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        if c_out.pending:
            s_in.write(c_out.read())
        if s_out.pending:
            c_in.write(s_out.read())
        if all(done.values()) and not c_out.pending and not s_out.pending:
            return
    raise AssertionError(f"handshake did not finish: {done}")


def _pair(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, hostname: str = HOSTNAME) -> tuple[Any, ...]:
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    return client, server, c_in, c_out, s_in, s_out


def test_openssl_build(metrics: dict[str, Any]) -> None:
    metrics["openssl_version"] = ssl.OPENSSL_VERSION
    metrics["openssl_version_number"] = ssl.OPENSSL_VERSION_NUMBER
    metrics["ssl_has_tls13"] = ssl.HAS_TLSv1_3
    assert ssl.OPENSSL_VERSION_INFO >= (1, 1, 1)
    assert ssl.HAS_TLSv1_3
    assert ssl.HAS_ECDH
    assert ssl.HAS_SNI
    assert ssl.HAS_ALPN
    ctx = ssl.create_default_context()
    # The floor may come from Python or from the distro's openssl.cnf; record it.
    metrics["default_min_tls"] = ctx.minimum_version.name
    assert ctx.options & ssl.OP_NO_SSLv3
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    ciphers = [c["name"] for c in ctx.get_ciphers()]
    metrics["default_cipher_count"] = len(ciphers)
    assert "TLS_AES_256_GCM_SHA384" in ciphers
    assert len(ssl.RAND_bytes(32)) == 32
    assert ssl.RAND_status()
    paths = ssl.get_default_verify_paths()
    metrics["openssl_cafile"] = str(paths.openssl_cafile)


def test_tls13_handshake_memory_bio(tmp_path: Path, metrics: dict[str, Any]) -> None:
    server_ctx = _server_context(tmp_path)
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx = _client_context()
    client_ctx.set_alpn_protocols(["http/1.1"])
    client, server, c_in, c_out, s_in, s_out = _pair(client_ctx, server_ctx)
    _handshake(client, server, c_in, c_out, s_in, s_out)
    assert client.version() == "TLSv1.3"
    assert client.selected_alpn_protocol() == "http/1.1"
    peer = client.getpeercert()
    assert peer is not None
    assert ("DNS", HOSTNAME) in peer["subjectAltName"]
    cipher = client.cipher()
    assert cipher is not None
    metrics["tls13_cipher"] = cipher[0]
    # Application data both ways.
    client.write(b"ping" * 1000)
    s_in.write(c_out.read())
    received = b""
    while len(received) < 4000:
        received += server.read(65536)
    assert received == b"ping" * 1000
    server.write(b"pong")
    c_in.write(s_out.read())
    assert client.read(100) == b"pong"


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_tls12_handshake_cipher(cipher: str, tmp_path: Path, metrics: dict[str, Any]) -> None:
    server_ctx = _server_context(tmp_path)
    client_ctx = _client_context()
    client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    client_ctx.set_ciphers(cipher)
    client, server, *bios = _pair(client_ctx, server_ctx)
    _handshake(client, server, *bios)
    assert client.version() == "TLSv1.2"
    negotiated = client.cipher()
    assert negotiated is not None
    assert negotiated[0] == cipher
    metrics["cipher_bits"] = negotiated[2]


def test_tls_rejects_wrong_hostname(tmp_path: Path) -> None:
    client, server, *bios = _pair(_client_context(), _server_context(tmp_path), hostname="other.test")
    with pytest.raises(ssl.SSLCertVerificationError) as excinfo:
        _handshake(client, server, *bios)
    assert excinfo.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
