"""Cold image build: a Debian riscv64 image from nothing but the archive, timed phase by phase.

Uses a private cache folder (nothing of yours is reused or removed); the native
dpkg and python3 the build fetches are part of the cold time, unless --warm-native
keeps them from an earlier run in the same --cache.

  demo   the image `make demo` builds: python3, python3-pytest
  demo+ca  the demo image as it was before 2026-12-01: plus ca-certificates
  full   the shared image of the integration tests: every suite's packages and
         every backend's (the VM's kernel, initramfs-tools, sshd, udev)

    python3 bench/cold_build.py [--image demo|demo+ca|full ...] [--runs N] [--cache DIR] [--keep]

Several --image options alternate within each run (demo, demo+ca, demo, demo+ca, ...),
so a before/after pair sees the same machine noise.

Prints the phase table (seconds, from the image's meta.json) and the total.  Phases:
download, unpack and configure are mmdebstrap's stages and apt/dpkg's steps
after the essential packages; "configure python3 packages" is what those
packages' postinsts do (byte-compiling, when it runs there); "byte-compile" and
"initramfs" are the build's own hook steps (harness/images/nativebuild.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import report


def packages(image: str) -> list[str]:
    if image == "demo":
        return []
    if image == "demo+ca":
        return ["ca-certificates"]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
    from conftest import all_debian_packages  # type: ignore[import-not-found]  # the integration tier's image

    return list(all_debian_packages())


def build_once(image: str) -> tuple[float, dict[str, float], int]:
    from harness.config import ImageSpec
    from harness.images import ensure_image
    from harness.images.cache import list_images, remove_image
    from harness.paths import images_dir

    for img in list_images():
        remove_image(img)  # cold: no image to reuse or layer on (the private cache only)
    start = time.monotonic()
    img = ensure_image(ImageSpec(), packages(image), progress=lambda m: print(f"  {m}", flush=True))
    wall = time.monotonic() - start
    assert img.path.parent == images_dir()
    return wall, dict(img.meta.phases), len(img.meta.packages)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", choices=["demo", "demo+ca", "full"], action="append")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cache", help="private cache folder (default: a new one under /var/tmp)")
    ap.add_argument("--warm-native", action="store_true", help="keep the native dpkg/python3 between runs")
    ap.add_argument("--keep", action="store_true", help="keep the last image (for comparing its files)")
    args = ap.parse_args()
    cache = Path(args.cache or tempfile.mkdtemp(prefix="leapfrog-bench-cold-", dir="/var/tmp"))
    if cache.resolve() == Path(os.path.expanduser("~/.cache/leapfrog")).resolve():
        raise SystemExit(f"{cache} is the user cache; give --cache a private folder.")
    os.environ["LEAPFROG_CACHE"] = str(cache)
    from harness import mounts
    from harness.paths import cache_root

    kinds = args.image or ["demo"]
    walls: dict[str, list[float]] = {k: [] for k in kinds}
    runs: list[tuple[str, float, dict[str, float]]] = []
    loads: list[float] = []
    for i in range(args.runs):
        for kind in kinds:
            if not args.warm_native:
                mounts.unmount_and_remove(cache_root() / "native")
            print(f"run {i + 1}/{args.runs}: {kind} image, cache {cache}", flush=True)
            wall, phases, npkgs = build_once(kind)
            walls[kind].append(wall)
            runs.append((kind, wall, phases))
            loads.append(os.getloadavg()[0])
            print(f"  {wall:.0f} s ({npkgs} packages asked), load average {loads[-1]:.1f}", flush=True)
    names = list(dict.fromkeys(k for _, _, r in runs for k in r))
    print(f"\n| phase | {' | '.join(f'{kind} {i + 1} (s)' for i, (kind, _, _) in enumerate(runs))} |")
    print(f"|---|{'---:|' * len(runs)}")
    for name in names:
        print(f"| {name} | {' | '.join(f'{r.get(name, 0):.0f}' for _, _, r in runs)} |")
    print(f"| **total (wall)** | {' | '.join(f'**{w:.0f}**' for _, w, _ in runs)} |")
    for kind in kinds:
        print(f"{kind}: median {statistics.median(walls[kind]):.1f} s of {[round(w) for w in walls[kind]]}")
    report(
        "cold_build",
        {
            "images": kinds,
            "runs": args.runs,
            "median_s": {k: round(statistics.median(w), 1) for k, w in walls.items()},
            "walls_s": {k: [round(x, 1) for x in w] for k, w in walls.items()},
            "phases": [{"image": k, **p} for k, _, p in runs],
            "load1": [round(x, 2) for x in loads],
        },
    )
    if not args.keep:
        from harness.images.cache import list_images, remove_image

        for img in list_images():
            remove_image(img)


if __name__ == "__main__":
    main()
