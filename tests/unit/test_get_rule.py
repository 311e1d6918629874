"""The one rule of ``Target.get`` on every backend, without emulators, engines or servers.

A target's files are untrusted: the path asked for must be a regular file or a
folder, links and special files inside a folder are skipped (never followed or
opened, so a FIFO cannot block), and one copy is capped in bytes, entries and
depth.  native and chroot read the host's file system; docker unpacks the
archive the engine would send; ssh talks to a fake SFTP client over a folder
(the loopback SFTP server in test_ssh_unit.py covers the real protocol).
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_project
from harness.errors import TargetError
from harness.targets import _common, make_target
from harness.targets.chroot import ChrootTarget
from harness.targets.docker_exec import extract_get
from harness.targets.sftp import download
from tests.unit.test_ssh_unit import FakeSftp

ROOT = Path(__file__).resolve().parents[2]

#: get(root, "rel/path", local, limit): copy ``root/rel/path`` back through one backend.
Getter = Callable[[Path, str, Path, int], None]


def _native(root: Path, rel: str, local: Path, limit: int) -> None:
    make_target(load_project(ROOT).targets["native"]).get(str(root / rel), local, limit=limit)


def _chroot(root: Path, rel: str, local: Path, limit: int) -> None:
    t = make_target(load_project(ROOT).targets["debian-trixie-riscv64"])
    assert isinstance(t, ChrootTarget)
    t.root = root  # a plain folder as the root file system: no mounts, no root needed
    t.get("/" + rel, local, limit=limit)


def _docker(root: Path, rel: str, local: Path, limit: int) -> None:
    """What the engine's get_archive sends: a tar of the path under its base name (sockets left out)."""
    if not os.path.lexists(root / rel):
        raise TargetError(f'"{rel}" does not exist in the container.')  # what DockerTarget.get makes of NotFound
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.add(str(root / rel), arcname=Path(rel).name, recursive=True)
    raw = buf.getvalue()
    extract_get((raw[i : i + 4096] for i in range(0, len(raw), 4096)), Path(rel).name, local, shown=rel, limit=limit)


def _ssh(root: Path, rel: str, local: Path, limit: int) -> None:
    sftp: Any = FakeSftp(root)
    download(sftp, "/" + rel, local, limit=limit)


BACKENDS = {"native": _native, "chroot": _chroot, "docker": _docker, "ssh": _ssh}


@pytest.fixture(params=sorted(BACKENDS))
def get(request: pytest.FixtureRequest) -> Getter:
    return BACKENDS[request.param]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A target's files: a results folder with a FIFO, a socket and links beside regular files."""
    r = tmp_path / "root"
    out = r / "tmp" / "cell" / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.txt").write_text("a")
    (out / "sub" / "b.bin").write_bytes(b"b" * 3000)
    os.mkfifo(out / "fifo")
    os.mkfifo(r / "tmp" / "cell" / "results.jsonl")
    (out / "passwd").symlink_to("/etc/passwd")
    (out / "up").symlink_to("..")
    (r / "tmp" / "cell" / "link.jsonl").symlink_to(out / "a.txt")
    sock = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(out)  # a relative name keeps the socket path short enough
    try:
        sock.bind("sock")
    finally:
        os.chdir(cwd)
        sock.close()
    return r


def _in_time(fn: Callable[[], None], seconds: float = 10) -> None:
    """Run ``fn``; fail (instead of hanging the test run) when it blocks, as reading a FIFO would."""
    error: list[BaseException] = []

    def body() -> None:
        try:
            fn()
        except BaseException as e:  # handed to the caller's thread
            error.append(e)

    th = threading.Thread(target=body, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "get() blocked"
    if error:
        raise error[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_comes_back_without_its_links_and_special_files(get: Getter, root: Path, tmp_path: Path) -> None:
    back = tmp_path / "back"
    _in_time(lambda: get(root, "tmp/cell/out", back, _common.GET_LIMIT))
    assert _tree(back) == {"a.txt": b"a", "sub/b.bin": b"b" * 3000}
    assert not any(p.is_symlink() for p in back.rglob("*"))


@pytest.mark.parametrize(("rel", "kind"), [("tmp/cell/results.jsonl", "FIFO"), ("tmp/cell/link.jsonl", "link")])
def test_a_fifo_or_link_asked_for_is_a_target_error(
    get: Getter, root: Path, tmp_path: Path, rel: str, kind: str
) -> None:
    with pytest.raises(TargetError, match=rf"it is a (symbolic )?{kind}; leapfrog copies back only regular files"):
        _in_time(lambda: get(root, rel, tmp_path / "got", _common.GET_LIMIT))
    assert not (tmp_path / "got").exists()


def test_a_socket_asked_for_is_a_target_error(get: Getter, root: Path, tmp_path: Path) -> None:
    # docker: the engine's tar leaves sockets out, so the archive does not hold the name
    with pytest.raises(TargetError, match=r"it is a socket|does not hold"):
        get(root, "tmp/cell/out/sock", tmp_path / "got", _common.GET_LIMIT)
    assert not (tmp_path / "got").exists()


def test_a_folder_over_the_byte_cap_is_a_target_error_naming_path_and_cap(
    get: Getter, root: Path, tmp_path: Path
) -> None:
    with pytest.raises(TargetError, match=r'tmp/cell/out" from the target: it holds more than 2048 bytes, the most'):
        get(root, "tmp/cell/out", tmp_path / "back", 2048)
    assert not (tmp_path / "back" / "sub" / "b.bin").exists()  # no cut-off copy left behind


def test_a_file_over_the_byte_cap_is_a_target_error(get: Getter, root: Path, tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"more than 2999 bytes, the most one copy back takes"):
        get(root, "tmp/cell/out/sub/b.bin", tmp_path / "b.bin", 2999)
    assert not (tmp_path / "b.bin").exists()
    get(root, "tmp/cell/out/sub/b.bin", tmp_path / "b.bin", 3000)
    assert (tmp_path / "b.bin").read_bytes() == b"b" * 3000


def test_too_many_entries_is_a_target_error(
    get: Getter, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common, "GET_MAX_ENTRIES", 2)  # out holds a.txt, sub and sub/b.bin
    with pytest.raises(TargetError, match=r"it holds more than 2 files and folders"):
        get(root, "tmp/cell/out", tmp_path / "back", _common.GET_LIMIT)


def test_folders_nested_too_deep_is_a_target_error(
    get: Getter, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_common, "GET_MAX_DEPTH", 3)
    deep = root / "tmp" / "cell" / "deep"
    (deep / "1" / "2" / "3" / "4").mkdir(parents=True)
    (deep / "1" / "2" / "3" / "4" / "f").write_text("x")
    with pytest.raises(TargetError, match=r"it holds more than 3 levels of folders"):
        get(root, "tmp/cell/deep", tmp_path / "back", _common.GET_LIMIT)
    monkeypatch.setattr(_common, "GET_MAX_DEPTH", 5)  # f lies 5 levels below deep
    get(root, "tmp/cell/deep", tmp_path / "back", _common.GET_LIMIT)
    assert (tmp_path / "back" / "1" / "2" / "3" / "4" / "f").read_text() == "x"


def test_a_missing_path_is_a_target_error(get: Getter, root: Path, tmp_path: Path) -> None:
    with pytest.raises(TargetError):
        get(root, "tmp/cell/nothing-here", tmp_path / "got", _common.GET_LIMIT)


@pytest.fixture
def chroot_target(root: Path) -> Iterator[ChrootTarget]:
    t = make_target(load_project(ROOT).targets["debian-trixie-riscv64"])
    assert isinstance(t, ChrootTarget)
    t.root = root
    yield t
    t.root = None


def test_chroot_get_refuses_a_link_on_the_way(chroot_target: ChrootTarget, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host")
    (root / "tmp" / "cell" / "away").symlink_to(outside)
    with pytest.raises(TargetError, match='passes through "away", which is a link'):
        chroot_target.get("/tmp/cell/away/secret", tmp_path / "got")
    assert not (tmp_path / "got").exists()
