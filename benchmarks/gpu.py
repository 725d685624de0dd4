"""BEATs-base on the GPU next to the CPU: embedding clips/s and student training steps/s (issue 17).

One short script for a session that has a GPU: BEATs base (random weights, the real
configuration, 10 s clips) embeds ``--clips`` clips, and a BEATs-base student takes ``--steps``
training steps (forward, the retain-not-denoise loss, backward, AdamW), first on the CPU and then
on CUDA when torch sees it, each measurement in a fresh process (benchmarks/embedding.py and
benchmarks/student.py do the work, so the figures are the same as theirs). Batch sizes are
chosen per device: small on the CPU, where a larger batch only adds memory, larger on the GPU.
Without CUDA it prints the CPU rows and says so; it is never run by the tests.

    .venv/bin/python benchmarks/gpu.py [--clips 64] [--steps 5] [--cpu-batch 8] [--gpu-batch 32] [--skip-cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _run(script: str, args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{script} {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(device: str, batch: int, clips: int, steps: int) -> dict:
    embed = _run("embedding.py", ["--one", "beats-base", str(batch), "--clips", str(clips), "--device", device])
    train = _run("student.py", ["--one", "beats-base", "--steps", str(steps), "--batch", str(batch), "--device", device])
    return {"device": device, "batch": batch, "embed clips/s": embed["clips_per_s"],
            "student steps/s": train["steps_per_s"], "student clips/s": train["clips_per_s"],
            "peak GPU MB": train.get("peak_gpu_MB", ""), "peak RSS MB": max(embed["peak_rss_MB"], train["peak_rss_MB"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=64, help="clips embedded per device (default 64)")
    ap.add_argument("--steps", type=int, default=5, help="student training steps per device, after one warm-up (default 5)")
    ap.add_argument("--cpu-batch", type=int, default=8)
    ap.add_argument("--gpu-batch", type=int, default=32)
    ap.add_argument("--skip-cpu", action="store_true", help="only the GPU rows (the CPU rows take minutes on 2 cores)")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE.parent))
    import torch

    from asd_core.textable import format_table

    rows = []
    if not args.skip_cpu:
        rows.append(measure("cpu", args.cpu_batch, args.clips, args.steps))
    if torch.cuda.is_available():
        rows.append(measure("cuda", args.gpu_batch, args.clips, args.steps))
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    else:
        print("torch sees no CUDA device here: CPU rows only")
    if len(rows) == 2:
        cpu, gpu = rows
        rows.append({"device": "cuda / cpu", "batch": "", "embed clips/s": f"{gpu['embed clips/s'] / cpu['embed clips/s']:.1f}x",
                     "student steps/s": f"{gpu['student steps/s'] / cpu['student steps/s']:.1f}x",
                     "student clips/s": f"{gpu['student clips/s'] / cpu['student clips/s']:.1f}x",
                     "peak GPU MB": "", "peak RSS MB": ""})
    if rows:
        print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
