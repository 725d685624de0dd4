"""Each pipeline stage's code version follows exactly the modules its entry point imports (issue 14, part 2)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from asd_core.pipeline.code_graph import build_graph
from flows.pipeline import STAGE_ENTRY, stage_code_versions

from conftest import REPO


@pytest.fixture()
def tree(tmp_path):
    """A copy of the project's code, free to edit."""
    for folder in ("asd_core", "flows", "sql"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_every_stage_key_follows_its_imports_and_only_them(tree):
    graph = build_graph(tree)
    base = stage_code_versions(graph)
    assert len(set(base.values())) == len(base)
    for module, rel in graph.files.items():
        path = tree / rel
        original = path.read_bytes()
        path.write_bytes(original + b"\n# an edit that changes no import\n")
        try:
            now = stage_code_versions(graph)
        finally:
            path.write_bytes(original)
        for stage, entry in STAGE_ENTRY.items():
            imported = module in graph.closure(entry)
            assert (now[stage] != base[stage]) == imported, (stage, module, imported)
    # the SQL the catalogue applies counts for every stage that publishes through it
    sql = tree / "sql" / "metrics.sql"
    sql.write_text(sql.read_text() + "\n-- edit\n")
    now = stage_code_versions(graph)
    for stage, entry in STAGE_ENTRY.items():
        assert (now[stage] != base[stage]) == ("asd_core.storage.catalog" in graph.closure(entry)), stage


def test_an_import_added_inside_a_function_joins_the_closure(tree):
    before = build_graph(tree)
    assert "asd_core.reporting.figures" not in before.closure("flows.ingest")
    layout = tree / "asd_core" / "storage" / "paths.py"
    layout.write_text(layout.read_text() + "\n\ndef _late():\n    from asd_core.reporting import figures\n    return figures\n")
    after = build_graph(tree)
    assert "asd_core.reporting.figures" in after.closure("flows.ingest")
    assert stage_code_versions(after)["ingest"] != stage_code_versions(before)["ingest"]
    figures = tree / "asd_core" / "reporting" / "figures.py"
    key = stage_code_versions(after)["ingest"]
    figures.write_text(figures.read_text() + "\n# edit\n")
    assert stage_code_versions(after)["ingest"] != key


_RUNTIME_IMPORTS = """
import importlib, json, sys
ours = lambda: {m for m in sys.modules if m.split('.')[0] in ('asd_core', 'flows')}
out = {}
for entry in json.loads(sys.argv[1]):
    for m in ours():
        del sys.modules[m]
    importlib.import_module(entry)
    out[entry] = sorted(ours())
print(json.dumps(out))
"""


@pytest.mark.slow  # runs every stage's entry point in a subprocess: ~15 s
def test_modules_loaded_at_run_time_are_in_the_closure():
    """An independent computation: what Python actually imports for each entry point."""
    entries = sorted(set(STAGE_ENTRY.values()))
    proc = subprocess.run([sys.executable, "-c", _RUNTIME_IMPORTS, json.dumps(entries)], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    graph = build_graph(REPO)
    for entry in entries:
        missing = set(loaded[entry]) - set(graph.closure(entry))
        assert not missing, (entry, missing)
        assert entry in loaded[entry]
