"""One contract every backend must pass, run against the real thing.

Exit codes, stderr, non-ASCII text, output over 2 MB (bounded, not lost),
put/get round trips, a timeout that kills a whole process tree, facts.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_project
from harness.errors import TargetError
from harness.images import CachedImage
from harness.targets import Target, make_target
from harness.targets.base import OUTPUT_LIMIT
from tests.integration.conftest import ROOT

pytestmark = pytest.mark.integration

BACKENDS = [
    pytest.param("native", id="native"),
    pytest.param("debian-trixie-riscv64", id="chroot", marks=pytest.mark.chroot),
    pytest.param("debian-trixie-riscv64-rvv", id="chroot-rvv", marks=pytest.mark.chroot),
    pytest.param("debian-trixie-riscv64-docker", id="docker", marks=pytest.mark.docker),
    pytest.param("debian-trixie-riscv64-vm", id="qemu-vm", marks=pytest.mark.qemu_vm),
]


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    name = request.param
    cfg = load_project(ROOT).targets[name]
    if cfg.kind != "native":
        request.getfixturevalue("debian_image")  # build or reuse the shared image first
    if cfg.kind == "docker":
        request.getfixturevalue("engine")  # a live Docker engine (started if none answers)
    t = make_target(cfg)
    t.start()
    try:
        yield t
    finally:
        t.stop()


def test_exit_codes_and_streams(target: Target) -> None:
    ok = target.run(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=60)
    assert ok.exit_code == 3
    assert ok.stdout == "out\n"
    assert ok.stderr == "err\n"
    assert not ok.timed_out
    assert target.run(["true"], timeout=60).ok


def test_env_and_cwd(target: Target) -> None:
    done = target.run(["sh", "-c", 'echo "$LEAPFROG_X" && pwd'], timeout=60, env={"LEAPFROG_X": "é ü 中"}, cwd="/tmp")
    assert done.stdout.splitlines() == ["é ü 中", "/tmp"]


def test_large_output_is_bounded_not_fatal(target: Target) -> None:
    done = target.run(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"], timeout=120)
    assert done.ok
    assert len(done.stdout) < OUTPUT_LIMIT + 200
    assert done.stdout.startswith("x" * 1000)
    assert "truncated by leapfrog" in done.stdout


def test_invalid_utf8_is_replaced(target: Target) -> None:
    done = target.run(["printf", "a\\377b"], timeout=60)
    assert done.stdout == "a\ufffdb"


def test_put_get_round_trip(target: Target, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("hello ✓\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    base = target.run(["mktemp", "-d"], timeout=60).stdout.strip()
    target.put(src, f"{base}/copy")
    listing = target.run(["sh", "-c", f"cd {base}/copy && find . -type f | sort"], timeout=60)
    assert listing.stdout.split() == ["./a.txt", "./sub/b.bin"]
    back = tmp_path / "back"
    target.get(f"{base}/copy", back)
    assert (back / "a.txt").read_text() == "hello ✓\n"
    assert (back / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100
    target.run(["rm", "-rf", base], timeout=60)


def test_get_refuses_a_fifo_and_an_oversize_file(target: Target, tmp_path: Path) -> None:
    """The one rule of Target.get on the real backend: a FIFO is refused without blocking, inside a folder it is
    skipped, and a file past the byte cap is refused with nothing left behind."""
    base = target.run(["mktemp", "-d"], timeout=60).stdout.strip()
    made = target.run(
        [
            "sh",
            "-c",
            f"cd {base} && mkfifo results.jsonl && mkdir out && echo ok > out/a.txt && mkfifo out/fifo "
            "&& head -c 100000 /dev/zero > out/big.bin",
        ],
        timeout=60,
    )
    assert made.ok, made.stderr
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"it is a FIFO; leapfrog copies back only regular files and folders"):
        target.get(f"{base}/results.jsonl", tmp_path / "r.jsonl")
    with pytest.raises(TargetError, match=r"it holds more than 50000 bytes, the most one copy back takes"):
        target.get(f"{base}/out/big.bin", tmp_path / "big.bin", limit=50000)
    with pytest.raises(TargetError, match=r"it holds more than 50000 bytes, the most one copy back takes"):
        target.get(f"{base}/out", tmp_path / "capped", limit=50000)
    assert time.monotonic() - started < 60  # nothing waited on the FIFO
    assert not (tmp_path / "r.jsonl").exists()
    assert not (tmp_path / "big.bin").exists()
    assert not (tmp_path / "capped" / "big.bin").exists()
    target.get(f"{base}/out", tmp_path / "back")  # the default cap takes it; the FIFO inside is skipped
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == ["a.txt", "big.bin"]
    assert (tmp_path / "back" / "big.bin").stat().st_size == 100000
    target.run(["rm", "-rf", base], timeout=60)


def test_timeout_kills_the_process_tree(target: Target) -> None:
    start = time.monotonic()
    done = target.run(["sh", "-c", "sleep 300 & sleep 301 & wait"], timeout=3)
    assert done.timed_out
    assert time.monotonic() - start < 30
    left = target.run(["sh", "-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"], timeout=60).stdout
    assert "sh -c" in left  # the listing itself worked
    assert "sleep 300" not in left
    assert "sleep 301" not in left


def test_facts(target: Target) -> None:
    facts = target.facts()
    assert facts.python
    assert facts.kernel
    if target.config.arch == "riscv64":
        assert facts.arch == "riscv64"
        assert facts.isa.startswith("rv64")
        assert {"i", "m", "a", "f", "d", "c"} <= set(facts.extensions)
        assert facts.os_id == "debian"
        assert ("v" in facts.extensions) == ("v=true" in target.config.options.cpu)
        assert facts.emulation == ("qemu-system" if target.kind == "qemu-vm" else "qemu-user")


def test_shared_image_serves_every_backend(debian_image: CachedImage) -> None:
    assert (debian_image.rootfs / "usr" / "bin" / "python3").exists()
