"""Unicode, codecs, locale, and exact arithmetic (decimal, fractions)."""

from __future__ import annotations

import codecs
import decimal
import locale
import math
import sys
import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest


def test_unicodedata_and_normalization(metrics: dict[str, Any]) -> None:
    metrics["unidata_version"] = unicodedata.unidata_version
    assert tuple(int(p) for p in unicodedata.unidata_version.split(".")) >= (13, 0)
    assert unicodedata.name("é") == "LATIN SMALL LETTER E WITH ACUTE"
    assert unicodedata.lookup("SNOWMAN") == "\u2603"
    assert unicodedata.category("€") == "Sc"
    assert unicodedata.category("\u0301") == "Mn"
    assert unicodedata.numeric("\u00bd") == 0.5
    assert unicodedata.decimal("\u0663") == 3
    decomposed = "e\u0301"
    assert unicodedata.normalize("NFC", decomposed) == "\u00e9"
    assert unicodedata.normalize("NFD", "\u00e9") == decomposed
    assert unicodedata.normalize("NFKC", "\ufb01") == "fi"  # ligature
    assert unicodedata.normalize("NFKD", "\u2460") == "1"  # circled digit one
    assert unicodedata.is_normalized("NFC", "\u00e9")
    assert not unicodedata.is_normalized("NFC", decomposed)
    assert unicodedata.east_asian_width("漢") == "W"
    assert unicodedata.bidirectional("א") == "R"


def test_case_mapping() -> None:
    assert "Straße".casefold() == "strasse"
    assert "ß".upper() == "SS"
    assert "ß".lower() == "ß"
    assert "İ".lower() == "i\u0307"
    assert len("İ".lower()) == 2
    assert "ǅ".title() == "ǅ"
    assert "ǆ".upper() == "Ǆ"
    assert "ΣΑΣ".lower() == "σας"  # final sigma
    assert "ﬃ".upper() == "FFI"
    assert "größe".casefold() == "GRÖSSE".casefold()
    assert "变量".isidentifier()
    assert "x\u0301".isidentifier()
    assert not "1x".isidentifier()
    assert "١٢٣".isdecimal()
    assert int("١٢٣") == 123


TEXT = "Grüße, 世界! ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🦀 — naïve café"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "gb18030", "utf-8-sig"])
def test_unicode_codecs_roundtrip(encoding: str) -> None:
    data = TEXT.encode(encoding)
    assert data.decode(encoding) == TEXT
    if encoding == "utf-16":  # BOM follows the native byte order
        assert data[:2] == (codecs.BOM_UTF16_LE if sys.byteorder == "little" else codecs.BOM_UTF16_BE)
    if encoding == "utf-8":
        assert len(data) == len(TEXT.encode("utf-8"))
        assert data.count(b"\xf0") == 8


def test_legacy_codecs_and_error_handlers() -> None:
    assert "€".encode("cp1252") == b"\x80"
    assert "日本語".encode("shift_jis") == b"\x93\xfa\x96\x7b\x8c\xea"
    assert "中文".encode("gbk") == b"\xd6\xd0\xce\xc4"
    assert "bücher.example".encode("idna") == b"xn--bcher-kva.example"
    assert b"\xff\xfeok".decode("utf-8", "replace") == "\ufffd\ufffdok"
    assert b"\xffabc".decode("utf-8", "surrogateescape").encode("utf-8", "surrogateescape") == b"\xffabc"
    assert "ü".encode("ascii", "xmlcharrefreplace") == b"&#252;"
    assert "ü".encode("ascii", "backslashreplace") == b"\\xfc"
    with pytest.raises(UnicodeEncodeError):
        "ü".encode("ascii")
    with pytest.raises(UnicodeDecodeError):
        b"\xc3\x28".decode("utf-8")
    assert codecs.lookup("latin_1").name == "iso8859-1"


@pytest.fixture
def restore_locale() -> Iterator[None]:
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def test_locale_and_filesystem_encoding(restore_locale: None, metrics: dict[str, Any]) -> None:
    metrics["preferred_encoding"] = locale.getpreferredencoding(False)
    metrics["filesystem_encoding"] = sys.getfilesystemencoding()
    metrics["utf8_mode"] = bool(sys.flags.utf8_mode)
    metrics["locale_at_start"] = locale.setlocale(locale.LC_CTYPE)
    assert sys.getfilesystemencoding() == "utf-8"
    locale.setlocale(locale.LC_ALL, "C")
    conv = locale.localeconv()
    assert conv["decimal_point"] == "."
    assert conv["thousands_sep"] == ""
    assert locale.strcoll("a", "b") < 0
    assert locale.format_string("%.2f", 1234.5, grouping=True) == "1234.50"
    try:
        locale.setlocale(locale.LC_ALL, "C.UTF-8")
        metrics["c_utf8_locale"] = True
    except locale.Error:
        metrics["c_utf8_locale"] = False
        pytest.skip("C.UTF-8 locale is not available in this image")
    assert locale.getlocale(locale.LC_CTYPE)[1] in ("UTF-8", "utf-8", "utf8")
    assert locale.strxfrm("b") > locale.strxfrm("a")


def test_decimal_arithmetic(metrics: dict[str, Any]) -> None:
    metrics["libmpdec_version"] = getattr(decimal, "__libmpdec_version__", "pure-python")
    assert Decimal("0.1") + Decimal("0.2") == Decimal("0.3")
    assert Decimal(0.1) == Decimal("0.1000000000000000055511151231257827021181583404541015625")  # noqa: RUF032
    with decimal.localcontext() as ctx:
        ctx.prec = 50
        assert str(Decimal(1) / Decimal(7)) == "0.14285714285714285714285714285714285714285714285714"
        assert str(Decimal(2).sqrt()) == "1.4142135623730950488016887242096980785696718753769"
        assert str(Decimal(1).exp())[:31] == "2.71828182845904523536028747135"
    assert Decimal("2.675").quantize(Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN) == Decimal("2.68")
    assert Decimal("2.665").quantize(Decimal("0.01"), rounding=decimal.ROUND_HALF_EVEN) == Decimal("2.66")
    assert Decimal("-0") == 0
    assert Decimal("-0").is_signed()
    with decimal.localcontext() as ctx:
        ctx.traps[decimal.DivisionByZero] = True
        with pytest.raises(decimal.DivisionByZero):
            Decimal(1) / Decimal(0)
        ctx.traps[decimal.DivisionByZero] = False
        assert (Decimal(1) / Decimal(0)).is_infinite()
    assert int(Decimal(2**200)) == 2**200  # construction from int is exact
    assert Decimal(2) ** 200 == Decimal("1.606938044258990275541962092E+60")  # default prec 28
    assert Decimal(10) ** -30 == Decimal("1E-30")


def test_fractions() -> None:
    assert Fraction(1, 3) + Fraction(1, 6) == Fraction(1, 2)
    assert Fraction(0.1) == Fraction(3602879701896397, 36028797018963968)
    assert Fraction("3.1415926535897932").limit_denominator(1000) == Fraction(355, 113)
    assert Fraction(-6, 4) == Fraction(-3, 2)
    assert Fraction(-6, 4).denominator == 2
    assert (0.75).as_integer_ratio() == (3, 4)
    assert math.isclose(float(Fraction(22, 7)), 3.142857142857143)
    assert Fraction(1, 3) ** 2 == Fraction(1, 9)
    with pytest.raises(ZeroDivisionError):
        Fraction(1, 0)
    assert sum(Fraction(1, n * (n + 1)) for n in range(1, 100)) == Fraction(99, 100)
