"""Merge the result folders of shards into one run, as if it had run unsharded."""

from __future__ import annotations

from pathlib import Path

from harness.errors import ConfigError
from harness.model import Run, Verdict
from harness.model_deps import ProjectDeps
from harness.results import load_run


def merge_runs(runs: list[Run]) -> Run:
    """Union of the shards' cells; a cell one shard ran beats a shard's not-run placeholder.

    Two shards that both ran the same cell is a mistake (overlapping shards) and
    an error, not a silent pick.
    """
    if not runs:
        raise ConfigError("nothing to merge: name at least one report folder.")
    merged = Run(
        run_id="merged-" + min(r.run_id for r in runs),
        started=min(r.started for r in runs),
        finished=max(r.finished or r.started for r in runs),
        leapfrog_version=runs[0].leapfrog_version,
        host=", ".join(sorted({r.host for r in runs})),
        argv=["leapfrog", "merge"],
        baseline=next((r.baseline for r in runs if r.baseline), ""),
    )
    for r in runs:
        for t in r.targets:
            have = merged.target(t.name)
            if have is None:
                merged.targets.append(t)
            elif have.facts is None and t.facts is not None:
                merged.targets[merged.targets.index(have)] = t
        for c in r.cells:
            have_cell = merged.cell(c.target, c.suite)
            if have_cell is None:
                merged.cells.append(c)
            elif have_cell.verdict is Verdict.NOT_RUN:
                merged.cells[merged.cells.index(have_cell)] = c
            elif c.verdict is not Verdict.NOT_RUN:
                raise ConfigError(
                    f"cell {c.target} / {c.suite} was run by two of the merged folders; "
                    "shards must not overlap (use --shard K/N with the same N for each)."
                )
        for d in r.projects:  # a project's dependency table: every target column any shard has, once
            have_deps = next((m for m in merged.projects if m.suite == d.suite), None)
            if have_deps is None:
                merged.projects.append(ProjectDeps(d.suite, d.version, d.source, list(d.targets)))
            else:
                known = {col.get("target") for col in have_deps.targets}
                have_deps.targets += [col for col in d.targets if col.get("target") not in known]
    merged.cells.sort(key=lambda c: (c.target, c.suite))
    merged.targets.sort(key=lambda t: t.name)
    return merged


def merge_folders(folders: list[Path]) -> Run:
    return merge_runs([load_run(f) for f in folders])
