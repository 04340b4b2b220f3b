"""The layout guard: packaging, `cryodaq.` imports, one-way arrows, no circles, small files.

Everything is read from the source with `ast` (nothing of cryodaq is imported), so a broken
module cannot hide a layout problem. The rules are those of docs/architecture.md:

- `drivers` and `analysis` import nothing of cryodaq; `sim_instruments` imports only
  `cryodaq.analysis`; `acquisition` may import all three.
- Inside `acquisition`, rooms import only their own room or rooms below:
  cli > live > campaign > conformance > cluster > pipelines > stream > store > base (the modules
  directly in acquisition/); base modules import no room.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "cryodaq"
#: Folders at the repository's top level that map into `cryodaq.<folder>`.
TOP_PACKAGES = ("drivers", "sim_instruments", "acquisition", "analysis")
#: Other folders whose Python files must import cryodaq as `cryodaq.` too.
OTHER_SOURCES = ("tests", "benchmarks")
#: The rooms of acquisition/, highest first; "base" is the modules directly in acquisition/.
ROOMS = (
    "cli", "live", "campaign", "conformance", "cluster", "pipelines", "stream", "store", "base"
)
#: Modules directly in acquisition/ that are entry points, not base: they may import any room.
ENTRY_POINTS = {"cryodaq.acquisition.__main__"}
#: Which top-level packages each top-level package may import (its own is always allowed).
ALLOWED_PACKAGES = {
    "drivers": set(),
    "analysis": set(),
    "sim_instruments": {"analysis"},
    "acquisition": {"drivers", "sim_instruments", "analysis"},
}
#: Files over this many lines are to be split by concern.
MAX_LINES = 500
#: Folders held to MAX_LINES (sim_instruments/ is not yet: its models are being rewritten).
SIZE_CHECKED = ("acquisition", "drivers", "analysis")


@dataclass(frozen=True)
class Import:
    """One import statement's target, as a dotted module name, and where it stands."""

    module: str
    line: int
    type_checking: bool


def _python_files(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _module_name(path: Path) -> str:
    """`acquisition/store/reader.py` -> `cryodaq.acquisition.store.reader`."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([NAMESPACE, *parts])


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@cache
def _modules() -> dict[str, Path]:
    """Every module of cryodaq: dotted name -> file."""
    return {_module_name(p): p for top in TOP_PACKAGES for p in _python_files(top)}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                inside.update(id(n) for n in ast.walk(stmt))
    return inside


def _package_of(path: Path) -> str:
    """The dotted package a file's relative imports start from."""
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _resolve(name: str) -> str:
    """A cryodaq dotted name as a module: itself if it is one, else the longest module prefix
    (`cryodaq.x.y.Thing` -> `cryodaq.x.y`)."""
    modules = _modules()
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def _imports(path: Path) -> Iterator[Import]:
    """Every import in a file, also those inside functions and `if` blocks (ast.walk).

    `from pkg import name` counts as an import of `pkg.name` when that is a module of
    cryodaq (x/name.py or x/name/), else of `pkg`. Relative imports are made absolute.
    """
    tree = _tree(path)
    guarded = _type_checking_nodes(tree)
    for node in ast.walk(tree):
        tc = id(node) in guarded
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, node.lineno, tc)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(path).split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                yield Import(sub if sub in _modules() else module, node.lineno, tc)


def _cryodaq_imports(path: Path, with_type_checking: bool = True) -> Iterator[Import]:
    for imp in _imports(path):
        if imp.type_checking and not with_type_checking:
            continue
        if imp.module == NAMESPACE or imp.module.startswith(f"{NAMESPACE}."):
            yield Import(_resolve(imp.module), imp.line, imp.type_checking)


def _room(module: str) -> str | None:
    """The room of an acquisition module (`cli`, ..., `base`), or None outside acquisition."""
    parts = module.split(".")
    if parts[:2] != [NAMESPACE, "acquisition"]:
        return None
    if len(parts) == 2:  # the package itself, acquisition/__init__.py
        return "base"
    path = _modules().get(".".join(parts[:3]))
    is_subpackage = path is not None and path.name == "__init__.py"
    return parts[2] if is_subpackage else "base"


# -- a. packaging -------------------------------------------------------------------------------


def test_every_package_is_listed_in_pyproject() -> None:
    """`pip install .` installs only the packages listed in pyproject.toml: a subpackage
    missing there is silently left out of the wheel."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    package_dir = setuptools["package-dir"]
    if package_dir != {f"{NAMESPACE}.{t}": t for t in TOP_PACKAGES}:
        pytest.fail(
            f"[tool.setuptools.package-dir] should map each of {TOP_PACKAGES} to "
            f"'{NAMESPACE}.<folder>'; it is {package_dir}",
            pytrace=False,
        )
    on_disk: set[str] = set()
    not_packages: list[str] = []
    for top in TOP_PACKAGES:
        for folder in [ROOT / top, *sorted(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts:
                continue
            if (folder / "__init__.py").is_file():
                on_disk.add(_module_name(folder / "__init__.py"))
            elif any(folder.glob("*.py")):
                not_packages.append(_rel(folder))
    problems = []
    if missing := sorted(on_disk - listed):
        problems.append(
            "packages on disk but not in pyproject.toml's [tool.setuptools] packages "
            "(add them there, or `pip install .` drops them):\n    "
            + "\n    ".join(f'"{p}",' for p in missing)
        )
    if stale := sorted(listed - on_disk):
        problems.append(
            "listed in pyproject.toml's [tool.setuptools] packages but no such folder with an "
            "__init__.py (remove the line, or add the __init__.py):\n    " + "\n    ".join(stale)
        )
    if not_packages:
        problems.append(
            "folders holding .py files but no __init__.py (add one and list the package in "
            "pyproject.toml):\n    " + "\n    ".join(not_packages)
        )
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# -- b. one import name ---------------------------------------------------------------------------


def test_no_bare_top_level_imports() -> None:
    """The folders are installed as `cryodaq.<folder>` only: `import drivers` works in a checkout
    by accident and fails for a user who installed the wheel."""
    bad = []
    for folder in TOP_PACKAGES + OTHER_SOURCES:
        for path in _python_files(folder):
            for imp in _imports(path):
                top = imp.module.partition(".")[0]
                if top in TOP_PACKAGES:
                    bad.append(
                        f"{_rel(path)}:{imp.line} imports {imp.module} "
                        f"-> write {NAMESPACE}.{imp.module}"
                    )
    if bad:
        pytest.fail(
            "imports of bare top-level names (use `cryodaq.`):\n"
            + "\n".join(f"  {b}" for b in bad),
            pytrace=False,
        )


# -- c. one-way arrows ----------------------------------------------------------------------------


def _arrow_violation(importer: str, imported: str) -> str | None:
    """Why `importer` may not import `imported`, or None if it may."""
    own, other = importer.split(".")[1], imported.split(".")[1] if "." in imported else ""
    if other != own:
        if other in ALLOWED_PACKAGES[own]:
            return None
        allowed = ", ".join(sorted(ALLOWED_PACKAGES[own])) or "nothing"
        return f"{own} may import {allowed} of cryodaq"
    if own != "acquisition" or importer in ENTRY_POINTS:
        return None
    mine, theirs = _room(importer), _room(imported)
    for room in (mine, theirs):
        if room not in ROOMS:
            return f"room {room!r} is not in ROOMS of tests/test_layout.py: give it its place"
    if theirs == "base" or mine == theirs:
        return None
    if mine == "base":
        return "base modules of acquisition/ import no room"
    if ROOMS.index(theirs) < ROOMS.index(mine):
        return f"room {mine} may not import room {theirs} (above it)"
    return None


def test_imports_run_one_way() -> None:
    """drivers, analysis -> nothing of cryodaq; sim_instruments -> analysis; inside acquisition
    cli > campaign > conformance > cluster > pipelines > stream > store > base. Imports in
    functions and under `if TYPE_CHECKING:` count too."""
    bad = [
        f"{_rel(path.parent)}/: room {_room(module)!r} is not in ROOMS of tests/test_layout.py "
        "(give it its place in the order)"
        for module, path in sorted(_modules().items())
        if path.name == "__init__.py" and _room(module) not in ROOMS + (None,)
    ]
    for module, path in sorted(_modules().items()):
        seen = set()
        for imp in _cryodaq_imports(path):
            if imp.module in seen:
                continue
            seen.add(imp.module)
            if (why := _arrow_violation(module, imp.module)) is not None:
                bad.append(f"{_rel(path)}:{imp.line} -> {imp.module}  ({why})")
    if bad:
        pytest.fail(
            f"{len(bad)} break(s) of the one-way arrows (docs/architecture.md); move the "
            "code to the lower room or pass what is needed in from above:\n"
            + "\n".join(f"  {b}" for b in bad),
            pytrace=False,
        )


# -- d. no circles -------------------------------------------------------------------------------


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def test_no_import_circles() -> None:
    """No two modules of cryodaq import each other, directly or around a circle. Imports inside
    functions count (a deferred import hides a circle, it does not remove it); imports under
    `if TYPE_CHECKING:` do not."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in _cryodaq_imports(path, with_type_checking=False):
            if imp.module in modules and imp.module != module:
                graph[module].add(imp.module)
    circles = [c for c in _strongly_connected(graph) if len(c) > 1]
    lines = []
    for circle in circles:
        lines.append("circle: " + ", ".join(circle))
        members = set(circle)
        for module in circle:
            for target in sorted(graph[module] & members):
                lines.append(f"    {_rel(modules[module])} -> {target}")
    if circles:
        pytest.fail(
            "import circles between cryodaq modules; break each by moving the shared code into "
            "a module both can import:\n" + "\n".join(lines),
            pytrace=False,
        )


# -- e. small files -------------------------------------------------------------------------------


def test_no_source_file_over_500_lines() -> None:
    """A file over 500 lines holds more than one concern: split it (pyvisa-sim's largest file
    has ~430 lines)."""
    big = []
    for folder in SIZE_CHECKED:
        for path in _python_files(folder):
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                big.append(f"{_rel(path)}: {lines} lines")
    if big:
        pytest.fail(
            f"source files over {MAX_LINES} lines (split by concern):\n"
            + "\n".join(f"  {b}" for b in big),
            pytrace=False,
        )


# -- the guard's own machinery -------------------------------------------------------------------


def test_room_and_resolution_rules() -> None:
    """The helpers above read the layout as intended (so a passing guard means something)."""
    assert _room("cryodaq.acquisition.rig") == "base"
    assert _room("cryodaq.acquisition") == "base"
    assert _room("cryodaq.acquisition.store.reader") == "store"
    assert _room("cryodaq.acquisition.campaign") == "campaign"
    assert _room("cryodaq.drivers.base") is None
    assert _resolve("cryodaq.acquisition.store.reader.RunReader") == (
        "cryodaq.acquisition.store.reader"
    )
    assert _arrow_violation("cryodaq.acquisition.cli.run", "cryodaq.acquisition.store.ljh") is None
    assert _arrow_violation("cryodaq.acquisition.store.reader", "cryodaq.acquisition.cli.run")
    assert _arrow_violation("cryodaq.acquisition.rig", "cryodaq.acquisition.stream.engine")
    assert _arrow_violation("cryodaq.acquisition.rig", "cryodaq.drivers.base") is None
    assert _arrow_violation("cryodaq.sim_instruments.world", "cryodaq.analysis.cavity") is None
    assert _arrow_violation("cryodaq.sim_instruments.world", "cryodaq.drivers.base")
    assert _arrow_violation("cryodaq.drivers.adc", "cryodaq.analysis.cavity")
    assert _strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"], ["c"]]
