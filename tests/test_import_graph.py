"""The package's import graph: no cycle between modules and no import from a lower layer (docs/ and
DESIGN: each layer imports only from the layers above it).

The graph is read from the source with ``ast``: every ``import`` of ``reposearcher_plugin`` anywhere in a
module counts, inside functions and ``if TYPE_CHECKING:`` blocks too (a deferred import is still a
dependency, and a cycle through one only works by luck of timing). ``from package import name`` is an
edge to the submodule when ``name`` is one, else to the package's ``__init__``. Importing a submodule
also runs its package's ``__init__``, but that implied edge is not counted: every package re-exports its
modules, so it would make each one a cycle. Imports by computed name (``importlib.import_module``) are
not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = "reposearcher_plugin"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# Top to bottom; a module imports only from its own layer and the layers above it. The modules directly
# in the package (extras.py, packaged.py, cache_home.py, files.py, __init__.py) are helpers every layer
# may import; they import no layer.
LAYERS = (
    # weights and the llama.cpp server: imports nothing of ours and only cli/ imports it, so it sits at
    # the top, where any layer that starts a local model could use it
    "models",
    "index",
    "tools",
    "rank",
    "agent",
    "workspace",
    "evaluation",
    # the patch step of %Resolved: instances, the batch runner and the diff reader come from evaluation
    "repair",
    "hosts",
    "rl",
    "cli",
)

# Upward imports that exist today, each to be removed; an entry that no longer occurs fails the test
# below, so this list can only shrink. (Issue 14 move 5 removed the last two: hosts -> cli.options.)
KNOWN_UPWARD_IMPORTS: frozenset[tuple[str, str]] = frozenset()

Edge = tuple[str, str]


def module_files(package_dir: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> its file, for every module of the package (packages by their __init__)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


class ImportGraph(NamedTuple):
    edges: dict[str, set[str]]  # each module -> the modules of the package it imports
    packages: frozenset[str]  # the modules that are packages (an __init__.py)

    def layer_of(self, module: str) -> str | None:
        """The layer (subpackage) a module belongs to; None for the package's own helper modules."""
        parts = module.split(".")
        if len(parts) == 1 or (len(parts) == 2 and module not in self.packages):
            return None
        return parts[1]


def read_import_graph(package_dir: Path, package: str = PACKAGE) -> ImportGraph:
    modules = module_files(package_dir, package)
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: each dot past the first climbs one package
                    parents = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    base = ".".join([*parents, *([node.module] if node.module else [])])
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    targets.add(submodule if submodule in modules else base)
        ours = {target for target in targets if target == package or target.startswith(package + ".")}
        unknown = ours - set(modules)
        assert not unknown, f"{path} imports modules that do not exist: {sorted(unknown)}"
        edges[name] = ours - {name}
    packages = frozenset(name for name, path in modules.items() if path.name == "__init__.py")
    return ImportGraph(edges, packages)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> b -> ... -> a) through each strongly connected group of modules (Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []
    for start in sorted(edges):
        if start in order:
            continue
        # iterative depth-first search: (module, its remaining successors)
        work = [(start, iter(sorted(edges[start])))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, successors = work[-1]
            successor = next(successors, None)
            if successor is not None:
                if successor not in order:
                    order[successor] = low[successor] = len(order)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(edges.get(successor, ())))))
                elif successor in on_stack:
                    low[module] = min(low[module], order[successor])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == order[module]:
                group = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.add(member)
                    if member == module:
                        break
                if len(group) > 1:
                    groups.append(group)
    return [_cycle_in(group, edges) for group in groups]


def _cycle_in(group: set[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the group's first module, by breadth-first search inside the group."""
    start = min(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for module in frontier:
            for successor in sorted(edges[module] & group):
                if successor == start:
                    path = [module]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if successor not in came_from:
                    came_from[successor] = module
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle in {group}")  # a strongly connected group always has one


def upward_imports(graph: ImportGraph, layers: Iterable[str] = LAYERS) -> list[Edge]:
    """Imports of a lower layer (later in ``layers``) by a higher one, and of any layer by a helper."""
    rank = {layer: position for position, layer in enumerate(layers)}
    found = []
    for importer, targets in sorted(graph.edges.items()):
        for imported in sorted(targets):
            importer_layer, imported_layer = graph.layer_of(importer), graph.layer_of(imported)
            if imported_layer is None:
                continue  # a helper: anyone may import it
            if importer_layer is None or rank[imported_layer] > rank[importer_layer]:
                found.append((importer, imported))
    return found


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return read_import_graph(PACKAGE_DIR)


def test_every_package_has_a_place_in_the_layers(graph):
    packages = {graph.layer_of(module) for module in graph.edges} - {None}
    assert packages <= set(LAYERS), f"place {sorted(packages - set(LAYERS))} in LAYERS"


def test_no_import_cycles(graph):
    found = cycles(graph.edges)
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_no_upward_imports_between_layers(graph):
    found = [edge for edge in upward_imports(graph) if edge not in KNOWN_UPWARD_IMPORTS]
    assert not found, (
        "upward imports (layer order: "
        + " > ".join(LAYERS)
        + "):\n"
        + "\n".join(f"{importer} imports {imported}" for importer, imported in found)
    )


def test_the_allowed_upward_imports_still_exist(graph):
    gone = KNOWN_UPWARD_IMPORTS - set(upward_imports(graph))
    assert not gone, f"no longer imported upward; remove from KNOWN_UPWARD_IMPORTS: {sorted(gone)}"


def test_the_checks_see_deferred_and_relative_imports_cycles_and_upward_imports(tmp_path):
    package = tmp_path / PACKAGE
    sources = {
        "__init__.py": "",
        "extras.py": "",
        "index/__init__.py": "from reposearcher_plugin.index.a import thing\n",
        "index/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import other\n",
        "index/b.py": "def late():\n    from reposearcher_plugin.index import a\n",
        "index/c.py": "from reposearcher_plugin.cli import main\n",
        "cli/__init__.py": "",
        "cli/main.py": "from .. import extras\nimport reposearcher_plugin.index.b\n",
    }
    for name, text in sources.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    graph = read_import_graph(package)
    ours = "reposearcher_plugin"
    assert graph.edges[f"{ours}.cli.main"] == {f"{ours}.extras", f"{ours}.index.b"}
    assert graph.edges[f"{ours}.index"] == {f"{ours}.index.a"}
    assert cycles(graph.edges) == [[f"{ours}.index.a", f"{ours}.index.b", f"{ours}.index.a"]]
    assert upward_imports(graph) == [(f"{ours}.index.c", f"{ours}.cli.main")]
    assert graph.layer_of(f"{ours}.extras") is None and graph.layer_of(f"{ours}.cli") == "cli"
