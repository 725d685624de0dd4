"""Ingest throughput and peak memory on generated trees of 10-second clips.

Each size runs in a fresh process so peak RSS is that run's own; flat peak memory across
sizes shows the ingest streams instead of holding the dataset.

    .venv/bin/python benchmarks/ingest.py --clips 500 2000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _one(n_clips: int, workdir: Path) -> dict:
    from asd_core.config import IngestConfig, Workspace
    from asd_core.demo.generate import DemoSize, make_demo_data
    from asd_core.ingest import ingest_roots

    machines = ("fan", "valve", "slider", "gearbox")
    per_machine = n_clips // len(machines)
    size = DemoSize(machines, 1, per_machine - 10 - 4 * 5, 10, 5, 10.0, 1)
    data = workdir / f"tree{n_clips}"
    make_demo_data(data, seed=0, size=size)
    rss_after_generation = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wavs = list((data / "dev_data").rglob("*.wav"))
    mb = sum(p.stat().st_size for p in wavs) / 1e6
    ws, cfg = Workspace(workdir / f"ws{n_clips}").ensure(), IngestConfig()
    t0 = time.perf_counter()
    ingest_roots(ws, [data], None, cfg, publish=False)
    elapsed = time.perf_counter() - t0
    t1 = time.perf_counter()
    ingest_roots(ws, [data], None, cfg, publish=False)
    rerun = time.perf_counter() - t1
    return {
        "clips": len(wavs), "MB": round(mb, 1), "seconds": round(elapsed, 2),
        "files_per_s": round(len(wavs) / elapsed, 1), "MB_per_s": round(mb / elapsed, 1),
        "rerun_unchanged_s": round(rerun, 2),
        # ru_maxrss is in KiB on Linux; generation happens first in the same process, so report the
        # ingest peak only when it exceeds the generation peak.
        "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "peak_rss_after_generation_MB": round(rss_after_generation / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args.one, args.workdir)))
        return
    with tempfile.TemporaryDirectory(prefix="asd-bench-ingest-") as tmp:
        print(f"{'clips':>6} {'MB':>8} {'s':>7} {'files/s':>8} {'MB/s':>6} {'rerun s':>8} {'peak RSS MB':>12}")
        for n in args.clips:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--workdir", tmp],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{r['clips']:>6} {r['MB']:>8} {r['seconds']:>7} {r['files_per_s']:>8} {r['MB_per_s']:>6} "
                  f"{r['rerun_unchanged_s']:>8} {r['peak_rss_MB']:>12}", flush=True)


if __name__ == "__main__":
    main()
