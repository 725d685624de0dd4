"""Embedding throughput: BEATs base (random weights, real config) and the teacher, 10 s clips.

Each (encoder, batch size) runs in a fresh process so its peak RSS is its own. On a machine
with a GPU the encoders use it automatically; pass --device cpu to force the CPU.

    .venv/bin/python benchmarks/embedding.py [--clips 32] [--batches 1 8 32] [--device cpu|cuda]
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

import numpy as np


def _encoder(kind: str, tmp: Path, device: str):
    import torch

    from asd_core.encoders import get_encoder

    if kind == "beats-base":
        from asd_core.models.beats import BEATs, BEATsConfig
        from asd_core.models.beats_checkpoint import save_beats

        torch.manual_seed(0)
        save_beats(BEATs(BEATsConfig()), tmp / "beats.pt")
        return get_encoder("beats", checkpoint=str(tmp / "beats.pt"), device=device)
    from asd_core.models.teacher import TeacherConfig, TeacherNet

    torch.manual_seed(0)
    net = TeacherNet(TeacherConfig())
    (tmp / "teacher").mkdir()
    torch.save(net.state_dict(), tmp / "teacher/model.pt")
    (tmp / "teacher/config.json").write_text(json.dumps({"model": TeacherConfig().to_dict(), "model_hash": "bench",
                                                          "train": {"clip_seconds": None}}))
    return get_encoder("teacher", model=str(tmp / "teacher"), device=device)


def _one(kind: str, batch: int, clips: int, device: str) -> dict:
    from asd_core.runtime import configure_threads

    configure_threads()
    with tempfile.TemporaryDirectory() as tmp:
        enc = _encoder(kind, Path(tmp), device)
        waves = [np.random.default_rng(i).normal(0, 0.1, 160_000).astype(np.float32) for i in range(clips)]
        enc.embed(waves[:1])  # warm-up
        t0 = time.perf_counter()
        for s in range(0, clips, batch):
            enc.embed(waves[s : s + batch])
        secs = time.perf_counter() - t0
    return {"encoder": kind, "batch": batch, "clips_per_s": round(clips / secs, 2),
            "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "device": enc.device}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--encoders", nargs="+", default=["beats-base", "teacher"])
    ap.add_argument("--device", default=None)
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.clips, device)))
        return
    print(f"{'encoder':>12} {'batch':>6} {'clips/s':>9} {'peak RSS MB':>12} {'device':>7}")
    for kind in args.encoders:
        for b in args.batches:
            out = subprocess.run([sys.executable, __file__, "--one", kind, str(b), "--clips", str(args.clips),
                                  "--device", device], check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{r['encoder']:>12} {r['batch']:>6} {r['clips_per_s']:>9} {r['peak_rss_MB']:>12} {r['device']:>7}", flush=True)


if __name__ == "__main__":
    main()
