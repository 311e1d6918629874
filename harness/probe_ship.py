"""The probe folder a cell puts in its target: the probe's files, and their bytecode where the host can make it.

Every cell puts the probe in a fresh folder of the target, and pytest there runs
with ``PYTHONDONTWRITEBYTECODE``, so the target's Python compiled the probe from
source at every pass, in every worker: some 60 ms a pass under qemu-user.  A
``.pyc`` depends on the Python version (its cache tag, ``cpython-313``), not on
the machine, so the host compiles the files with every native interpreter it
has (:func:`interpreters`): its own, and the ``python3.X`` of each Debian
release leapfrog fetched to build images natively
(:mod:`harness.images.native_copy`).  Each goes in ``__pycache__`` next to the
sources under its tag; a target whose Python has that tag loads it, any other
compiles from source as before.

The files are checked-hash ``.pyc`` files (PEP 552): the target's Python hashes
the source next to them and uses the bytecode only when it matches, else it
compiles the source.  Bytecode is made on the host only, from leapfrog's own
files; none is ever read back from a target (what a target writes is
untrusted: it would poison later runs).  Compiled files are kept in
``<cache>/probe-pyc/<tag>-<interpreter>/``, named by the hash of their source.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.paths import native_dir, probe_pyc_dir
from harness.probe import FACTS_FILES, HOOKS_FILE, PLUGIN_FILE, SESSION_FILE, SUITE_HELPERS

#: Seconds a native interpreter may take to compile the probe (it takes well under one).
COMPILE_TIMEOUT = 60.0

#: Run by a native interpreter: compile each (source, pyc) pair of the JSON list on stdin, checked-hash.
_COMPILE = """
import json, py_compile, sys
for source, pyc in json.load(sys.stdin):
    py_compile.compile(source, cfile=pyc, doraise=True, invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
"""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    """A Python the host can run natively, and the cache tag of the bytecode it makes."""

    tag: str  # sys.implementation.cache_tag: cpython-313
    identity: str  # what makes its bytecode what it is: its version, as exactly as known
    argv: tuple[str, ...]  # how to run it


def probe_files(*, facts: bool) -> dict[str, Path]:
    """What the probe folder of the target holds: name there -> source here (the facts' files when asked)."""
    files = {"leapfrog_probe.py": PLUGIN_FILE, "leapfrog_hooks.py": HOOKS_FILE, "leapfrog_session.py": SESSION_FILE}
    files.update({helper.name: helper for helper in SUITE_HELPERS})
    if facts:
        files.update(FACTS_FILES)
    return files


def interpreters() -> list[Interpreter]:
    """The host's own Python, then each cached native Debian ``python3.X`` of another tag (one per tag)."""
    found: list[Interpreter] = []
    tag = sys.implementation.cache_tag
    if tag:
        found.append(Interpreter(tag, f"{sys.version} {sys.executable}", (sys.executable, "-I", "-S")))
    with contextlib.suppress(OSError):
        for folder in sorted(native_dir().iterdir()):
            native = _native(folder)
            if native is not None and native.tag not in {i.tag for i in found}:
                found.append(native)
    return found


def _native(folder: Path) -> Interpreter | None:
    """The ``python3.X`` of a native copy (harness.images.native_copy) that is complete and not stale, or None."""
    from harness.images.native_copy import HookError, Native, default_python

    try:
        meta = json.loads((folder / "native.json").read_text())
        if meta.get("stale") or not isinstance(meta.get("versions"), dict):
            return None
        native = Native(folder / "root", dict(meta["versions"]))
        python = default_python(native.root)
        argv = native.argv(str(native.root), f"usr/bin/{python}")
    except (OSError, ValueError, HookError):
        return None
    number = re.fullmatch(r"python3\.(\d+)", python)
    version = native.versions.get(f"lib{python}-minimal", "")
    if number is None or not version:
        return None
    return Interpreter(f"cpython-3{number.group(1)}", f"{python} {version}", (*argv, "-I", "-S"))


def stage(folder: Path, *, facts: bool) -> None:
    """Copy the probe's files into ``folder`` (made) under their names in the target, with their bytecode."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in probe_files(facts=facts).items():
        shutil.copyfile(source, folder / name)
    names = sorted(probe_files(facts=facts))
    for interpreter in interpreters():
        for name, pyc in compiled(interpreter, [folder / n for n in names]).items():
            (folder / "__pycache__").mkdir(exist_ok=True)
            shutil.copyfile(pyc, folder / "__pycache__" / f"{Path(name).stem}.{interpreter.tag}.pyc")


def compiled(interpreter: Interpreter, sources: list[Path]) -> dict[str, Path]:
    """Each source's checked-hash ``.pyc`` for ``interpreter`` (file name -> cached file), compiled when not cached.

    A source it cannot compile, or an interpreter that does not run, is left out: the target compiles it.
    """
    key = hashlib.sha256(interpreter.identity.encode()).hexdigest()[:16]
    cache = probe_pyc_dir() / f"{interpreter.tag}-{key}"
    want = {s.name: cache / f"{hashlib.sha256(s.read_bytes()).hexdigest()[:32]}.pyc" for s in sources}
    missing = [s for s in sources if not want[s.name].is_file()]
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            pairs = [(str(s), str(Path(tmp) / s.name)) for s in missing]
            argv = [*interpreter.argv, "-c", _COMPILE]
            with contextlib.suppress(OSError, subprocess.SubprocessError):  # then the target compiles them
                subprocess.run(
                    argv, input=json.dumps(pairs), text=True, capture_output=True, timeout=COMPILE_TIMEOUT, check=False
                )
            for source, pyc in pairs:
                if Path(pyc).is_file():
                    os.replace(pyc, want[Path(source).name])  # whole or not at all: a rename
    return {name: pyc for name, pyc in want.items() if pyc.is_file()}
