"""Two-microphone study (issue 20 part 4), spectral encoders: on two-channel demo data of several
seeds, the official score (and per-domain AUCs) of near only (today's behaviour), far only, the mean
downmix (ingested with --channel mean), fusion mean / max and the near channel conditioned on the far
one; mean +- sd over seeds and paired differences to near only.

    .venv/bin/python benchmarks/two_channel.py [--size medium] [--seeds 0,1,2] [--encoders logmel-stats] [--students]

``--students`` also trains, per seed, a teacher from scratch (10 epochs, patience 5, as asd demo)
and two retain-not-denoise students of it (5 epochs, patience 2): one on mixtures with the
synthetic noise library (asd mix --noise OUT/noise), one on mixtures with the far channels of the
training clips (asd mix --noise-from-channel far); the frozen teacher and both students are
scored (knn, near channel) on the clean test clips.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _official(ws: Path, run_id: str) -> dict:
    from asd_core.config import Workspace
    from asd_core.storage.catalog import connect, query_rows

    with connect(Workspace(ws), read_only=True) as con:
        return query_rows(con, "SELECT official_score, hmean_auc_source, hmean_auc_target, hmean_pauc FROM run_metrics "
                               "WHERE noise_subset = 'clean' AND run_id = ?", [run_id])[0]


def _encoder_run(ws: Path, encoder: str, model_dir: str) -> dict:
    """Embed the clean clips with a teacher / student folder, score knn; the run's metrics."""
    from flows.embed import embed_flow
    from flows.score import score_flow

    rep = embed_flow(workspace=str(ws), encoder=encoder, encoder_options={"model": model_dir})
    run = score_flow(workspace=str(ws), encoder=rep["encoder"], encoder_version=rep["encoder_version"], normalization="knn")
    return _official(ws, run["run_id"])


def _students(ws: Path, data: Path) -> list[dict]:
    from flows.mix import mix_flow
    from flows.train_student import train_student_flow
    from flows.train_teacher import train_teacher_flow

    teacher = train_teacher_flow(workspace=str(ws), config={"epochs": 10, "patience": 5})["model_dir"]
    rows = [{"encoder": "teacher", "channels": "near (frozen teacher)", **_encoder_run(ws, "teacher", teacher)}]
    for label, mix in (("student, synthetic noise", {"noise": str(data / "noise")}),
                       ("student, far-channel noise", {"noise_from_channel": "far", "supplemental": False})):
        mix_flow(workspace=str(ws), seed=0, **mix)
        student = train_student_flow(workspace=str(ws), teacher=teacher, config={"epochs": 5, "patience": 2},
                                     evaluate=False, register=False)["model_dir"]
        rows.append({"encoder": "teacher", "channels": label, **_encoder_run(ws, "student", student)})
    return rows


def _run_seed(root: Path, seed: int, size: str, encoders: list[str], students: bool = False) -> list[dict]:
    from asd_core.demo import make_demo_data
    from flows.channels import channel_comparison_flow
    from flows.embed import embed_flow
    from flows.ingest import ingest_flow
    from flows.score import score_flow
    from asd_core.storage.catalog import connect, query_rows

    data = root / f"data-{seed}"
    make_demo_data(data, seed=seed, size=size, channels=2)
    ws, mean_ws = root / f"ws-{seed}", root / f"ws-mean-{seed}"
    ingest_flow(roots=[str(data)], workspace=str(ws), dataset_name="demo")
    ingest_flow(roots=[str(data)], workspace=str(mean_ws), dataset_name="demo", channel="mean")
    rows = []
    for enc in encoders:
        embed_flow(workspace=str(ws), encoder=enc)
        embed_flow(workspace=str(mean_ws), encoder=enc)
        run = score_flow(workspace=str(mean_ws), encoder=enc, normalization="knn")
        from asd_core.config import Workspace

        with connect(Workspace(mean_ws), read_only=True) as con:
            m = query_rows(con, "SELECT official_score, hmean_auc_source, hmean_auc_target, hmean_pauc FROM run_metrics "
                                "WHERE noise_subset = 'clean' AND run_id = ?", [run["run_id"]])[0]
        rows.append({"encoder": enc, "channels": "mean downmix", **m})
    rows += channel_comparison_flow(workspace=str(ws), encoders=encoders)
    if students:
        rows += _students(ws, data)
    for r in rows:
        r["seed"] = seed
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="medium", choices=["small", "medium", "dcase"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--encoders", default="logmel-stats")
    ap.add_argument("--students", action="store_true", help="also the frozen teacher and students on synthetic / far noise")
    args = ap.parse_args()
    from flows import prefect_server

    prefect_server.install()  # one temporary Prefect server for every flow of this process, stopped at exit
    seeds = [int(s) for s in args.seeds.split(",")]
    encoders = args.encoders.split(",")
    from asd_core.textable import format_table

    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="asd-two-channel-") as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            rows += _run_seed(Path(tmp), seed, args.size, encoders, args.students)
            print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    table = []
    for enc in dict.fromkeys(r["encoder"] for r in rows):
        base = "near" if enc != "teacher" else "near (frozen teacher)"
        near = {r["seed"]: r["official_score"] for r in rows if r["encoder"] == enc and r["channels"] == base}
        for label in dict.fromkeys(r["channels"] for r in rows if r["encoder"] == enc):
            sel = [r for r in rows if r["encoder"] == enc and r["channels"] == label]
            off = [r["official_score"] for r in sel]
            diff = [r["official_score"] - near[r["seed"]] for r in sel]
            sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
            table.append({
                "encoder": enc, "channels": label,
                "official": f"{statistics.mean(off):.3f} +- {sd(off):.3f}",
                "AUC source": f"{statistics.mean(r['hmean_auc_source'] for r in sel):.3f}",
                "AUC target": f"{statistics.mean(r['hmean_auc_target'] for r in sel):.3f}",
                "pAUC": f"{statistics.mean(r['hmean_pauc'] for r in sel):.3f}",
                "vs near (paired)": "-" if label == base else f"{statistics.mean(diff):+.3f} +- {sd(diff):.3f}",
            })
    print(f"two-channel {args.size} demo data, seeds {args.seeds}, knn K=1; {time.perf_counter() - start:.0f} s in all; "
          "teacher rows: paired differences to the frozen teacher\n")
    print(format_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
