"""The host-requirements table: every program the harness runs is in it; setup and doctor read it."""

from __future__ import annotations

import ast
import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement as PyRequirement

from harness import hostreq

ROOT = Path(__file__).resolve().parents[2]

#: Programs the harness runs INSIDE a target (through target.run, docker exec, chroot, ssh), never on
#: the host: they come with the target's userland, so the host table does not list them.
INSIDE_TARGETS = {
    "apt-get",  # layering packages onto a Debian image, run through chroot
    "cat", "kill", "mkdir", "mktemp", "rm", "sleep", "true",  # coreutils/procps of every target
    "/bin/sh",  # docker exec wrapper and killer
    "dnf", "rpm",  # openEuler targets' package tools
    "systemctl",  # powering off a VM
    "python3",  # the target's Python (also in BASE_PACKAGES, a list of Debian packages)
    "update-initramfs", "linux-update-symlinks",  # an image build's last step, run through chroot
}
#: String lists in argument or assignment position that are data, not command lines: report change
#: orders (cli, view), a click.Choice, path components (chroot's _open_dir(["tmp"])), a Debian package list
#: (images/debian.py HTTPS_PACKAGES).
NOT_COMMANDS = {"new-failure", "targets", "tmp", "ca-certificates"}

#: Calls whose argv (first argument) runs on the host.
HOST_RUNNERS = {"run", "Popen", "check_output", "check_call", "call", "_sh", "run_process", "_run_tool", "run_logged"}
#: Calls whose first argument is a program looked up on the host.
HOST_LOOKUPS = {"which", "_tool"}

_PROGRAM = re.compile(r"^(/[\w./+-]+|[a-z][\w.+-]*)$")


def _text(node: ast.AST) -> str | None:
    """A string constant, or an f-string with each placeholder as ``*``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values)
    return None


def _head(node: ast.AST) -> str | None:
    if isinstance(node, ast.List) and node.elts:
        head = _text(node.elts[0])
        if head and _PROGRAM.match(head):
            return head
    return None


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


def _is_subprocess(func: ast.AST) -> bool:
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "subprocess"


def programs_run(source: str) -> list[tuple[int, str, bool]]:
    """(line, program, surely on the host) for every command line or program lookup in ``source``.

    Surely on the host: the argv of subprocess.*, _sh, run_process, _run_tool or
    run_logged, and the argument of shutil.which or _tool.  Other argv-shaped
    lists (a target's run(), a function returning an argv, a loop over argvs)
    may run on either side.
    """
    found: list[tuple[int, str, bool]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = _name(node.func)
            if name in HOST_LOOKUPS and node.args:
                text = _text(node.args[0])
                if text:
                    found.append((node.lineno, text, True))
            host = _is_subprocess(node.func) or (name in HOST_RUNNERS and name != "run")
            for arg in node.args:
                head = _head(arg)
                if head:
                    found.append((node.lineno, head, host))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.Return | ast.For):
            value = node.iter if isinstance(node, ast.For) else node.value
            targets = node.targets if isinstance(node, ast.Assign) else []
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
            candidates = [value] if isinstance(value, ast.List) else []
            if isinstance(value, ast.List | ast.Tuple):
                candidates += [e for e in value.elts if isinstance(e, ast.List)]
            for cand in candidates:
                head = _head(cand) if cand is not None else None
                if head:
                    found.append((node.lineno, head, False))
    return found


def _in_table(program: str) -> bool:
    return any(fnmatch.fnmatchcase(r.program, program) for r in hostreq.TABLE)


def unlisted(source: str) -> list[str]:
    out = []
    for line, prog, host in sorted(programs_run(source)):
        if _in_table(prog):
            continue
        if not host and (prog in INSIDE_TARGETS or prog in NOT_COMMANDS):
            continue
        out.append(f"line {line}: {prog}{' (on the host)' if host else ''}")
    return out


def harness_sources() -> list[Path]:
    # harness/probe runs inside targets, never on the host.
    return [p for p in sorted((ROOT / "harness").rglob("*.py")) if "probe" not in p.relative_to(ROOT).parts]


def test_every_program_the_harness_runs_is_in_the_table() -> None:
    problems = []
    for path in harness_sources():
        for item in unlisted(path.read_text(encoding="utf-8")):
            problems.append(f"{path.relative_to(ROOT)} {item}")
    assert not problems, "programs run but missing from harness/hostreq.py TABLE:\n" + "\n".join(problems)


def test_the_scan_finds_programs_in_every_shape() -> None:
    source = """
import shutil, subprocess
subprocess.run(["frobnicate", "-x"], check=False)
subprocess.Popen(["/usr/sbin/zapper"])
shutil.which(f"qemu-{arch}-turbo")
_sh(["umount", "-l", mnt])
def tool_argv():
    return ["grobble", "--all"]
for argv in (["a-tool", "x"], ["b-tool"]):
    pass
target.run(["mktemp", "-d"], timeout=60)
target.run(["weird-inside"], timeout=60)
"""
    assert unlisted(source) == [
        "line 3: frobnicate (on the host)",
        "line 4: /usr/sbin/zapper (on the host)",
        "line 5: qemu-*-turbo (on the host)",
        "line 8: grobble",
        "line 9: a-tool",
        "line 9: b-tool",
        "line 12: weird-inside",
    ]


def test_a_program_inside_targets_still_counts_when_the_host_runs_it() -> None:
    assert unlisted('subprocess.run(["rm", "-rf", path])') == ["line 1: rm (on the host)"]


def test_the_scan_sees_what_the_harness_runs_today() -> None:
    seen = {prog for path in harness_sources() for _, prog, _ in programs_run(path.read_text(encoding="utf-8"))}
    assert {"mmdebstrap", "mount", "umount", "chroot", "cp", "qemu-img", "mke2fs", "debugfs"} <= seen
    assert "qemu-*-static" in seen


def test_chroot_profile_is_the_lean_part_of_full() -> None:
    chroot, full = set(hostreq.packages("chroot")), set(hostreq.packages("full"))
    assert chroot < full
    assert {"mmdebstrap", "arch-test", "qemu-user-static", "binfmt-support"} <= chroot
    assert not {"docker.io", "chromium", "qemu-system-misc", "qemu-utils", "opensbi"} & chroot
    assert {"docker.io", "chromium", "qemu-system-misc", "qemu-utils", "opensbi", "e2fsprogs"} <= full


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match='unknown setup profile "tiny"'):
        hostreq.packages("tiny")


def test_install_hint_names_the_package() -> None:
    assert hostreq.install_hint(["arch-test", "qemu-riscv64-static", "debugfs", "mke2fs"]) == (
        "apt-get install arch-test qemu-user-static e2fsprogs"
    )
    with pytest.raises(KeyError, match=r"not in harness/hostreq\.py TABLE"):
        hostreq.install_hint(["nope"])


def test_setup_reads_the_table_with_the_standard_library_only() -> None:
    """setup-host.sh runs this before pip: -S hides site-packages, so a third-party import would fail."""
    done = subprocess.run(
        [sys.executable, "-S", "-m", "harness.hostreq", "apt", "--profile", "chroot"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == hostreq.packages("chroot")


def test_setup_script_installs_from_the_table_and_pins_python_packages() -> None:
    script = (ROOT / "scripts" / "setup-host.sh").read_text()
    assert '-m harness.hostreq apt --profile "$profile"' in script
    assert "APT_PACKAGES=(" not in script  # no second list that could drift from the table
    for req in hostreq.TABLE:
        assert req.package not in re.findall(r"apt_install ([^\n]+)", script)[-1].split(), req.package
    assert "-c constraints/baseline.txt" in script
    assert "--break-system-packages" not in script


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints" / "baseline.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = PyRequirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[req.name.lower().replace("_", "-")] = spec.version
    return pins


def test_constraints_pin_every_python_package_the_project_names() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    named = list(project["dependencies"])
    for extra in ("dev", "baseline"):
        named += project["optional-dependencies"][extra]
    pins = _pins()
    missing = [n for n in (PyRequirement(r).name.lower().replace("_", "-") for r in named) if n not in pins]
    assert not missing, f"constraints/baseline.txt pins none of {missing}"
    assert pins["torch"] == "2.13.0"  # the public version: it matches the CPU build 2.13.0+cpu
