"""Where a download's digest comes from, pins, offline starts, and decompressed disks tied to their archive.

Everything runs against an HTTP server on 127.0.0.1 that records what it was asked for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import json
import lzma
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from harness.config import ImageSpec, TargetConfig
from harness.errors import ImageError
from harness.images.fetch import decompress_xz, fetch_image, fetch_verified, pin_path, pinned_sha256
from harness.targets.qemu_vm import QemuVmTarget


class Mirror(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    asked: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def mirror() -> Iterator[str]:
    Mirror.files = {}
    Mirror.asked = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def publish(name: str, body: bytes) -> str:
    digest = hashlib.sha256(body).hexdigest()
    Mirror.files[f"/{name}"] = body
    Mirror.files[f"/{name}.sha256sum"] = f"{digest}  {name}\n".encode()
    return digest


def test_a_download_without_a_known_digest_is_refused_and_nothing_is_asked(mirror: str, tmp_path: Path) -> None:
    publish("disk.qcow2.xz", b"disk")
    with pytest.raises(ImageError) as e:
        fetch_verified(f"{mirror}/disk.qcow2.xz", dest_dir=tmp_path)
    msg = str(e.value)
    assert 'Set "sha256" in the [image] table' in msg
    assert '"trust_sha256sum = true"' in msg
    assert str(pin_path(f"{mirror}/disk.qcow2.xz", tmp_path)) in msg
    assert Mirror.asked == []
    assert not (tmp_path / "disk.qcow2.xz").exists()


def test_trust_on_first_use_pins_the_digest_and_later_fetches_need_no_network(mirror: str, tmp_path: Path) -> None:
    url = f"{mirror}/disk.qcow2.xz"
    digest = publish("disk.qcow2.xz", b"disk v1")
    path, got = fetch_image(url, trust_sha256sum=True, dest_dir=tmp_path)
    assert (path.read_bytes(), got) == (b"disk v1", digest)
    assert Mirror.asked == ["/disk.qcow2.xz.sha256sum", "/disk.qcow2.xz"]
    pin = json.loads(pin_path(url, tmp_path).read_text())
    assert (pin["url"], pin["sha256"], pin["source"]) == (url, digest, f"{url}.sha256sum")
    assert pinned_sha256(url, tmp_path) == digest
    # The mirror goes away (offline): the verified file and its pin are enough, even without trust.
    Mirror.files = {}
    Mirror.asked = []
    assert fetch_verified(url, dest_dir=tmp_path) == path
    assert Mirror.asked == []


def test_a_pinned_digest_holds_when_the_mirror_changes_the_file(mirror: str, tmp_path: Path) -> None:
    url = f"{mirror}/disk.qcow2.xz"
    first = publish("disk.qcow2.xz", b"disk v1")
    fetch_verified(url, trust_sha256sum=True, dest_dir=tmp_path).unlink()
    publish("disk.qcow2.xz", b"disk v2, or a tampered one")  # a new .sha256sum beside it, too
    with pytest.raises(ImageError, match=r"checksum mismatch.*pinned at the first fetch.*remove that file"):
        fetch_verified(url, trust_sha256sum=True, dest_dir=tmp_path)
    assert "/disk.qcow2.xz.sha256sum" not in Mirror.asked[2:]  # the pin was used, not the new checksum file
    assert pinned_sha256(url, tmp_path) == first


def test_an_explicit_digest_wins_over_a_pin(mirror: str, tmp_path: Path) -> None:
    url = f"{mirror}/disk.qcow2.xz"
    publish("disk.qcow2.xz", b"v1")
    fetch_verified(url, trust_sha256sum=True, dest_dir=tmp_path).unlink()
    second = publish("disk.qcow2.xz", b"v2")
    path, got = fetch_image(url, second, dest_dir=tmp_path)
    assert (path.read_bytes(), got) == (b"v2", second)


def test_a_decompressed_disk_is_used_only_for_the_archive_it_came_from(tmp_path: Path) -> None:
    archive = tmp_path / "disk.qcow2.xz"
    archive.write_bytes(lzma.compress(b"first disk"))
    out = decompress_xz(archive)
    assert out.read_bytes() == b"first disk"
    stamp = tmp_path / "disk.qcow2.source-sha256"
    assert stamp.read_text().strip() == hashlib.sha256(archive.read_bytes()).hexdigest()
    # A new archive under the same name (a new build, or a re-fetch): the old disk is not reused.
    archive.write_bytes(lzma.compress(b"second disk"))
    assert decompress_xz(archive).read_bytes() == b"second disk"
    # A disk without its stamp (an interrupted run, or put there by hand) is made again.
    stamp.unlink()
    out.write_bytes(b"left by someone else")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert decompress_xz(archive, digest).read_bytes() == b"second disk"
    assert stamp.read_text().strip() == digest


def test_a_damaged_archive_is_an_image_error(tmp_path: Path) -> None:
    archive = tmp_path / "disk.qcow2.xz"
    archive.write_bytes(b"not xz at all")
    with pytest.raises(ImageError, match=r"disk\.qcow2\.xz is not a valid \.xz archive \(.*\); remove it"):
        decompress_xz(archive)
    assert [p.name for p in tmp_path.iterdir()] == ["disk.qcow2.xz"]


def vm_config(tmp_path: Path, image: ImageSpec) -> TargetConfig:
    return TargetConfig(
        name="oe-vm",
        kind="qemu-vm",
        file=tmp_path / "oe-vm.toml",
        description="",
        arch="riscv64",
        python="python3",
        env={},
        image=image,
        options=QemuVmTarget.Options(password_env="OE_PW"),
    )


def test_a_vm_with_a_fetched_disk_starts_offline_after_the_first_fetch(
    mirror: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    publish("oe.qcow2.xz", lzma.compress(b"qcow2 disk"))
    for fd in ("CODE.fd", "VARS.fd"):
        publish(fd, fd.encode())
    image = ImageSpec(
        distro="openeuler",
        release="24.03-LTS-SP1",
        source="qcow2",
        url=f"{mirror}/oe.qcow2.xz",
        firmware=[f"{mirror}/CODE.fd", f"{mirror}/VARS.fd"],
        trust_sha256sum=True,
    )
    media, _ = QemuVmTarget(vm_config(tmp_path, image))._media()
    assert media.disk.read_bytes() == b"qcow2 disk"
    assert media.flash_code is not None
    assert media.flash_code.read_bytes() == b"CODE.fd"
    Mirror.files = {}
    Mirror.asked = []
    again, _ = QemuVmTarget(vm_config(tmp_path, image))._media()
    assert (again.disk, again.flash_code, again.flash_vars) == (media.disk, media.flash_code, media.flash_vars)
    assert Mirror.asked == []
    # Without trust_sha256sum and without a pin, the target file is named with the fix.
    bare = dataclasses.replace(image, url=f"{mirror}/other.qcow2.xz", firmware=[], trust_sha256sum=False)
    with pytest.raises(ImageError, match=r"oe-vm\.toml: .*other\.qcow2\.xz has no SHA-256"):
        QemuVmTarget(vm_config(tmp_path, bare))._media()
