"""``leapfrog golden`` copies a suite folder back through ``get()``: by its rule, and capped."""

from __future__ import annotations

import pytest

from harness.config import TargetConfig, load_suite
from harness.errors import TargetError
from harness.golden import regenerate

SCRIPT = """
import os
from pathlib import Path
Path("golden.json").write_text('{"answer": 42}\\n')
Path("big.bin").write_bytes(b"x" * {size})
os.mkfifo("leftover.fifo")  # a FIFO the script leaves behind must not block or break the copy back
os.symlink("/etc/passwd", "passwd")
"""


def test_golden_copies_back_regular_files_and_skips_fifos_and_links(
    write_suite, native_config: TargetConfig
) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("g", {"make_golden.py": SCRIPT.replace("{size}", "100")})
    changed = regenerate(load_suite(folder), native_config, timeout=120)
    assert sorted(map(str, changed)) == ["big.bin", "golden.json"]
    assert (folder / "golden.json").read_text() == '{"answer": 42}\n'
    assert not (folder / "leftover.fifo").exists()
    assert not (folder / "passwd").exists()


def test_golden_over_the_cap_is_a_clear_error_and_changes_nothing(
    write_suite, native_config: TargetConfig
) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("g", {"make_golden.py": SCRIPT.replace("{size}", "100000")})
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(TargetError) as err:
        regenerate(load_suite(folder), native_config, timeout=120, limit=50000)
    text = str(err.value)
    assert f"{folder / 'make_golden.py'} ran on native, but its suite folder could not be copied back" in text
    assert "no golden file was changed" in text
    assert "it holds more than 50000 bytes, the most one copy back takes" in text
    assert sorted(p.name for p in folder.iterdir()) == before


HELPER_SCRIPT = """
from pathlib import Path
from leapfrog_checks import save_golden
from leapfrog_suite import generated_on, write_meta
save_golden(Path("golden"), "g", {"b": [1, 2], "a": [0.5]})
write_meta(Path("golden"), {"generator": "make_golden.py", **generated_on()})
"""


def test_golden_script_imports_the_suite_helpers_and_writes_the_same_bytes_twice(
    write_suite, native_config: TargetConfig
) -> None:  # type: ignore[no-untyped-def]
    folder = write_suite("g", {"make_golden.py": HELPER_SCRIPT})
    changed = regenerate(load_suite(folder), native_config, timeout=120)
    assert sorted(map(str, changed)) == ["golden/g.npz", "golden/meta.json"]
    assert not (folder / "leapfrog_checks.py").exists()  # the helpers stay out of the suite
    first = (folder / "golden" / "g.npz").read_bytes()
    assert regenerate(load_suite(folder), native_config, timeout=120) == []
    assert (folder / "golden" / "g.npz").read_bytes() == first
