"""docs/reliability.md claims only what a test backs: every row names a test, and every named test exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
REF = re.compile(r"`(test_\w+\.py)::(test_\w+)`")


def _rows() -> list[str]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-", " "}:
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[-1] == "test":  # a header
            continue
        rows.append(line)
    return rows


def _defined(file: str, name: str) -> bool:
    for folder in ("unit", "integration"):
        path = ROOT / "tests" / folder / file
        if path.exists() and re.search(rf"^def {name}\(", path.read_text(encoding="utf-8"), re.MULTILINE):
            return True
    # Both test_contract.py modules run the one contract body (a class every backend's module subclasses).
    body = ROOT / "tests" / "contract_body.py"
    return file == "test_contract.py" and bool(
        re.search(rf"^    def {name}\(", body.read_text(encoding="utf-8"), re.MULTILINE)
    )


def test_every_row_names_a_test() -> None:
    rows = _rows()
    assert len(rows) > 40
    unbacked = [row[:100] for row in rows if not REF.search(row)]
    assert not unbacked, f"rows of docs/reliability.md that name no test: {unbacked}"


def test_every_named_test_exists() -> None:
    refs = {m.groups() for row in _rows() for m in REF.finditer(row)}
    missing = sorted(f"{f}::{n}" for f, n in refs if not _defined(f, n))
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
