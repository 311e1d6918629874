"""openEuler images built with dnf: the target file's keys, the dnf command, its private setup, its errors.

The build itself (dnf against a repository on 127.0.0.1) is in tests/integration/test_openeuler_dnf.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness import guest, hostreq
from harness.config import ImageSpec, load_target
from harness.errors import ConfigError, ImageError
from harness.images import buildrun, cache, dnf_rootfs
from tests.unit.fake_target import fake_config

ROOT = Path(__file__).resolve().parents[2]
MIRROR = "https://repo.openeuler.org"
KEY = f"{MIRROR}/openEuler-24.03-LTS-SP3/everything/riscv64/rva23/riscv64/RPM-GPG-KEY-openEuler"


def spec(**kw: Any) -> ImageSpec:
    base: dict[str, Any] = {
        "distro": "openeuler",
        "release": "24.03-LTS-SP3",
        "profile": "rva23",
        "mirror": MIRROR,
        "gpgkey": KEY,
    }
    return ImageSpec(**{**base, **kw})


# ---------------------------------------------------------------- the target file's keys


def test_the_repository_follows_openeulers_profile_layout() -> None:
    assert dnf_rootfs.repo_url(spec()) == f"{MIRROR}/openEuler-24.03-LTS-SP3/everything/riscv64/rva23/riscv64/"
    assert dnf_rootfs.repo_url(spec(profile="rva20", mirror=MIRROR + "/")).endswith(
        "/everything/riscv64/rva20/riscv64/"
    )


def test_a_dnf_build_needs_a_profile() -> None:
    with pytest.raises(ConfigError, match=r'needs key "image\.profile": one of rva20, rva23'):
        spec(profile="")


def test_an_unknown_profile_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r'"image.profile" is \'rva22\' \(did you mean "rva23"\?\)'):
        spec(profile="rva22")


def test_debians_mirror_is_refused_for_an_openeuler_build() -> None:
    with pytest.raises(ConfigError, match="needs the URL of an openEuler repository root"):
        ImageSpec(distro="openeuler", release="24.03-LTS-SP3", profile="rva23", gpgkey=KEY)


def test_a_signed_repository_needs_its_key_or_an_explicit_gpgcheck_false() -> None:
    with pytest.raises(ConfigError, match=r'key "image.gpgkey" must name the signing key.*gpgcheck = false'):
        spec(gpgkey="")
    assert spec(gpgkey="", gpgcheck=False).gpgcheck is False


def test_a_gpgkey_must_be_a_url() -> None:
    with pytest.raises(ConfigError, match=r'key "image\.gpgkey" is .*https://, http:// or file:// URL'):
        spec(gpgkey="/etc/pki/key")


def test_profile_and_gpgkey_belong_to_dnf_builds_only() -> None:
    with pytest.raises(ConfigError, match=r'key "image\.profile" applies only to openEuler images leapfrog builds'):
        ImageSpec(profile="rva23")
    with pytest.raises(ConfigError, match=r'key "image\.gpgkey" applies only'):
        ImageSpec(distro="openeuler", source="qcow2", gpgkey=KEY)


def test_the_error_names_the_target_file(tmp_path: Path) -> None:
    path = tmp_path / "oe.toml"
    path.write_text('kind = "chroot"\n[image]\ndistro = "openeuler"\nrelease = "24.03-LTS-SP3"\nmirror = "https://m"\n')
    with pytest.raises(ConfigError, match=rf"{path}: .*image.profile"):
        load_target(path)


def test_the_shipped_sp3_targets_load_and_are_not_default() -> None:
    names = ("rva20", "rva23", "rva20-vm", "rva23-vm")
    targets = {n: load_target(ROOT / "targets" / f"openeuler-24.03-sp3-riscv64-{n}.toml") for n in names}
    for name, t in targets.items():
        assert t.default is False, name
        assert "needs openEuler's mirror, unreachable here" in t.description, name
        assert t.image is not None
        assert t.image.release == "24.03-LTS-SP3"
    assert targets["rva23"].image is not None
    assert targets["rva23"].image.profile == "rva23"
    assert targets["rva23"].options.cpu == "rva23u64"
    assert targets["rva23"].image.gpgcheck
    assert targets["rva23"].image.gpgkey.endswith("/rva23/riscv64/RPM-GPG-KEY-openEuler")
    vm = targets["rva23-vm"]
    assert vm.image is not None
    assert vm.image.url.endswith("openEuler-24.03-LTS-SP3-RVA23-riscv64.qcow2.xz")
    assert [Path(f).name for f in vm.image.firmware] == ["RISCV_VIRT_CODE_RVA23.fd", "RISCV_VIRT_VARS_RVA23.fd"]


# ---------------------------------------------------------------- the command and its private setup


def test_dnf_installs_into_the_root_from_the_generated_repository_only(tmp_path: Path) -> None:
    argv = dnf_rootfs.dnf_argv(spec(), tmp_path / "dnf.conf", tmp_path / "repos", tmp_path / "root", ["python3", "b"])
    assert argv[:2] == ["dnf", "-y"]
    for option in (
        f"--config={tmp_path / 'dnf.conf'}",
        f"--installroot={tmp_path / 'root'}",
        "--forcearch=riscv64",
        "--releasever=24.03-LTS-SP3",
        f"--setopt=reposdir={tmp_path / 'repos'}",
        "--disablerepo=*",
        f"--enablerepo={dnf_rootfs.REPO_ID}",
        "--noplugins",
        "--setopt=strict=False",
    ):
        assert option in argv, option
    assert argv[-4:] == ["install", "--", "b", "python3"]


def test_a_package_name_that_looks_like_an_option_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a valid openeuler package name"):
        dnf_rootfs.dnf_argv(spec(), tmp_path / "c", tmp_path / "r", tmp_path / "root", ["--setopt=x"])


def test_rpm_reads_the_images_database_not_the_hosts(tmp_path: Path) -> None:
    argv = dnf_rootfs.rpm_query_argv(tmp_path, ["python3"])
    assert argv[:3] == ["rpm", f"--root={tmp_path}", "--dbpath=/var/lib/rpm"]


def test_gpgcheck_is_explicit_in_the_repo_file() -> None:
    signed = dnf_rootfs.repo_text(spec())
    assert "gpgcheck=1\n" in signed
    assert f"gpgkey={KEY}\n" in signed
    assert f"baseurl={dnf_rootfs.repo_url(spec())}\n" in signed
    unsigned = dnf_rootfs.repo_text(spec(gpgkey="", gpgcheck=False))
    assert "gpgcheck=0\n" in unsigned
    assert "gpgkey" not in unsigned


def test_the_private_setup_keeps_dnf_and_rpm_off_the_hosts_configuration(tmp_path: Path) -> None:
    conf, reposdir, env = dnf_rootfs._private_dir(spec(), tmp_path)
    assert [p.name for p in reposdir.iterdir()] == [f"{dnf_rootfs.REPO_ID}.repo"]
    assert f"reposdir={reposdir}\n" in conf.read_text()
    assert env["HOME"] == str(tmp_path / "home")
    assert (tmp_path / "home" / ".rpmmacros").read_text() == "%_dbpath /var/lib/rpm\n"


def test_the_cache_key_holds_the_profile() -> None:
    pkgs = dnf_rootfs.image_packages(spec(), ["python3-numpy"])
    assert {"python3", "python3-pytest", "coreutils", "python3-numpy"} == set(pkgs)
    keys = {
        cache.image_key("openeuler", "24.03-LTS-SP3", "riscv64", dnf_rootfs.repo_url(spec(profile=p)), pkgs)
        for p in ("rva20", "rva23")
    }
    assert len(keys) == 2


def test_image_meta_keeps_what_the_repository_lacked() -> None:
    meta = cache.ImageMeta("k", "openeuler", "r", "riscv64", "u", ["a", "b"], 1, missing=["b"])
    assert cache.ImageMeta.from_dict(meta.to_dict()).missing == ["b"]
    older = {k: v for k, v in meta.to_dict().items() if k != "missing"}  # a meta.json written before the field
    assert cache.ImageMeta.from_dict(older).missing == []


# ---------------------------------------------------------------- errors read into messages


def _finished(lines: list[str], *, code: int = 1, timed_out: bool = False) -> buildrun.Finished:
    return buildrun.Finished(argv=["dnf"], code=code, tail=lines, errors=[], timed_out=timed_out, timeout=60.0)


def test_a_missing_repository_names_mirror_release_and_profile() -> None:
    lines = [
        "Status code: 404 for http://m/openEuler-24.03-LTS-SP3/everything/riscv64/rva23/riscv64/repodata/repomd.xml"
    ]
    message = dnf_rootfs.explain(_finished(lines), ["Error: Failed to download metadata for repo"], spec())
    assert "check image.mirror, image.release and image.profile" in message
    assert dnf_rootfs.repo_url(spec()) in message


def test_an_unreachable_mirror_says_so() -> None:
    errors = ["Curl error (7): Couldn't connect to server for http://m/repodata/repomd.xml"]
    assert "is reachable from this host" in dnf_rootfs.explain(_finished([]), errors, spec())


def test_a_signature_failure_names_the_key() -> None:
    errors = ["Error: GPG check FAILED", "Public key for python3-3.11.rpm is not installed"]
    message = dnf_rootfs.explain(_finished([]), errors, spec())
    assert f"could not be checked with the key {KEY}" in message
    assert "set image.gpgkey" in message


def test_a_deadline_names_its_variable() -> None:
    message = dnf_rootfs.explain(_finished(["Installing : x"], timed_out=True), [], spec())
    assert "within 60 s" in message
    assert "LEAPFROG_DNF_TIMEOUT" in message


def test_without_dnf_the_build_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda prog: None if prog == "dnf" else f"/usr/bin/{prog}")
    with pytest.raises(ImageError, match=r"needs dnf on this host.*install with: apt-get install dnf"):
        dnf_rootfs.build_rootfs(spec(), ["python3"], tmp_path / "root")
    assert not (tmp_path / "root").exists()


def test_dnf_and_rpm_are_host_requirements_of_the_chroot_profile() -> None:
    chroot = {r.program: r for r in hostreq.for_profile("chroot")}
    assert chroot["dnf"].package == "dnf"
    assert chroot["rpm"].package == "rpm"
    full = {r.program: r.package for r in hostreq.for_profile("full")}
    assert full["rpmbuild"] == "rpm"
    assert full["createrepo_c"] == "createrepo-c"


# ---------------------------------------------------------------- how the build reaches the runner


def test_openeuler_build_images_go_to_the_dnf_builder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness import images

    made = cache.CachedImage(meta=cache.ImageMeta("k", "openeuler", "r", "riscv64", "u", [], 1), path=tmp_path)
    seen: list[tuple[ImageSpec, list[str]]] = []

    def fake(s: ImageSpec, p: list[str], progress: object = None) -> cache.CachedImage:
        seen.append((s, p))
        return made

    monkeypatch.setattr(dnf_rootfs, "ensure_image", fake)
    assert images.ensure_image(spec(), ["python3-numpy"]) is made
    assert seen == [(spec(), ["python3-numpy"])]


def test_a_dnf_built_image_reports_what_it_lacks_without_running_dnf_in_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = dataclasses.replace(fake_config("oe"), image=spec())
    monkeypatch.setattr(dnf_rootfs, "missing_packages", lambda s, p: sorted(set(p) & {"python3-torch"}))

    class NoRun:
        name = "oe"

        def run(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("nothing runs in the target: the image already holds what its repository has")

    got = guest.provision(NoRun(), cfg, ["python3-numpy", "python3-torch"], lambda _m: None)  # type: ignore[arg-type]
    assert got == ["python3-torch"]


def test_missing_packages_reads_the_cached_image(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path))
    pkgs = dnf_rootfs.image_packages(spec(), ["python3-numpy", "python3-torch"])
    url = dnf_rootfs.repo_url(spec())
    key = cache.image_key("openeuler", "24.03-LTS-SP3", "riscv64", url, pkgs)
    meta = cache.ImageMeta(key, "openeuler", "24.03-LTS-SP3", "riscv64", url, pkgs, cache.RECIPE_VERSION)
    folder = tmp_path / "images" / meta.name
    (folder / "rootfs").mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({**meta.to_dict(), "missing": ["python3-torch"]}))
    assert dnf_rootfs.missing_packages(spec(), ["python3-numpy", "python3-torch"]) == ["python3-torch"]
    assert dnf_rootfs.missing_packages(spec(profile="rva20"), ["python3-numpy", "python3-torch"]) == []


def test_a_dnf_build_first_sweeps_what_a_killed_build_left(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from harness import mounts

    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path))
    info = tmp_path / "mountinfo"
    info.write_text("1 0 8:1 / / rw - ext4 /dev/sda1 rw\n")
    monkeypatch.setattr(mounts, "MOUNTINFO", str(info))
    killed = cache.images_dir() / "openeuler-24.03-LTS-SP3-riscv64-0000"  # journal, no meta.json, lock free
    (killed / "rootfs" / "usr").mkdir(parents=True)
    mounts.record_mount(killed, killed / "rootfs" / "proc")

    def fake_build(s: ImageSpec, p: list[str], dest: Path, **_kw: object) -> tuple[dict[str, float], list[str]]:
        assert not killed.exists(), "the leftover is swept before the build starts"
        (dest / "usr").mkdir(parents=True)
        return {"dnf install": 1.0}, ["python3-torch"]

    monkeypatch.setattr(dnf_rootfs, "build_rootfs", fake_build)
    seen: list[str] = []
    img = dnf_rootfs.ensure_image(spec(), ["python3-torch"], progress=seen.append)
    assert not killed.exists()
    assert json.loads((img.path / "meta.json").read_text())["missing"] == ["python3-torch"]
    assert img.meta.mirror == dnf_rootfs.repo_url(spec())
    assert img.meta.phases == {"dnf install": 1.0}
    assert seen == [f"building {img.meta.name} with dnf (4 packages, profile rva23)"]
    assert [p.name for p in cache.images_dir().iterdir() if p.is_dir()] == [img.meta.name]
