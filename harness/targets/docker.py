"""docker: a riscv64 userland in a Docker container, run through qemu-user (binfmt).

The image, first match wins:

- ``image_tarball``: a ``docker save`` archive (plain, ``.gz`` or ``.xz``, e.g.
  openEuler's official riscv64 container tarball), loaded once per file (a
  stamp under ``<cache>/docker/`` remembers it); ``image_ref`` picks the image
  when the archive holds several;
- ``image_ref``: an image by reference, used as it is when the engine has it,
  pulled otherwise (leapfrog never re-pulls a present image: ``docker pull``
  it yourself to update it);
- ``[image] source = "build"`` (the default): the Debian root filesystem
  leapfrog builds for chroot targets, turned into a Docker image once per image
  key and tagged ``leapfrog/<distro>-<release>-<arch>:<key>``; later runs reuse
  it (``prepare()`` does this without starting a container);
- otherwise ``[image]`` ``path`` (a ``docker save`` archive), ``url`` (the same,
  downloaded by ``leapfrog images fetch``), or ``ref``.

A built image reaches the engine as a ``docker load`` archive made on the fly
from the cached folder: one layer with numeric owners, devices, symlinks, hard
links and file capabilities, and the architecture from ``platform``.  (``docker
import`` would be simpler, but engines before 24 ignore its platform and label
the image amd64.)

Containers are not privileged, mount nothing from the host, have no network
(``network_mode = none``) unless ``network = true``, are labeled ``leapfrog=1``
with the run id, and run ``sleep infinity`` under Docker's init; every command
is a ``docker exec``.  They keep only the capabilities in ``KEPT_CAPS`` (plus
the file's ``cap_add``), cannot gain privileges (``no-new-privileges``), and
hold at most ``pids_limit`` processes and threads.  A command runs as the leader of its own session, marked
by an environment variable; on a timeout or Ctrl-C a second exec SIGKILLs every
process in that session or carrying the mark, and what a command leaves
running in the background is killed when it ends, as on the other backends.
Exit statuses 129-159 are reported as death by signal (status - 128), the way a
shell reports them.  A container that disappears mid-run (``docker rm -f``) is a
``TargetError``, never a failed command.  Containers that a killed leapfrog
left behind on this host are removed at the next start: each container is
labeled with this host's id (see :func:`host_id`), the leapfrog process id and
that process's start time, and only containers of this host whose process is
gone (or whose pid now belongs to another process) are removed, so hosts that
share one engine never remove each other's containers.

``forward(port)`` needs the port listed in a suite's ``ports`` (suite.toml) or
in the target's own ``ports`` (with ``network = true``): those are published at
creation on 127.0.0.1 with random host ports, on a bridge network.  Without
them it raises ``TargetError`` saying what to set.

A target file::

    kind = "docker"
    description = "Debian 13 trixie riscv64 in Docker"
    cpus = 2          # 0: no limit
    memory = "4g"     # "": no limit
    cpu = "rv64,v=true,vlen=256"   # becomes QEMU_CPU inside the container
    pids_limit = 4096 # processes and threads in the container; 0: no limit
    cap_add = []      # capabilities beyond KEPT_CAPS, e.g. ["NET_RAW"] for ping
    [image]
    distro = "debian"
    release = "trixie"
    arch = "riscv64"

``docker_host`` (else ``DOCKER_HOST``, else the local socket) may be
``ssh://user@host``: images are then streamed to that engine, and its host
needs binfmt for riscv64.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness.errors import TargetError
from harness.images.docker_archive import NAME_UNSAFE, SLEEPER
from harness.kinds import DockerOptions
from harness.model import TargetFacts
from harness.targets._common import GET_LIMIT
from harness.targets.base import Completed, Target, probe_facts
from harness.targets.docker_engine import Engine, owner_labels
from harness.targets.docker_exec import ContainerExec, remote_path
from harness.userland import command_env, emulated_facts, qemu_version

if TYPE_CHECKING:
    from harness.config import TargetConfig

#: Capabilities a container keeps; Docker's other defaults are dropped (NET_RAW,
#: MKNOD, AUDIT_WRITE, SETPCAP, SYS_CHROOT).  Root in the container still owns
#: its files and installs packages (dnf on openEuler: chown, file modes and file
#: capabilities, dropping to other users), kills what a command started as
#: another user, and a suite may serve on a port below 1024.
KEPT_CAPS = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETFCAP", "NET_BIND_SERVICE")


class DockerTarget(Target):
    kind: ClassVar[str] = "docker"
    needs_image: ClassVar[bool] = True
    emulation: ClassVar[str] = "qemu-user"
    facts_from_probe: ClassVar[bool] = True

    Options = DockerOptions

    options: DockerOptions

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.engine = Engine(self.name, self.options.docker_host)
        self.container_id: str | None = None
        self.image_ref = ""
        self.run_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{secrets.token_hex(3)}"
        self.attached = False  # a view of another process's container: stop() leaves it alone
        #: Seconds the last start() spent on: image, create, start, first command.
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ engine

    @property
    def client(self) -> Any:
        """The SDK client once connected (None before and after)."""
        return self.engine.client

    @client.setter
    def client(self, value: Any) -> None:
        self.engine.client = value

    @property
    def api(self) -> Any:
        return self.engine.api

    def _exec(self) -> ContainerExec:
        return ContainerExec(self.engine, self._require_container(), self._check_alive)

    # ------------------------------------------------------------------ images

    def prepare(self) -> str:
        """Make the image ready on the engine without starting a container; returns its reference.

        ``start()`` does this itself; ``leapfrog images build`` can call it so
        the first run does not pay for the import.  How the image is found:
        :mod:`harness.images.docker_image`.
        """
        from harness.images import docker_image

        self.engine.reopen()
        self.engine.connect()
        spec = self.config.image
        packages = sorted(set(self.packages) | set(self.image_packages.get(spec.distro, []))) if spec else []
        with self.engine.errors("prepare the image"):
            self.image_ref = docker_image.resolve(
                self.engine, self.config, packages=packages, progress=self.progress, timings=self.timings
            )
        self.image_id = self.image_ref
        return self.image_ref

    def prepare_image(self) -> str:
        """The Docker image made ready on the engine (see :meth:`prepare`); its reference."""
        return self.prepare()

    # ------------------------------------------------------------------ lifecycle

    def env(self) -> dict[str, str]:
        return command_env(self.options.cpu, self.config.env)

    def start(self) -> None:
        if self.container_id is not None:
            return
        self.engine.reopen()
        try:
            self.engine.connect()
            self.engine.remove_stale()
            t0 = time.monotonic()
            self.prepare()
            self.timings["image"] = round(time.monotonic() - t0, 2)
            self._create()
            t1 = time.monotonic()
            first = self.run(["true"], timeout=120)
            self.timings["first_command"] = round(time.monotonic() - t1, 2)
            if not first.ok:
                raise TargetError(
                    f"target {self.name}: the container cannot run commands (exit {first.exit_code}): "
                    f"{first.stderr.strip()[-500:]}"
                )
        except BaseException:
            with contextlib.suppress(TargetError):  # the first error is the one to report
                self.stop()
            raise

    @property
    def published_ports(self) -> list[int]:
        """The file's ``ports`` and those the run's suites asked for (suite.toml ``ports``)."""
        return sorted(set(self.options.ports) | set(self.requested_ports))

    def listen_address(self) -> tuple[str, int]:
        """Every interface of the container's own network namespace, on the first published port.

        Only published ports reach the host (on its 127.0.0.1); with none, a
        server is reachable from nowhere, and 127.0.0.1 with any port says so.
        """
        ports = self.published_ports
        if ports:
            return "0.0.0.0", ports[0]  # noqa: S104 -- the container's own namespace, published on host loopback
        return "127.0.0.1", 0

    def _create(self) -> None:
        o = self.options
        api = self.api
        ports = self.published_ports
        # A suite that serves on a port gets a bridge network for it: published
        # on the host's 127.0.0.1 only.  No suite asking, no network at all.
        network = o.network or bool(ports)
        safe = NAME_UNSAFE.sub("-", self.name.lower()).strip("-.") or "target"
        host_config = api.create_host_config(
            network_mode="bridge" if network else "none",
            nano_cpus=int(o.cpus * 1e9) if o.cpus else None,
            mem_limit=o.memory or None,
            port_bindings=dict.fromkeys(ports, ("127.0.0.1", None)) or None,
            privileged=False,
            init=True,
            pids_limit=o.pids_limit or None,
            cap_drop=["ALL"],
            cap_add=sorted({*KEPT_CAPS, *(c.upper().removeprefix("CAP_") for c in o.cap_add)}),
            security_opt=["no-new-privileges"],
        )
        t0 = time.monotonic()
        with self.engine.errors(f'create a container from "{self.image_ref}"'):
            created = api.create_container(
                self.image_ref,
                command=list(SLEEPER),
                name=f"leapfrog-{safe}-{self.run_id}",
                environment=self.env(),
                labels={
                    "leapfrog": "1",
                    "leapfrog.run": self.run_id,
                    "leapfrog.target": self.name,
                    "leapfrog.hostname": socket.gethostname(),  # for people; the sweep uses leapfrog.host
                    **owner_labels(),
                },
                ports=ports or None,
                host_config=host_config,
                platform=o.platform,
                working_dir="/",
            )
            self.container_id = str(created["Id"])
            self.timings["create"] = round(time.monotonic() - t0, 2)
            api.start(self.container_id)
            self.timings["start"] = round(time.monotonic() - t0 - self.timings["create"], 2)
        self._check_alive("start")

    def _check_alive(self, during: str) -> None:
        """Raise a TargetError when the container is gone or stopped."""
        import docker.errors

        cid = self._require_container()
        try:
            state = self.api.inspect_container(cid)["State"]
        except docker.errors.NotFound as e:
            raise TargetError(
                f"target {self.name}: container {cid[:12]} disappeared during {during}; something outside "
                "leapfrog removed it (docker rm -f?). Run again."
            ) from e
        except Exception as e:  # the engine itself went away
            raise self.engine.lost(f"during {during}", e) from e
        if not state.get("Running") or state.get("Status") in ("removing", "exited", "dead"):
            hint = ""
            with contextlib.suppress(Exception):
                logs = self.api.logs(cid, tail=20).decode("utf-8", "replace").strip()
                hint = f" Its last output: {logs[-500:]}" if logs else ""
                if "exec format error" in logs:
                    hint += (
                        " The engine cannot run riscv64 programs: register qemu-user with binfmt on the engine's host"
                        " (apt-get install qemu-user-static binfmt-support)."
                    )
            raise TargetError(
                f"target {self.name}: container {cid[:12]} stopped during {during} "
                f"(exit code {state.get('ExitCode')}, OOM killed: {state.get('OOMKilled')}).{hint}"
            )

    def stop(self) -> None:
        cid, self.container_id = self.container_id, None
        client = self.engine.take()  # nothing reconnects until start()
        if client is None:
            return
        try:
            if cid is not None and not self.attached:  # another process owns an attached container
                import docker.errors

                try:
                    client.api.remove_container(cid, force=True, v=True)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as e:
                    if e.status_code != 409 or "in progress" not in str(e):  # someone else is removing it
                        raise TargetError(
                            f"target {self.name}: could not remove container {cid[:12]} ({e}); "
                            f"remove it with: docker rm -f {cid[:12]}"
                        ) from e
                except Exception as e:  # never leave silently: say which container is left
                    raise TargetError(
                        f"target {self.name}: could not remove container {cid[:12]} ({e}); "
                        f"remove it with: docker rm -f {cid[:12]}"
                    ) from e
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def handle(self) -> dict[str, Any]:
        return {
            "container": self._require_container(),
            "docker_host": self.options.docker_host,
            "ports": self.published_ports,
        }

    @classmethod
    def attach(cls, config: TargetConfig, handle: dict[str, Any]) -> DockerTarget:
        target = cls(config)
        target.container_id = str(handle.get("container", ""))
        target.requested_ports = [int(p) for p in handle.get("ports", [])]
        target.attached = True
        if not target.container_id:
            raise TargetError(f"target {config.name}: no container to attach to.")
        target._check_alive("attach")
        return target

    # ------------------------------------------------------------------ commands

    def _require_container(self) -> str:
        if self.container_id is None:
            raise TargetError(f"target {self.name}: not started.")
        return self.container_id

    def run(
        self,
        argv: list[str],
        *,
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> Completed:
        if not argv:
            raise TargetError(f"target {self.name}: run() needs a command; argv is empty.")
        return self._exec().run(argv, timeout=timeout, env=env, cwd=cwd)

    def put(self, local: Path, remote: str) -> None:
        self._exec().put(local, remote_path(self.name, remote))

    def get(self, remote: str, local: Path, *, limit: int = GET_LIMIT) -> None:
        self._exec().get(remote_path(self.name, remote), local, limit=limit)

    def forward(self, port: int) -> tuple[str, int]:
        if port not in self.published_ports:
            raise TargetError(
                f"target {self.name}: port {port} inside the container is not published. List it in the "
                f'suite\'s "ports" (suite.toml), or set "network = true" and add it to "ports" in {self.config.file}.'
            )
        cid = self._require_container()
        with self.engine.errors(f"read the published ports of container {cid[:12]}"):
            ports = self.api.inspect_container(cid)["NetworkSettings"]["Ports"] or {}
        for binding in ports.get(f"{port}/tcp") or []:
            if binding.get("HostPort"):
                return (binding.get("HostIp") or "127.0.0.1", int(binding["HostPort"]))
        raise TargetError(f"target {self.name}: the engine published no host port for {port}/tcp.")

    def facts(self) -> TargetFacts:
        return self.enrich_facts(probe_facts(self))

    def enrich_facts(self, facts: TargetFacts) -> TargetFacts:
        emulated_facts(facts, self.options.cpu)
        facts.extra["docker_image"] = self.image_ref
        with contextlib.suppress(Exception):
            facts.extra["docker_engine"] = str(self.api.version().get("Version", ""))
        qemu = shutil.which(f"qemu-{self.config.arch}-static") if self.engine.is_local else None
        if qemu:  # binfmt runs the host's qemu-user inside the container
            line = qemu_version(qemu)[0]
            if line:
                facts.extra["qemu"] = line
        return facts
