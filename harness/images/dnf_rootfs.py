"""Build an openEuler root filesystem with dnf, the way openEuler's riscv64 community builds one.

openEuler's RISC-V SIG builds riscv64 root filesystems on x86 hosts with::

    dnf --installroot ROOT --forcearch riscv64 --releasever REL --repo ... install PACKAGES

(package scriptlets then run inside ROOT through qemu-user and binfmt).  A
target file asks for one with::

    [image]
    distro = "openeuler"
    source = "build"
    release = "24.03-LTS-SP3"
    profile = "rva23"                        # or "rva20"
    mirror = "https://repo.openeuler.org"
    gpgkey = "https://repo.openeuler.org/openEuler-24.03-LTS-SP3/everything/riscv64/rva23/riscv64/RPM-GPG-KEY-openEuler"

and dnf reads the one repository ``<mirror>/openEuler-<release>/everything/<arch>/<profile>/<arch>/``
(the layout of 24.03-LTS-SP3, which splits riscv64 by ISA profile).

The host is never touched: dnf gets a private configuration (``-c``), a
``reposdir`` holding only the generated ``.repo`` (no host repository is read),
``--installroot`` for every database and cache, and a private ``HOME`` whose
``.rpmmacros`` puts the image's rpm database at ``/var/lib/rpm`` as openEuler
has it (Debian's rpm would use ``~/.rpmdb``).  ``gpgcheck`` is explicit: on,
with ``image.gpgkey``, unless the target file says ``gpgcheck = false`` (an
unsigned repository, like the test's local stand-in).

A package the repository lacks does not fail the build: dnf runs with
``strict=False``, the image records it in ``meta.json`` as ``missing``, and
:func:`missing_packages` hands it to the runner, whose probe then skips the
cases that cannot import it ("package not available for this target"), the
same path as an openEuler VM or container.  dnf gets ``LEAPFROG_DNF_TIMEOUT``
seconds [3600]; its own error lines become the message.

Images are cached like the Debian ones (:mod:`harness.images.cache`): the key
is a hash of the repository URL (which holds release and profile), the release,
the architecture and the sorted packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness.config import ImageSpec, check_package_names, check_release
from harness.errors import ImageError
from harness.hostreq import install_hint
from harness.images import buildrun
from harness.images.cache import Built, CachedImage, build_image, find_image

#: Always in an openEuler image: what the probe and pytest need (names as openEuler's repositories have them).
BASE_PACKAGES = ["python3", "python3-pytest", "coreutils"]
DNF_TIMEOUT = ("LEAPFROG_DNF_TIMEOUT", 3600.0)
REPO_ID = "leapfrog-openeuler"
#: Mount points a chroot target needs; openEuler's ``filesystem`` package makes them, a small repository may not.
MOUNT_POINTS = ("proc", "sys", "dev", "tmp", "run")

_MAX_ERRORS = buildrun.MAX_ERRORS
_NO_MATCH = re.compile(r"No match for argument: (\S+)")
_NO_PROVIDER = re.compile(r"no package provides (\S+)")
_ERROR = re.compile(
    r"^(Error:|error:|Curl error|Cannot download|Failed to download|Status code: |Errors during downloading)"
    r"|GPG check FAILED|is not installed\b|is not signed|Couldn't open file|Problem( \d+)?: ",
)
_NETWORK = re.compile(r"Curl error|Cannot download|Failed to download|Could not resolve|Couldn't (connect|resolve)")
_NOT_FOUND = re.compile(r"Status code: 404|repomd\.xml.*(404|Not Found)")
_GPG = re.compile(r"GPG check FAILED|Public key for .* is not installed|is not signed|gpgkey|GPG key")


def repo_url(spec: ImageSpec) -> str:
    """The repository dnf reads: ``<mirror>/openEuler-<release>/everything/<arch>/<profile>/<arch>/``."""
    return f"{spec.mirror.rstrip('/')}/openEuler-{spec.release}/everything/{spec.arch}/{spec.profile}/{spec.arch}/"


def repo_text(spec: ImageSpec) -> str:
    """The generated ``.repo`` file: the one repository, gpgcheck as the target file says."""
    lines = [
        f"[{REPO_ID}]",
        f"name=openEuler {spec.release} everything {spec.arch} {spec.profile} (leapfrog)",
        f"baseurl={repo_url(spec)}",
        "enabled=1",
        f"gpgcheck={1 if spec.gpgcheck else 0}",
        "repo_gpgcheck=0",
        *([f"gpgkey={spec.gpgkey}"] if spec.gpgcheck else []),
        "skip_if_unavailable=0",
    ]
    return "\n".join(lines) + "\n"


def dnf_conf(spec: ImageSpec, reposdir: Path) -> str:
    """The private dnf configuration: no host repository, no plugins, no weak dependencies, no docs."""
    return (
        "[main]\n"
        f"gpgcheck={1 if spec.gpgcheck else 0}\n"
        f"reposdir={reposdir}\n"
        "install_weak_deps=False\n"
        "tsflags=nodocs\n"
        "keepcache=False\n"
        "plugins=False\n"
        "skip_if_unavailable=False\n"
    )


def dnf_argv(spec: ImageSpec, conf: Path, reposdir: Path, root: Path, packages: list[str]) -> list[str]:
    """``dnf install`` into ``root`` from the generated repository only; a name it lacks is skipped, not fatal."""
    # Checked again here, not only when the file is read: a name starting with "-" would be an option.
    check_release(spec.release)
    check_package_names(packages, "openeuler", "packages")
    return [
        "dnf",
        "-y",
        f"--config={conf}",
        f"--installroot={root}",
        f"--forcearch={spec.arch}",
        f"--releasever={spec.release}",
        f"--setopt=reposdir={reposdir}",
        "--disablerepo=*",
        f"--enablerepo={REPO_ID}",
        "--noplugins",
        "--setopt=install_weak_deps=False",
        "--setopt=tsflags=nodocs",
        "--setopt=strict=False",  # a package the repository lacks is reported, the rest installed
        "install",
        "--",
        *sorted(set(packages)),
    ]


def rpm_query_argv(root: Path, packages: list[str]) -> list[str]:
    """Ask the image's own rpm database (never the host's) which of ``packages`` something installed provides."""
    return ["rpm", f"--root={root}", "--dbpath=/var/lib/rpm", "-q", "--whatprovides", "--", *sorted(set(packages))]


def explain(done: buildrun.Finished, errors: list[str], spec: ImageSpec) -> str:
    """A message for a failed dnf run: its error lines as the cause, then the fix, then the last output."""
    url = repo_url(spec)
    last = "\n".join(done.tail)
    if done.timed_out:
        return (
            f"dnf did not finish building openEuler {spec.release} {spec.profile} from {url} within "
            f"{done.timeout:g} s, so its whole process group was stopped; if it is only slow, raise the deadline "
            f"with the environment variable {DNF_TIMEOUT[0]} (seconds). Last output:\n{last}"
        )
    cause = "; ".join(errors[:5]) or "it printed no error line"
    text = "\n".join([*errors, last])
    if _NOT_FOUND.search(text):
        fix = (
            f"The repository {url} was not found: check image.mirror, image.release and image.profile "
            "(dnf reads <mirror>/openEuler-<release>/everything/<arch>/<profile>/<arch>/)."
        )
    elif _NETWORK.search(text):
        fix = (
            f"Check that {url} is reachable from this host (openEuler's mirrors are not reachable from every "
            "network), or point image.mirror at a mirror that is."
        )
    elif spec.gpgcheck and _GPG.search(text):
        fix = (
            f"A package's signature could not be checked with the key {spec.gpgkey}: set image.gpgkey to the "
            "repository's RPM-GPG-KEY-openEuler (a file:// URL of a key you verified, or the one beside the "
            "repository)."
        )
    else:
        fix = "See dnf's output below."
    what = f"building openEuler {spec.release} {spec.profile} from {url}"
    return f"dnf failed (exit {done.code}) {what}: {cause}. {fix} Last output:\n{last}"


def _private_dir(spec: ImageSpec, tmp: Path) -> tuple[Path, Path, dict[str, str]]:
    """(dnf.conf, reposdir, environment) in ``tmp``: nothing dnf or rpm reads comes from the host's setup."""
    home, reposdir = tmp / "home", tmp / "repos"
    home.mkdir()
    reposdir.mkdir()
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")  # openEuler's place, not Debian's ~/.rpmdb
    (reposdir / f"{REPO_ID}.repo").write_text(repo_text(spec))
    conf = tmp / "dnf.conf"
    conf.write_text(dnf_conf(spec, reposdir))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    return conf, reposdir, env


def build_rootfs(
    spec: ImageSpec,
    packages: list[str],
    dest: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, float], list[str]]:
    """Install ``packages`` into ``dest`` (which must not exist) with dnf; return (seconds per phase, missing).

    ``missing`` are the packages the repository lacks.  On failure ``dest`` is removed.
    """
    absent = [prog for prog in ("dnf", "rpm") if shutil.which(prog) is None]
    if absent:
        raise ImageError(
            f"building an openEuler image needs {' and '.join(absent)} on this host, which "
            f"{'is' if len(absent) == 1 else 'are'} not installed; install with: {install_hint(absent)} "
            "(or run scripts/setup-host.sh)."
        )
    if os.geteuid() != 0:
        raise ImageError("building an openEuler image needs root (dnf --installroot); run leapfrog as root or sudo.")
    say = progress or (lambda _m: None)
    from harness import mounts

    dest.mkdir()
    start = time.monotonic()
    errors: list[str] = []
    no_match: list[str] = []

    def show(line: str) -> None:
        text = line.strip().removeprefix("- ")
        m = _NO_MATCH.search(text)
        if m:
            no_match.append(m.group(1))
        elif _ERROR.search(text) and not text.endswith(":") and text not in errors and len(errors) < _MAX_ERRORS:
            errors.append(text)
        if text.startswith(("Installing ", "Running transaction", "Complete!", "Error")) or m:
            say(f"  dnf: {text} ({time.monotonic() - start:.0f}s)")

    try:
        with tempfile.TemporaryDirectory(prefix="leapfrog-dnf-") as tmp:
            conf, reposdir, env = _private_dir(spec, Path(tmp))
            argv = dnf_argv(spec, conf, reposdir, dest, packages)
            say(f"dnf install of {len(set(packages))} packages from {repo_url(spec)}")
            done = buildrun.run_logged(argv, timeout=buildrun.deadline(DNF_TIMEOUT), env=env, on_line=show)
            if done.code != 0 or done.timed_out:
                raise ImageError(explain(done, errors, spec))
            installed = time.monotonic()
            query = subprocess.run(
                rpm_query_argv(dest, packages), capture_output=True, text=True, env=env, timeout=300, check=False
            )
        missing = sorted(set(_NO_PROVIDER.findall(query.stdout + query.stderr)) & set(packages))
        if query.returncode != 0 and not missing:
            raise ImageError(
                f"`rpm --root {dest} -q --whatprovides` failed (exit {query.returncode}) after dnf installed the "
                f"image: {query.stderr.strip()[-500:]}"
            )
        broken = sorted(set(missing) - set(no_match))
        if broken:
            raise ImageError(
                f"dnf did not install {', '.join(broken)} from {repo_url(spec)} although the repository has "
                f"{'it' if len(broken) == 1 else 'them'} (a dependency is missing or conflicts): "
                f"{'; '.join(errors[:5]) or 'no error line'}. Last output:\n" + "\n".join(done.tail)
            )
        _finish(dest)
    except BaseException:
        mounts.unmount_and_remove(dest)
        raise
    end = time.monotonic()
    if missing:
        say(f"the repository lacks {', '.join(missing)}: the cases that need them are skipped")
    return {"dnf install": round(installed - start, 1), "check": round(end - installed, 1)}, missing


def _finish(root: Path) -> None:
    """Drop dnf's cache; make the mount points a chroot target needs (never through a link a package made)."""
    shutil.rmtree(root / "var" / "cache" / "dnf", ignore_errors=True)
    for name in MOUNT_POINTS:
        path = root / name
        if not path.exists() and not path.is_symlink():
            path.mkdir(mode=0o1777 if name == "tmp" else 0o755)
            if name == "tmp":
                path.chmod(0o1777)


def image_packages(spec: ImageSpec, packages: list[str]) -> list[str]:
    """The full package list of an openEuler image: base + the spec's own + ``packages``."""
    return sorted(set(BASE_PACKAGES) | set(spec.packages) | set(packages))


def ensure_image(
    spec: ImageSpec,
    packages: list[str],
    *,
    progress: Callable[[str], None] | None = None,
) -> CachedImage:
    """A cached openEuler image holding ``packages`` (those the repository has), built with dnf if needed."""
    where = (spec.distro, spec.release, spec.arch, repo_url(spec))
    pkgs = image_packages(spec, packages)
    found = find_image(*where, pkgs)
    if found:
        return found

    def build(dest: Path) -> Built:
        phases, missing = build_rootfs(spec, pkgs, dest, progress=progress)
        return Built(phases=phases, missing=missing)

    how = f" with dnf ({len(pkgs)} packages, profile {spec.profile})"
    return build_image(*where, pkgs, build, how=how, progress=progress)


def missing_packages(spec: ImageSpec, packages: list[str]) -> list[str]:
    """Of ``packages``, those the cached image for them lacks, as its repository did (after :func:`ensure_image`)."""
    found = find_image(spec.distro, spec.release, spec.arch, repo_url(spec), image_packages(spec, packages))
    return sorted(set(found.meta.missing) & set(packages)) if found else []
