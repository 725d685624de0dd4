"""Student training steps/s and peak memory (tiny and base configurations), and mixture throughput.

Each student configuration runs in a fresh process (its own peak RSS): the student's forward and
backward on mixtures plus the loss of training/objectives.py, with the teacher's targets
precomputed as in training. Mixture throughput: planning (gains at the exact SNR) and rendering
from provenance on the small demo workspace.

    .venv/bin/python benchmarks/student.py [--steps 5] [--batch 8] [--seconds 10] [--device cpu|cuda]
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

CONFIGS = ("teacher-cnn-tiny", "teacher-cnn-base", "beats-tiny", "beats-base")


def _backbone(kind: str, tmp: Path, device: str):
    import torch

    from asd_core.models.beats import BEATs, BEATsConfig
    from asd_core.models.beats_checkpoint import save_beats
    from asd_core.models.teacher import TeacherConfig
    from asd_core.training.backbone import load_backbone

    torch.manual_seed(0)
    if kind.startswith("beats"):
        cfg = BEATsConfig() if kind == "beats-base" else BEATsConfig(
            encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=4, embed_dim=32,
            conv_pos=16, conv_pos_groups=4, num_buckets=32, max_distance=64)
        save_beats(BEATs(cfg), tmp / "beats.pt")
        return load_backbone(tmp / "beats.pt", device)
    from asd_core.models.teacher import TeacherNet

    mcfg = TeacherConfig() if kind == "teacher-cnn-base" else TeacherConfig(n_mels=32, channels=(8, 16), embedding_dim=16)
    folder = tmp / "teacher"
    folder.mkdir()
    torch.save(TeacherNet(mcfg).state_dict(), folder / "model.pt")
    (folder / "config.json").write_text(json.dumps({"model": mcfg.to_dict(), "model_hash": "bench", "train": {}}))
    return load_backbone(folder, device)


def run_one(kind: str, steps: int, batch: int, seconds: float, device: str) -> dict:
    import torch

    from asd_core.runtime import configure_threads
    from asd_core.training.objectives import ObjectiveConfig, student_loss

    configure_threads(None)
    with tempfile.TemporaryDirectory() as tmp:
        teacher = _backbone(kind, Path(tmp), device)
    student = teacher.copy()
    student.net.train()
    head = torch.nn.Linear(student.dim, 10).to(device)
    opt = torch.optim.AdamW(list(student.net.parameters()) + list(head.parameters()), lr=1e-4)
    n = int(seconds * 16_000)
    g = torch.Generator().manual_seed(0)
    x = (0.1 * torch.randn(batch, n, generator=g)).to(device)
    tc, tn = torch.randn(batch, student.dim).to(device), torch.randn(batch, student.dim).to(device)
    tags = torch.zeros(batch, 10).to(device)
    tags[:, 0] = tags[:, 5] = 1
    cfg = ObjectiveConfig()
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not counted
        t0 = time.perf_counter()
        emb = student.net(x)
        loss, _ = student_loss(emb, head(emb), tags, tc, tn, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in student.net.parameters())
    out = {"config": kind, "params_M": round(params / 1e6, 2), "batch": batch, "clip_s": seconds, "device": device,
           "steps_per_s": round(steps / sum(times[1:]), 3), "clips_per_s": round(steps * batch / sum(times[1:]), 2),
           "peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if device == "cuda":
        out["peak_gpu_MB"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return out


def mixture_throughput() -> dict:
    """Plan (exact-SNR gains) and render mixtures of the small demo data, clips/s."""
    import numpy as np

    from asd_core.config import Workspace
    from asd_core.demo import make_demo_data
    from asd_core.ingest import ingest_roots
    from asd_core.mixing.noise_library import NoiseLibraryConfig, build_noise_library
    from asd_core.mixing.plan import MixConfig, plan_mixtures
    from asd_core.mixing.render import render
    from asd_core.storage.audio import read_waves

    with tempfile.TemporaryDirectory() as tmp:
        data, ws = Path(tmp) / "data", Workspace(Path(tmp) / "ws").ensure()
        make_demo_data(data, seed=0, size="small")
        ingest_roots(ws, [data], "demo", publish=False)
        lib = build_noise_library(ws, NoiseLibraryConfig(folder=data / "noise"))
        t0 = time.perf_counter()
        result = plan_mixtures(ws, lib, MixConfig())
        plan_s = time.perf_counter() - t0
        rows = result.mixtures.to_pylist() + result.noisy_clips.to_pylist()
        clean = read_waves(ws, {r["clip_id"] for r in rows})
        t0 = time.perf_counter()
        total = 0.0
        for r in rows:
            total += float(np.abs(render(r, clean[r["clip_id"]], lib)[0]).max())
        render_s = time.perf_counter() - t0
        audio_s = sum(r["num_samples"] for r in rows) / 16_000
    return {"mixtures": len(rows), "audio_seconds": round(audio_s), "plan_mixtures_per_s": round(len(rows) / plan_s),
            "render_mixtures_per_s": round(len(rows) / render_s), "render_audio_x_realtime": round(audio_s / render_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS))
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.batch, args.seconds, device)))
        return
    rows = []
    for kind in args.configs:
        batch = min(args.batch, 2) if kind == "beats-base" and device == "cpu" else args.batch
        out = subprocess.run([sys.executable, __file__, "--one", kind, "--steps", str(args.steps), "--batch", str(batch),
                              "--seconds", str(args.seconds), "--device", device], capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    from asd_core.textable import format_table

    print("\nStudent training step (forward + backward + AdamW):\n" + format_table(rows))
    print("\nMixtures (small demo data):\n" + format_table([mixture_throughput()]))


if __name__ == "__main__":
    main()
