"""mmdebstrap and apt-get failures are explained by their own E: lines; every run has a deadline."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.errors import ImageError
from harness.images import buildrun, debian

#: mmdebstrap 1.3.5 on a fresh Debian 12 without arch-test (recorded by tests/integration/test_fresh_host.py).
NO_ARCH_TEST = """\
I: automatically chosen mode: root
E: install arch-test for foreign architecture support
"""
#: apt inside mmdebstrap with no network.
NO_NETWORK = """\
I: running apt-get update...
Err:1 http://deb.debian.org/debian trixie InRelease
  Temporary failure resolving 'deb.debian.org'
E: Failed to fetch http://deb.debian.org/debian/dists/trixie/InRelease  Temporary failure resolving 'deb.debian.org'
E: Some index files failed to download. They have been ignored, or old ones used instead.
E: apt-get update --error-on=any -oAPT::Status-Fd=<$fd> -oDpkg::Use-Pty=false failed
"""


def _finished(output: str, code: int = 25) -> buildrun.Finished:
    lines = output.splitlines()
    return buildrun.Finished(argv=["mmdebstrap"], code=code, tail=lines, errors=buildrun.error_lines(lines))


def test_error_lines_keep_each_e_line_once_in_order() -> None:
    assert buildrun.error_lines([*NO_NETWORK.splitlines(), "E: Failed to fetch x", "W: warn"]) == [
        line for line in NO_NETWORK.splitlines() if line.startswith("E:")
    ] + ["E: Failed to fetch x"]
    assert buildrun.error_lines(NO_ARCH_TEST.splitlines()) == ["E: install arch-test for foreign architecture support"]


def test_a_missing_arch_test_is_the_cause_not_the_mirror() -> None:
    text = buildrun.explain(
        "mmdebstrap", _finished(NO_ARCH_TEST), "building Debian trixie riscv64", mirror="http://m", setting=("X", 1)
    )
    first = text.split("Last output:")[0]
    assert "install arch-test for foreign architecture support" in first
    assert "apt-get install arch-test" in first
    assert "mirror" not in first


def test_fetch_errors_point_at_the_mirror() -> None:
    text = buildrun.explain("mmdebstrap", _finished(NO_NETWORK), "building", mirror="http://m/debian", setting=("X", 1))
    assert "Temporary failure resolving 'deb.debian.org'" in text
    assert "Check that the mirror http://m/debian is reachable" in text


def test_no_e_line_says_so() -> None:
    text = buildrun.explain("mmdebstrap", _finished("I: hello\n", 1), "building", mirror="m", setting=("X", 1))
    assert "printed no E: line" in text
    assert "I: hello" in text


def test_deadline_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEAPFROG_BUILD_TIMEOUT", raising=False)
    assert buildrun.deadline(buildrun.BUILD_TIMEOUT) == 3600
    monkeypatch.setenv("LEAPFROG_BUILD_TIMEOUT", "90.5")
    assert buildrun.deadline(buildrun.BUILD_TIMEOUT) == 90.5
    for bad in ("soon", "0", "-1", "nan", "inf"):
        monkeypatch.setenv("LEAPFROG_BUILD_TIMEOUT", bad)
        with pytest.raises(ImageError, match=f'LEAPFROG_BUILD_TIMEOUT is "{bad}"'):
            buildrun.deadline(buildrun.BUILD_TIMEOUT)


def test_the_deadline_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    start = time.monotonic()
    done = buildrun.run_logged(
        ["sh", "-c", f'sleep 60 & echo $! > {pidfile}; echo "E: still going"; wait'], timeout=0.5, grace=2
    )
    assert done.timed_out
    assert time.monotonic() - start < 10
    assert done.errors == ["E: still going"]
    child = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the background child {child} outlived the deadline")
    text = buildrun.explain("apt-get", done, "in the image", setting=buildrun.APT_TIMEOUT)
    assert "within 0.5 s" in text
    assert "LEAPFROG_APT_TIMEOUT" in text


def _fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, *, arch_test: bool = True) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tools = {"mmdebstrap": script, **({"arch-test": "exit 0"} if arch_test else {})}
    for name, body in tools.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setattr(debian.os, "geteuid", lambda: 0)
    monkeypatch.setattr(debian, "host_debian_arch", lambda: "amd64")


def test_build_rootfs_reports_mmdebstraps_own_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = "; ".join(f"echo '{line}'" for line in NO_ARCH_TEST.splitlines()) + "; exit 25"
    _fake_tools(tmp_path, monkeypatch, body)
    with pytest.raises(ImageError) as err:
        debian.build_rootfs("trixie", "riscv64", "http://deb.debian.org/debian", ["python3"], tmp_path / "root")
    first = str(err.value).split("Last output:")[0]
    assert "mmdebstrap failed (exit 25)" in first
    assert "install arch-test for foreign architecture support" in first
    assert "apt-get install arch-test" in first
    assert "mirror" not in first.split(":", 1)[1]  # "from <mirror>" names it; nothing blames it


def test_build_rootfs_names_the_package_of_a_missing_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tools(tmp_path, monkeypatch, "exit 0", arch_test=False)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # not even the host's own arch-test
    with pytest.raises(ImageError, match=r"needs arch-test, which is not installed; install with: apt-get install"):
        debian.build_rootfs("trixie", "riscv64", "http://deb.debian.org/debian", ["python3"], tmp_path / "root")


def test_build_rootfs_stops_mmdebstrap_at_its_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tools(tmp_path, monkeypatch, "echo 'I: downloading'; sleep 60")
    monkeypatch.setenv("LEAPFROG_BUILD_TIMEOUT", "0.5")
    start = time.monotonic()
    with pytest.raises(ImageError, match=r"did not finish building Debian trixie riscv64 .* within 0\.5 s"):
        debian.build_rootfs("trixie", "riscv64", "http://deb.debian.org/debian", ["python3"], tmp_path / "root")
    assert time.monotonic() - start < 20


def test_a_package_missing_from_the_archive_is_named_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "echo 'I: running apt-get install...'; echo 'E: Unable to locate package python3-nope'; exit 25"
    _fake_tools(tmp_path, monkeypatch, body)
    dest = tmp_path / "root"
    with pytest.raises(ImageError) as err:
        debian.build_rootfs("trixie", "riscv64", "http://deb.debian.org/debian", ["python3-nope"], dest)
    first = str(err.value).splitlines()[0]
    assert 'package "python3-nope" is not available in Debian trixie for riscv64' in first
    assert "[packages] debian list" in first
    assert not dest.exists()  # the half-built folder is removed
