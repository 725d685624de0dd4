"""Shared fixtures: an isolated Prefect home + test harness, demo data, the real recordings."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Before prefect is imported anywhere: isolate its home so cached results never leak in.
_PREFECT_HOME = tempfile.mkdtemp(prefix="asd-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(Path(_PREFECT_HOME) / "results")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"  # library calls outside flow runs log locally
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real recordings not found at {REALDATA}")
    return REALDATA


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory) -> Path:
    """The small demo tree, generated once per session (treat as read-only)."""
    from asd_core.demo import make_demo_data

    out = tmp_path_factory.mktemp("demo") / "demo"
    make_demo_data(out, seed=3, size="small")
    return out


def _ingest_tree(ws_root: Path, tree: Path, dataset: str = "demo"):
    """Ingest ``tree`` into a new workspace with the library (no Prefect) and publish it to DuckDB."""
    from asd_core.config import Workspace
    from asd_core.ingest import ingest_roots

    ws = Workspace(ws_root)
    ingest_roots(ws, [tree], dataset)
    return ws


@pytest.fixture(scope="session")
def ingest_tree():
    """``ingest_tree(ws_root, tree) -> Workspace``: a workspace holding the ingested tree."""
    return _ingest_tree


@pytest.fixture(scope="session")
def teacher_config():
    """``teacher_config(**overrides) -> TeacherTrainConfig``: the tiny teacher the tests train
    (three blocks, 8 epochs on the small demo data; about 10 s on two idle CPU cores)."""
    from asd_core.models.teacher import TeacherConfig
    from asd_core.training.teacher import TeacherTrainConfig

    def make(**kw) -> "TeacherTrainConfig":
        model = kw.pop("model", TeacherConfig(n_mels=32, channels=(8, 16, 32), embedding_dim=32))
        kw.setdefault("epochs", 8)
        kw.setdefault("batch_size", 32)
        kw.setdefault("patience", 100)
        return TeacherTrainConfig(model=model, **kw)

    return make


@pytest.fixture(scope="session")
def trained_teacher(tmp_path_factory, demo_small, teacher_config):
    """``(workspace, TrainResult)``: one teacher of ``teacher_config()`` trained once per session on
    the small demo data, for every test that needs *a* trained teacher (treat both as read-only;
    tests of training itself, such as resume or determinism, train their own copies)."""
    from asd_core.training.teacher import train_teacher

    ws = _ingest_tree(tmp_path_factory.mktemp("ws-trained-teacher"), demo_small)
    return ws, train_teacher(ws, teacher_config(), device="cpu")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say when the default fast tier left slow tests out (``addopts`` in pyproject.toml)."""
    slow = [i for i in terminalreporter.stats.get("deselected", []) if i.get_closest_marker("slow")]
    if slow and config.getoption("markexpr") == "not slow":
        terminalreporter.write_line(f"fast tier: {len(slow)} slow tests not run; `pytest -m 'slow or not slow'` "
                                    "or `bash scripts/test.sh` runs both tiers, `pytest -m slow` the slow one")


@pytest.fixture(scope="session")
def fresh_asd():
    """``fresh_asd(*argv) -> (stdout, heavy)``: ``asd argv`` in a new interpreter, and which of torch,
    prefect, torchaudio and mlflow it imported (a command answered without its flow loads none)."""
    import json
    import subprocess
    import sys

    script = ("import sys, json; from flows.cli import main; rc = main(sys.argv[1:]); "
              "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'prefect', 'torchaudio', 'mlflow'}); "
              "print('HEAVY=' + json.dumps(heavy)); sys.exit(rc)")

    def run(*argv) -> tuple[str, list[str]]:
        p = subprocess.run([sys.executable, "-c", script, *map(str, argv)], cwd=REPO, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        assert p.returncode == 0, p.stderr
        out, _, heavy = p.stdout.rpartition("HEAVY=")
        return out, json.loads(heavy)

    return run
