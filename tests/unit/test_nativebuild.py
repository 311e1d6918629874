"""The build hooks: what goes into an image while it is built, what is left of it after (nothing), what runs where."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from harness.images import nativebuild as nb

STATUS = """\
Package: dpkg
Status: install ok installed
Version: 1.22.22
Description: Debian package management system
 Version: 0.0 (a continuation line is not a field)

Package: python3.13-minimal
Status: install ok installed
Version: 3.13.5-2+deb13u5

Package: python3-old
Status: deinstall ok config-files
Version: 1.0
"""


def _image(tmp_path: Path, *, dpkg: str = "1.22.22") -> Path:
    root = tmp_path / "image"
    for d in ("var/lib/dpkg", "etc/apt/apt.conf.d", "usr/bin"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS.replace("Version: 1.22.22", f"Version: {dpkg}"))
    (root / "usr/bin/python3").symlink_to("python3.13")
    return root


def _native(tmp_path: Path, versions: dict[str, str] | None = None) -> nb.Native:
    folder = tmp_path / "native"
    root = folder / "root"
    lib = root / "usr/lib/x86_64-linux-gnu"
    lib.mkdir(parents=True)
    (lib / "ld-linux-x86-64.so.2").write_text("loader")
    (root / "usr/lib64").mkdir()
    (root / "usr/lib64/ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (root / "usr/bin").mkdir()
    (root / "usr/bin/python3").symlink_to("python3.13")
    versions = versions or {"dpkg": "1.22.22", "python3.13-minimal": "3.13.5-2+deb13u5+b1"}
    (folder / "native.json").write_text(json.dumps({"versions": versions}))
    return nb.Native(root, versions)


def test_versions_come_from_the_image_status_and_the_deb_names(tmp_path: Path) -> None:
    root = _image(tmp_path)
    assert nb.deb_version(root, "dpkg") == "1.22.22"
    assert nb.deb_version(root, "python3-old") == ""  # removed, only its configuration left
    assert nb.deb_version(root, "absent") == ""
    assert nb.deb_version(tmp_path / "nowhere", "dpkg") == ""
    assert nb.default_python(root) == "python3.13"
    assert nb.versions_from_debs(["dpkg_1.22.22_amd64.deb", "python3-numpy_1%3a2.2.4+ds-1_amd64.deb", "x.txt"]) == {
        "dpkg": "1.22.22",
        "python3-numpy": "1:2.2.4+ds-1",
    }
    assert nb.same_build("3.13.5-2+deb13u5", "3.13.5-2+deb13u5+b1")  # a binNMU: the same source
    assert not nb.same_build("3.13.5-2", "3.13.6-1")
    assert not nb.same_build("", "")


def test_the_native_loader_is_a_real_file_never_a_link(tmp_path: Path) -> None:
    native = _native(tmp_path)
    assert native.python == "python3.13"
    assert native.argv("/w", "usr/bin/dpkg-deb") == [
        "/w/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "--library-path",
        "/w/usr/lib/x86_64-linux-gnu",
        "/w/usr/bin/dpkg-deb",
    ]


def test_the_recorder_writes_each_call_down_and_compiles_nothing(tmp_path: Path) -> None:
    script = tmp_path / "py3compile"
    script.write_text(nb._RECORDER.replace("/{work}", str(tmp_path)))
    script.chmod(0o755)
    subprocess.run(["sh", str(script), "-p", "python3-numpy:riscv64"], check=True)
    subprocess.run(["sh", str(script), "-p", "python3-foo", "/usr/share/foo bar", "-X", "a\tb"], check=True)
    assert nb.parse_calls((tmp_path / "py3compile.calls").read_bytes()) == [
        ["-p", "python3-numpy:riscv64"],
        ["-p", "python3-foo", "/usr/share/foo bar", "-X", "a\tb"],
    ]


def test_the_essential_hook_puts_the_wrappers_first_on_dpkgs_path(tmp_path: Path) -> None:
    root, native = _image(tmp_path), _native(tmp_path)
    said: list[str] = []
    assert nb.essential(root, native, say=said.append) == ["dpkg-deb", "py3compile"]
    conf = (root / nb.APT_CONF).read_text()
    assert conf == f'DPkg::Path "/{nb.WORK}/bin:/usr/sbin:/usr/bin:/sbin:/bin";\n'
    wrapper = (root / nb.WORK / "bin/dpkg-deb").read_text()
    assert f"exec /{nb.WORK}/native/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path" in wrapper
    assert (root / nb.WORK / "native/usr/bin/python3").is_symlink()  # the copy keeps links as links
    assert said == [f"{nb.MARK} natively during the install: dpkg-deb, py3compile"]


def test_a_native_dpkg_of_another_version_is_not_used_and_fetched_again_next_time(tmp_path: Path) -> None:
    root, native = _image(tmp_path, dpkg="1.23.0"), _native(tmp_path)
    said: list[str] = []
    assert nb.essential(root, native, say=said.append) == ["py3compile"]
    assert not (root / nb.WORK / "bin/dpkg-deb").exists()
    assert "unpacking runs emulated" in said[0]
    assert json.loads((native.root.parent / "native.json").read_text())["stale"] is True


def test_no_native_copy_means_nothing_goes_into_the_image(tmp_path: Path) -> None:
    root = _image(tmp_path)
    assert nb.essential(root, None) == []
    assert not (root / nb.WORK).exists()
    assert not (root / nb.APT_CONF).exists()


def test_the_customize_hook_leaves_nothing_of_the_build_in_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, native = _image(tmp_path), _native(tmp_path)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    nb.essential(root, native, say=lambda _m: None)
    (root / nb.WORK / "py3compile.calls").write_bytes(b"-p\0python3-numpy:riscv64\0\n-p\0python3-six\0\n")
    replayed: list[list[list[str]]] = []

    def native_run(_r: Path, calls: list[list[str]], _n: nb.Native, _w: int) -> list[int]:
        replayed.append(list(calls))
        return [1]  # the second call failed natively

    monkeypatch.setattr(nb, "replay_native", native_run)
    monkeypatch.setattr(nb, "replay_emulated", lambda _r, calls: replayed.append(list(calls)))
    nb.customize(root, native)
    # the native interpreter ran every call; the one it failed ran again under emulation
    assert replayed == [[["-p", "python3-numpy:riscv64"], ["-p", "python3-six"]], [["-p", "python3-six"]]]
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_another_python_version_compiles_under_emulation_and_is_fetched_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _image(tmp_path)
    native = _native(tmp_path, {"dpkg": "1.22.22", "python3.13-minimal": "3.13.6-1"})
    nb.essential(root, native, say=lambda _m: None)
    (root / nb.WORK / "py3compile.calls").write_bytes(b"-p\0python3-six\0\n")
    replayed: list[list[list[str]]] = []
    monkeypatch.setattr(nb, "replay_native", lambda *_a: pytest.fail("the native interpreter is another version"))
    monkeypatch.setattr(nb, "replay_emulated", lambda _r, calls: replayed.append(list(calls)))
    nb.customize(root, native)
    assert replayed == [[["-p", "python3-six"]]]
    assert "the native python3.13 is 3.13.6-1, the image's python3.13 3.13.5-2+deb13u5" in capsys.readouterr().out
    assert json.loads((native.root.parent / "native.json").read_text())["stale"] is True


def test_a_failing_py3compile_fails_the_build_like_the_postinst_would(tmp_path: Path) -> None:
    with pytest.raises(nb.HookError, match=r"`py3compile -p python3-six` failed \(exit \d+\) in .*postinst would"):
        nb.replay_emulated(tmp_path / "no-such-root", [["-p", "python3-six"]])


def test_each_kernel_without_an_initramfs_gets_one_and_its_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "image"
    for v in ("6.12.1-riscv64", "6.1.0-old", "6.6.0-done"):
        (root / "usr/lib/modules" / v).mkdir(parents=True)
    for d in ("boot", "usr/sbin", "usr/bin"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "boot/vmlinux-6.12.1-riscv64").write_text("")
    (root / "boot/vmlinuz-6.6.0-done").write_text("")
    (root / "boot/initrd.img-6.6.0-done").write_text("")  # a trigger made it while packages were layered
    assert nb.kernel_versions(root) == ["6.12.1-riscv64", "6.6.0-done"]  # 6.1.0-old left modules only
    ran: list[list[str]] = []

    def run(argv: list[str], **_k: object) -> subprocess.CompletedProcess[str]:
        ran.append(argv[2:])
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(nb.subprocess, "run", run)
    assert nb.make_initramfs(root) == []  # no initramfs-tools in the image: nothing to make
    (root / "usr/sbin/update-initramfs").write_text("")
    (root / "usr/bin/linux-update-symlinks").write_text("")
    assert nb.make_initramfs(root, say=lambda _m: None) == ["6.12.1-riscv64"]
    assert ran == [
        ["update-initramfs", "-c", "-k", "6.12.1-riscv64", "-b", "/boot"],
        ["linux-update-symlinks", "install", "6.12.1-riscv64", "/boot/vmlinux-6.12.1-riscv64"],
    ]


def test_the_hooks_main_refuses_a_wrong_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert nb.main(["install", "/x", ""]) == 2
    assert "usage:" in capsys.readouterr().err
