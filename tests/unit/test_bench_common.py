"""bench/_common.py: what the benchmark scripts share."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench._common import compile_harness


def test_compile_harness_writes_the_bytecode_a_pip_install_has(tmp_path: Path) -> None:
    (tmp_path / "harness" / "sub").mkdir(parents=True)
    (tmp_path / "harness" / "__init__.py").write_text("")
    (tmp_path / "harness" / "sub" / "mod.py").write_text("X = 1\n")
    compile_harness(tmp_path)
    pyc = Path(importlib.util.cache_from_source(str(tmp_path / "harness" / "sub" / "mod.py")))
    assert pyc.is_file()
    # A process with PYTHONDONTWRITEBYTECODE=1 reads it: a source changed behind its back (same size and
    # modification time, which the .pyc records) still gives the compiled value.
    source = tmp_path / "harness" / "sub" / "mod.py"
    stat = source.stat()
    source.write_text("X = 2\n")
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    done = subprocess.run(
        [sys.executable, "-c", "import harness.sub.mod as m; print(m.X)"],
        cwd=tmp_path,
        env={"PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "1"


def test_compile_harness_stops_on_a_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "broken.py").write_text("def (:\n")
    with pytest.raises(SystemExit, match="could not byte-compile"):
        compile_harness(tmp_path)
