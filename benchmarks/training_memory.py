"""Teacher training memory against the number of training clips, at one clip length (issue 17 part 2).

For each count N: a demo set of 4 machine types x (N source + 10 target) training clips of
``--seconds`` s, ingested into its own workspace; then one teacher epoch (the default
configuration otherwise) in a fresh process, whose sampler thread records every 50 ms the
resident memory (RSS) and the private memory (RSS less file-backed and shared pages, about
RssAnon: what the process holds itself, not the page cache of the training clips' scratch file,
storage/scratch.py). Prints one row per N: the clips' size as float32, peak private, peak RSS,
seconds. Memory flat in dataset size means the private column does not grow with N.

    .venv/bin/python benchmarks/training_memory.py [--clips 240,990] [--seconds 10] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MACHINES = ("fan", "valve", "slider", "gearbox")


def _child(ws: str, epochs: int) -> None:
    """One teacher training run in this process; prints {peak_private_mb, peak_rss_mb, seconds, epochs_run} as JSON."""
    from pipeline import MemorySampler  # benchmarks/pipeline.py, beside this script

    from asd_core.config import Workspace
    from asd_core.runtime import configure_threads
    from asd_core.training.teacher import TeacherTrainConfig, train_teacher

    configure_threads()
    sampler = MemorySampler()
    sampler.start()
    t0 = time.time()
    result = train_teacher(Workspace(ws), TeacherTrainConfig(epochs=epochs, patience=epochs), device="cpu")
    t1 = time.time()
    sampler.stop.set()
    sampler.join()
    rss, _, private = sampler.peak(t0, t1)
    print(json.dumps({"peak_rss_mb": rss, "peak_private_mb": private, "seconds": round(t1 - t0, 1),
                      "epochs_run": len(result.history)}))


def _workspace(root: Path, clips: int, seconds: float) -> Path:
    """Demo data of ``clips`` source training clips per machine type, ingested with the library."""
    from asd_core.config import Workspace
    from asd_core.demo import make_demo_data
    from asd_core.demo.generate import DemoSize
    from asd_core.ingest import ingest_roots

    data, ws = root / f"data-{clips}", Workspace(root / f"ws-{clips}")
    size = DemoSize(MACHINES, sections=1, source_train=clips, target_train=10, test_per_cell=1,
                    duration_s=seconds, noise_per_class=1, held_out_test=0, held_out_enroll=0)
    make_demo_data(data, seed=0, size=size)
    ingest_roots(ws, [data], "demo")
    shutil.rmtree(data)
    return ws.root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", default="240,990", help="source training clips per machine type, one run per value")
    ap.add_argument("--seconds", type=float, default=10.0, help="clip length")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.epochs)
        return 0
    from asd_core.config import PIPELINE_SAMPLE_RATE
    from asd_core.textable import format_table

    rows = []
    with tempfile.TemporaryDirectory(prefix="asd-training-memory-") as tmp:
        for n in [int(v) for v in args.clips.split(",")]:
            ws = _workspace(Path(tmp), n, args.seconds)
            out = subprocess.run([sys.executable, __file__, "--child", str(ws), "--epochs", str(args.epochs)],
                                 check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
            got = json.loads(out.stdout.strip().splitlines()[-1])
            total = len(MACHINES) * (n + 10)
            rows.append({"training clips": total, "clips as float32 MB": round(total * args.seconds * PIPELINE_SAMPLE_RATE * 4 / 2**20),
                         "peak private MB": got["peak_private_mb"], "peak RSS MB": got["peak_rss_mb"],
                         "seconds": f"{got['seconds']:.1f}", "epochs": got["epochs_run"]})
            shutil.rmtree(ws)
            print(f"{total} clips done", file=sys.stderr, flush=True)
    print(f"\nTeacher training, {args.epochs} epoch(s), clips of {args.seconds:g} s, default configuration, "
          f"{os.cpu_count()} cores:\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
