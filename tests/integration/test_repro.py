"""``leapfrog repro`` from a real report: native + the riscv64 qemu-user chroot.

The suite ``suites/repro`` holds a case that fails only on riscv64.  The run's
HTML shows the repro line of that target-only failure; running that very line
starts the chroot on the image the run recorded, runs only that case with its
whole output (past what results.json keeps) and exits 1; ``--shell`` reads
commands from a pipe inside the target.  Nothing is left mounted.
"""

from __future__ import annotations

import html
import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.images import CachedImage
from tests.integration.conftest import ROOT, cache_env
from tests.integration.test_faults import no_leftovers

pytestmark = [pytest.mark.integration, pytest.mark.chroot]
SUITES = Path(__file__).parent / "suites"
RV = "debian-trixie-riscv64"
CASE = "test_repro.py::test_fails_only_on_riscv64"
LONG = 100_000


def cli(words: list[str], cache: Path, stdin: str = "") -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a leapfrog command line (its first word "leapfrog") as this checkout; (result, seconds)."""
    assert words[0] == "leapfrog"
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *words[1:]],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=cache_env(cache),
        cwd=ROOT,
    )
    return done, time.monotonic() - started


def test_repro_reproduces_a_target_only_failure_and_opens_a_shell(
    private_cache: Path, debian_image: CachedImage, tmp_path: Path
) -> None:
    out = tmp_path / "report"
    run_line = [
        "leapfrog",
        "--root",
        str(ROOT),
        "--suites-dir",
        str(SUITES),
        "run",
        "-t",
        f"native,{RV}",
        "-s",
        "repro",
    ]
    done, took = cli([*run_line, "--out", str(out), "--no-history"], private_cache)
    print(f"leapfrog run native + {RV} / repro: {took:.1f} s")
    assert done.returncode == 1, done.stderr[-3000:]  # target-only is in the default --fail-on

    data = json.loads((out / "results.json").read_text())
    image = {t["name"]: t["image"] for t in data["targets"]}[RV]
    cached = {p.name for p in debian_image.path.parent.iterdir() if (p / "meta.json").is_file()}
    assert image in cached  # the run recorded the cached image it ran
    kept = next(c for cell in data["cells"] if cell["target"] == RV for c in cell["cases"] if c["name"] == CASE)
    assert kept["triage"]["class"] == "target-only"
    assert len(kept["output"]) < LONG  # results.json keeps a bounded part of the output

    # The HTML shows the line; that very line reproduces the failure.
    page = (out / "index.html").read_text()
    (shown,) = re.findall(r"again: <code>([^<]*)</code>", page)
    line = shlex.split(html.unescape(shown))
    assert line == ["leapfrog", "repro", "-t", RV, "-s", "repro", str(out.resolve()), CASE]
    done, took = cli(line, private_cache)
    print(f"leapfrog repro (chroot start, one case, stop): {took:.1f} s")
    assert done.returncode == 1, done.stderr[-3000:]
    assert "repro-marker: this check does not hold on riscv64" in done.stdout
    assert "long-output-start " + "y" * LONG + " long-output-end" in done.stdout  # the whole output
    assert "test_passes_everywhere" not in done.stdout  # only that case ran
    assert f"image {image} (as in the run)" in done.stderr
    assert f"repro: the case failed on {RV}" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "again: " + shlex.join(line)
    no_leftovers(private_cache)

    # --shell: commands on stdin run in the target, at the suite's folder.
    done, took = cli(
        ["leapfrog", "repro", str(out), CASE, "--shell"], private_cache, stdin="echo marker-7; uname -m; ls; exit\n"
    )
    print(f"leapfrog repro --shell (chroot start, three commands, stop): {took:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "marker-7" in done.stdout
    assert "riscv64" in done.stdout.split("marker-7", 1)[1]  # uname -m inside the target
    assert "test_repro.py" in done.stdout  # started in the suite's folder
    no_leftovers(private_cache)

    # Stopped while the shell runs (SIGTERM, handled as Ctrl-C): exit 130, the chroot is gone.
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "repro", str(out), CASE, "--shell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cache_env(private_cache),
    )
    assert proc.stdin is not None
    proc.stdin.write("echo sleeping; sleep 600\n")
    proc.stdin.flush()
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "sleeping"
    proc.terminate()
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    no_leftovers(private_cache)

    # The image the run recorded is gone: refused before anything starts, with the way to rebuild it.
    data["targets"] = [{**t, "image": f"{RV}-0000000000000000"} if t["name"] == RV else t for t in data["targets"]]
    (out / "results.json").write_text(json.dumps(data))
    done, _took = cli(["leapfrog", "repro", str(out), CASE], private_cache)
    assert done.returncode == 2
    assert f'the run used image "{RV}-0000000000000000"' in done.stderr
    assert f"leapfrog images build -t {RV} -s repro" in done.stderr
    no_leftovers(private_cache)
