"""Teacher quality over seeds: train, embed and score the teacher of one config for several seeds.

On small data the trained embedding varies with the seed by several points of official score,
so one run says little; this prints the official score (methods.md section 6) per seed and
normalization, their mean and spread, next to the spectral encoder it has to beat and (with
``--untrained``) the untrained net of the same seed, the weights training starts from, embedded
and scored by the same flows: the figure that says whether the data lets training matter
(issue 17 part 1). It uses the library call behind `asd train-teacher`, then the `asd embed`
and `asd score` flows, on an ingested workspace:

    .venv/bin/asd make-demo-data /tmp/medium --size medium --seed 0
    .venv/bin/asd ingest --workspace /tmp/ws-medium /tmp/medium
    .venv/bin/python benchmarks/teacher_seeds.py --workspace /tmp/ws-medium --seeds 0 1 2 \\
        [--config '{"crop_seconds": 2.0}'] [--normalizations knn none] [--baseline logmel-stats] [--untrained]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def score_encoder(workspace: Path, encoder: str, normalizations: list[str], options: dict | None = None) -> dict:
    """`asd embed` once, then `asd score` per normalization (the Prefect flows); {normalization: official score}."""
    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect
    from asd_core.tracking.registry import official_score
    from flows.embed import embed_flow
    from flows.score import score_flow

    embedded = embed_flow(workspace=str(workspace), encoder=encoder, encoder_options=options)
    runs = {norm: score_flow(workspace=str(workspace), encoder=embedded["encoder"], normalization=norm,
                             encoder_version=embedded["encoder_version"])["run_id"] for norm in normalizations}
    with connect(Workspace(workspace), read_only=True) as con:
        return {norm: official_score(con, run_id) for norm, run_id in runs.items()}


def save_untrained(trained: Path, seed: int, out: Path) -> Path:
    """A model folder holding the untrained net of ``seed`` under the trained folder's card."""
    import torch

    from asd_core.models.config import TeacherConfig
    from asd_core.models.teacher import TeacherNet
    from asd_core.training import loop

    card = json.loads((trained / "config.json").read_text())
    torch.manual_seed(seed)  # as train_teacher does before it builds the net
    net = TeacherNet(TeacherConfig.from_card(card["model"]))
    blob = loop.state_dict_blob({k: v.cpu() for k, v in net.state_dict().items()})
    loop.save_model(out, blob, lambda model_hash: {**card, "model_hash": model_hash, "best_epoch": 0, "history": []})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", type=Path, required=True, help="an ingested workspace (asd ingest)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--config", default="{}", help="JSON object of TeacherTrainConfig fields (seed is set per run)")
    p.add_argument("--normalizations", nargs="+", default=["knn", "none"])
    p.add_argument("--baseline", default="logmel-stats", help="spectral encoder scored alongside ('' for none)")
    p.add_argument("--untrained", action="store_true",
                   help="also score the untrained net of each seed (written beside the workspace, never into it)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows import prefect_server

    prefect_server.install()  # the flows' Prefect server stops with this process, however it ends (Ctrl-C, kill)

    from asd_core.config import Workspace
    from asd_core.runtime import configure_threads
    from asd_core.training.teacher import TeacherTrainConfig, train_teacher

    configure_threads(args.threads)
    ws = Workspace(args.workspace)
    rows: dict[str, list[float]] = {}
    if args.baseline:
        for norm, score in score_encoder(args.workspace, args.baseline, args.normalizations).items():
            rows[f"{args.baseline} / {norm}"] = [score]
    for seed in args.seeds:
        cfg = TeacherTrainConfig.from_dict({**json.loads(args.config), "seed": seed})
        t0 = time.perf_counter()
        result = train_teacher(ws, cfg)
        scores = score_encoder(args.workspace, "teacher", args.normalizations, {"model": str(result.model_dir)})
        for norm, score in scores.items():
            rows.setdefault(f"teacher / {norm}", []).append(score)
            print(f"seed {seed}: best epoch {result.best_epoch} of {result.epochs_run}, {norm}: official {score:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
        if args.untrained:
            with tempfile.TemporaryDirectory(dir=args.workspace.parent, prefix="untrained-teacher-") as tmp:
                folder = save_untrained(result.model_dir, seed, Path(tmp) / "model")
                for norm, score in score_encoder(args.workspace, "teacher", args.normalizations,
                                                 {"model": str(folder)}).items():
                    rows.setdefault(f"untrained / {norm}", []).append(score)
                    print(f"seed {seed}: untrained, {norm}: official {score:.4f}", flush=True)
    print(f"\nconfig {cfg.to_dict() | {'seed': args.seeds}}")
    print(f"{'encoder / normalization':28s} {'mean':>7s} {'min':>7s} {'max':>7s}  per seed")
    for name, values in rows.items():
        spread = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:28s} {statistics.mean(values):7.3f} {min(values):7.3f} {max(values):7.3f}  {spread}")


if __name__ == "__main__":
    main()
