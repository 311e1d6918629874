"""mmdebstrap and apt-get failures are explained by their own E: lines; every run has a deadline."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.errors import ImageError
from harness.images import buildrun, debian, nativebuild

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
    monkeypatch.setattr(nativebuild, "ensure_native", lambda *_a, **_k: None)  # no fetch from the archive


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


#: What mmdebstrap --verbose prints around each phase (abridged from a real riscv64 build).
BUILD_LOG = [
    (0.2, "I: automatically chosen mode: root"),
    (0.4, "I: running apt-get update..."),
    (2.0, "I: downloading packages with apt..."),
    (4.0, "I: extracting archives..."),
    (13.0, "I: installing essential packages..."),
    (14.0, "Setting up libc6:riscv64 (2.41-12) ..."),
    (60.0, "I: running --essential-hook in shell: sh -c 'env ...'"),
    (61.0, "I: installing remaining packages inside the chroot..."),
    (61.5, "Get:1 http://deb.debian.org/debian trixie/main riscv64 python3.13 riscv64 3.13.5-2 [10 kB]"),
    (70.0, "Selecting previously unselected package python3.13."),
    (70.1, "Preparing to unpack .../python3.13_3.13.5-2_riscv64.deb ..."),
    (100.0, "Setting up libpython3.13-minimal:riscv64 (3.13.5-2) ..."),
    (130.0, "Setting up media-types (13.0.0) ..."),
    (131.0, "Unpacking python3-numpy (1:2.2.4+ds-1) ..."),
    (140.0, "Setting up python3-numpy (1:2.2.4+ds-1) ..."),
    (150.0, "Setting up linux-image-6.12.117+deb13-riscv64 (6.12.117-1) ..."),
    (151.0, "update-initramfs: Generating /boot/initrd.img-6.12.117+deb13-riscv64"),
    (200.0, "W: No zstd in /usr/bin:/sbin:/bin, using gzip"),
    (220.0, "Setting up udev (257.13-1) ..."),
    (230.0, "Processing triggers for initramfs-tools (0.148.4) ..."),
    (300.0, "Processing triggers for libc-bin (2.41-12) ..."),
    (301.0, "I: running --customize-hook in shell: sh -c 'env ...'"),
    (302.0, "I: leapfrog: byte-compiling (57 postinst calls) with a native python3.13 3.13.5-2"),
    (330.0, "I: leapfrog: creating the initramfs for 6.12.117+deb13-riscv64 (update-initramfs -c)"),
    (380.0, "I: cleaning package lists and apt cache..."),
    (381.0, "I: success in 381.0 seconds"),
]


def test_phase_clock_splits_a_build_into_the_phases_its_output_names() -> None:
    clock = buildrun.PhaseClock(0.0)
    for t, line in BUILD_LOG:
        clock.feed(line, t)
    phases = clock.finish(381.5)
    assert phases == {
        "setup": 0.4,
        "apt update": 1.6,
        "download (essential)": 2.0,
        "unpack (essential)": 9.0,
        "configure (essential)": 47.0,  # the Setting up lines of the essential stage stay in it
        "hooks": 2.0,
        "resolve": 0.5,
        "download": 8.5,
        "unpack": 39.0,  # 70-100 and 131-140
        "configure python3 packages": 40.0,  # 100-130 and 140-150
        "configure": 13.0,  # 130-131, 220-230 and 300-301 (the W: line does not switch)
        "initramfs": 189.0,  # 151-220, 230-300 and 330-380
        "byte-compile": 28.0,
        "cleanup": 1.0,
    }
    assert sum(phases.values()) == pytest.approx(381.0)


def test_build_rootfs_returns_its_phases_and_runs_with_initrd_no(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        'echo "I: downloading packages with apt..."; sleep 0.2; echo "INITRD=$INITRD"; '
        'echo "I: installing essential packages..."; sleep 0.3; echo "I: success in 0.5 seconds"'
    )
    _fake_tools(tmp_path, monkeypatch, body)
    monkeypatch.setenv("LEAPFROG_NATIVE_BUILD", "1")
    seen: list[str] = []
    phases = debian.build_rootfs(
        "trixie", "riscv64", "http://deb.debian.org/debian", ["python3"], tmp_path / "root", progress=seen.append
    )
    assert list(phases) == ["setup", "download (essential)", "configure (essential)"]
    assert phases["download (essential)"] >= 0.2
    assert phases["configure (essential)"] >= 0.3
    # the kernel's postinst hook honours INITRD=No: the customize hook makes the initramfs once
    monkeypatch.setattr(buildrun, "run_logged", _capture(seen))
    debian.build_rootfs("trixie", "riscv64", "http://deb.debian.org/debian", ["python3"], tmp_path / "r2")
    assert seen[-2:] == ["No", "hooks"]
    # LEAPFROG_NATIVE_BUILD=0: the build as mmdebstrap alone makes it, every step in the image
    monkeypatch.setenv("LEAPFROG_NATIVE_BUILD", "0")
    debian.build_rootfs("trixie", "riscv64", "http://deb.debian.org/debian", ["python3"], tmp_path / "r3")
    assert seen[-2:] == ["", "no hooks"]


def _capture(seen: list[str]):  # type: ignore[no-untyped-def]
    def run_logged(argv: list[str], *, timeout: float, env: dict[str, str] | None = None, **_k: object) -> object:
        seen.append((env or {}).get("INITRD", ""))
        seen.append("hooks" if any(a.startswith("--customize-hook=") for a in argv) else "no hooks")
        return buildrun.Finished(argv=argv, code=0, tail=[], errors=[])

    return run_logged


def test_mmdebstrap_gets_both_hooks_before_its_positional_arguments(tmp_path: Path) -> None:
    hooks = nativebuild.hook_argv(tmp_path / "native root" / "root", python="/usr/bin/python3")
    mirror = "http://deb.debian.org/debian"
    argv = debian.mmdebstrap_argv("trixie", "riscv64", mirror, ["python3"], tmp_path, hooks=hooks)
    end = argv.index("--")
    essential = next(a for a in argv[:end] if a.startswith("--essential-hook="))
    customize = next(a for a in argv[:end] if a.startswith("--customize-hook="))
    assert "from harness.images.nativebuild import main" in essential
    assert essential.endswith(f"main())' essential \"$1\" '{tmp_path}/native root/root'")
    assert customize.endswith(f"main())' customize \"$1\" '{tmp_path}/native root/root'")
    assert hooks == nativebuild.hook_argv(tmp_path / "native root" / "root", python="/usr/bin/python3")
    assert nativebuild.hook_argv(None)[0].endswith("essential \"$1\" ''")
