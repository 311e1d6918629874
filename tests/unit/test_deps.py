"""harness.deps: requirements, platforms and sources, from recorded fixtures (no network)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from harness import deps
from harness.config import ImageSpec, TargetConfig
from harness.errors import ConfigError

DATA = Path(__file__).parent / "data" / "deps"


def _target(name: str, kind: str = "chroot", image: ImageSpec | None = None) -> TargetConfig:
    return TargetConfig(
        name=name,
        kind=kind,
        file=Path(f"targets/{name}.toml"),
        description="",
        arch=image.arch if image else "",
        python="python3",
        env={},
        image=image,
        options=None,
    )


TRIXIE = deps.platform_for(_target("debian-trixie-riscv64", image=ImageSpec()))
EULER = deps.platform_for(
    _target("oe", "docker", ImageSpec(distro="openeuler", release="24.03-LTS-SP1", source="tarball"))
)


def _pypi(name: str) -> dict[str, Any] | None:
    path = DATA / f"pypi-{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _sources(index: dict[str, str] | None = None) -> deps.Sources:
    packages = deps.parse_packages((DATA / "Packages-trixie-riscv64").read_text())
    return deps.Sources(distro=lambda _p: packages if index is None else index, pypi=_pypi)


def _one(req: str, platform: deps.Platform = TRIXIE, sources: deps.Sources | None = None) -> deps.Resolution:
    (res,) = deps.resolve([Requirement(req)], platform, sources or _sources())
    return res


# ------------------------------------------------------------------ reading


def test_requirements_file_follows_includes_and_skips_options() -> None:
    reqs = deps.read_requirements(DATA / "requirements.txt")
    assert [r.name for r in reqs] == ["numpy", "pydantic-core", "pyyaml", "pywin32"]
    assert str(reqs[0].specifier) == ">=1.26"


def test_requirements_file_with_a_bad_line_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "requirements.txt"
    bad.write_text("numpy\nnot a requirement !!\n")
    with pytest.raises(ConfigError, match=r"requirements.txt, line 2: 'not a requirement !!'"):
        deps.read_requirements(bad)


def test_requirements_include_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(ConfigError, match="includes itself"):
        deps.read_requirements(tmp_path / "a.txt")


def _pyproject(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(
        """
[project]
name = "demo"
dependencies = ["numpy>=1.26"]
[project.optional-dependencies]
Serve = ["fastapi"]
[dependency-groups]
test = ["pytest>=8", {include-group = "lint"}]
lint = ["ruff"]
"""
    )
    return tmp_path


def test_project_dependencies_extras_and_groups(tmp_path: Path) -> None:
    info = deps.read_project(_pyproject(tmp_path), extras=["serve"], groups=["test"])
    assert info.name == "demo"
    assert info.static
    assert [r.name for r in info.requirements] == ["numpy", "fastapi", "pytest", "ruff"]


def test_unknown_extra_and_group_name_what_exists(tmp_path: Path) -> None:
    folder = _pyproject(tmp_path)
    with pytest.raises(ConfigError, match=r'no extra "gpu".*known: Serve'):
        deps.read_project(folder, extras=["gpu"])
    with pytest.raises(ConfigError, match=r'no dependency group "docs".*known: test, lint'):
        deps.read_project(folder, groups=["docs"])


def test_setup_py_project_has_no_static_dependencies(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    assert not deps.read_project(tmp_path).static
    with pytest.raises(ConfigError, match=r"no pyproject\.toml or setup\.py"):
        deps.read_project(tmp_path / "missing")


# ------------------------------------------------------------------ platforms and versions


def test_riscv64_tags_take_manylinux_up_to_the_glibc_and_pure_wheels_never_musl() -> None:
    assert TRIXIE.python == (3, 13)
    assert "cp313-cp313-manylinux_2_41_riscv64" in TRIXIE.tags
    assert "cp313-cp313-manylinux_2_17_riscv64" in TRIXIE.tags
    assert "cp313-cp313-manylinux_2_42_riscv64" not in TRIXIE.tags
    assert "py3-none-any" in TRIXIE.tags
    assert not any("musllinux" in t or "x86_64" in t for t in TRIXIE.tags)
    assert EULER.python == (3, 11)
    assert "cp311-cp311-manylinux_2_38_riscv64" in EULER.tags


def test_unknown_release_is_a_config_error_naming_the_table() -> None:
    with pytest.raises(ConfigError, match=r"harness/deps/platforms\.py RELEASES"):
        deps.platform_for(_target("x", image=ImageSpec(release="potato")))


@pytest.mark.parametrize(
    ("debian", "upstream", "pep440"),
    [("1:2.2.4+ds-1", "2.2.4+ds", "2.2.4"), ("2.27.2-3+b1", "2.27.2", "2.27.2"), ("1.0~rc1-2", "1.0~rc1", "1.0rc1")],
)
def test_debian_versions_lose_epoch_and_revision(debian: str, upstream: str, pep440: str) -> None:
    assert deps.debian_upstream(debian) == upstream
    assert str(deps.comparable(debian)) == pep440


# ------------------------------------------------------------------ resolving


def test_debian_package_first_with_the_name_exceptions() -> None:
    res = _one("scikit-learn>=1.4")
    assert res.choice == "distro"
    assert res.chosen is not None
    assert (res.chosen.package, res.chosen.version) == ("python3-sklearn", "1.4.2+dfsg-8")
    assert _one("PyYAML").chosen.package == "python3-yaml"  # type: ignore[union-attr]


def test_a_pin_the_debian_version_misses_falls_to_a_riscv64_wheel() -> None:
    res = _one("pydantic-core==2.50.5")
    assert res.choice == "wheel"
    chosen = res.chosen
    assert chosen is not None
    assert chosen.package == "pydantic_core-2.50.5-cp313-cp313-manylinux_2_31_riscv64.whl"
    assert len(chosen.sha256) == 64
    assert chosen.url.endswith("/" + chosen.package)
    assert "does not fit" in res.summary()  # the Debian 2.27.2 is listed, as not fitting


def test_a_pin_no_wheel_fits_but_an_sdist_does() -> None:
    res = _one("pydantic-core==2.27.2", sources=_sources(index={}))
    assert res.choice == "sdist"
    wheel = next(o for o in res.offers if o.source == "pypi-wheel")
    assert (wheel.version, wheel.fits) == ("2.50.5", False)  # the newest riscv64 wheel, named as not fitting


def test_no_riscv64_build_anywhere_is_none_and_says_what_exists() -> None:
    res = _one("onnxruntime==1.32.0", sources=_sources(index={}))
    assert res.choice == "none"
    assert res.offers == ()  # x86-64 wheels only, no sdist
    assert "nothing" in res.summary()


def test_native_takes_what_is_installed_when_it_fits() -> None:
    native = deps.Platform("native", "", "", "x86_64", (3, 11), ("cp311-cp311-manylinux_2_17_x86_64",), native=True)
    src = deps.Sources(distro=lambda _p: {}, pypi=_pypi, installed=lambda _p, n: {"pydantic-core": "2.27.2"}.get(n))
    assert _one("pydantic-core", native, src).choice == "installed"
    res = _one("pydantic-core==2.50.5", native, src)
    assert res.choice == "sdist"  # 2.27.2 installed does not fit; the fixture's x86-64 wheel is for 2.27.2 only


def test_marker_false_on_the_target_is_not_needed() -> None:
    res = _one('pywin32 ; sys_platform == "win32"')
    assert (res.choice, res.offers) == ("not-needed", ())
    assert res.to_dict()["choice"] == "not-needed"


def test_openeuler_primary_metadata_case_insensitive_names() -> None:
    repomd = (DATA / "repomd.xml").read_bytes()
    href, digest = deps.primary_location(repomd)
    raw = (DATA / "primary.xml.gz").read_bytes()
    assert href.endswith("-primary.xml.gz")
    assert hashlib.sha256(raw).hexdigest() == digest
    index = deps.parse_primary(gzip.decompress(raw), "riscv64")
    assert index["python3-numpy"] == "1.26.4"  # the highest riscv64 build, not the x86_64 one
    assert index["python3-six"] == "1.16.0"  # noarch
    src = deps.Sources(distro=lambda _p: index, pypi=lambda _n: None)
    res = _one("pyyaml>=6", EULER, src)
    assert res.chosen is not None
    assert (res.choice, res.chosen.package) == ("distro", "python3-PyYAML")
    assert _one("numpy>=2", EULER, src).choice == "none"


def test_inrelease_sha256_reads_only_the_sha256_section() -> None:
    signed = (
        "Date: Sat, 21 Nov 2026 09:15:44 UTC\nMD5Sum:\n 576c5642117fbf5e949c05740c8aa3eb  9387120 "
        "main/binary-riscv64/Packages.xz\nSHA256:\n " + "f" * 64 + "  9387120 main/binary-riscv64/Packages.xz\n"
    )
    assert deps.inrelease_sha256(signed, "main/binary-riscv64/Packages.xz") == ("f" * 64, 9387120)
    assert deps.inrelease_date(signed) == "Sat, 21 Nov 2026 09:15:44 UTC"
    with pytest.raises(deps.DepsError, match="no SHA256 for main/binary-amd64"):
        deps.inrelease_sha256(signed, "main/binary-amd64/Packages.xz")


@pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("gpgv") is None, reason="gpg and gpgv not installed")
def test_inrelease_signature_is_checked_with_gpgv(tmp_path: Path) -> None:
    """A real signature from a throwaway key: the signed text comes back; a changed byte is refused."""
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--quiet", "--pinentry-mode", "loopback", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", "test@example.invalid", "ed25519", "sign", "1d"], env=env, check=True)
    keyring = tmp_path / "keyring.gpg"
    subprocess.run([*gpg, "--output", str(keyring), "--export"], env=env, check=True)
    plain = tmp_path / "plain"
    plain.write_text("Date: today\nSHA256:\n " + "a" * 64 + " 1 main/binary-riscv64/Packages.xz\n")
    signed = tmp_path / "InRelease"
    subprocess.run([*gpg, "--output", str(signed), "--clearsign", str(plain)], env=env, check=True)
    text = deps.verify_inrelease(signed, str(keyring))
    assert deps.inrelease_sha256(text, "main/binary-riscv64/Packages.xz")[0] == "a" * 64
    signed.write_text(signed.read_text().replace("a" * 64, "b" * 64))
    with pytest.raises(deps.DepsError, match="does not verify"):
        deps.verify_inrelease(signed, str(keyring))


# ------------------------------------------------------------------ the command and its report


class _FixtureSources(deps.LiveSources):
    """LiveSources answered from the recorded fixtures (the command's code path, no network)."""

    def distro(self, platform: deps.Platform) -> dict[str, str]:
        return deps.parse_packages((DATA / "Packages-trixie-riscv64").read_text())

    def pypi(self, name: str) -> dict[str, Any] | None:
        return _pypi(name)


def test_deps_command_prints_the_table_and_writes_json_and_html(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    monkeypatch.setattr(deps.table, "LiveSources", _FixtureSources)
    req = tmp_path / "requirements.txt"
    req.write_text("scikit-learn\npydantic-core==2.50.5\nonnxruntime==1.32.0\n")
    argv = ["--root", str(project_root), "deps", "debian-trixie-riscv64", "-r", str(req)]
    r = CliRunner().invoke(main, [*argv, "--json", str(tmp_path / "d.json"), "--html", str(tmp_path / "d.html")])
    assert r.exit_code == 0, r.output
    assert "python3-sklearn 1.4.2+dfsg" in r.output
    assert "wheel 2.50.5" in r.output
    got = json.loads((tmp_path / "d.json").read_text())
    choices = [x["choice"] for x in got["targets"][0]["requirements"]]
    assert choices == ["distro", "wheel", "none"]
    html = (tmp_path / "d.html").read_text()
    assert '<td class="dep-none">none' in html
    assert "Content-Security-Policy" in html


def test_deps_command_needs_one_source(project_root: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from harness.cli import main

    r = CliRunner().invoke(main, ["--root", str(project_root), "deps", "native"])
    assert r.exit_code == 2
    assert "give exactly one of -r REQUIREMENTS and --project PATH" in r.output


def test_html_escapes_what_pypi_and_the_requirements_say() -> None:
    hostile = deps.Offer("pypi-wheel", "x.whl", "1.0<script>alert(1)</script>", True)
    res = deps.Resolution("debian-trixie-riscv64", "numpy<2", "numpy", (hostile,))
    report = deps.DepsReport("<b>proj</b>", ["numpy<2"], [deps.TargetDeps(TRIXIE, [res])])
    html = deps.render_html(report)
    assert "<script>" not in html
    assert "<b>proj" not in html
    assert "numpy&lt;2" in html
    section = deps.render_html(report, standalone=False)
    assert section.lstrip().startswith('<section class="deps"')


def test_debian_index_is_verified_cached_and_used_stale_when_the_mirror_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download path with the network faked: the Packages.xz must match the signed SHA-256; a day later
    with the mirror down the cached, still verified index is used and says so."""
    import datetime as dt
    import lzma

    packages_xz = lzma.compress((DATA / "Packages-trixie-riscv64").read_bytes())
    digest = hashlib.sha256(packages_xz).hexdigest()
    inrelease = f"Date: Sat, 21 Nov 2026\nSHA256:\n {digest} {len(packages_xz)} main/binary-riscv64/Packages.xz\n"
    served = {
        "http://m.invalid/debian/dists/trixie/InRelease": inrelease.encode(),
        "http://m.invalid/debian/dists/trixie/main/binary-riscv64/Packages.xz": packages_xz,
    }
    fetched: list[str] = []

    def get(url: str, timeout: float = 60) -> bytes:
        fetched.append(url)
        if url not in served:
            raise deps.DepsError(f"cannot reach {url}")
        return served[url]

    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path))
    monkeypatch.setattr(deps.live, "_get", get)
    monkeypatch.setattr(deps.live, "verify_inrelease", lambda path, keyring=deps.DEBIAN_KEYRING: path.read_text())
    index, info = deps.debian_index("trixie", "riscv64", "http://m.invalid/debian")
    assert index["python3-sklearn"] == "1.4.2+dfsg-8"
    assert info.date == "Sat, 21 Nov 2026"
    assert len(fetched) == 2
    deps.debian_index("trixie", "riscv64", "http://m.invalid/debian")
    assert len(fetched) == 2  # younger than a day: not asked again

    stamp = next(tmp_path.rglob("Packages-riscv64.json"))
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat()
    stamp.write_text(json.dumps({"fetched": old, "date": ""}))
    served.clear()
    index, info = deps.debian_index("trixie", "riscv64", "http://m.invalid/debian")
    assert index["python3-sklearn"] == "1.4.2+dfsg-8"
    assert "cached index of an earlier day is used" in info.verified

    packages = next(tmp_path.rglob("Packages-riscv64.xz"))
    packages.write_bytes(lzma.compress(b"Package: python3-evil\nVersion: 9\n"))  # no longer what was signed
    with pytest.raises(deps.DepsError, match="does not match its cached InRelease"):
        deps.debian_index("trixie", "riscv64", "http://m.invalid/debian")


def test_a_packages_index_that_does_not_match_the_signed_digest_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inrelease = "SHA256:\n " + "0" * 64 + " 10 main/binary-riscv64/Packages.xz\n"
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path))
    monkeypatch.setattr(
        deps.live, "_get", lambda url, timeout=60: inrelease.encode() if url.endswith("InRelease") else b"x"
    )
    monkeypatch.setattr(deps.live, "verify_inrelease", lambda path, keyring=deps.DEBIAN_KEYRING: path.read_text())
    with pytest.raises(deps.DepsError, match="does not match the SHA-256 its signed InRelease lists"):
        deps.debian_index("trixie", "riscv64", "http://m.invalid/debian")
