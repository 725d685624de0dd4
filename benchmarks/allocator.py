"""The C allocator's share of torch work on 2 cores (issue 17 part 2: `asd demo --size dcase` spent
a third of its CPU time in the kernel, 935 M minor page faults): the same batches with glibc's
default (large blocks mapped afresh and unmapped on free) and with ``asd_core.runtime.
configure_allocator`` (large blocks from the heap, freed memory kept for reuse), each in a fresh
process, alternating, median of --repeat.

Workloads: teacher embedding (default teacher architecture, 16 clips of 10 s per batch, no
gradient) and teacher training steps (forward + backward + AdamW, 8 clips of 10 s).

    .venv/bin/python benchmarks/allocator.py [--batches 6] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _child(workload: str, tuned: bool, batches: int) -> dict:
    import resource
    import time

    if tuned:
        from asd_core.runtime import configure_allocator

        assert configure_allocator(), "mallopt refused the settings"
    import torch

    from asd_core.models.teacher import TeacherConfig, TeacherNet

    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = TeacherNet(TeacherConfig())
    if workload == "embed":
        net.eval()
        x = torch.randn(16, 160_000)

        def step():
            with torch.inference_mode():
                net(x)
    else:
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        x = torch.randn(8, 160_000)

        def step():
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    step()  # first batch: one-time set-up (weights, kernels) outside the timing
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        step()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": wall, "sys_s": r1.ru_stime - r0.ru_stime, "user_s": r1.ru_utime - r0.ru_utime,
            "minor_faults": r1.ru_minflt - r0.ru_minflt, "peak_rss_MB": r1.ru_maxrss / 1024}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("WORKLOAD", "TUNED"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(REPO))
        print(json.dumps(_child(args.child[0], args.child[1] == "1", args.batches)))
        return 0
    rows = []
    for workload in ("embed", "train"):
        runs = {False: [], True: []}
        for _ in range(args.repeat):
            for tuned in (False, True):  # alternating: drifting load hits both alike
                p = subprocess.run([sys.executable, __file__, "--child", workload, str(int(tuned)), "--batches",
                                    str(args.batches)], capture_output=True, text=True, check=True)
                runs[tuned].append(json.loads(p.stdout.strip().splitlines()[-1]))
        for tuned in (False, True):
            med = {k: statistics.median(r[k] for r in runs[tuned]) for k in runs[tuned][0]}
            rows.append({"workload": workload, "allocator": "configure_allocator" if tuned else "glibc default", **med})
    print(f"{'workload':<8} {'allocator':<20} {'wall s':>7} {'user s':>7} {'sys s':>6} {'minor faults':>13} {'peak RSS MB':>12}")
    for r in rows:
        print(f"{r['workload']:<8} {r['allocator']:<20} {r['wall_s']:>7.2f} {r['user_s']:>7.2f} {r['sys_s']:>6.2f} "
              f"{r['minor_faults']:>13,.0f} {r['peak_rss_MB']:>12.0f}")
    for workload in ("embed", "train"):
        base, tuned = (next(r for r in rows if r["workload"] == workload and r["allocator"] == a)
                       for a in ("glibc default", "configure_allocator"))
        print(f"{workload}: {base['wall_s'] / tuned['wall_s']:.2f}x faster, minor faults / "
              f"{base['minor_faults'] / max(tuned['minor_faults'], 1):.0f}")
    print(f"\nMeasured: {args.batches} batches per process after one warm-up batch, fresh process each, alternating, "
          f"median of {args.repeat}; 2 torch threads.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
