"""The student study (issue 17 part 3, the retain-not-denoise paper's claim): per seed, demo data,
mixtures, a teacher trained from scratch and students of it with each objective; the frozen
teacher, the oracle mixture embedding and every student scored (knn) on the clean and the noisy
test sets. Prints the official score per noise subset and SNR bin as mean +- sd over seeds, and
the paired difference of each student to the frozen teacher (mean +- sd of the per-seed
differences).

    .venv/bin/python benchmarks/student_study.py [--size medium] [--seeds 0,1,2] [--difficulty standard]
        [--objectives retain,alignment,tagging,denoise] [--teacher-epochs 10] [--student-epochs 5] [--json OUT]
        [--train-snr -10,10] [--eval-bins=-10,-5,-5,0,0,5,5,10]

``--train-snr`` is the training mixtures' SNR range and ``--eval-bins`` the noisy test sets' SNR
bins (pairs of low, high dB), both passed to `asd mix`: the defaults are `asd mix`'s; higher
values ask whether the student helps where the noise leaves the machine audible.

Everything of one seed shares that seed: demo data, mixture plan, teacher and student
initialisation. The oracle is lam * teacher(clean) + (1 - lam) * teacher(noise) with the
mixtures' lambda (methods.md section 3): an upper reference that needs the clean part, which no
deployed model has. A row where even the oracle is near 0.5 says the noise overwhelms the machine
at that SNR (the data), not that the student failed (the method).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REFERENCE = "teacher"  # the paired differences are student - frozen teacher


def _scores(ws: Path, run_id: str) -> dict[tuple[str, str], float]:
    """(noise subset, SNR bin) -> official score of one run, in noise_comparison's order (clean
    first, then each subset by SNR)."""
    from asd_core.config import Workspace
    from asd_core.evaluation.noise import noise_comparison

    rows = noise_comparison(Workspace(ws), [run_id])
    column = next(c for c in rows[0] if c not in ("noise_subset", "snr_bin"))  # the run's one column
    return {(r["noise_subset"], r["snr_bin"]): r[column] for r in rows}


def _evaluate(ws: Path, encoder: str, options: dict) -> dict[tuple[str, str], float]:
    from flows.embed import embed_flow
    from flows.score import score_flow

    rep = embed_flow(workspace=str(ws), encoder=encoder, encoder_options=options, noisy=True)
    run = score_flow(workspace=str(ws), encoder=rep["encoder"], encoder_version=rep["encoder_version"],
                     normalization="knn", noisy=True)
    return _scores(ws, run["run_id"])


def run_seed(root: Path, seed: int, args) -> dict[str, dict]:
    """encoder label -> {(subset, bin): official score} for one seed; plus per-stage seconds."""
    from asd_core.demo import make_demo_data
    from flows.ingest import ingest_flow
    from flows.mix import mix_flow
    from flows.train_student import train_student_flow
    from flows.train_teacher import train_teacher_flow

    t = {}
    t0 = time.perf_counter()
    data, ws = root / f"data-{seed}", root / f"ws-{seed}"
    make_demo_data(data, seed=seed, size=args.size, difficulty=args.difficulty)
    ingest_flow(roots=[str(data)], workspace=str(ws), dataset_name="demo")
    mix_flow(workspace=str(ws), noise=str(data / "noise"), seed=seed, snr_min=args.train_snr[0], snr_max=args.train_snr[1],
             eval_bins=args.eval_bins)
    t["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    teacher = train_teacher_flow(workspace=str(ws), config={"epochs": args.teacher_epochs, "patience": 5, "seed": seed})
    t["teacher"] = time.perf_counter() - t0
    out = {}
    t0 = time.perf_counter()
    out["teacher"] = _evaluate(ws, "teacher", {"model": teacher["model_dir"]})
    out["oracle"] = _evaluate(ws, "oracle", {"teacher": teacher["model_dir"], "lam": 0.5})
    t["evaluate teacher + oracle"] = time.perf_counter() - t0
    for objective in args.objectives:
        t0 = time.perf_counter()
        student = train_student_flow(workspace=str(ws), teacher=teacher["model_dir"], evaluate=False, register=False,
                                     config={"epochs": args.student_epochs, "patience": 2, "seed": seed,
                                             "objective": {"objective": objective}})
        t[f"student {objective}"] = time.perf_counter() - t0
        out[f"student {objective}"] = _evaluate(ws, "student", {"model": student["model_dir"]})
    print(f"seed {seed}: " + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()), file=sys.stderr, flush=True)
    return out


def summarise(per_seed: list[dict[str, dict]]) -> tuple[list[dict], list[dict]]:
    """(official score mean +- sd per condition and encoder, paired student - teacher per condition)."""
    encoders = list(per_seed[0])
    conditions = list(dict.fromkeys(c for s in per_seed for e in s.values() for c in e))  # as noise_comparison orders them

    def ms(values: list[float]) -> str:
        if not values:
            return "-"
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} +- {sd:.3f}"

    scores, paired = [], []
    for c in conditions:
        row = {"noise_subset": c[0], "snr_bin": c[1]}
        diff = dict(row)
        for e in encoders:
            vals = [s[e][c] for s in per_seed if c in s[e] and s[e][c] is not None]
            row[e] = ms(vals)
            if e.startswith("student"):
                d = [s[e][c] - s[REFERENCE][c] for s in per_seed
                     if s[e].get(c) is not None and s[REFERENCE].get(c) is not None]
                diff[e] = (f"{statistics.mean(d):+.3f} +- {statistics.stdev(d) if len(d) > 1 else 0.0:.3f}" if d else "-")
        scores.append(row)
        paired.append(diff)
    return scores, paired


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="medium", choices=["small", "medium", "dcase"])
    ap.add_argument("--difficulty", default="standard", choices=["standard", "hard"])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--objectives", default="retain,alignment,tagging,denoise")
    ap.add_argument("--teacher-epochs", type=int, default=10)
    ap.add_argument("--student-epochs", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the per-seed scores here")
    ap.add_argument("--train-snr", default="-10,10", help="SNR range of the training mixtures, dB: MIN,MAX")
    ap.add_argument("--eval-bins", default="-10,-5,-5,0,0,5,5,10",
                    help="SNR bins of the noisy test sets, dB: LOW,HIGH pairs (write --eval-bins=-10,... for a negative start)")
    args = ap.parse_args()
    lo_hi = [float(v) for v in args.train_snr.split(",")]
    edges = [float(v) for v in args.eval_bins.split(",")]
    if len(lo_hi) != 2 or len(edges) % 2 or not edges:
        ap.error("--train-snr takes MIN,MAX and --eval-bins LOW,HIGH pairs")
    args.train_snr, args.eval_bins = lo_hi, [edges[i : i + 2] for i in range(0, len(edges), 2)]
    args.objectives = [o for o in args.objectives.split(",") if o]
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry calls from an offline machine
    from flows import prefect_server

    prefect_server.install()  # one temporary Prefect server for every flow of this process, stopped at exit
    from asd_core.textable import format_table

    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    per_seed = []
    with tempfile.TemporaryDirectory(prefix="asd-student-study-") as tmp:
        for seed in seeds:
            per_seed.append(run_seed(Path(tmp), seed, args))
            if args.json:  # after every seed: a long study interrupted keeps what it measured
                args.json.write_text(json.dumps([{e: {f"{k[0]}|{k[1]}": v for k, v in s.items()} for e, s in r.items()}
                                                 for r in per_seed], indent=1))
    scores, paired = summarise(per_seed)
    print(f"\nOfficial score (knn), mean +- sd over seeds {args.seeds}; {args.size} demo data ({args.difficulty}), "
          f"teacher {args.teacher_epochs} epochs, students {args.student_epochs} epochs, training mixtures at "
          f"{args.train_snr[0]:g}..{args.train_snr[1]:g} dB:\n")
    print(format_table(scores))
    print(f"\nPaired difference student - frozen teacher (mean +- sd over seeds):\n")
    print(format_table(paired))
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
