"""docs/ci.md and the two CI files it shows: they parse, hang together, and use real commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from harness.cli import main

DOCS = Path(__file__).resolve().parents[2] / "docs"
GITHUB = DOCS / "ci" / "github-actions.yml"
GITLAB = DOCS / "ci" / "gitlab-ci.yml"


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def shell_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined."""
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def leapfrog_commands(scripts: list[str]) -> list[list[str]]:
    """argv (after ``leapfrog``) of every leapfrog command in the scripts."""
    out = []
    for script in scripts:
        for line in shell_lines(script):
            for m in re.finditer(r"(?<![\w/.$-])leapfrog\s+([^|;&]*)", line):
                out.append(shlex.split(m.group(1)))
    return out


def github_scripts(wf: dict[Any, Any]) -> list[str]:
    return [step["run"] for job in wf["jobs"].values() for step in job.get("steps", []) if "run" in step]


def gitlab_scripts(ci: dict[Any, Any]) -> list[str]:
    out = []
    for job in ci.values():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                out.extend(str(line) for line in job.get(key, []))
    return out


def check_command(argv: list[str]) -> None:
    """The subcommand exists and takes every option used."""
    words: list[str] = []
    group: click.Command = main
    for token in argv:
        if isinstance(group, click.Group) and token in group.commands:
            words.append(token)
            group = group.commands[token]
        else:
            break
    assert words, f"`leapfrog {' '.join(argv)}` names no leapfrog command"
    assert not isinstance(group, click.Group), f"`leapfrog {' '.join(words)}` needs a subcommand"
    result = CliRunner().invoke(main, [*words, "--help"])
    assert result.exit_code == 0, result.output
    params = {opt for p in group.params for opt in p.opts}
    for token in argv[len(words) :]:
        if token.startswith("-"):
            assert token.split("=")[0] in params, f"`leapfrog {' '.join(words)}` has no option {token}"
            assert token.split("=")[0] in result.output


# --------------------------------------------------------------------------- GitHub Actions


def test_github_workflow_structure() -> None:
    wf = load(GITHUB)
    assert set(wf[True]) >= {"push", "pull_request"}  # YAML 1.1 reads the key `on` as True
    jobs = wf["jobs"]
    assert list(jobs) == ["images", "run", "merge", "pages"]
    assert jobs["run"]["needs"] == "images"
    assert jobs["merge"]["needs"] == "run"
    assert jobs["pages"]["needs"] == "merge"
    # Shards: a matrix 1..N, each uploads shard-K; merge runs even when a shard failed.
    shards = jobs["run"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1))
    assert len(shards) >= 2
    assert jobs["run"]["strategy"]["fail-fast"] is False
    assert "!cancelled()" in jobs["merge"]["if"]
    run_steps = "\n".join(github_scripts({"jobs": {"run": jobs["run"]}}))
    assert "--shard ${{ matrix.shard }}/${{ strategy.job-total }}" in run_steps
    assert "--out shard-${{ matrix.shard }}" in run_steps
    uploads = [s for s in jobs["run"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert [u["with"]["name"] for u in uploads] == ["shard-${{ matrix.shard }}"]
    assert uploads[0]["with"]["path"] == "shard-${{ matrix.shard }}"
    merge_steps = jobs["merge"]["steps"]
    download = next(s for s in merge_steps if s.get("uses", "").startswith("actions/download-artifact@"))
    assert download["with"]["pattern"] == "shard-*"
    assert "leapfrog merge shard-* --out merged" in "\n".join(github_scripts({"jobs": {"merge": jobs["merge"]}}))
    junit = next(s for s in merge_steps if s.get("uses", "").startswith("mikepenz/action-junit-report@"))
    assert junit["with"]["report_paths"] == "merged/junit-*.xml"
    assert jobs["merge"]["permissions"]["checks"] == "write"
    report = [s for s in merge_steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert report[0]["with"]["path"] == "merged"
    pages_upload = next(s for s in merge_steps if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert pages_upload["with"]["path"] == "merged"
    assert jobs["pages"]["permissions"] == {"pages": "write", "id-token": "write"}
    assert jobs["pages"]["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in jobs["pages"]["steps"])
    # The image cache: one job builds and saves, the shards restore with the same key.
    save = next(s for s in jobs["images"]["steps"] if s.get("uses", "").startswith("actions/cache@"))
    restore = next(s for s in jobs["run"]["steps"] if s.get("uses", "").startswith("actions/cache/restore@"))
    assert save["with"] == restore["with"]
    # Every action is pinned to a major version.
    for job in jobs.values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@v\d+", step["uses"]), step["uses"]


# --------------------------------------------------------------------------- GitLab CI


def test_gitlab_ci_structure() -> None:
    ci = load(GITLAB)
    stages = ci["stages"]
    assert stages == ["test", "report", "deploy"]
    jobs = {k: v for k, v in ci.items() if isinstance(v, dict) and not k.startswith(".") and k != "variables"}
    assert set(jobs) == {"leapfrog", "report", "pages"}
    for name, job in jobs.items():
        assert job["stage"] in stages, name
        if "extends" in job:
            assert job["extends"] in ci, name
        for need in job.get("needs", []):
            needed = jobs[need["job"]]
            assert stages.index(needed["stage"]) < stages.index(job["stage"]), (name, need)
    shard = jobs["leapfrog"]
    assert isinstance(shard["parallel"], int)
    assert shard["parallel"] >= 2
    assert '--shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in "\n".join(shard["script"])
    assert '--out "shard-$CI_NODE_INDEX"' in "\n".join(shard["script"])
    assert shard["artifacts"]["when"] == "always"
    assert shard["artifacts"]["paths"] == ["shard-*/"]
    report = jobs["report"]
    assert report["needs"] == [{"job": "leapfrog", "artifacts": True}]
    assert report["when"] == "always"
    assert "leapfrog merge shard-* --out merged" in report["script"]
    assert report["artifacts"]["reports"]["junit"] == "merged/junit-*.xml"
    assert report["artifacts"]["paths"] == ["merged/"]
    pages = jobs["pages"]
    assert pages["needs"] == [{"job": "report", "artifacts": True}]
    assert pages["artifacts"]["paths"] == ["public"]
    assert any("merged public" in line for line in pages["script"])
    assert "when" not in pages  # job-level `when` cannot be combined with `rules`
    assert pages["rules"][0]["if"] == "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"


# --------------------------------------------------------------------------- both


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_every_leapfrog_command_used_exists(path: Path) -> None:
    data = load(path)
    scripts = github_scripts(data) if path == GITHUB else gitlab_scripts(data)
    commands = leapfrog_commands(scripts)
    used = {c[0] for c in commands}
    assert {"run", "merge", "doctor"} <= used
    for argv in commands:
        check_command(argv)


def test_ci_page_shows_exactly_the_two_files() -> None:
    doc = (DOCS / "ci.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.DOTALL)
    assert blocks == [GITHUB.read_text(encoding="utf-8"), GITLAB.read_text(encoding="utf-8")]
    assert "ci/github-actions.yml" in doc
    assert "ci/gitlab-ci.yml" in doc


def test_command_check_catches_mistakes() -> None:
    with pytest.raises(AssertionError, match="no leapfrog command"):
        check_command(["frobnicate", "--out", "x"])
    with pytest.raises(AssertionError, match="has no option --frob"):
        check_command(["run", "--frob", "1"])
    with pytest.raises(AssertionError, match="needs a subcommand"):
        check_command(["images"])
    assert leapfrog_commands(["sudo env X=1 leapfrog run \\\n  --shard 1/2 --out shard-1 || true"]) == [
        ["run", "--shard", "1/2", "--out", "shard-1"]
    ]
