"""The one interface the runner uses to talk to any place suites run.

Each backend lives in its own module of this package and is registered by its
TOML ``kind`` in :mod:`harness.kinds`.  Every backend follows one contract
(asserted once, for all of them, by ``tests/contract_body.py``) and one
classification of what goes wrong:

- a user's mistake -- a target file, suite file or command line that asks for
  something that cannot be (a missing ``[image]`` table, a file named in a key
  that does not exist, a key whose value no backend accepts) -- is a
  :class:`~harness.errors.ConfigError`, raised before anything starts.  The
  runner never retries it: the same file fails the same way.
- the target failing -- could not boot, lost the connection, the daemon or
  container went away, a command could not be started, what it left behind
  breaks the copy-back rule -- is a :class:`~harness.errors.TargetError`.  The
  runner retries it on a fresh target (``retries``), since the next try may
  pass.
- an image that cannot be built, fetched or found is an
  :class:`~harness.errors.ImageError` (not retried either).

A backend raises only these, never a bare exception, so the runner can tell
*the target broke* from *the test failed* from *the user must fix something*.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import TargetError
from harness.kinds import BaseOptions
from harness.model import TargetFacts
from harness.probe import FACTS_FILE, VECTOR_FACTS_FILE
from harness.targets._common import GET_LIMIT

if TYPE_CHECKING:
    from harness.config import TargetConfig

#: Bound on captured stdout/stderr kept per command (bytes, each stream).
OUTPUT_LIMIT = 1 << 20


@dataclasses.dataclass(frozen=True)
class Completed:
    """The outcome of one command run in a target."""

    argv: list[str]
    exit_code: int | None  # None when killed by a signal or timed out
    signal: int | None  # number of the signal that ended the process, if any
    stdout: str  # decoded with errors="replace", bounded by OUTPUT_LIMIT
    stderr: str
    wall: float  # seconds
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Target(abc.ABC):
    """A place suites run.  Subclasses set ``kind`` and ``Options``.

    ``Options`` is a dataclass of the backend's own TOML keys; the config loader
    checks a target file against it (unknown keys and wrong types are errors).
    """

    kind: ClassVar[str]
    #: True when the target runs an image that leapfrog builds or fetches.
    needs_image: ClassVar[bool] = False
    #: Extra packages per distro the backend itself needs in the image.
    image_packages: ClassVar[dict[str, list[str]]] = {}
    #: How the target executes riscv64 code: native, qemu-user, qemu-system, board.
    emulation: ClassVar[str] = "native"
    #: True when the facts the probe reports from inside a suite's own pytest
    #: process, plus ``enrich_facts``, equal ``facts()``: the runner then saves
    #: the separate interpreter start ``facts()`` costs (a second under qemu-user).
    facts_from_probe: ClassVar[bool] = False

    #: The backend's own TOML keys: its dataclass in :data:`harness.kinds.KINDS`.
    Options: ClassVar[type[BaseOptions]] = BaseOptions

    def __init__(
        self,
        config: TargetConfig,
        *,
        packages: list[str] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """``packages``: what the chosen suites need in the image (distro names);
        ``progress``: called with one-line status messages during long work."""
        self.config = config
        self.name = config.name
        self.packages = list(packages or [])
        self.progress = progress or (lambda _msg: None)
        #: Python distributions whose versions ``facts()`` reports (set by the runner).
        self.key_packages: list[str] = []
        #: Where a backend keeps files worth publishing (console logs); set by the runner.
        self.artifacts_dir: Path | None = None
        #: Ports the run's suites serve on inside the target (suite.toml ``ports``):
        #: a backend that isolates the network (docker) opens exactly these.
        self.requested_ports: list[int] = []
        #: The image this target runs once started (set by ``start()``): a cached
        #: image's name, a Docker image reference; "" when it runs no image.
        #: Recorded in results.json so ``leapfrog repro`` starts the same one.
        self.image_id = ""

    @property
    def options(self) -> BaseOptions:
        opts: BaseOptions = self.config.options
        return opts

    @abc.abstractmethod
    def start(self) -> None:
        """Boot, create or attach.  Idempotent."""

    @abc.abstractmethod
    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        """Run ``argv`` inside the target; kill its whole process tree on timeout."""

    @abc.abstractmethod
    def put(self, local: Path, remote: str) -> None:
        """Copy a file or folder from the host to ``remote`` in the target."""

    @abc.abstractmethod
    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        """Copy a file or folder from the target to ``local`` on the host.

        What a target holds is untrusted, so every backend follows one rule
        (:mod:`harness.targets._common`): ``remote`` must be a regular file or
        a folder; a link, FIFO, socket or device there is a TargetError.
        Inside a folder, regular files and folders are copied and links,
        FIFOs, sockets and devices are skipped, never followed or read.  One
        call copies at most ``limit`` bytes (all files together),
        ``GET_MAX_ENTRIES`` files and folders and ``GET_MAX_DEPTH`` levels;
        past a cap it is a TargetError naming the path and the cap.  Never
        writes outside ``local``; absolute or ``..`` names are refused.
        """

    @abc.abstractmethod
    def forward(self, port: int) -> tuple[str, int]:
        """Return a (host, port) on the host that reaches ``port`` inside the target.

        ``port`` is one a server inside the target listens on at the address
        :meth:`listen_address` gives.
        """

    def listen_address(self) -> tuple[str, int]:
        """Where a server inside the target must listen for :meth:`forward` to reach it.

        (bind address, port; 0 = any free port, which the server picks and
        reports).  Targets that share the host's network (native, chroot) or
        tunnel to the target's loopback (ssh, qemu-vm) take 127.0.0.1 and any
        port; a backend that publishes only chosen ports overrides this.
        """
        return "127.0.0.1", 0

    def facts(self) -> TargetFacts:
        """Arch, ISA string, os-release, kernel, libc, python of the target.

        By default the probe's ``facts.py`` runs on the target's Python
        (:func:`probe_facts`), then
        :meth:`enrich_facts` adds what only the host knows.
        """
        return self.enrich_facts(probe_facts(self))

    @abc.abstractmethod
    def stop(self) -> None:
        """Release everything ``start`` took.  Always safe, also twice, on error and Ctrl-C."""

    def local_path(self, remote: str) -> Path | None:
        """A host path where ``remote`` can be read while commands run, if there is one.

        Lets the runner stream results as cases finish; backends without one
        (containers, VMs) deliver them when the pytest process ends.
        """
        return None

    def image_packages_for(self, distro: str) -> list[str]:
        """The packages of ``distro`` the image this target runs must hold: the backend's own and the suites'."""
        return sorted({*self.image_packages.get(distro, []), *self.packages})

    def prepare_image(self) -> str:
        """Make what the target runs ready without starting it, so the first run does not pay for it.

        ``leapfrog images build`` calls this after building the cached image
        (that part is the same for every backend).  Returns a reference to
        what was made beyond the cached image (a Docker image's reference),
        or "" when there is nothing more; ``start()`` does the same work itself.
        """
        return ""

    def make_temp_dir(self) -> str:
        """A fresh private folder inside the target (``mktemp -d``); backends may do it faster."""
        done = self.run(["mktemp", "-d", "/tmp/leapfrog.XXXXXXXX"], timeout=60)
        if not done.ok:
            raise TargetError(f"target {self.name}: mktemp failed: {done.stderr.strip()[:300]}")
        return done.stdout.strip()

    def remove_tree(self, path: str) -> None:
        """Remove a folder made by ``make_temp_dir``."""
        self.run(["rm", "-rf", path], timeout=120)

    def enrich_facts(self, facts: TargetFacts) -> TargetFacts:
        """Add what only the host knows (CPU model asked for, emulator version) to probed facts."""
        facts.emulation = self.emulation
        return facts

    # ------------------------------------------------------------ sharing with host-driven suites

    def handle(self) -> dict[str, Any]:
        """JSON-able facts another process needs to use this *started* target.

        Host-driven suites run pytest in a separate host process; its ``target``
        fixture calls :meth:`attach` with this.  Backends that can be shared
        override both.
        """
        raise TargetError(f'target kind "{self.kind}" cannot run host-driven suites yet.')

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> Target:
        """A view of a target another process started; its ``stop()`` releases nothing."""
        raise TargetError(f'target kind "{cls.kind}" cannot run host-driven suites yet.')

    def __enter__(self) -> Target:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probe_facts(target: Target, packages: list[str] | None = None, *, timeout: float = 120) -> TargetFacts:
    """Run ``facts.py`` (and the ``vector_facts.py`` it imports) with the target's Python and parse its JSON."""
    tmp = target.run(["mktemp", "-d"], timeout=60)
    if not tmp.ok:
        raise TargetError(f"target {target.name}: mktemp failed: {tmp.stderr.strip()[:500]}")
    remote = tmp.stdout.strip() + "/facts.py"
    target.put(FACTS_FILE, remote)
    target.put(VECTOR_FACTS_FILE, tmp.stdout.strip() + "/leapfrog_vector_facts.py")  # facts.py imports it
    names = target.key_packages if packages is None else packages
    done = target.run([target.config.python, remote, *names], timeout=timeout)
    target.run(["rm", "-rf", tmp.stdout.strip()], timeout=60)
    if not done.ok:
        raise TargetError(
            f'target {target.name}: could not run "{target.config.python}" to read its facts '
            f"(exit {done.exit_code}, signal {done.signal}): {done.stderr.strip()[-1000:]}"
        )
    try:
        data = json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError, RecursionError) as e:  # RecursionError: "[[[[..." deeper than the parser goes
        raise TargetError(f"target {target.name}: facts script printed no JSON: {done.stdout[:500]!r}") from e
    facts = TargetFacts.from_dict(data)
    facts.emulation = target.emulation
    return facts
