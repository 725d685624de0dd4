"""Teacher quality over seeds: train, embed and score the teacher of one config for several seeds.

On small data the trained embedding varies with the seed by several points of official score,
so one run says little; this prints the official score (methods.md section 6) per seed and
normalization, their mean and spread, next to the spectral encoder it has to beat. It uses the
library stages of `asd train-teacher`, `asd embed` and `asd score` on an ingested workspace:

    .venv/bin/asd make-demo-data /tmp/medium --size medium --seed 0
    .venv/bin/asd ingest --workspace /tmp/ws-medium /tmp/medium
    .venv/bin/python benchmarks/teacher_seeds.py --workspace /tmp/ws-medium --seeds 0 1 2 \\
        [--config '{"crop_seconds": 2.0}'] [--normalizations knn none] [--baseline logmel-stats]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def score_encoder(ws, encoder, normalization: str) -> float | None:
    """Embed every audio partition with ``encoder`` (kept if already done), score, return the official score."""
    from asd_core.embedding.embed import audio_partitions, embed_partition, write_encoder_card
    from asd_core.scoring import ScoringConfig
    from asd_core.scoring.run import load_sections, machine_types_with_embeddings, run_id_for, score_section, write_run
    from asd_core.storage.catalog import connect, publish_run
    from asd_core.tracking.registry import official_score

    write_encoder_card(ws, encoder)
    for machine_type, dataset, path in audio_partitions(ws):
        embed_partition(ws, encoder, machine_type, dataset, path, 16, 0)
    cfg = ScoringConfig(normalization=normalization, metric=encoder.distance)
    results = [score_section(ws, encoder.name, encoder.version, sec, cfg)
               for mt in machine_types_with_embeddings(ws, encoder.name, encoder.version)
               for sec in load_sections(ws, encoder.name, encoder.version, mt)]
    run_id = run_id_for(encoder.name, encoder.version, cfg)
    scores, thresholds = write_run(ws, run_id, results)
    publish_run(ws, {"run_id": run_id, "encoder": encoder.name, "encoder_version": encoder.version,
                     "normalization": normalization, "params": cfg.params(), "transductive": False}, scores, thresholds)
    with connect(ws, read_only=True) as con:
        return official_score(con, run_id)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", type=Path, required=True, help="an ingested workspace (asd ingest)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--config", default="{}", help="JSON object of TeacherTrainConfig fields (seed is set per run)")
    p.add_argument("--normalizations", nargs="+", default=["knn", "none"])
    p.add_argument("--baseline", default="logmel-stats", help="spectral encoder scored alongside ('' for none)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()

    from asd_core.config import Workspace
    from asd_core.encoders import get_encoder
    from asd_core.runtime import configure_threads
    from asd_core.training.teacher import TeacherTrainConfig, train_teacher

    configure_threads(args.threads)
    ws = Workspace(args.workspace)
    rows: dict[str, list[float]] = {}
    if args.baseline:
        base = get_encoder(args.baseline)
        for norm in args.normalizations:
            rows[f"{args.baseline} / {norm}"] = [score_encoder(ws, base, norm)]
    for seed in args.seeds:
        cfg = TeacherTrainConfig.from_dict({**json.loads(args.config), "seed": seed})
        t0 = time.perf_counter()
        result = train_teacher(ws, cfg)
        encoder = get_encoder("teacher", model=str(result.model_dir))
        for norm in args.normalizations:
            score = score_encoder(ws, encoder, norm)
            rows.setdefault(f"teacher / {norm}", []).append(score)
            print(f"seed {seed}: best epoch {result.best_epoch} of {result.epochs_run}, {norm}: official {score:.4f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nconfig {cfg.to_dict() | {'seed': args.seeds}}")
    print(f"{'encoder / normalization':28s} {'mean':>7s} {'min':>7s} {'max':>7s}  per seed")
    for name, values in rows.items():
        spread = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:28s} {statistics.mean(values):7.3f} {min(values):7.3f} {max(values):7.3f}  {spread}")


if __name__ == "__main__":
    main()
