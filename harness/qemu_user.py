"""Which qemu-user runs a chroot target, and a current one fetched from Debian 13 into leapfrog's cache.

Two emulators can run a riscv64 chroot:

``qemu = ""`` (the default)
    The host's binfmt entry (``/proc/sys/fs/binfmt_misc/qemu-riscv64``), as
    ``scripts/setup-host.sh`` registers it.  On Debian 12 that is QEMU 7.2: no
    ``rva22u64``/``rva23u64`` CPU models and no ``riscv_hwprobe`` system call.

``qemu = "debian-trixie"``
    Debian 13's ``qemu-user`` (QEMU 10, static binaries), fetched with apt
    through a private configuration (its own sources.list, state and cache
    under ``<cache>/qemu/``; the signed InRelease is checked with the host's
    Debian archive keyring, the .deb against the hash in the signed index),
    unpacked with ``dpkg-deb -x``.  Nothing of the host's apt or dpkg state is
    read or written, and no host binfmt entry is added or changed: each command
    runs through :mod:`harness.qemu_enter`, in a user namespace whose private
    binfmt_misc sends every riscv64 program (children included) to this qemu,
    through a wrapper (:mod:`harness.qemu_wrapper`) that puts the target's
    ``-cpu`` on qemu's command line: a child with an emptied environment keeps
    the CPU model.

Fetch it ahead of a run (it is fetched on first use otherwise)::

    python3 -m harness.qemu_user fetch

Before a target starts, its ``cpu`` model is looked up in the emulator's own
``-cpu help`` list: a model the emulator does not know is refused with a
TargetError that says which ``qemu`` to set, never run on another CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from harness import qemu_wrapper
from harness.errors import ConfigError, TargetError
from harness.paths import qemu_dir

#: Where each ``qemu`` value of a chroot target comes from: (mirror, suite, package).
SOURCES = {"debian-trixie": ("http://deb.debian.org/debian", "trixie", "qemu-user")}
HOST = ""  # the ``qemu`` value meaning "the host's binfmt entry"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
#: A binfmt_misc instance per user namespace arrived in this kernel.
MIN_KERNEL = (6, 7)
ENTER = Path(__file__).with_name("qemu_enter.py")
FETCH_HINT = "python3 -m harness.qemu_user fetch"

Progress = Callable[[str], None]


def check_source(source: str, *, where: str) -> None:
    if source != HOST and source not in SOURCES:
        known = ", ".join(f'"{s}"' for s in SOURCES)
        raise ConfigError(f'{where}: key "qemu" is "{source}"; expected "" (the host\'s binfmt entry) or {known}.')


# ----------------------------------------------------------------------------- emulator facts


def parse_version(text: str) -> str:
    """``10.0.13`` from ``qemu-riscv64 version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)``; "" if none."""
    m = re.search(r"version (\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else ""


def parse_cpu_models(text: str) -> list[str]:
    """The model names of ``qemu-riscv64 -cpu help`` (one per line after "Available CPUs:")."""
    models = []
    for line in text.splitlines():
        word = line.strip().split(" ")[0] if line.strip() else ""
        if word and ":" not in line:
            models.append(word)
    return models


def cpu_model_name(cpu: str) -> str:
    """The model a ``cpu`` option names: ``rv64`` of ``rv64,v=true,vlen=256``."""
    return cpu.split(",", 1)[0].strip()


@functools.lru_cache(maxsize=16)
def describe(binary: str) -> tuple[str, str, tuple[str, ...]]:
    """(first ``--version`` line, version, CPU models) of a qemu-user binary."""
    try:
        ver = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
        cpus = subprocess.run([binary, "-cpu", "help"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        raise TargetError(f'the emulator "{binary}" cannot be run: {e}.') from e
    line = (ver.stdout.splitlines() or [""])[0].strip()
    return line, parse_version(line), tuple(parse_cpu_models(cpus.stdout))


def binfmt_interpreter(arch: str, binfmt_dir: Path = BINFMT_DIR) -> str:
    """The interpreter of the host's ``qemu-<arch>`` binfmt entry ("" when none is registered)."""
    try:
        text = (binfmt_dir / f"qemu-{arch}").read_text()
    except OSError:
        return ""
    for line in text.splitlines():
        if line.startswith("interpreter "):
            return os.path.realpath(line.split(" ", 1)[1].strip())
    return ""


def check_cpu(binary: str, cpu: str, *, target: str) -> str:
    """The emulator's version; a TargetError when it does not know the model ``cpu`` names."""
    line, version, models = describe(binary)
    model = cpu_model_name(cpu)
    if model and model not in models:
        raise TargetError(
            f'target {target}: cpu "{cpu}" names the model "{model}", which the emulator {binary} '
            f"({line or 'version unknown'}) does not know, so the target would not run on the CPU it promises; "
            f'set qemu = "debian-trixie" in the target file (leapfrog fetches Debian 13\'s QEMU 10 into its '
            f"cache; `{FETCH_HINT}` does it ahead of time). Models this emulator knows: {', '.join(models)}."
        )
    return version


def kernel_ok(release: str | None = None) -> bool:
    """Whether this kernel gives each user namespace its own binfmt_misc (Linux >= 6.7)."""
    m = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= MIN_KERNEL  # type: ignore[union-attr]


# ----------------------------------------------------------------------------- the cached package


def cached(source: str, arch: str = "riscv64") -> Path | None:
    """The cached qemu-user binary for ``arch`` from ``source``, or None when it is not fetched yet."""
    d = qemu_dir(source)
    binary = d / "root" / "usr" / "bin" / f"qemu-{arch}"
    return binary if (d / "meta.json").is_file() and binary.is_file() else None


def cpu_interpreter(source: str, binary: Path, cpu: str) -> Path:
    """The private binfmt entry's interpreter for ``cpu``: it runs ``binary`` with ``-cpu cpu`` (see qemu_wrapper).

    ``binary`` is reached inside the root at ``qemu_wrapper.INSIDE``, where
    :mod:`harness.qemu_enter` binds its folder; the wrapper is kept next to the
    cached package, one per CPU model.
    """
    return qemu_wrapper.write(qemu_dir(source) / "wrappers", f"{qemu_wrapper.INSIDE}/{binary.name}", cpu)


def dpkg_arch(machine: str | None = None) -> str:
    machine = machine or platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64el", "s390x": "s390x"}.get(machine, machine)


def apt_config(base: Path, mirror: str, suite: str, arch: str, keyring: str = KEYRING) -> str:
    """The private apt.conf (given as ``APT_CONFIG``): no host configuration, sources, state or cache is used."""
    empty = base / "empty"
    lines = {
        "Dir::Etc::main": "/dev/null",
        "Dir::Etc::parts": str(empty),
        "Dir::Etc::sourcelist": str(base / "sources.list"),
        "Dir::Etc::sourceparts": str(empty),
        "Dir::Etc::preferences": "/dev/null",
        "Dir::Etc::preferencesparts": str(empty),
        "Dir::Etc::trusted": "/dev/null",
        "Dir::Etc::trustedparts": str(empty),
        "Dir::State": str(base / "state"),
        "Dir::State::status": str(base / "state" / "status"),
        "Dir::Cache": str(base / "cache"),
        "APT::Architecture": arch,
        "APT::Sandbox::User": "root",
        "Acquire::Languages": "none",
    }
    conf = "".join(f'{k} "{v}";\n' for k, v in lines.items())
    conf += f'APT::Architectures {{ "{arch}"; }};\n'
    (base / "sources.list").write_text(f"deb [signed-by={keyring}] {mirror} {suite} main\n")
    return conf


def _run(argv: list[str], *, env: dict[str, str], cwd: Path, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=1800, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise TargetError(f"{what}: `{' '.join(argv)}` failed (exit {done.returncode}):\n{tail}")


def fetch(source: str = "debian-trixie", *, progress: Progress = print) -> Path:
    """Fetch and unpack ``source``'s qemu-user into the cache (once; later calls return it); its riscv64 binary."""
    check_source(source, where="harness.qemu_user.fetch")
    if source == HOST:
        raise ConfigError("harness.qemu_user.fetch: the host's qemu is installed with apt, not fetched; name a source.")
    have = cached(source)
    if have:
        return have
    mirror, suite, package = SOURCES[source]
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise TargetError(f"fetching Debian {suite}'s {package} needs {tool}; run: apt-get install apt dpkg")
    if not os.path.exists(KEYRING):
        raise TargetError(
            f"fetching Debian {suite}'s {package} needs {KEYRING}; run: apt-get install debian-archive-keyring"
        )
    final = qemu_dir(source)
    final.parent.mkdir(parents=True, exist_ok=True)
    import filelock  # only to fetch: 7 ms at every start otherwise

    with filelock.FileLock(str(final) + ".lock"):
        have = cached(source)
        if have:
            return have
        work = final.parent / f"{source}.partial"
        if work.exists():
            shutil.rmtree(work)  # a fetch that died; it never holds a mount
        for sub in ("empty", "state/lists/partial", "cache/archives/partial", "debs", "root"):
            (work / "apt" / sub if sub not in ("debs", "root") else work / sub).mkdir(parents=True)
        (work / "apt" / "state" / "status").write_text("")
        conf = work / "apt" / "apt.conf"
        conf.write_text(apt_config(work / "apt", mirror, suite, dpkg_arch()))
        env = {**os.environ, "APT_CONFIG": str(conf), "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        what = f"fetching Debian {suite}'s {package} from {mirror}"
        progress(f"{what} (apt, signed InRelease checked with {KEYRING})")
        _run(["apt-get", "-q", "update"], env=env, cwd=work, what=what)
        _run(["apt-get", "-q", "download", package], env=env, cwd=work / "debs", what=what)
        (deb,) = sorted((work / "debs").glob("*.deb"))
        _run(["dpkg-deb", "-x", str(deb), str(work / "root")], env=env, cwd=work, what=what)
        binary = work / "root" / "usr" / "bin" / "qemu-riscv64"
        describe.cache_clear()
        line, version, models = describe(str(binary))
        if not version or "rva23u64" not in models:
            raise TargetError(f"{what}: {binary} does not run or knows no rva23u64 ({line!r}); nothing was cached.")
        meta = {
            "source": source,
            "mirror": mirror,
            "suite": suite,
            "package": deb.name,
            "sha256": hashlib.sha256(deb.read_bytes()).hexdigest(),
            "version": version,
            "version_line": line,
        }
        deb.unlink()
        shutil.rmtree(work / "apt")
        (work / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        describe.cache_clear()
        progress(f"cached {line} in {final}")
    have = cached(source)
    assert have is not None
    return have


def meta(source: str) -> dict[str, str]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads((qemu_dir(source) / "meta.json").read_text())
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m harness.qemu_user", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", help="fetch a current qemu-user into leapfrog's cache (changes nothing on the host)")
    f.add_argument("source", nargs="?", default="debian-trixie", choices=sorted(SOURCES))
    args = parser.parse_args(argv)
    try:
        path = fetch(args.source)
    except (TargetError, ConfigError) as e:
        print(e, file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
