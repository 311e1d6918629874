"""ISA profile targets: each runs the shared image on Debian 13's QEMU 10 with its CPU model, children included.

For rva20, rva22 and rva23 the target is started for real (root, the cached
image, the cached or freshly fetched qemu-user), its facts are read from
inside (riscv_hwprobe), and a child process that the target's Python starts
with ``subprocess`` reads them again: it must see the same extensions, so it
ran on the same emulator and CPU model.  A child whose environment was emptied
runs on the same emulator and CPU model too: the private binfmt entry's
interpreter passes ``-cpu`` itself (:mod:`harness.qemu_wrapper`), so the model
does not travel in the environment.  About 20 s per profile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config import load_project
from harness.images import CachedImage
from harness.probe import FACTS_FILES
from harness.targets import make_target
from harness.targets.chroot import ChrootTarget
from tests.integration.conftest import ROOT, leapfrog, runs_in_a_folder_without_env

pytestmark = pytest.mark.chroot

#: What each profile must show, and what it must not.
PROMISED = {
    "rva20": ({"i", "m", "a", "f", "d", "c"}, {"zba", "zbb", "zbs", "v", "zicond"}),
    "rva22": ({"i", "m", "a", "f", "d", "c", "zba", "zbb", "zbs", "zicboz"}, {"v", "zicond"}),
    "rva23": ({"i", "m", "a", "f", "d", "c", "v", "zba", "zbb", "zbs", "zicond", "zfa"}, set()),
}

CHILD = """
import json, os, subprocess, sys
kept = subprocess.run([sys.executable, sys.argv[1]], capture_output=True, text=True, check=True)
empty = subprocess.run([sys.executable, sys.argv[1]], capture_output=True, text=True, env={}, check=True)
print(json.dumps({"child": json.loads(kept.stdout.splitlines()[-1]), "empty_env": json.loads(empty.stdout)}))
"""


@pytest.fixture(params=sorted(PROMISED))
def profile_target(request: pytest.FixtureRequest, debian_image: CachedImage) -> Iterator[ChrootTarget]:
    config = load_project(ROOT).targets[f"debian-trixie-riscv64-{request.param}"]
    target = make_target(config, progress=lambda m: print(m, flush=True))
    assert isinstance(target, ChrootTarget)
    target.start()
    try:
        yield target
    finally:
        target.stop()


def test_a_profile_target_shows_its_extensions_and_so_do_its_children(
    profile_target: ChrootTarget, debian_image: CachedImage
) -> None:
    name = profile_target.name.rsplit("-", 1)[1]
    want, never = PROMISED[name]
    assert profile_target.image_id == debian_image.path.name  # the shared image, no build of its own

    facts = profile_target.facts()
    assert facts.extra["isa_source"] == "hwprobe"
    assert want <= set(facts.extensions), facts.isa
    assert not never & set(facts.extensions), facts.isa
    assert facts.extra["qemu_version"].startswith("10."), facts.extra
    assert facts.cpu_model == profile_target.options.cpu
    assert facts.extra["qemu_cpu"] == profile_target.options.cpu
    assert facts.extra["qemu_binfmt"].startswith("private to the target")

    tmp = profile_target.make_temp_dir()
    for name, path in FACTS_FILES.items():  # facts.py imports its vector facts by their name in the target
        profile_target.put(path, f"{tmp}/{name}")
    local = profile_target.local_path(f"{tmp}/child.py")
    assert local is not None
    local.write_text(CHILD)
    done = profile_target.run(["python3", f"{tmp}/child.py", f"{tmp}/leapfrog_facts.py"], timeout=300)
    assert done.ok, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["child"]["extensions"] == facts.extensions  # same emulator, same CPU model
    assert out["child"]["extra"]["isa_source"] == "hwprobe"  # QEMU 10: QEMU 7.2 has no hwprobe
    # A child started with an empty environment has no QEMU_CPU, and still runs on QEMU 10 with the same CPU model:
    # the private binfmt entry's interpreter passes -cpu itself (on QEMU's default "max" it would show zba, v...).
    assert out["empty_env"]["extra"]["isa_source"] == "hwprobe"
    assert out["empty_env"]["extensions"] == facts.extensions, out["empty_env"]["isa"]


def test_a_run_on_two_profiles_compares_them_in_the_report(debian_image: CachedImage, tmp_path: Path) -> None:
    """platform on rva20 and rva23 (about a minute): the report's profile section names both, and the facts
    say what numpy does with vectors on each (the image's numpy finds RVV on rva23 only)."""
    out = tmp_path / "report"
    rva20, rva23 = "debian-trixie-riscv64-rva20", "debian-trixie-riscv64-rva23"
    done = leapfrog("run", "-t", f"{rva20},{rva23}", "-s", "platform", "-o", str(out), "--no-history")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    html = (out / "index.html").read_text()
    section = html[html.index('<h2 id="profiles">') : html.index('<h2 id="targets">')]
    assert f"Image <code>{debian_image.path.name}</code> on 2 CPU models" in section
    assert rva20 in section
    assert rva23 in section
    assert '<td data-l="suite">platform</td>' in section  # the speed row of the suite
    assert "vlen_bits" in section  # 0 on rva20, 128 on rva23

    run = json.loads((out / "results.json").read_text())
    extra = {t["name"]: t["facts"]["extra"] for t in run["targets"]}
    for name in (rva20, rva23):
        assert extra[name]["numpy_blas"], extra[name]
        assert extra[name]["blas_library"], extra[name]
        assert extra[name]["blas_runtime"], extra[name]
        assert "vector_facts_error" not in extra[name]
    assert extra[rva20]["numpy_simd"] == "not found RVV"
    assert extra[rva23]["numpy_simd"] == "found RVV"
    assert "BLAS at run time" in html  # shown in the target table too


def test_a_profile_target_changes_folder_natively_and_a_missing_one_exits_125(
    debian_image: CachedImage, tmp_path: Path
) -> None:
    """qemu_enter changes to the folder itself, after its chroot: no emulated env -C (gone from the root here)."""
    target = make_target(load_project(ROOT).targets["debian-trixie-riscv64-rva23"])
    assert isinstance(target, ChrootTarget)
    target.start()
    try:
        runs_in_a_folder_without_env(target)

        missing = target.run(["sh", "-c", "echo ran > /tmp/ran"], timeout=120, cwd="/no/such/folder")
        assert (missing.exit_code, missing.stdout) == (125, "")
        said = (
            "leapfrog: cannot change to the working folder '/no/such/folder' in the target: No such file or directory"
        )
        assert missing.stderr == said + "\n"
        ran = target.local_path("/tmp/ran")
        assert ran is not None
        assert not ran.exists()  # the command never ran

        # A link the target made is resolved inside the root: it cannot lead to the host's folder of that name.
        (tmp_path / "host-only").write_text("host\n")
        link = target.local_path("/tmp/out")
        assert link is not None
        link.symlink_to(tmp_path)
        outside = target.run(["cat", "host-only"], timeout=120, cwd="/tmp/out")
        assert (outside.exit_code, outside.stdout) == (125, ""), outside.stderr
        assert target.run(["no-such-program"], timeout=120, cwd="/tmp").exit_code == 127
    finally:
        target.stop()
