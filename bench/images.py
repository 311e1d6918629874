"""Image cache: cold build, warm hit, and incremental add of one package.

Uses a private cache folder (so nothing of yours is reused or removed):
  cold        mmdebstrap from scratch (base packages: python3, python3-pytest)
  warm        the same request again (a cache hit: no build)
  incremental the same plus one package, layered on the cached image with apt
  full        that package list built from scratch, for comparison

    python3 bench/images.py [--extra python3-numpy] [--skip-full]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import report, timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--extra", default="python3-numpy")
    ap.add_argument("--skip-full", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="leapfrog-bench-cache-", dir="/var/tmp"))
    os.environ["LEAPFROG_CACHE"] = str(tmp)
    try:
        from harness.config import ImageSpec
        from harness.images import ensure_image

        spec = ImageSpec()
        cold = timed(lambda: ensure_image(spec, []))
        warm = timed(lambda: ensure_image(spec, []))
        incremental = timed(lambda: ensure_image(spec, [args.extra]))
        rows: dict[str, object] = {
            "extra": args.extra,
            "cold_s": round(cold, 1),
            "warm_s": round(warm, 3),
            "incremental_s": round(incremental, 1),
        }
        if not args.skip_full:
            full = timed(lambda: _full(spec, args.extra))
            rows["full_rebuild_s"] = round(full, 1)
            rows["incremental_over_full"] = round(incremental / full, 3)
        report("images", rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _full(spec: object, extra: str) -> None:
    from harness.images import ensure_image
    from harness.images.cache import find_image, remove_image

    img = find_image(
        "debian",
        "trixie",
        "riscv64",
        "http://deb.debian.org/debian",
        ["python3", "python3-pytest", extra],
    )
    if img:
        remove_image(img)
    ensure_image(spec, [extra], layering=False)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
