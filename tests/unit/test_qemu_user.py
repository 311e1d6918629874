"""Which qemu-user a chroot target runs on: the CPU model check, the private emulator, its apt configuration.

The fake emulators here are shell scripts that answer ``--version`` and
``-cpu help`` as QEMU 7.2 and QEMU 10 do; the real ones run in
tests/integration/test_profiles.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import qemu_enter, qemu_user, qemu_wrapper
from harness.config import load_project, load_target
from harness.errors import ConfigError, TargetError
from harness.model import TargetFacts
from harness.paths import qemu_dir
from harness.targets import make_target
from harness.targets.base import Completed
from harness.targets.chroot import ChrootTarget

ROOT = Path(__file__).resolve().parents[2]

QEMU72_CPUS = "any\nrv64\nshakti-c\nsifive-e51\nsifive-u54\nthead-c906\nx-rv128\n"
QEMU10_CPUS = "Available CPUs:\n  max\n  rv64\n  rv64i\n  rva22u64\n  rva23u64\n  sifive-u54\n"


def fake_qemu(folder: Path, version: str, cpus: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "qemu-riscv64"
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = --version ]; then echo "qemu-riscv64 version {version} (Debian)"; exit 0; fi\n'
        f"printf '{cpus}'\n"
    )
    path.chmod(0o755)
    qemu_user.describe.cache_clear()
    return path


@pytest.fixture(autouse=True)
def _fresh_describe() -> None:
    qemu_user.describe.cache_clear()


def profile(name: str) -> ChrootTarget:
    t = make_target(load_project(ROOT).targets[name])
    assert isinstance(t, ChrootTarget)
    return t


def test_versions_and_cpu_models_are_read_from_qemu_output() -> None:
    assert qemu_user.parse_version("qemu-riscv64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)") == "10.0.13"
    assert qemu_user.parse_version("qemu-riscv64 version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)") == "7.2.19"
    assert qemu_user.parse_version("garbage") == ""
    assert qemu_user.parse_cpu_models(QEMU72_CPUS)[:2] == ["any", "rv64"]
    assert qemu_user.parse_cpu_models(QEMU10_CPUS) == ["max", "rv64", "rv64i", "rva22u64", "rva23u64", "sifive-u54"]
    assert qemu_user.cpu_model_name("rv64,v=true,vlen=256") == "rv64"
    assert qemu_user.cpu_model_name("") == ""


def test_a_cpu_model_the_emulator_lacks_is_refused_with_the_fix(tmp_path: Path) -> None:
    old = fake_qemu(tmp_path / "72", "7.2.19", QEMU72_CPUS)
    with pytest.raises(TargetError) as err:
        qemu_user.check_cpu(str(old), "rva23u64", target="t")
    msg = str(err.value)
    assert 'cpu "rva23u64" names the model "rva23u64"' in msg
    assert "version 7.2.19" in msg
    assert 'qemu = "debian-trixie"' in msg
    assert qemu_user.FETCH_HINT in msg
    assert qemu_user.check_cpu(str(old), "rv64,v=true,vlen=256", target="t") == "7.2.19"
    new = fake_qemu(tmp_path / "10", "10.0.13", QEMU10_CPUS)
    assert qemu_user.check_cpu(str(new), "rva23u64,vlen=512", target="t") == "10.0.13"


def test_a_profile_cpu_on_the_hosts_old_qemu_does_not_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the qemu key, rva23u64 on a host whose binfmt points at QEMU 7.2 is a TargetError, not a run."""
    old = fake_qemu(tmp_path / "72", "7.2.19", QEMU72_CPUS)
    path = tmp_path / "t.toml"
    path.write_text(
        'kind = "chroot"\ncpu = "rva23u64"\n[image]\ndistro = "debian"\nrelease = "trixie"\narch = "riscv64"\n'
    )
    t = make_target(load_target(path))
    assert isinstance(t, ChrootTarget)
    monkeypatch.setattr(qemu_user, "binfmt_interpreter", lambda arch: str(old))
    with pytest.raises(TargetError, match="does not know"):
        t._emulator()


def test_the_hosts_binfmt_interpreter_is_read_from_its_entry(tmp_path: Path) -> None:
    (tmp_path / "qemu-riscv64").write_text(
        "enabled\ninterpreter /usr/libexec/qemu-binfmt/riscv64-binfmt-P\nflags: PF\noffset 0\n"
    )
    got = qemu_user.binfmt_interpreter("riscv64", tmp_path)
    assert got == os.path.realpath("/usr/libexec/qemu-binfmt/riscv64-binfmt-P")
    assert qemu_user.binfmt_interpreter("aarch64", tmp_path) == ""


def test_profile_targets_name_the_private_qemu_and_the_promised_cpu() -> None:
    targets = load_project(ROOT).targets
    cpus = {n: targets[n].options.cpu for n in targets if n.startswith("debian-trixie-riscv64-rva")}
    assert cpus == {
        "debian-trixie-riscv64-rva20": (
            "rv64i,m=true,a=true,f=true,d=true,c=true,zicsr=true,zifencei=true,zicntr=true,zihpm=true"
        ),
        "debian-trixie-riscv64-rva22": "rva22u64",
        "debian-trixie-riscv64-rva23": "rva23u64",
        "debian-trixie-riscv64-rva23-vlen128": "rva23u64,vlen=128",
        "debian-trixie-riscv64-rva23-vlen256": "rva23u64,vlen=256",
        "debian-trixie-riscv64-rva23-vlen512": "rva23u64,vlen=512",
    }
    for name in cpus:
        assert targets[name].options.qemu == "debian-trixie", name
        assert targets[name].image == targets["debian-trixie-riscv64"].image, name  # the shared image
        assert not targets[name].default, name


def test_a_private_qemu_needs_a_kernel_with_binfmt_misc_per_user_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    assert qemu_user.kernel_ok("6.7.0")
    assert qemu_user.kernel_ok("6.18.44-fc-v657")
    assert not qemu_user.kernel_ok("6.6.58")
    assert not qemu_user.kernel_ok("5.10.0-28-amd64")
    t = profile("debian-trixie-riscv64-rva23")
    monkeypatch.setattr(qemu_user, "kernel_ok", lambda release=None: False)
    with pytest.raises(TargetError, match=r"needs Linux 6\.7 or later.*remove the qemu key"):
        t._emulator()


def test_an_unknown_qemu_source_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(
        'kind = "chroot"\nqemu = "trixy"\n[image]\ndistro = "debian"\nrelease = "trixie"\narch = "riscv64"\n'
    )
    t = make_target(load_target(path))
    assert isinstance(t, ChrootTarget)
    with pytest.raises(ConfigError, match=r't\.toml: key "qemu" is "trixy"; expected "" .* or "debian-trixie"'):
        t._emulator()


def private_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ChrootTarget, Path]:
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    cached = qemu_dir("debian-trixie")
    binary = fake_qemu(cached / "root" / "usr" / "bin", "10.0.13", QEMU10_CPUS)
    (cached / "meta.json").write_text("{}")
    monkeypatch.setattr(qemu_user, "kernel_ok", lambda release=None: True)
    t = profile("debian-trixie-riscv64-rva23")
    t.root = tmp_path / "root"
    return t, binary


def test_every_command_of_a_profile_target_runs_through_the_private_binfmt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t, binary = private_target(tmp_path, monkeypatch)
    seen: list[tuple[list[str], dict[str, str]]] = []

    def fake_run(argv: list[str], **kw: object) -> Completed:
        env = kw["env"]
        assert isinstance(env, dict)
        seen.append((argv, env))
        return Completed(argv=argv, exit_code=0, signal=None, stdout="", stderr="", wall=0.0)

    monkeypatch.setattr("harness.targets.chroot.run_process", fake_run)
    t.run(["python3", "-c", "pass"], timeout=10, cwd="/tmp")
    argv, env = seen[0]
    interp = argv[4]
    assert argv[1:] == [
        "-I",
        str(qemu_user.ENTER),
        str(tmp_path / "root"),
        interp,
        "/proc/sys/fs/binfmt_misc",
        str(binary.parent),  # bound read-only in the root, where the wrapper runs it
        qemu_wrapper.INSIDE,
        "--wd=/tmp",  # qemu_enter changes folder itself, after its chroot: no emulated env -C
        "--",
        "python3",
        "-c",
        "pass",
    ]
    assert env["QEMU_CPU"] == "rva23u64"
    # The interpreter is the CPU-model wrapper kept with the cached qemu, not qemu itself.
    assert Path(interp).parent == qemu_dir("debian-trixie") / "wrappers"
    assert Path(interp).read_bytes() == qemu_wrapper.program(f"{qemu_wrapper.INSIDE}/qemu-riscv64", "rva23u64")


def test_a_namespace_that_cannot_be_set_up_is_a_target_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t, _ = private_target(tmp_path, monkeypatch)
    stderr = "leapfrog qemu namespace: mounting binfmt_misc failed: Operation not permitted; ...\n"
    monkeypatch.setattr(
        "harness.targets.chroot.run_process",
        lambda argv, **kw: Completed(argv=argv, exit_code=125, signal=None, stdout="", stderr=stderr, wall=0.0),
    )
    with pytest.raises(TargetError, match="mounting binfmt_misc failed"):
        t.run(["true"], timeout=10)


@pytest.mark.parametrize(
    "stderr",
    [
        "the suite's own words\nleapfrog qemu namespace: mounting binfmt_misc failed\n",
        "leapfrog qemu namespace: forged by the command\nand more of its own\n",
        "leapfrog qemu namespace: no newline at the end",
        "chroot: failed to run command 'x': forged\nTraceback (most recent call last):\n",
    ],
)
def test_a_command_that_quotes_the_setup_messages_keeps_its_own_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str
) -> None:
    # stderr is the command's, so untrusted: only a setup failure's whole output is a target error.
    t, _ = private_target(tmp_path, monkeypatch)
    monkeypatch.setattr(
        "harness.targets.chroot.run_process",
        lambda argv, **kw: Completed(argv=argv, exit_code=125, signal=None, stdout="", stderr=stderr, wall=0.0),
    )
    done = t.run(["true"], timeout=10)
    assert (done.exit_code, done.stderr) == (125, stderr)


def test_both_lines_of_a_failed_id_map_are_a_target_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t, _ = private_target(tmp_path, monkeypatch)
    stderr = (
        "leapfrog qemu namespace: writing /proc/7/uid_map failed: [Errno 1]; leapfrog must run as root.\n"
        "leapfrog qemu namespace: the parent could not write the id maps of the new user namespace.\n"
    )
    monkeypatch.setattr(
        "harness.targets.chroot.run_process",
        lambda argv, **kw: Completed(argv=argv, exit_code=125, signal=None, stdout="", stderr=stderr, wall=0.0),
    )
    with pytest.raises(TargetError, match="leapfrog must run as root"):
        t.run(["true"], timeout=10)


def test_facts_record_the_qemu_version_binary_and_cpu_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t, binary = private_target(tmp_path, monkeypatch)
    facts = t.enrich_facts(TargetFacts(arch="riscv64"))
    assert facts.cpu_model == "rva23u64"
    assert facts.extra["qemu_version"] == "10.0.13"
    assert facts.extra["qemu"] == "qemu-riscv64 version 10.0.13 (Debian)"
    assert facts.extra["qemu_binary"] == str(binary)
    assert facts.extra["qemu_cpu"] == "rva23u64"
    assert facts.extra["qemu_binfmt"].startswith("private to the target (user namespace)")


def test_the_private_apt_configuration_reads_nothing_of_the_hosts_apt(tmp_path: Path) -> None:
    conf = qemu_user.apt_config(tmp_path, "http://deb.debian.org/debian", "trixie", "amd64")
    assert (tmp_path / "sources.list").read_text() == (
        f"deb [signed-by={qemu_user.KEYRING}] http://deb.debian.org/debian trixie main\n"
    )
    settings = dict(line.rstrip(";").split(" ", 1) for line in conf.splitlines() if line.startswith(("Dir", "APT::A")))
    for key, value in settings.items():
        if key.startswith("Dir"):
            assert not any(host in value for host in ("/etc/apt", "/var/lib", "/var/cache")), key
    assert settings["Dir::Etc::trusted"] == '"/dev/null"'  # only the signed-by keyring is trusted
    assert settings["APT::Architecture"] == '"amd64"'
    assert qemu_user.dpkg_arch("x86_64") == "amd64"
    assert qemu_user.dpkg_arch("aarch64") == "arm64"


def test_the_binfmt_entry_opens_the_interpreter_now_and_keeps_argv0() -> None:
    line = qemu_enter.register_line("/c/qemu/wrappers/qemu-cpu-0123")
    name, kind, offset, magic, mask, interp, flags = line.split(":")[1:]
    assert (name, kind, offset, flags) == ("leapfrog-riscv64", "M", "", "PF")
    assert magic.startswith(r"\x7fELF\x02")  # ELF64
    assert magic.endswith(r"\xf3\x00")  # EM_RISCV
    assert len(magic.encode().decode("unicode_escape")) == len(mask.encode().decode("unicode_escape")) == 20
    assert interp == "/c/qemu/wrappers/qemu-cpu-0123"


def test_the_enter_helper_refuses_a_malformed_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert qemu_enter.main(["/root", "/interp", "/mnt", "--", "true"]) == 2
    assert "usage: qemu_enter.py ROOT INTERPRETER MOUNTPOINT QEMU_DIR INSIDE -- ARGV" in capsys.readouterr().err


def test_doctor_says_which_profiles_run_here_and_how_to_get_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.doctor import profile_checks

    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    old = {c.name: c for c in profile_checks(release="6.1.0")}
    assert set(old) == {"profile rva20", "profile rva22", "profile rva23"}
    assert not old["profile rva23"].ok
    assert "Linux 6.7 or later" in old["profile rva23"].fix
    fresh = profile_checks(release="6.18.0")[2]
    assert "fetched into leapfrog's cache on first use" in fresh.detail
    assert qemu_user.FETCH_HINT in fresh.fix
    cached = qemu_dir("debian-trixie")
    fake_qemu(cached / "root" / "usr" / "bin", "10.0.13", QEMU10_CPUS)
    (cached / "meta.json").write_text('{"version_line": "qemu-riscv64 version 10.0.13 (Debian)"}')
    ready = profile_checks(release="6.18.0")[2]
    assert ready.ok
    assert ready.detail == f"qemu-riscv64 version 10.0.13 (Debian), cached in {cached}"
