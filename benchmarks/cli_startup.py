"""Start-up time of `asd` commands that start no flow (issue 14's goal: --help and sql under 1 s,
the rest under 2 s), each a fresh process, median of --repeat runs; the import of every heavy
library the command avoided is listed, so a regression names its cause.

    .venv/bin/python benchmarks/cli_startup.py --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "mlflow", "prefect", "faiss", "pandas", "duckdb", "pyarrow")


def _workspace(root: Path) -> Path:
    """A workspace with a DuckDB catalog and a real MLflow registry holding one version."""
    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect
    from asd_core.tracking.store import TrackingConfig, client

    ws = Workspace(root / "ws")
    with connect(ws):
        pass
    c = client(ws, TrackingConfig())
    c.create_registered_model("asd-encoder")
    c.create_model_version("asd-encoder", (ws.root / "bundle").as_uri(), tags={"official_score": "0.8"})
    return ws.root


def _time(argv: list[str], repeat: int) -> tuple[float, list[str]]:
    probe = ("import sys, runpy; sys.argv = ['asd'] + %r\n"
             "try:\n    runpy.run_module('flows.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('HEAVY=' + ','.join(m for m in %r if m in sys.modules), file=sys.stderr)") % (argv, HEAVY)
    times, heavy = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        heavy = [line.removeprefix("HEAVY=") for line in p.stderr.splitlines() if line.startswith("HEAVY=")]
    return statistics.median(times), heavy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = str(_workspace(Path(tmp)))
        commands = {"asd --help": (["--help"], 1.0), "asd score --help": (["score", "--help"], 1.0),
                    "asd sql 'select 1'": (["sql", "--workspace", ws, "SELECT 1"], 1.0),
                    "asd sql (a view)": (["sql", "--workspace", ws, "SELECT count(*) FROM run_metrics"], 1.0),
                    "asd models": (["models", "--workspace", ws], 2.0),
                    "asd forget (dry run)": (["forget", "--workspace", ws, "--dataset", "none"], 2.0)}
        print(f"{'command':<26} {'median s':>9} {'goal s':>7}  heavy imports")
        for name, (argv, goal) in commands.items():
            t, heavy = _time(argv, args.repeat)
            print(f"{name:<26} {t:9.2f} {goal:7.1f}  {(heavy or ['-'])[0] or '-'}")


if __name__ == "__main__":
    main()
