"""The docker backend without an engine: options, archives in and out, output bounds, names."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import judge
from harness.config import load_target
from harness.errors import ConfigError, LeapfrogError, TargetError
from harness.images.cache import RECIPE_VERSION, ImageMeta
from harness.images.docker_archive import image_tag, layer_entries, load_archive
from harness.targets import _common
from harness.targets import docker_exec as docker_mod
from harness.targets.base import OUTPUT_LIMIT
from harness.targets.docker import KEPT_CAPS, DockerTarget
from harness.targets.docker_engine import host_id, is_stale, process_start
from harness.targets.docker_exec import BoundedBuffer, decode_status, drain, extract_get, tar_for_put

IMAGE = '\n[image]\ndistro = "debian"\nrelease = "trixie"\narch = "riscv64"\n'


def target_file(tmp_path: Path, body: str, *, image: bool = True) -> Path:
    path = tmp_path / "t-docker.toml"
    path.write_text('kind = "docker"\n' + body + (IMAGE if image else ""))
    return path


# --------------------------------------------------------------------------- options


def test_shipped_target_loads_with_safe_defaults(project_root: Path) -> None:
    cfg = load_target(project_root / "targets" / "debian-trixie-riscv64-docker.toml")
    assert cfg.kind == "docker"
    assert cfg.arch == "riscv64"
    assert cfg.image is not None
    assert (cfg.image.distro, cfg.image.release, cfg.image.source) == ("debian", "trixie", "build")
    o = cfg.options
    assert isinstance(o, DockerTarget.Options)
    assert (o.platform, o.network, o.ports, o.cpus, o.memory) == ("linux/riscv64", False, [], 0.0, "")


def test_every_option_is_read(tmp_path: Path) -> None:
    cfg = load_target(
        target_file(
            tmp_path,
            'image_ref = "registry.example/x:1"\nimage_tarball = "/srv/oe.tar.xz"\nplatform = "linux/riscv64"\n'
            'cpus = 2\nmemory = "2g"\nnetwork = true\nports = [8000, 9000]\ndocker_host = "ssh://ci@builder"\n'
            'cpu = "rv64,v=true,vlen=256"\n',
        )
    )
    o = cfg.options
    assert o.cpus == 2.0
    assert isinstance(o.cpus, float)
    assert (o.memory, o.network, o.ports) == ("2g", True, [8000, 9000])
    assert (o.image_ref, o.image_tarball, o.docker_host) == (
        "registry.example/x:1",
        "/srv/oe.tar.xz",
        "ssh://ci@builder",
    )
    assert DockerTarget(cfg).env()["QEMU_CPU"] == "rv64,v=true,vlen=256"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('cpus = "two"\n', r'"cpus" must be a number'),
        ("network = 1\n", r'"network" must be true or false'),
        ('ports = ["80"]\n', r'"ports" must be a list of'),
        ("netwrk = true\n", r'unknown key "netwrk" \(did you mean "network"\?\)'),
        ("ports = [8000]\n", r'"ports" needs "network = true"'),
        ("network = true\nports = [70000]\n", r"70000, which is not a TCP port"),
        ('memory = "lots"\n', r'"memory" is "lots"; write a size such as "2g"'),
        ('platform = "riscv64"\n', r'"platform" is "riscv64"; write it as os/arch'),
        ("cpus = -1\n", r'"cpus" must be 0 \(no limit\) or more'),
    ],
)
def test_bad_options_are_config_errors(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_target(target_file(tmp_path, body))


def test_an_image_table_is_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'kind "docker" needs an \[image\] table'):
        load_target(target_file(tmp_path, 'image_ref = "x:1"\n', image=False))


def test_forward_without_network_says_what_to_set(tmp_path: Path) -> None:
    t = DockerTarget(load_target(target_file(tmp_path, "")))
    with pytest.raises(TargetError, match=r'List it in the suite\'s "ports" \(suite.toml\), or set "network = true"'):
        t.forward(8000)


def test_ports_a_suite_asks_for_are_published_and_survive_attach(tmp_path: Path) -> None:
    t = DockerTarget(load_target(target_file(tmp_path, "")))
    assert t.published_ports == []
    t.requested_ports = [18080]
    assert t.published_ports == [18080]
    t.container_id = "c0ffee"
    handle = t.handle()
    assert handle["ports"] == [18080]
    attached = DockerTarget(t.config)
    attached.requested_ports = [int(p) for p in handle["ports"]]
    assert attached.published_ports == [18080]


def test_commands_before_start_are_target_errors(tmp_path: Path) -> None:
    t = DockerTarget(load_target(target_file(tmp_path, "")))
    with pytest.raises(TargetError, match="not started"):
        t.run(["true"], timeout=5)
    t.stop()  # nothing started: a no-op, and safe twice
    t.stop()


@pytest.mark.parametrize("how", ["option", "env"])
def test_unreachable_engine_names_docker_host_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    sock = tmp_path / "no-such-docker.sock"
    if how == "option":
        cfg = load_target(target_file(tmp_path, f'docker_host = "unix://{sock}"\n'))
    else:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        cfg = load_target(target_file(tmp_path, ""))
    t = DockerTarget(cfg)
    with pytest.raises(TargetError) as err:
        t.start()
    text = str(err.value)
    assert f"unix://{sock}" in text
    assert "DOCKER_HOST" in text
    assert "apt-get install docker.io" in text
    assert "dockerd" in text
    assert t.container_id is None


def test_registry_imports_without_the_sdk_loaded() -> None:
    code = (
        "import sys, harness.targets.docker as d; "
        "assert 'docker' not in sys.modules, 'SDK imported'; print(d.DockerTarget.kind)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "docker"


# --------------------------------------------------------------------------- names


def meta(**kw: object) -> ImageMeta:
    base: dict[str, object] = {
        "key": "61d42f360f28c394",
        "distro": "debian",
        "release": "trixie",
        "arch": "riscv64",
        "mirror": "http://deb.debian.org/debian",
        "packages": ["python3"],
        "recipe": RECIPE_VERSION,
    }
    base.update(kw)
    return ImageMeta(**base)  # type: ignore[arg-type]


def test_import_tag_names_the_image_and_its_key() -> None:
    assert image_tag(meta()) == "leapfrog/debian-trixie-riscv64:61d42f360f28c394"
    assert (
        image_tag(meta(distro="openEuler", release="24.03 LTS"))
        == "leapfrog/openeuler-24.03-lts-riscv64:61d42f360f28c394"
    )


# --------------------------------------------------------------------------- output


def test_output_is_bounded_with_a_marker_and_decoded_leniently() -> None:
    out, err = BoundedBuffer(), BoundedBuffer()
    chunk = b"x" * 65536
    frames: list[tuple[bytes | None, bytes | None]] = [(chunk, None) for _ in range(48)]  # 3 MiB
    frames.append((None, "é 中 ".encode() + b"\xff"))
    drain(frames, out, err)
    text = out.text()
    assert text.startswith("x" * 1000)
    assert text.count("x") == OUTPUT_LIMIT
    assert f"{48 * 65536 - OUTPUT_LIMIT} bytes dropped" in text
    assert err.text() == "é 中 \ufffd"


def test_exit_status_decoding() -> None:
    assert decode_status(0, timed_out=False) == (0, None)
    assert decode_status(3, timed_out=False) == (3, None)
    assert decode_status(127, timed_out=False) == (127, None)
    assert decode_status(139, timed_out=False) == (None, 11)
    assert decode_status(137, timed_out=True) == (None, 9)
    assert decode_status(0, timed_out=True) == (None, None)
    assert decode_status(None, timed_out=True) == (None, None)
    assert decode_status(255, timed_out=False) == (255, None)


# --------------------------------------------------------------------------- copying out (untrusted)


def crafted(*members: tuple[tarfile.TarInfo, bytes]) -> list[bytes]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    return [raw[i : i + 1000] for i in range(0, len(raw), 1000)]


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize(
    "bad",
    [member("out/../../escaped"), member("/tmp/leapfrog-absolute-escape")],
)
def test_get_refuses_members_that_point_outside(tmp_path: Path, bad: tarfile.TarInfo) -> None:
    dest = tmp_path / "inner" / "out"
    chunks = crafted((member("out/a.txt"), b"fine"), (bad, b"evil"))
    with pytest.raises(TargetError, match="points outside"):
        extract_get(chunks, "out", dest)
    assert not dest.exists()
    assert sorted(p.name for p in (tmp_path / "inner").iterdir()) == []  # staging removed too
    assert not (tmp_path / "escaped").exists()
    assert not Path("/tmp/leapfrog-absolute-escape").exists()


def test_get_skips_links_and_special_files_inside_a_folder(tmp_path: Path) -> None:
    """The one rule of Target.get: inside a folder, links and special files are skipped, never made."""
    dest = tmp_path / "inner" / "out"
    chunks = crafted(
        (member("out", tarfile.DIRTYPE), b""),
        (member("out/a.txt"), b"fine"),
        (member("out/link", tarfile.SYMTYPE, "/etc/passwd"), b""),
        (member("out/dev", tarfile.CHRTYPE), b""),
        (member("out/fifo", tarfile.FIFOTYPE), b""),
        (member("out/dangling", tarfile.LNKTYPE, "out/missing"), b""),
        (member("out/same", tarfile.LNKTYPE, "out/a.txt"), b""),  # a hard link is the same regular file
    )
    extract_get(chunks, "out", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "same"]
    assert (dest / "same").read_bytes() == b"fine"
    assert sorted(p.name for p in (tmp_path / "inner").iterdir()) == ["out"]  # staging removed


@pytest.mark.parametrize(
    ("top", "kind"),
    [
        (member("results.jsonl", tarfile.FIFOTYPE), "a FIFO"),
        (member("results.jsonl", tarfile.SYMTYPE, "/etc/passwd"), "a link"),
        (member("results.jsonl", tarfile.CHRTYPE), "a device"),
    ],
)
def test_get_refuses_a_top_that_is_not_a_file_or_folder(tmp_path: Path, top: tarfile.TarInfo, kind: str) -> None:
    with pytest.raises(TargetError, match=f'"/w/results.jsonl" from the target: it is {kind}; leapfrog copies back'):
        extract_get(crafted((top, b"")), "results.jsonl", tmp_path / "r", shown="/w/results.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_get_over_the_byte_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "inner" / "out"
    members = ((member("out", tarfile.DIRTYPE), b""), (member("out/big.bin"), b"x" * 5000))
    with pytest.raises(TargetError, match=r'"/w/out" from the target: it holds more than 4096 bytes, the most one'):
        extract_get(crafted(*members), "out", dest, shown="/w/out", limit=4096)
    assert sorted(p.name for p in (tmp_path / "inner").iterdir()) == []  # nothing unpacked, staging removed
    extract_get(crafted(*members), "out", dest)
    assert (dest / "big.bin").stat().st_size == 5000  # the default cap takes it

    monkeypatch.setattr(docker_mod, "ARCHIVE_SLACK", 1024)  # the stream itself is bounded too, headers and all
    seen: list[int] = []

    def stream() -> Iterator[bytes]:
        for chunk in crafted(*members):
            seen.append(len(chunk))
            yield chunk

    with pytest.raises(TargetError, match=r"the archive the engine sends is larger than 5120 bytes \(4096 bytes of"):
        extract_get(stream(), "out", tmp_path / "again", shown="/w/out", limit=4096)
    assert sum(seen) <= 6000  # stopped reading at the cap, not at the end of the stream
    assert not (tmp_path / "again").exists()


def test_get_with_too_many_entries_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "GET_MAX_ENTRIES", 3)
    chunks = crafted((member("out", tarfile.DIRTYPE), b""), *[(member(f"out/{i}"), b"") for i in range(5)])
    with pytest.raises(TargetError, match="more than 3 files and folders"):
        extract_get(chunks, "out", tmp_path / "out")


def test_get_places_a_folder_and_a_file_at_the_destination(tmp_path: Path) -> None:
    folder = member("copy", tarfile.DIRTYPE)
    chunks = crafted((folder, b""), (member("copy/a.txt"), "hé ✓\n".encode()), (member("copy/sub/b.bin"), b"\0\1"))
    dest = tmp_path / "back"
    extract_get(chunks, "copy", dest)
    assert (dest / "a.txt").read_text() == "hé ✓\n"
    assert (dest / "sub" / "b.bin").read_bytes() == b"\0\1"
    (dest / "kept.txt").write_text("mine")
    extract_get(crafted((folder, b""), (member("copy/a.txt"), b"new")), "copy", dest)  # merges into a folder
    assert (dest / "a.txt").read_bytes() == b"new"
    assert (dest / "kept.txt").read_text() == "mine"
    extract_get(crafted((member("results.jsonl"), b'{"a": 1}\n')), "results.jsonl", tmp_path / "r.jsonl")
    assert (tmp_path / "r.jsonl").read_text() == '{"a": 1}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "r.jsonl"]


def test_get_of_a_tar_without_the_asked_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match='does not hold "wanted"'):
        extract_get(crafted((member("other"), b"x")), "wanted", tmp_path / "w")


def test_put_archive_is_owned_by_root_under_the_new_name(tmp_path: Path) -> None:
    src = tmp_path / "suite"
    (src / "sub").mkdir(parents=True)
    (src / "test_a.py").write_text("def test(): pass\n")
    (src / "sub" / "data.bin").write_bytes(b"\1\2")
    buf = io.BytesIO()
    tar_for_put(src, "renamed", buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        names = sorted(m.name for m in tar.getmembers())
        assert names == ["renamed", "renamed/sub", "renamed/sub/data.bin", "renamed/test_a.py"]
        assert {(m.uid, m.gid, m.uname) for m in tar.getmembers()} == {(0, 0, "root")}


# --------------------------------------------------------------------------- the image archive


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "usr" / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 10)
    (root / "usr" / "bin" / "tool").chmod(0o4755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool-again")
    (root / "bin").symlink_to("usr/bin")
    (root / "etc" / ("long-" + "n" * 120)).write_text("a name longer than ustar allows\n")
    os.mkfifo(root / "etc" / "fifo")
    if os.geteuid() == 0:
        os.mknod(root / "etc" / "null", 0o666 | 0o020000, os.makedev(1, 3))
        os.chown(root / "etc" / ("long-" + "n" * 120), 42, 65534)
    return root


def read_outer(data: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m)
            assert f is not None
            out[m.name] = f.read()
    return out


def test_load_archive_is_one_layer_with_the_platform_and_a_matching_digest(rootfs: Path) -> None:
    progress: list[tuple[int, int]] = []
    data = b"".join(
        load_archive(
            rootfs,
            "leapfrog/debian-trixie-riscv64:abc",
            platform="linux/riscv64",
            labels={"leapfrog": "1"},
            on_bytes=lambda done, total: progress.append((done, total)),
        )
    )
    outer = read_outer(data)
    assert sorted(outer) == ["config.json", "layer.tar", "manifest.json"]
    config = json.loads(outer["config.json"])
    assert (config["os"], config["architecture"]) == ("linux", "riscv64")
    assert config["config"]["Labels"] == {"leapfrog": "1"}
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(outer["layer.tar"]).hexdigest()]
    manifest = json.loads(outer["manifest.json"])
    assert manifest == [
        {"Config": "config.json", "RepoTags": ["leapfrog/debian-trixie-riscv64:abc"], "Layers": ["layer.tar"]}
    ]
    assert progress[-1][0] == progress[-1][1] == len(outer["layer.tar"])

    with tarfile.open(fileobj=io.BytesIO(outer["layer.tar"]), mode="r:") as layer:
        got = {m.name: m for m in layer.getmembers()}
    assert got["bin"].issym()
    assert got["bin"].linkname == "usr/bin"
    assert got["usr/bin/tool"].isfile()
    assert got["usr/bin/tool"].mode == 0o4755
    assert got["usr/bin/tool-again"].islnk()
    assert got["usr/bin/tool-again"].linkname == "usr/bin/tool"
    assert got["etc/fifo"].isfifo()
    assert all(m.uname == "" and m.gname == "" for m in got.values())
    if os.geteuid() == 0:
        assert got["etc/null"].ischr()
        assert (got["etc/null"].devmajor, got["etc/null"].devminor) == (1, 3)
        long = got["etc/long-" + "n" * 120]
        assert (long.uid, long.gid) == (42, 65534)


def test_layer_entries_skip_sockets_and_keep_order(rootfs: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(rootfs / "etc" / "sock"))
        entries = layer_entries(rootfs)
        data = b"".join(load_archive(rootfs, "x/y:z", platform="linux/riscv64", labels={}))
    with tarfile.open(fileobj=io.BytesIO(read_outer(data)["layer.tar"]), mode="r:") as layer:
        names = layer.getnames()
    assert len(names) == len(entries)
    assert not any(n.endswith("sock") for n in names)
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/tool")


def test_a_file_that_shrinks_while_streaming_is_an_error(rootfs: Path) -> None:
    chunks = load_archive(rootfs, "x/y:z", platform="linux/riscv64", labels={})
    next(chunks)  # the member list (and sizes) are fixed now
    (rootfs / "usr" / "bin" / "tool").write_bytes(b"short")
    with pytest.raises(TargetError, match="shrank while it was copied"):
        for _ in chunks:
            pass


# --------------------------------------------------------------------------- hardening and the stale sweep


class FakeApi:
    """Records what the backend asks the engine; containers() honours label filters like the engine."""

    def __init__(self, containers: list[dict[str, Any]] | None = None) -> None:
        self.host_config: dict[str, object] = {}
        self.created: dict[str, object] = {}
        self.stored: list[dict[str, Any]] = containers or []
        self.removed: list[str] = []

    def create_host_config(self, **kw: object) -> dict[str, object]:
        self.host_config = kw
        return kw

    def create_container(self, image: str, **kw: object) -> dict[str, str]:
        self.created = kw
        return {"Id": "c0ffee" * 10}

    def start(self, cid: str) -> None:
        pass

    def inspect_container(self, cid: str) -> dict[str, object]:
        return {"State": {"Running": True, "Status": "running"}}

    def containers(self, **kw: Any) -> list[dict[str, Any]]:
        assert kw["all"] is True  # stopped containers too
        wanted = [f.split("=", 1) for f in kw["filters"]["label"]]
        return [c for c in self.stored if all(c["Labels"].get(k) == v for k, v in wanted)]

    def remove_container(self, cid: str, **kw: object) -> None:
        self.removed.append(cid)


class FakeClient:
    def __init__(self, api: FakeApi) -> None:
        self.api = api


def with_api(t: DockerTarget, api: FakeApi) -> DockerTarget:
    t.client = FakeClient(api)
    return t


def test_containers_drop_capabilities_cannot_gain_privileges_and_have_a_pid_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    api = FakeApi()
    t = with_api(DockerTarget(load_target(target_file(tmp_path, ""))), api)
    t.image_ref = "leapfrog/x:1"
    t._create()
    hc = api.host_config
    assert hc["cap_drop"] == ["ALL"]
    assert hc["cap_add"] == sorted(KEPT_CAPS)
    assert not {"NET_RAW", "MKNOD", "SYS_ADMIN", "SYS_CHROOT", "AUDIT_WRITE"} & set(KEPT_CAPS)
    assert hc["security_opt"] == ["no-new-privileges"]
    assert hc["pids_limit"] == 4096
    assert hc["privileged"] is False
    labels = api.created["labels"]
    assert labels["leapfrog.host"] == host_id()  # type: ignore[index]
    assert labels["leapfrog.pid_start"] == process_start(os.getpid())  # type: ignore[index]
    # A file may raise the limit, lift it (0) or add a capability.
    api = FakeApi()
    t = with_api(DockerTarget(load_target(target_file(tmp_path, 'pids_limit = 0\ncap_add = ["cap_net_raw"]\n'))), api)
    t.image_ref = "leapfrog/x:1"
    t._create()
    assert api.host_config["pids_limit"] is None
    assert "NET_RAW" in api.host_config["cap_add"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("pids_limit = -1\n", r'"pids_limit" must be 0 \(no limit\) or more'),
        ('cap_add = ["ALL"]\n', r'"cap_add" holds \'ALL\'; name single capabilities'),
        ('cap_add = ["net raw"]\n', r'"cap_add" holds'),
    ],
)
def test_bad_hardening_options_are_config_errors(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_target(target_file(tmp_path, body))


def test_host_id_is_kept_and_differs_between_hosts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "a"))
    first = host_id()
    assert host_id() == first
    assert len((tmp_path / "a" / "docker" / "host-id").read_text().strip()) == 32
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "b"))  # another host: same hostname, own cache
    assert host_id() != first


def test_the_sweep_removes_only_this_hosts_containers_whose_process_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process can have it
    me, my_start = str(os.getpid()), process_start(os.getpid())
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "other-host"))
    other = host_id()
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "this-host"))
    mine = host_id()

    def box(cid: str, host: str, pid: object, start: object) -> dict[str, Any]:
        return {"Id": cid, "Labels": {"leapfrog": "1", "leapfrog.host": host, "leapfrog.pid": str(pid),
                                      "leapfrog.pid_start": str(start)}}  # fmt: skip

    api = FakeApi(
        [
            box("mine-killed", mine, dead, "123"),
            box("mine-pid-reused", mine, me, "1"),  # this pid now belongs to a process started at another time
            box("mine-alive", mine, me, my_start),
            box("other-host-killed", other, dead, "123"),  # same pid space to us, but not ours to judge
            box("other-host-same-pid", other, me, "1"),
            box("no-pid", mine, "x", ""),
        ]
    )
    with_api(DockerTarget(load_target(target_file(tmp_path, ""))), api).engine.remove_stale()
    assert sorted(api.removed) == ["mine-killed", "mine-pid-reused"]
    assert is_stale({"leapfrog.pid": me, "leapfrog.pid_start": ""}) is False  # no start time: the pid decides


# --------------------------------------------------------------------------- a user's mistake or a broken engine


class ImageApi:
    """An engine that holds no images: inspect answers 404 (or ``inspect_error``), load answers ``load_records``."""

    base_url, api_version = "http+docker://localhost", "1.41"

    def __init__(self, inspect_error: Exception | None = None, load_records: list[dict[str, str]] | None = None):
        self.inspect_error = inspect_error
        self.load_records = load_records or []
        self.posted: list[str] = []

    def inspect_image(self, ref: str) -> dict[str, Any]:
        import docker.errors

        raise self.inspect_error or docker.errors.ImageNotFound(f"no such image: {ref}")

    def post(self, url: str, **kw: Any) -> Any:
        self.posted.append(url)
        for _ in kw["data"]:  # the engine reads the whole archive
            pass
        lines = [json.dumps(r).encode() for r in self.load_records]
        return type("Answer", (), {"status_code": 200, "iter_lines": lambda _self: iter(lines), "close": print})()


class ImageClient:
    def __init__(self, api: ImageApi, pull_error: Exception | None = None) -> None:
        self.api = api
        self.pull_error = pull_error
        self.images = self

    def info(self) -> dict[str, str]:
        return {"ID": "engine-1"}

    def pull(self, ref: str, **kw: object) -> None:
        if self.pull_error:
            raise self.pull_error


def api_error(status: int, explanation: str) -> Exception:
    import docker.errors

    answer = type("Answer", (), {"status_code": status, "reason": "", "url": "http://engine"})()
    return docker.errors.APIError(f"{status} Client Error", response=answer, explanation=explanation)


def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, client: ImageClient, **image: str) -> Any:
    """What prepare() raises for a target file with ``body`` and more [image] keys, talking to ``client``."""
    monkeypatch.setenv("LEAPFROG_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "t-docker.toml"
    path.write_text('kind = "docker"\n' + body + IMAGE + "".join(f'{k} = "{v}"\n' for k, v in image.items()))
    t = DockerTarget(load_target(path))
    t.client = client
    with pytest.raises(LeapfrogError) as err:
        t.prepare()
    return err.value


@pytest.mark.parametrize(
    ("body", "image", "match"),
    [
        ('image_tarball = "/nonexistent/oe.tar.xz"\n', {}, r'key "image_tarball" names the image archive '
         r'"/nonexistent/oe.tar.xz", which does not exist; fix "image_tarball"'),
        ("", {"source": "tarball", "path": "/nonexistent/rootfs.tar"}, r'key "image.path" names the image archive'),
        ("", {"source": "tarball", "url": "https://example.invalid/oe.tar.xz"},
         r"is not downloaded yet; run: leapfrog images fetch t-docker"),
        ("", {"source": "docker"}, r'\[image\] source "docker" names no image to run in Docker; give it a "ref"'),
    ],
)  # fmt: skip
def test_an_image_the_target_file_names_wrongly_is_a_config_error_never_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, image: dict[str, str], match: str
) -> None:
    err = prepared(tmp_path, monkeypatch, body, ImageClient(ImageApi()), **image)
    assert isinstance(err, ConfigError), err
    assert re.search(match, str(err)), str(err)
    assert str(tmp_path / "t-docker.toml") in str(err)  # names the file to fix
    assert not judge.retry_start(err, failures=1, retries=3)


def test_a_reference_the_engine_refuses_is_a_config_error_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = api_error(400, "invalid reference format: repository name must be lowercase")
    err = prepared(tmp_path, monkeypatch, 'image_ref = "Bad/Ref:1"\n', ImageClient(ImageApi(inspect_error=bad)))
    assert isinstance(err, ConfigError), err
    assert 'key "image_ref" is "Bad/Ref:1", which the Docker engine refuses (invalid reference format' in str(err)
    err = prepared(tmp_path, monkeypatch, "", ImageClient(ImageApi(), pull_error=bad), source="docker", ref="Up:1")
    assert isinstance(err, ConfigError), err
    assert 'key "image.ref" is "Up:1"' in str(err)
    assert not judge.retry_start(err, failures=1, retries=3)


def test_an_archive_that_is_not_a_docker_save_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "rootfs.tar"
    archive.write_bytes(b"\0" * 2048)
    api = ImageApi(load_records=[{"error": "open /var/lib/docker/tmp/x/repositories: no such file or directory"}])
    err = prepared(tmp_path, monkeypatch, f'image_tarball = "{archive}"\n', ImageClient(api))
    assert isinstance(err, ConfigError), err
    assert f'docker load of "{archive}" (key "image_tarball") failed: open /var/lib' in str(err)
    assert "It must be a `docker save` archive" in str(err)
    assert api.posted == ["http+docker://localhost/v1.41/images/load"]


def test_an_archive_of_several_images_without_a_choice_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "two.tar"
    archive.write_bytes(b"\0" * 2048)
    api = ImageApi(load_records=[{"stream": "Loaded image: a:1\n"}, {"stream": "Loaded image: b:2\n"}])
    err = prepared(tmp_path, monkeypatch, f'image_tarball = "{archive}"\n', ImageClient(api))
    assert isinstance(err, ConfigError), err
    assert 'holds 2 images (a:1, b:2); set "image_ref" to the one to run' in str(err)


def test_an_engine_or_registry_that_fails_stays_a_target_error_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = api_error(500, 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io')
    err = prepared(tmp_path, monkeypatch, 'image_ref = "library/busybox:1"\n', ImageClient(ImageApi(), pull_error=down))
    assert isinstance(err, TargetError), err
    assert 'image "library/busybox:1" is not on the engine and could not be pulled' in str(err)
    assert judge.retry_start(err, failures=1, retries=3)
    err = prepared(
        tmp_path, monkeypatch, 'image_ref = "x:1"\n', ImageClient(ImageApi(inspect_error=api_error(500, "boom")))
    )
    assert isinstance(err, TargetError), err
    assert "failed to prepare the image" in str(err)
