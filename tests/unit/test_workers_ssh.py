"""``--workers 2`` on the ssh backend, through a real SSH protocol: a paramiko server on 127.0.0.1.

The server (tests/unit/test_contract.py's WholeSsh) runs each command with the
host's /bin/sh and serves the host's files over SFTP, so both workers' pytest
processes, their results files and the crash resume go through one SSH
connection, as they do to a board (and to the qemu-vm target, which is
SSH-backed).  The assertions are tests/workers_body.py's, which the docker
target passes in tests/integration/test_workers.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import workers_body
from tests.unit.test_contract import WholeSsh, _ssh


@pytest.fixture(scope="module")
def server() -> Iterator[WholeSsh]:
    s = WholeSsh()
    yield s
    s.close()


def test_two_workers_over_ssh_give_the_cases_of_one_and_isolate_a_crash(
    server: WholeSsh,
    tmp_path: Path,
    write_suite,  # type: ignore[no-untyped-def]
) -> None:
    cfg = _ssh(server, tmp_path).config
    suite_dir = write_suite(workers_body.NAME, workers_body.SUITE, toml=workers_body.TOML)
    seconds = workers_body.one_and_two_on(cfg, suite_dir, tmp_path)
    print(f"ssh loopback: 1 worker {seconds[1]:.1f} s, 2 workers {seconds[2]:.1f} s")
