"""The import structure of asd_core/ and flows/: no cycles, no import up the layer order (issue 14, part 1).

Every import statement counts, top-level and inside functions (asd_core/pipeline/code_graph.py
reads them with ``ast``). The layer order is written once, in ``asd_core.LAYERS``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from asd_core import LAYERS
from asd_core.pipeline.code_graph import build_graph

REPO = Path(__file__).resolve().parents[1]

# Upward imports waiting for a move that belongs to another change (none today); an entry
# whose edge is gone fails the test, so the list cannot go stale.
PENDING: dict[tuple[str, str], str] = {}


def _pending(importer: str, target: str) -> bool:
    """An edge of PENDING, or the edge to the package its target lives in (whose __init__ runs first)."""
    return any(importer == i and target in (t, t.rsplit(".", 1)[0]) for i, t in PENDING)


@pytest.fixture(scope="module")
def graph():
    return build_graph(REPO)


def test_no_import_cycles(graph):
    cycles = graph.cycles()
    assert not cycles, "modules importing each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_import_goes_up_the_layers(graph):
    found = graph.upward_imports(LAYERS)
    upward = [f"{a} -> {b}: {why}" for a, b, why in found if not _pending(a, b)]
    assert not upward, "imports against the layer order (asd_core.LAYERS):\n" + "\n".join(upward)
    stale = [f"{a} -> {b}" for a, b in PENDING if (a, b) not in {(x, y) for x, y, _ in found}]
    assert not stale, "PENDING lists edges that are gone; remove them:\n" + "\n".join(stale)


def test_asd_core_never_imports_flows(graph):
    bad = sorted((m, t) for m in graph.files if m.split(".")[0] == "asd_core"
                 for t in graph.imports[m] if t.split(".")[0] == "flows")
    assert not bad


def test_the_layer_table_names_what_exists(graph):
    units = [u for layer in LAYERS for u in layer]
    assert len(units) == len(set(units)), "a unit is listed twice"
    present = {m.split(".")[1] for m in graph.files if m.startswith("asd_core.")} | {"flows"}
    assert set(units) == present


# --- the checks themselves, on small made-up trees ------------------------------------------------

def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {"asd_core/__init__.py": "", "flows/__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path):
    g = build_graph(_tree(tmp_path, {
        "asd_core/a/__init__.py": "",
        "asd_core/a/x.py": "from asd_core.a import y\n",
        "asd_core/a/y.py": "def late():\n    from asd_core.a.x import thing\n    return thing\n",
    }))
    assert g.cycles() == [["asd_core.a.x", "asd_core.a.y"]]


def test_a_package_re_exporting_its_modules_is_no_cycle(tmp_path):
    """``pkg/__init__`` importing ``pkg.m``, which runs ``pkg/__init__`` first, is how packages
    load; a module taking a *name* from its own package's ``__init__`` is a real cycle."""
    files = {"asd_core/p/__init__.py": "from asd_core.p.m import f\nfrom asd_core.p.n import g\n",
             "asd_core/p/m.py": "def f():\n    return 1\n",
             "asd_core/p/n.py": "from asd_core.p import m\n\ndef g():\n    return m.f()\n"}
    assert build_graph(_tree(tmp_path / "ok", files)).cycles() == []
    files["asd_core/p/n.py"] = "from asd_core.p import f\n\ndef g():\n    return f()\n"
    assert build_graph(_tree(tmp_path / "bad", files)).cycles() == [["asd_core.p", "asd_core.p.n"]]


def test_upward_and_sideways_imports_are_found(tmp_path):
    g = build_graph(_tree(tmp_path, {
        "asd_core/low/__init__.py": "",
        "asd_core/low/m.py": "def f():\n    from asd_core.high.m import g\n    return g\n",
        "asd_core/high/__init__.py": "",
        "asd_core/high/m.py": "from asd_core.low.m import f\nfrom asd_core.peer import x\n",
        "asd_core/peer.py": "x = 1\n",
        "asd_core/stray.py": "",
    }))
    found = {(a, b) for a, b, _ in g.upward_imports((("low",), ("high", "peer")))}
    assert ("asd_core.low.m", "asd_core.high.m") in found  # up, from inside a function
    assert ("asd_core.high.m", "asd_core.peer") in found  # sideways, within a layer
    assert ("asd_core.high.m", "asd_core.low.m") not in found  # down is fine
    assert ("asd_core.stray", "asd_core.stray") in found  # not in the table
