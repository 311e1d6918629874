"""Commands about the host, targets and images: ``list``, ``doctor``, ``deps``, ``golden`` and ``images``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from harness.cli import show
from harness.cli._common import Ctx, console, out, split
from harness.workflow import EXIT_ERROR


@click.command("list")
@click.argument("what", type=click.Choice(["targets", "suites"]))
@click.pass_obj
def list_cmd(obj: Ctx, what: str) -> None:
    """List the targets or suites leapfrog knows."""
    p = obj.project
    if what == "targets":
        for t in p.targets.values():
            out.print(f"{t.name:34} {t.kind:8} {t.arch or '-':8} {t.description}")
    else:
        for s in p.suites.values():
            out.print(f"{s.name:16} {s.kind:12} {s.description}")


@click.command()
@click.option("--target", "targets", multiple=True, help="Check only what these targets need.")
@click.pass_obj
def doctor(obj: Ctx, targets: tuple[str, ...]) -> None:
    """Check the host; print the fix for every gap.  Exit 2 when chosen targets cannot run."""
    from harness.doctor import blocking, install_all, run_checks

    checks = run_checks()
    names = split(targets)
    kinds = {t.kind for t in obj.project.pick_targets(names)} if names else {"chroot"}
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[red]missing[/]"
        out.print(f"{mark:22} {c.name:22} {c.detail}", markup=True, highlight=False)
        if not c.ok and c.fix:
            out.print(f"{'':13}fix: {c.fix}", markup=False, highlight=False)
    gaps = blocking(checks, kinds)
    if gaps:
        out.print(f"\n{len(gaps)} problem(s) stop {', '.join(sorted(kinds))} targets from running.")
        if install_all(gaps):
            out.print(
                f"Install what is missing with: {install_all(gaps)}  (or run scripts/setup-host.sh)",
                markup=False,
                highlight=False,
            )
        sys.exit(EXIT_ERROR)
    out.print(f"\nready for {', '.join(sorted(kinds))} targets.")


@click.command("deps")
@click.argument("targets", nargs=-1, required=True)
@click.option(
    "-r",
    "--requirements",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A requirements.txt to resolve.",
)
@click.option(
    "--project",
    "project_path",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A project folder: pyproject.toml's [project].dependencies.",
)
@click.option("--extra", "extras", multiple=True, help="Also an optional-dependencies extra of --project (repeat).")
@click.option("--group", "groups", multiple=True, help="Also a PEP 735 dependency group of --project (repeat).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Write the answer as JSON.")
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path), help="Write it as an HTML page.")
@click.pass_obj
def deps_cmd(
    obj: Ctx,
    targets: tuple[str, ...],
    requirements: Path | None,
    project_path: Path | None,
    extras: tuple[str, ...],
    groups: tuple[str, ...],
    json_out: Path | None,
    html_out: Path | None,
) -> None:
    """Say where each dependency comes from on each TARGET: distribution package, wheel, sdist, or nothing."""
    import json

    from harness import deps

    source, reqs = deps.requirements_of(requirements, project_path, extras, groups)
    picked = obj.project.pick_targets(split(targets))
    report = deps.build_report(source, reqs, picked)
    out.print(deps.rich_table(report))
    for t in report.targets:
        if t.index_error:
            show.warn(f"{t.platform.target}: {t.index_error}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if html_out:
        html_out.write_text(deps.render_html(report), encoding="utf-8")


@click.command()
@click.argument("suites", nargs=-1, required=True)
@click.option(
    "--target",
    "-t",
    "target_name",
    default="debian-trixie-amd64",
    show_default=True,
    help="Where make_golden.py runs (the same package versions as the riscv64 image).",
)
@click.pass_obj
def golden(obj: Ctx, suites: tuple[str, ...], target_name: str) -> None:
    """Regenerate the golden outputs of SUITES by running their make_golden.py."""
    from harness.golden import regenerate

    p = obj.project
    (target,) = p.pick_targets([target_name])
    for suite in p.pick_suites(split(suites)):
        changed = regenerate(suite, target, progress=lambda m: console.print(f"  {m}", markup=False))
        out.print(f"{suite.name}: {len(changed)} file(s) changed" + "".join(f"\n  {c}" for c in changed))


@click.group()
def images() -> None:
    """Build, list and remove cached images."""


@images.command("build")
@click.option("--target", "-t", "targets", multiple=True, help="Target (repeat or comma list) [all that build images].")
@click.option("--suite", "-s", "suites", multiple=True, help="Suites whose packages go in [all].")
@click.pass_obj
def images_build(obj: Ctx, targets: tuple[str, ...], suites: tuple[str, ...]) -> None:
    """Build (or find in the cache) the image each target needs for the suites."""
    from harness import workflow as wf

    for line in wf.build_images(obj.project, split(targets), split(suites), progress=lambda m: show.note(f"  {m}")):
        out.print(line)


@images.command("fetch")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def images_fetch(obj: Ctx, names: tuple[str, ...]) -> None:
    """Download the images of targets whose [image] has a url (openEuler), verified by SHA-256."""
    from harness import workflow as wf

    last = [0.0]

    def progress(done: int, total: int | None) -> None:  # at most one line every 2 s, and the last
        now = time.monotonic()
        if now - last[0] > 2 or (total and done == total):
            last[0] = now
            pct = f" ({100 * done / total:.0f}%)" if total else ""
            console.print(f"  {done / 1e6:.1f} MB{pct}", markup=False)

    for line in wf.fetch_images(obj.project, split(names), progress=progress):
        out.print(line)


@images.command("list")
def images_list() -> None:
    """List cached images."""
    from harness.images.cache import list_images
    from harness.paths import images_dir

    imgs = list_images()
    if not imgs:
        out.print(f"no images in {images_dir()}")
    for img in imgs:
        m = img.meta
        out.print(f"{m.name:44} {len(m.packages):3} packages  built {m.built} in {m.build_seconds:.0f}s  {img.path}")


@images.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Remove every cached image.")
def images_rm(names: tuple[str, ...], all_: bool) -> None:
    """Remove cached images by name (as `images list` shows) or key."""
    from harness import workflow as wf
    from harness.images.cache import remove_image

    if not names and not all_:
        raise click.UsageError("name an image (see `leapfrog images list`) or pass --all.")
    chosen = wf.pick_images(names, every=all_)
    for img in chosen:
        remove_image(img)
        out.print(f"removed {img.meta.name}")
    if chosen:
        out.print("Docker images made from them (leapfrog/<name>:<key>) stay in the engine: docker image prune")
