"""hashlib/hmac known-answer vectors and zlib/gzip/lzma/bz2 round trips."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import hmac
import lzma
import time
import zlib
from typing import Any

import pytest

# NIST / RFC known-answer vectors.
ABC_VECTORS = {
    "md5": "900150983cd24fb0d6963f7d28e17f72",
    "sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
    "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    "sha512": (
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    ),
    "sha3_256": "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
    "blake2b": (
        "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1"
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923"
    ),
    "blake2s": "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982",
}


@pytest.mark.parametrize("algorithm", list(ABC_VECTORS))
def test_hash_known_vectors(algorithm: str) -> None:
    kwargs = {"usedforsecurity": False} if algorithm in ("md5", "sha1") else {}
    h = hashlib.new(algorithm, **kwargs)
    h.update(b"a")
    h.update(b"bc")  # incremental == one-shot
    assert h.hexdigest() == ABC_VECTORS[algorithm]
    assert hashlib.new(algorithm, b"abc", **kwargs).digest() == bytes.fromhex(ABC_VECTORS[algorithm])


def test_hash_extras(metrics: dict[str, Any]) -> None:
    assert hashlib.shake_128(b"").hexdigest(16) == "7f9c2ba4e88f827d616045507605853e"
    assert hashlib.blake2b(b"", digest_size=32, key=b"k" * 8).digest_size == 32
    # RFC 4231 test case 2
    mac = hmac.new(b"Jefe", b"what do ya want for nothing?", "sha256").hexdigest()
    assert mac == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 1, 32).hex() == (
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"
    )
    assert "sha3_512" in hashlib.algorithms_available
    metrics["hash_algorithms_available"] = len(hashlib.algorithms_available)


def test_sha256_million_a(metrics: dict[str, Any]) -> None:
    data = b"a" * 1_000_000
    start = time.perf_counter()
    digest = hashlib.sha256(data).hexdigest()
    elapsed = time.perf_counter() - start
    assert digest == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    metrics["sha256_mb_per_s"] = round(1.0 / max(elapsed, 1e-9), 2)


def _corpus() -> bytes:
    words = [b"tensor", b"riscv", b"vector", b"qemu", b"latency", b"\x00\xff", b"\xe2\x9c\x93"]
    state = 7
    out = bytearray()
    for _ in range(40_000):
        state = (state * 1103515245 + 12345) % 2**31
        out += words[state % len(words)]
    return bytes(out)


def test_zlib_roundtrip_and_checksums(metrics: dict[str, Any]) -> None:
    metrics["zlib_version"] = zlib.ZLIB_RUNTIME_VERSION
    assert zlib.crc32(b"123456789") == 0xCBF43926
    assert zlib.adler32(b"Wikipedia") == 0x11E60398
    data = _corpus()
    for level in (1, 6, 9):
        packed = zlib.compress(data, level)
        assert zlib.decompress(packed) == data
        metrics[f"zlib_ratio_l{level}"] = round(len(data) / len(packed), 3)
    # Streaming with a raw deflate window, fed in odd-sized pieces.
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = b"".join(comp.compress(data[i : i + 7777]) for i in range(0, len(data), 7777)) + comp.flush()
    decomp = zlib.decompressobj(-15)
    assert decomp.decompress(stream) + decomp.flush() == data
    assert zlib.crc32(data) == zlib.crc32(data[100:], zlib.crc32(data[:100]))
    with pytest.raises(zlib.error):
        zlib.decompress(b"not zlib data")


def test_gzip_deterministic() -> None:
    data = _corpus()[:50_000]
    a = gzip.compress(data, mtime=0)
    b = gzip.compress(data, mtime=0)
    assert a == b
    assert a[:2] == b"\x1f\x8b"
    assert gzip.decompress(a) == data


def test_lzma_roundtrip(metrics: dict[str, Any]) -> None:
    data = _corpus()
    assert lzma.is_check_supported(lzma.CHECK_SHA256)
    packed = lzma.compress(data, preset=1, check=lzma.CHECK_CRC64)
    assert lzma.decompress(packed) == data
    raw_filters = [{"id": lzma.FILTER_DELTA, "dist": 4}, {"id": lzma.FILTER_LZMA2, "preset": 1}]
    raw = lzma.compress(data, format=lzma.FORMAT_RAW, filters=raw_filters)
    assert lzma.decompress(raw, format=lzma.FORMAT_RAW, filters=raw_filters) == data
    metrics["lzma_ratio_p1"] = round(len(data) / len(packed), 3)
    with pytest.raises(lzma.LZMAError):
        lzma.decompress(b"\xfd7zXZ\x00garbage")


def test_bz2_roundtrip(metrics: dict[str, Any]) -> None:
    data = _corpus()[:100_000]
    packed = bz2.compress(data, 1)
    assert packed[:3] == b"BZh"
    assert bz2.decompress(packed) == data
    dec = bz2.BZ2Decompressor()
    assert dec.decompress(packed[:1000]) + dec.decompress(packed[1000:]) == data
    assert dec.eof
    metrics["bz2_ratio_l1"] = round(len(data) / len(packed), 3)
