"""Emulation choices: what qemu-user, qemu-system and the vector extension cost on the same suite.

Runs one suite on each target in one invocation per target, alternating targets
across repetitions, and reports per target: the cell's wall time, the summed
case durations, the ratio to native, and (qemu-vm) the boot time.

    python3 bench/emulation.py [--suite numpy] [--reps 1] [--targets native,debian-trixie-riscv64,...]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import leapfrog, median, report

DEFAULT = "native,debian-trixie-riscv64,debian-trixie-riscv64-rvv,debian-trixie-riscv64-docker,debian-trixie-riscv64-vm"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="numpy")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--targets", default=DEFAULT)
    args = ap.parse_args()
    targets = args.targets.split(",")
    rows: dict[str, dict[str, list[float]]] = {
        t: {"cell_wall": [], "cases_s": [], "run_wall": [], "boot": []} for t in targets
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for t in targets:
                out = Path(tmp) / f"{t}-{rep}"
                wall = leapfrog("run", "-t", t, "-s", args.suite, "--out", str(out), "--no-history")
                data = json.loads((out / "results.json").read_text())
                (cell,) = data["cells"]
                facts = data["targets"][0]["facts"] or {}
                rows[t]["run_wall"].append(wall)
                rows[t]["cell_wall"].append(cell["wall"])
                rows[t]["cases_s"].append(sum(c["duration"] for c in cell["cases"]))
                if facts.get("extra", {}).get("boot_seconds"):
                    rows[t]["boot"].append(float(facts["extra"]["boot_seconds"]))
    base = median(rows["native"]["cases_s"]) if "native" in rows else None
    result: dict[str, object] = {"suite": args.suite, "reps": args.reps}
    for t, r in rows.items():
        cases = median(r["cases_s"])
        result[t] = {
            "run_wall_s": round(median(r["run_wall"]), 1),
            "cell_wall_s": round(median(r["cell_wall"]), 1),
            "cases_s": round(cases, 2),
            "vs_native": round(cases / base, 1) if base else None,
            "boot_s": round(median(r["boot"]), 1) if r["boot"] else None,
        }
    report("emulation", result)


if __name__ == "__main__":
    main()
