"""The project's import graph, read from the source with ``ast``, and code versions derived from it.

A stage's results depend on every module its entry point can run, so its cache key hashes the
source of the transitive closure of that module's imports (top-level and inside functions), not
a hand-kept list of folders: editing any module a stage imports re-runs it, editing one it does
not import leaves it cached. The same graph serves the architecture test (cycles, layer order).

Two sets of edges are kept. ``imports`` is everything importing a module runs: the modules its
import statements name, every package on their dotted paths, and its own parent packages
(Python runs a package's ``__init__`` before any submodule); code versions and the layer check
use it. ``direct`` leaves out the edges a module has to its *own* parent packages only because
it lives in them: a package whose ``__init__`` re-exports its submodules would otherwise form a
cycle with each of them (``encoders.base -> encoders -> encoders.registry -> encoders.base``)
that is just how packages load, not a dependency. A parent package a module takes a name from
(``from asd_core.encoders import Encoder`` inside ``encoders``: a real hazard, the package may be
half-initialised) stays an edge, unlike one it only takes a submodule from (``from asd_core.scoring
import density``, which Python resolves whatever state the package is in), and so does every
package of *another* subtree on a dotted path (its ``__init__`` runs, so what it imports counts).
Cycles are looked for in ``direct``.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("asd_core", "flows")
# Files a module reads at run time as code: the catalogue applies sql/*.sql on every write.
DATA_DEPENDENCIES = {"asd_core.storage.catalog": ("sql",)}


@dataclass(frozen=True)
class ImportGraph:
    """module name -> project modules it imports; module name -> its file (relative to ``root``)."""

    root: Path
    files: dict[str, str]
    imports: dict[str, frozenset[str]]
    direct: dict[str, frozenset[str]]

    def closure(self, *entries: str) -> list[str]:
        """``entries`` and every project module they import, transitively (sorted)."""
        for e in entries:
            if e not in self.files:
                raise KeyError(f"{e}: not a module of {', '.join(PACKAGES)} under {self.root}")
        seen, todo = set(), list(entries)
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(self.imports[m] - seen)
        return sorted(seen)

    def code_version(self, *entries: str) -> str:
        """Hash of the source of ``closure(*entries)`` plus the data files those modules read."""
        modules = self.closure(*entries)
        paths = [self.files[m] for m in modules]
        for m in modules:
            for folder in DATA_DEPENDENCIES.get(m, ()):
                paths += sorted(str(p.relative_to(self.root)) for p in (self.root / folder).rglob("*") if p.is_file()
                                and p.suffix in (".sql", ".py"))
        h = hashlib.sha256()
        for rel in sorted(set(paths)):
            h.update(rel.encode() + b"\0")
            h.update((self.root / rel).read_bytes())
        return h.hexdigest()[:16]


    def cycles(self) -> list[list[str]]:
        """Every set of modules that import each other, directly or through others, over ``direct``
        edges (strongly connected components of more than one module), each sorted."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        for start in sorted(self.files):
            if start in index:
                continue
            # iterative Tarjan: (module, its remaining successors)
            work = [(start, iter(sorted(self.direct[start])))]
            index[start] = low[start] = len(index)
            stack.append(start)
            on_stack.add(start)
            while work:
                node, successors = work[-1]
                for succ in successors:
                    if succ not in index:
                        index[succ] = low[succ] = len(index)
                        stack.append(succ)
                        on_stack.add(succ)
                        work.append((succ, iter(sorted(self.direct[succ]))))
                        break
                    if succ in on_stack:
                        low[node] = min(low[node], index[succ])
                else:
                    work.pop()
                    if work:
                        low[work[-1][0]] = min(low[work[-1][0]], low[node])
                    if low[node] == index[node]:
                        component = []
                        while True:
                            m = stack.pop()
                            on_stack.discard(m)
                            component.append(m)
                            if m == node:
                                break
                        if len(component) > 1:
                            found.append(sorted(component))
        return sorted(found)

    def upward_imports(self, layers: tuple[tuple[str, ...], ...]) -> list[tuple[str, str, str]]:
        """(importer, imported, why) of every edge that breaks the layer order ``layers`` (bottom-up;
        each entry names units: sub-packages or modules of ``asd_core``, or ``flows``). A module may
        import its own unit and units of lower layers, never one of its layer or above; the package
        root ``asd_core`` holds only this table and sits below every layer. A unit missing from the
        table is reported too, so a new package has to be placed."""
        layer_of = {unit: i for i, layer in enumerate(layers) for unit in layer}
        out = []
        for module in sorted(self.files):
            unit = _unit(module)
            if unit is not None and unit not in layer_of:
                out.append((module, module, f"{unit} is not in the layer table"))
        for module in sorted(self.files):
            unit = _unit(module)
            for target in sorted(self.imports[module]):
                other = _unit(target)
                if unit is None or other is None or other == unit or unit not in layer_of or other not in layer_of:
                    continue
                if layer_of[other] >= layer_of[unit]:
                    where = "a higher layer" if layer_of[other] > layer_of[unit] else "the same layer"
                    out.append((module, target, f"{unit} (layer {layer_of[unit]}) imports {other}, {where} "
                                                f"(layer {layer_of[other]})"))
        return out


def _unit(module: str) -> str | None:
    """The layer-table unit of a module: ``asd_core.<unit>...`` or ``flows``; None for the package root."""
    parts = module.split(".")
    if parts[0] == "flows":
        return "flows"
    return parts[1] if len(parts) > 1 else None


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _statements(tree: ast.AST):
    """Every statement of a module, nested ones included (function and class bodies, branches,
    handlers, match cases). Import statements are statements, so walking these alone finds every
    one of them at a tenth of the cost of ``ast.walk`` over every expression node."""
    todo = [tree]
    while todo:
        node = todo.pop()
        for value in node.__dict__.values():
            if isinstance(value, list):
                for child in value:
                    if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):
                        todo.append(child)
                        if isinstance(child, ast.stmt):
                            yield child


def _import_statements(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, tuple[str, ...]]]:
    """(dotted module, names imported from it) of every import statement anywhere in the module:
    ``import a.b`` -> (``a.b``, ()); ``from a import b, c`` -> (``a``, (b, c)); relative ones resolved."""
    out = []
    for node in _statements(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            out.append((prefix, tuple(alias.name for alias in node.names)))
    return out


def _imported_names(statements: list[tuple[str, tuple[str, ...]]]) -> set[str]:
    """Every dotted name the import ``statements`` of a module may load."""
    names = set()
    for prefix, imported in statements:
        names.add(prefix)
        names.update(f"{prefix}.{name}" for name in imported)  # may be a submodule
    return names


def _named_modules(statements: list[tuple[str, tuple[str, ...]]], module: str, files) -> set[str]:
    """The modules import statements take something from: the module ``import`` names, a submodule
    ``from`` imports, else the module ``from`` imports names of (a package only holding the
    imported submodule is no more than the path to it)."""
    named = set()
    for prefix, imported in statements:
        if not imported:
            named.add(prefix)
        for name in imported:
            named.add(f"{prefix}.{name}" if f"{prefix}.{name}" in files else prefix)
    return {m for m in named if m in files and m != module}


def build_graph(root: Path = PROJECT_ROOT) -> ImportGraph:
    """Parse every module of the project's packages under ``root``."""
    root = Path(root)
    files: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            files[_module_name(path.relative_to(root))] = str(path.relative_to(root))
    imports: dict[str, frozenset[str]] = {}
    direct: dict[str, frozenset[str]] = {}
    for module, rel in files.items():
        tree = ast.parse((root / rel).read_text(), filename=rel)
        parents = module.split(".")[:-1]
        # importing a module first runs its parent packages' __init__
        own_parents = {".".join(parents[:i]) for i in range(1, len(parents) + 1)} & files.keys()
        found = set(own_parents)
        statements = _import_statements(tree, module, rel.endswith("__init__.py"))
        for name in _imported_names(statements):
            parts = name.split(".")
            # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in files and candidate != module:
                    found.add(candidate)
        imports[module] = frozenset(found)
        direct[module] = frozenset((found - own_parents) | _named_modules(statements, module, files))
    return ImportGraph(root, files, imports, direct)
