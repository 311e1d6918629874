"""The shape of the engine: imports go one way, down the layers, and no file of it grows past ~450 lines.

The import graph is read from the source (``ast``), every ``import`` counted,
also those inside functions and under ``TYPE_CHECKING``: an import deferred to
run time still ties the modules together.  An import names the module it
reaches (``from harness.report import charts`` reaches ``harness.report.charts``,
``from harness.report import render_all`` reaches ``harness.report``).

A new module must be placed in :data:`LAYERS`; docs/design.md shows the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "harness"
MAX_LINES = 450

#: Bottom first.  A module may import its own layer and the layers below, never one above.
#: An entry names a module or a package (then every module under it).
LAYERS: list[tuple[str, set[str]]] = [
    (
        "bottom: plain data, paths, TOML reading, what other layers share",
        {
            "harness",  # __init__: the version
            "harness.errors",
            "harness.model",
            "harness.model_deps",
            "harness.records",
            "harness.compare",
            "harness.kinds",
            "harness.paths",
            "harness.commands",
            "harness.tomlread",
            "harness.htmlenv",
            "harness.signals",
            "harness.sshkeys",
            "harness.mounts",
            "harness.hostreq",
        },
    ),
    ("config", {"harness.config"}),
    (
        "targets, images, probe: what runs where, and what it runs on",
        {
            "harness.targets",
            "harness.images",
            "harness.probe",
            "harness.probe_ship",
            "harness.qemu_user",
            "harness.qemu_enter",
            "harness.qemu_wrapper",
            "harness.userland",
            "harness.deps",
            "harness.plan",
            "harness.known_issues",
            "harness.doctor",
            "harness.project",
            "harness.project_wheel",
            "harness.project_sdist",
        },
    ),
    (
        "runner: a run of cells, and what a run needs",
        {
            "harness.runner",
            "harness.project_build",
            "harness.cell",
            "harness.lanes",
            "harness.guest",
            "harness.judge",
            "harness.probe_lines",
            "harness.readback",
            "harness.results",
            "harness.autotimeout",
            "harness.retime",
            "harness.triage",
            "harness.merge",
            "harness.repro",
            "harness.terminal",
            "harness.golden",
            "harness.loadgen",
            "harness.hostplugin",
        },
    ),
    ("report, history", {"harness.report", "harness.history", "harness.report_warm"}),
    ("cli, workflow", {"harness.cli", "harness.workflow"}),
]

#: Within a layer (or across), these prefixes never import those.
FORBIDDEN: list[tuple[str, str, str]] = [
    ("harness.images", "harness.targets", "images do not know targets (provisioning takes harness.commands.Runs)"),
    ("harness.report", "harness.images", "the report does not know images (paths come from harness.paths)"),
    ("harness.history", "harness.report", "the history has its own records (harness.records, harness.compare)"),
    ("harness.config", "harness.targets", "config reads harness.kinds and imports no backend"),
]

#: Other helpers' unfinished splits (issue 15), each named with whose it is; the lead empties this at the end.
#: Entries: a file (relative to the repository) that may still be long, or "importer -> imported" of an edge
#: allowed for now (upward, forbidden, or closing a cycle).
PENDING: set[str] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(HARNESS.rglob("*.py")):
        parts = list(path.relative_to(HARNESS.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _owner(name: str, modules: dict[str, Path]) -> str:
    """The module an imported dotted name lives in (``harness.a.b.C`` -> ``harness.a.b``)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {_owner(a.name, modules) for a in node.names if a.name.split(".")[0] == "harness"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    package = package.rsplit(".", 1)[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            if base.split(".")[0] != "harness":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else _owner(base, modules))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _entry(module: str, names: set[str]) -> str | None:
    """The longest entry of ``names`` that is ``module`` or a package holding it."""
    hits = [n for n in names if module == n or module.startswith(n + ".")]
    return max(hits, key=len) if hits else None


def layer_of(module: str) -> int:
    """Index in LAYERS; the most specific entry wins (``harness`` alone is only the package's __init__)."""
    best = max(
        ((len(e), i) for i, (_, names) in enumerate(LAYERS) if (e := _entry(module, names - {"harness"}))),
        default=None,
    )
    if best is not None:
        return best[1]
    if module == "harness":
        return 0
    raise KeyError(module)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if f"{v} -> {w}" in PENDING:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_reader_sees_imports_inside_functions_and_relative_ones(tmp_path: Path) -> None:
    modules = {"harness.a": tmp_path / "a.py", "harness.b": tmp_path / "b.py", "harness.pkg": tmp_path / "pkg.py"}
    src = tmp_path / "a.py"
    src.write_text("def f():\n    from harness.b import thing\n    from . import pkg\n    import os\n")
    assert _imports("harness.a", src, modules) == {"harness.b", "harness.pkg"}


def test_every_module_is_in_exactly_one_layer() -> None:
    unplaced = []
    for module in import_graph():
        try:
            layer_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"place these modules in LAYERS of {__file__}: {unplaced}"
    entries = [n for _, names in LAYERS for n in names]
    assert len(entries) == len(set(entries)), "a LAYERS entry is listed twice"


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, f"import cycles (break them by moving what both need a layer down): {found}"


def test_no_module_imports_a_layer_above_it() -> None:
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0].split(':')[0]}) -> {d} ({LAYERS[layer_of(d)][0].split(':')[0]})"
        for m, deps in sorted(import_graph().items())
        for d in sorted(deps)
        if layer_of(d) > layer_of(m) and f"{m} -> {d}" not in PENDING
    ]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_no_forbidden_import() -> None:
    bad = [
        f"{m} -> {d}: {why}"
        for m, deps in sorted(import_graph().items())
        for d in sorted(deps)
        for src, dst, why in FORBIDDEN
        if _entry(m, {src}) and _entry(d, {dst}) and f"{m} -> {d}" not in PENDING
    ]
    assert not bad, "\n".join(bad)


def test_the_layer_check_catches_an_upward_import_and_a_cycle() -> None:
    assert layer_of("harness.config") < layer_of("harness.targets.base") < layer_of("harness.report.html")
    assert cycles({"harness.a": {"harness.b"}, "harness.b": {"harness.a"}}) == [["harness.a", "harness.b"]]
    assert cycles({"harness.a": {"harness.b"}, "harness.b": set()}) == []


def long_files(root: Path) -> dict[str, int]:
    """Files under ``root`` of more than MAX_LINES lines, by path relative to its parent."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            out[str(path.relative_to(root.parent))] = lines
    return out


def test_no_file_is_longer_than_450_lines() -> None:
    long = {name: lines for name, lines in long_files(HARNESS).items() if name not in PENDING}
    assert not long, f"split these by job into modules of at most {MAX_LINES} lines: {long}"


def test_a_long_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "short.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "harness" / "long.py").write_text("x = 1\n" * (MAX_LINES + 1))
    assert long_files(tmp_path / "harness") == {"harness/long.py": MAX_LINES + 1}
