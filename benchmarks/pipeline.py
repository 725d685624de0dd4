"""Wall time and peak memory of ``asd demo`` per stage (the whole pipeline on the demo data).

Runs the demo pipeline in this process (fresh workspace) while a sampler thread records the
resident memory of this process and of its children (the temporary Prefect server) every
50 ms; each stage's peak is the maximum over the samples inside its time span. ``private`` is
this process's resident memory less its file-backed and shared pages (Linux: RSS - shared, about
RssAnon): what the process itself holds, without the page cache of the files it maps (the
training clips' scratch matrix, storage/scratch.py), which the kernel drops under pressure.

    .venv/bin/python benchmarks/pipeline.py [--size small] [--workspace DIR] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path


class MemorySampler(threading.Thread):
    def __init__(self, interval: float = 0.05):
        super().__init__(daemon=True)
        import psutil

        self.proc, self.interval, self.samples, self.stop = psutil.Process(), interval, [], threading.Event()

    def run(self) -> None:
        import psutil

        while not self.stop.is_set():
            info = self.proc.memory_info()
            own, private = info.rss, info.rss - getattr(info, "shared", 0)
            kids = 0
            for child in self.proc.children(recursive=True):
                try:
                    kids += child.memory_info().rss
                except psutil.Error:
                    pass
            self.samples.append((time.time(), own, own + kids, private))
            time.sleep(self.interval)

    def peak(self, t0: float, t1: float) -> tuple[float, float, float]:
        """Peak MB in [t0, t1]: (this process, with its children, this process's private memory)."""
        inside = [s[1:] for s in self.samples if t0 <= s[0] <= t1] or [(0, 0, 0)]
        return tuple(round(max(s[i] for s in inside) / 2**20) for i in range(3))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small", choices=["small", "medium", "dcase"])
    ap.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    ap.add_argument("--set", action="append", default=[], help="override a key of the demo config")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows import prefect_server

    prefect_server.install()  # the flows' Prefect server stops with this process, however it ends (Ctrl-C, kill)

    tmp = None
    ws = args.workspace or Path(tmp := tempfile.mkdtemp(prefix="asd-bench-pipeline-")) / "ws"
    try:
        run(args, ws)
    finally:  # a finished, failed or interrupted run leaves no temporary workspace behind
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def run(args, ws: Path) -> None:
    from asd_core.demo import make_demo_data
    from asd_core.pipeline.demo import demo_config
    from asd_core.textable import format_table
    from flows.pipeline import pipeline_flow

    sampler = MemorySampler()
    sampler.start()
    t0 = time.time()
    make_demo_data(ws / "demo-data", seed=0, size=args.size)
    t_data = time.time()
    report = pipeline_flow(config=demo_config(ws, ws / "demo-data", args.set).to_dict())
    t_end = time.time()
    sampler.stop.set()
    sampler.join()

    columns = ("peak_rss_mb", "peak_rss_with_server_mb", "peak_private_mb")
    rows = [{"stage": "make-demo-data", "status": "computed", "seconds": f"{t_data - t0:.1f}",
             **dict(zip(columns, sampler.peak(t0, t_data)))}]
    for s in report["stages"]:
        rows.append({"stage": s["stage"], "status": s["status"], "seconds": f"{s['seconds']:.1f}",
                     **dict(zip(columns, sampler.peak(s["started"], s["started"] + s["seconds"])))})
    stage_sum = sum(s["seconds"] for s in report["stages"])
    rows.append({"stage": "asd demo (all, incl. Prefect start-up and evaluation)", "status": "",
                 "seconds": f"{t_end - t0:.1f}", **dict(zip(columns, sampler.peak(t0, t_end)))})
    print(f"\nasd demo --size {args.size} on {os.cpu_count()} cores; stages sum {stage_sum:.1f} s\n")
    print(format_table(rows))


if __name__ == "__main__":
    main()
