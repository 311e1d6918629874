"""results.json on disk: written after every cell while a run goes on, and read back.

``results.json`` is written first; JUnit XML and HTML are rendered from it
(:mod:`harness.report`).  Each case is also appended to ``cases.jsonl`` the
moment it is known, so a run killed with -9 keeps what finished.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from harness.errors import ConfigError
from harness.model import CaseResult, CellResult, Run, TargetInfo


class ResultsWriter:
    """Keeps ``results.json`` on disk current after every cell (atomic replace)."""

    def __init__(self, run: Run, out: Path) -> None:
        self.run = run
        self.out = out
        self.lock = threading.Lock()
        out.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        with self.lock:
            tmp = self.out / "results.json.tmp"
            text = json.dumps(self.run.to_dict(), indent=1, ensure_ascii=False)
            tmp.write_bytes(text.encode("utf-8", "replace"))
            tmp.replace(self.out / "results.json")

    def append_case(self, target: str, suite: str, case: CaseResult) -> None:
        """Stream each case to ``cases.jsonl`` the moment it is known (survives kill -9)."""
        line = json.dumps({"target": target, "suite": suite, **case.to_dict()}, ensure_ascii=False)
        with self.lock, (self.out / "cases.jsonl").open("ab") as f:
            f.write(line.encode("utf-8", "replace") + b"\n")

    def add_cell(self, cell: CellResult) -> None:
        with self.lock:
            self.run.cells = [c for c in self.run.cells if (c.target, c.suite) != (cell.target, cell.suite)]
            self.run.cells.append(cell)
        self.save()

    def set_target(self, info: TargetInfo) -> None:
        with self.lock:
            self.run.targets = [t for t in self.run.targets if t.name != info.name] + [info]
        self.save()


def load_run(folder: Path) -> Run:
    """The run in ``folder/results.json`` (or the file ``folder``); a ConfigError naming the file when it is not one."""
    path = folder / "results.json" if folder.is_dir() else folder
    try:
        return Run.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as e:
        raise ConfigError(f"{path}: no results.json there; pass a report folder written by `leapfrog run`.") from e
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not a leapfrog results.json ({e}).") from e
