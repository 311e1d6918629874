"""openEuler support against recorded facts and local stand-ins (no openEuler mirror is reachable)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from harness.config import load_project
from harness.errors import ConfigError, ImageError, TargetError
from harness.images import openeuler
from harness.images.fetch import decompress_xz, fetch, fetch_verified, parse_sha256sum
from harness.model import TargetFacts
from harness.probe.facts import collect
from harness.targets.base import Completed

DATA = Path(__file__).parent / "data" / "openeuler"


@pytest.mark.parametrize("name", ["os-release-24.03-LTS", "os-release-24.03-LTS-SP1"])
def test_recognise_openeuler_from_os_release(name: str) -> None:
    osr = openeuler.parse_os_release((DATA / name).read_text())
    assert osr["VERSION_ID"] == "24.03"
    assert openeuler.is_openeuler(None, osr)
    assert openeuler.is_openeuler(TargetFacts(os_id=osr["ID"]))
    assert not openeuler.is_openeuler(TargetFacts(os_id="debian"))


def test_parse_dnf_list_with_a_wrapped_row() -> None:
    names = openeuler.parse_dnf_list((DATA / "dnf-list-available.txt").read_text())
    assert names == {"python3-numpy", "python3-pytest", "python3-scikit-learn-extra-long-name-for-wrapping"}


class FakeTarget:
    """Answers rpm/dnf like an openEuler guest that has numpy but no torch; records argv."""

    name = "oe"

    def __init__(self, install_ok: bool = True) -> None:
        self.calls: list[list[str]] = []
        self.install_ok = install_ok

    def run(self, argv: list[str], *, timeout: float, env: object = None, cwd: object = None) -> Completed:
        self.calls.append(argv)
        if argv[0] == "rpm":
            out, rc = "python3-pytest\n", 1
        elif argv[:2] == ["dnf", "list"]:
            out, rc = (DATA / "dnf-list-available.txt").read_text(), 0
        else:
            out, rc = "Complete!\n", 0 if self.install_ok else 1
        return Completed(argv, rc, None, out, "" if rc == 0 else "Error: nothing provides ...", 0.1)


def test_provision_installs_what_exists_and_reports_what_is_missing() -> None:
    t = FakeTarget()
    got = openeuler.provision(t, ["python3-pytest", "python3-numpy", "python3-torch"])  # type: ignore[arg-type]
    assert got.already == ["python3-pytest"]
    assert got.installed == ["python3-numpy"]
    assert got.missing == ["python3-torch"]
    assert t.calls[-1] == ["dnf", "install", "-y", "--setopt=install_weak_deps=False", "--", "python3-numpy"]


def test_provision_refuses_a_package_name_that_rpm_or_dnf_would_read_as_an_option() -> None:
    t = FakeTarget()
    with pytest.raises(ConfigError, match=r"'--setopt=reposdir=/tmp'.*not a valid openeuler package name"):
        openeuler.provision(t, ["python3-numpy", "--setopt=reposdir=/tmp"])  # type: ignore[arg-type]
    assert t.calls == []


def test_provision_install_failure_is_infrastructure() -> None:
    with pytest.raises(TargetError, match="dnf install python3-numpy"):
        openeuler.provision(FakeTarget(install_ok=False), ["python3-numpy"])  # type: ignore[arg-type]


def test_facts_script_reads_openeuler_os_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.probe.facts as facts_mod

    monkeypatch.setattr(
        facts_mod, "os_release", lambda: openeuler.parse_os_release((DATA / "os-release-24.03-LTS-SP1").read_text())
    )
    got = collect([])
    assert got["os_id"] == "openEuler"
    assert got["os_name"] == "openEuler 24.03 (LTS-SP1)"
    assert got["extra"]["os_release_version"] == "24.03 (LTS-SP1)"  # type: ignore[index]


def test_shipped_openeuler_targets_load(project_root: Path) -> None:
    p = load_project(project_root)
    docker = p.targets["openeuler-24.03-riscv64-docker"]
    vm = p.targets["openeuler-24.03-riscv64-vm"]
    for t in (docker, vm):
        assert t.image is not None
        assert t.image.distro == "openeuler"
        assert t.image.url.startswith("https://repo.openeuler.org/openEuler-24.03-LTS-SP1/")
        # The real digests are not known here (no openEuler mirror is reachable): none is invented,
        # and the fetch may only take the mirror's .sha256sum because the file says so, then pins it.
        assert (t.image.sha256, t.image.trust_sha256sum) == ("", True)
    assert vm.options.password_env == "LEAPFROG_OPENEULER_PASSWORD"


# ------------------------------------------------------------------ fetch against a local HTTP server


class RangeHandler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(body):
            self.send_response(416)
            self.end_headers()
            return
        chunk = body[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        self.wfile.write(chunk)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_verifies_and_resumes(server: str, tmp_path: Path) -> None:
    import lzma

    payload = lzma.compress(b"qcow2 bytes " * 50_000)
    digest = hashlib.sha256(payload).hexdigest()
    RangeHandler.files = {
        "/img.qcow2.xz": payload,
        "/img.qcow2.xz.sha256sum": f"{digest}  img.qcow2.xz\n".encode(),
    }
    # A previous attempt left half the file behind: only the rest is requested.
    (tmp_path / "img.qcow2.xz.part").write_bytes(payload[: len(payload) // 2])
    path = fetch_verified(f"{server}/img.qcow2.xz", trust_sha256sum=True, dest_dir=tmp_path)
    assert path.read_bytes() == payload
    assert not (tmp_path / "img.qcow2.xz.part").exists()
    assert decompress_xz(path).read_bytes() == b"qcow2 bytes " * 50_000
    # A second fetch finds the verified file and downloads nothing.
    RangeHandler.files = {}
    assert fetch(f"{server}/img.qcow2.xz", digest, dest_dir=tmp_path) == path


def test_fetch_rejects_a_wrong_checksum(server: str, tmp_path: Path) -> None:
    RangeHandler.files = {"/a.tar.xz": b"tampered"}
    with pytest.raises(ImageError, match="checksum mismatch"):
        fetch(f"{server}/a.tar.xz", "0" * 64, dest_dir=tmp_path)
    assert not (tmp_path / "a.tar.xz.part").exists()
    assert not (tmp_path / "a.tar.xz").exists()


def test_fetch_errors_are_clear(server: str, tmp_path: Path) -> None:
    RangeHandler.files = {}
    with pytest.raises(ImageError, match="HTTP 404"):
        fetch(f"{server}/missing", "a" * 64, dest_dir=tmp_path)
    with pytest.raises(ImageError, match="needs \"sha256\""):
        fetch(f"{server}/x", "", dest_dir=tmp_path)
    with pytest.raises(ImageError, match="not an http"):
        fetch("file:///etc/passwd", "a" * 64, dest_dir=tmp_path)


def test_parse_sha256sum() -> None:
    d = "ab" * 32
    assert parse_sha256sum(f"{d}  openEuler-docker.riscv64.tar.xz\n", "openEuler-docker.riscv64.tar.xz") == d
    assert parse_sha256sum(d, "anything") == d
    with pytest.raises(ImageError):
        parse_sha256sum("no digest here", "x")
