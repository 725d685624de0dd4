"""The project's import graph, read from the source with ``ast``, and code versions derived from it.

A stage's results depend on every module its entry point can run, so its cache key hashes the
source of the transitive closure of that module's imports (top-level and inside functions), not
a hand-kept list of folders: editing any module a stage imports re-runs it, editing one it does
not import leaves it cached. The same graph serves the architecture test (cycles, layer order).
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


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every dotted name an import statement anywhere in the module may load (relative ones resolved)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            names.add(prefix)
            names.update(f"{prefix}.{alias.name}" for alias in node.names)  # may be a submodule
    return names


def build_graph(root: Path = PROJECT_ROOT) -> ImportGraph:
    """Parse every module of the project's packages under ``root``."""
    root = Path(root)
    files: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            files[_module_name(path.relative_to(root))] = str(path.relative_to(root))
    imports: dict[str, frozenset[str]] = {}
    for module, rel in files.items():
        tree = ast.parse((root / rel).read_text(), filename=rel)
        parents = module.split(".")[:-1]
        # importing a module first runs its parent packages' __init__
        found = {".".join(parents[:i]) for i in range(1, len(parents) + 1)} & files.keys()
        for name in _imported_names(tree, module, rel.endswith("__init__.py")):
            parts = name.split(".")
            # importing a.b.c runs a/__init__, a/b/__init__ and a/b/c
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if candidate in files and candidate != module:
                    found.add(candidate)
        imports[module] = frozenset(found)
    return ImportGraph(root, files, imports)
