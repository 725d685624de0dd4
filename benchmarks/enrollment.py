"""False alarms and recall on a new operating condition, before and after enrolling 10 of its
normal clips, at the section's single threshold, for ``knn`` (local-density normalisation) and
``none`` (issue 16 part 4).

In a temporary folder (or ``--root``):

1. ``asd make-demo-data --held-out-domain`` (``--size``, ``--seed``): dev_data plus, per machine
   type, a held-out domain no training set contains (other attribute values and background):
   ``held_out/test`` (normal and anomalous clips), ``held_out/enroll`` (``--enroll`` normal clips).
2. ``asd ingest`` of dev_data, ``asd embed`` with one training-free encoder (``--encoder``,
   default ``logmel-stats``), one ``asd score`` run per normalisation (K = ``--k``, threshold
   quantile = ``ScoringConfig``'s), each registered as its own model (``asd-bench-<norm>``) and
   promoted to ``champion``.
3. Per normalisation: load the champion as ``asd monitor`` does (``load_model`` + ``score_file``)
   and score, with the section's single threshold, the source and target test clips of dev_data
   and the held-out test clips: FAR = share of normal clips above the threshold, recall = share
   of anomalous clips above it (and the threshold-free AUC of each domain).
4. ``asd_core.enrollment.enroll`` the held-out enrollment clips of every machine type into the
   champion (chained: each enrollment builds on the previous version, so the last version holds
   every machine type's new domain), then score everything again with that version.

    nice .venv/bin/python benchmarks/enrollment.py                 # small demo data: about 50 s on 2 cores
    nice .venv/bin/python benchmarks/enrollment.py --size medium --json /tmp/enroll.json   # about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np

DOMAIN = "held_out"  # the enrolled domain's name, as make-demo-data names it


def _asd(argv: list[str]) -> None:
    from flows.cli import main

    rc = main(argv)
    if rc:
        raise SystemExit(f"asd {' '.join(argv)} failed with exit status {rc}")


def _clip_sets(data: Path, machine: str) -> dict[str, dict[str, list[Path]]]:
    """domain -> label -> files: source / target test clips of dev_data, the held-out test clips."""
    test = data / "dev_data" / "raw" / machine / "test"
    held = data / "held_out" / "test" / machine / "section_00"
    out = {}
    for domain in ("source", "target"):
        out[domain] = {label: sorted(test.glob(f"section_00_{domain}_test_{label}_*.wav")) for label in ("normal", "anomaly")}
    out[DOMAIN] = {label: sorted(held.glob(f"{label}_*.wav")) for label in ("normal", "anomaly")}
    return out


def _score_files(model, machine: str, files: list[Path]) -> tuple[np.ndarray, float]:
    """Scores of ``files`` with the model's section detector, decoded and embedded as ``asd monitor`` does."""
    from asd_core.monitor.discover import Candidate
    from asd_core.monitor.run import score_file

    scores, threshold = [], None
    for path in files:
        row, _ = score_file(model, Candidate(path, machine, "00", datetime(2026, 1, 1), "benchmark"))
        scores.append(row["score"])
        threshold = row["threshold"]
    return np.asarray(scores, np.float64), float(threshold)


def _auc(normal: np.ndarray, anomaly: np.ndarray) -> float:
    """P(anomaly score > normal score), ties counted half (Mann-Whitney)."""
    if not normal.size or not anomaly.size:
        return float("nan")
    diff = anomaly[:, None] - normal[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def _measure(model, machine: str, sets: dict) -> dict:
    out = {}
    for domain, labels in sets.items():
        normal, threshold = _score_files(model, machine, labels["normal"])
        anomaly, _ = _score_files(model, machine, labels["anomaly"])
        out[domain] = {"threshold": threshold, "n_normal": int(normal.size), "n_anomaly": int(anomaly.size),
                       "false_alarms": int((normal > threshold).sum()), "detected": int((anomaly > threshold).sum()),
                       "far": float((normal > threshold).mean()), "recall": float((anomaly > threshold).mean()),
                       "auc": _auc(normal, anomaly), "median_normal_score": float(np.median(normal))}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _rows(results: dict) -> list[dict]:
    rows = []
    for norm, per_machine in results.items():
        stages = ("before", "after")
        pooled = {s: {} for s in stages}
        for machine, stage_res in per_machine.items():
            for stage in stages:
                r = stage_res[stage]
                rows.append(_row(machine, norm, stage, r))
                for dom, m in r["domains"].items():
                    p = pooled[stage].setdefault(dom, {"n_normal": 0, "n_anomaly": 0, "false_alarms": 0, "detected": 0})
                    for key in p:
                        p[key] += m[key]
        for stage in stages:
            doms = {d: {**p, "far": p["false_alarms"] / max(p["n_normal"], 1), "recall": p["detected"] / max(p["n_anomaly"], 1),
                        "auc": float("nan"), "threshold": float("nan")} for d, p in pooled[stage].items()}
            rows.append(_row("all (pooled)", norm, stage, {"version": "", "domains": doms}))
    return rows


def _row(machine: str, norm: str, stage: str, r: dict) -> dict:
    d = r["domains"]
    thr = d["source"]["threshold"]
    return {"machine_type": machine, "norm": norm, "model": f"{stage}" + (f" (v{r['version']})" if r["version"] else ""),
            "threshold": "" if np.isnan(thr) else f"{thr:.3f}",
            "src FAR": _pct(d["source"]["far"]), "src recall": _pct(d["source"]["recall"]),
            "tgt FAR": _pct(d["target"]["far"]), "tgt recall": _pct(d["target"]["recall"]),
            "new FAR": _pct(d[DOMAIN]["far"]), "new recall": _pct(d[DOMAIN]["recall"]),
            "new FAR - src FAR": f"{100 * (d[DOMAIN]['far'] - d['source']['far']):+.0f} pt",
            "src AUC": "" if np.isnan(d["source"]["auc"]) else f"{d['source']['auc']:.3f}",
            "new AUC": "" if np.isnan(d[DOMAIN]["auc"]) else f"{d[DOMAIN]['auc']:.3f}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="small", choices=["small", "medium", "dcase"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--encoder", default="logmel-stats", help="a training-free encoder (default: %(default)s)")
    ap.add_argument("--k", type=int, default=None, help="K of knn (default: ScoringConfig's)")
    ap.add_argument("--enroll", type=int, default=10, help="enrollment clips per section (default: %(default)s)")
    ap.add_argument("--normalizations", default="knn,none")
    ap.add_argument("--root", type=Path, default=None, help="work folder, kept (default: a temporary folder, removed)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", module=r"mlflow\..*")  # pickling / input-example advice on every registration
    from flows import prefect_server

    prefect_server.install()  # one temporary Prefect server for every flow of this process

    from asd_core.config import Workspace
    from asd_core.demo import SIZES, make_demo_data
    from asd_core.enrollment import enroll
    from asd_core.monitor.model import load_model
    from asd_core.scoring.config import ScoringConfig
    from asd_core.textable import format_table
    from asd_core.tracking.registry import promote, register_run
    from asd_core.tracking.store import TrackingConfig
    from flows.score import score_flow

    import mlflow  # noqa: F401 - imported first so its logging set-up does not undo the level below

    logging.getLogger("mlflow").setLevel(logging.ERROR)

    k = args.k if args.k is not None else ScoringConfig.k
    norms = [n.strip() for n in args.normalizations.split(",") if n.strip()]
    root = args.root or Path(tempfile.mkdtemp(prefix="asd-enroll-bench-"))
    data, ws_root = root / "data", root / "ws"
    ws = Workspace(ws_root)
    timings = {}
    t0 = time.time()
    try:
        counts = make_demo_data(data, seed=args.seed, size=args.size, held_out=True, held_out_enroll=args.enroll)
        machines = counts["machines"]
        timings["data"] = time.time() - t0
        t = time.time()
        _asd(["ingest", str(data / "dev_data"), "--workspace", str(ws_root), "--dataset-name", "demo"])
        _asd(["embed", "--workspace", str(ws_root), "--encoder", args.encoder])
        timings["ingest+embed"] = time.time() - t
        results: dict = {}
        for norm in norms:
            t = time.time()
            report = score_flow(workspace=str(ws_root), encoder=args.encoder, normalization=norm, k=k)
            tracking = TrackingConfig(model_name=f"asd-bench-{norm}")
            reg = register_run(ws, report["run_id"], tracking)
            promote(ws, tracking, reg["version"])
            timings[f"{norm}: score+register"] = time.time() - t
            t = time.time()
            champion = load_model(ws, f"{tracking.model_name}@champion")
            sets = {m: _clip_sets(data, m) for m in machines}
            results[norm] = {m: {"before": {"version": champion.version, "domains": _measure(champion, m, sets[m])}}
                             for m in machines}
            timings[f"{norm}: score before"] = time.time() - t
            t = time.time()
            spec, chain = f"{tracking.model_name}@champion", []
            for m in machines:
                e = enroll(ws, data / "held_out" / "enroll" / m / "section_00", m, "00", DOMAIN, model=spec)
                e = e.as_dict() if hasattr(e, "as_dict") else dict(e)  # a dict or a result object with as_dict
                refs = (f", references {e['references_before']} -> {e['references_after']}"
                        if "references_after" in e else "")
                chain.append(f"{m}: v{e['parent_version']} -> v{e['version']}{refs}")
                spec = f"{e['name']}/{e['version']}"
            timings[f"{norm}: enroll"] = time.time() - t
            t = time.time()
            enrolled = load_model(ws, spec)
            for m in machines:
                results[norm][m]["after"] = {"version": enrolled.version, "domains": _measure(enrolled, m, sets[m])}
            results[norm]["_chain"] = chain
            timings[f"{norm}: score after"] = time.time() - t
        total = time.time() - t0

        spec_size = SIZES[args.size]
        chains = {n: results[n].pop("_chain") for n in norms}
        held = counts["held_out"]
        print(f"\n=== Enrollment of a held-out domain: single threshold per section, before and after enrolling "
              f"{args.enroll} normal clips")
        print(f"data: asd make-demo-data --size {args.size} --seed {args.seed} --held-out-domain; machine types "
              f"{', '.join(machines)}, 1 section each; references {spec_size.source_train} source + "
              f"{spec_size.target_train} target normal clips; test clips per machine type: source and target "
              f"{spec_size.test_per_cell} normal + {spec_size.test_per_cell} anomalous each, held-out domain "
              f"{spec_size.held_out_test} + {spec_size.held_out_test}; {spec_size.duration_s:g} s clips")
        print("held-out operating condition: " + "; ".join(f"{m} {' / '.join(a)}" for m, a in held["attributes"].items()))
        print(f"encoder {args.encoder}; normalisations {', '.join(norms)} (knn K = {k}); threshold: the "
              f"{ScoringConfig.threshold_quantile:g} quantile of leave-one-out reference scores, one per section, "
              f"refit by the enrollment; scored as asd monitor scores (load_model + score_file)")
        for n in norms:
            print(f"enrollment chain {n}: {'; '.join(chains[n])}")
        print("columns: FAR = normal clips above the threshold, recall = anomalous clips above it; src / tgt = "
              "dev_data source / target test clips; new = held-out domain test clips; AUC threshold-free\n")
        print(format_table(_rows(results)))
        print("\n" + format_table([{"step": k_, "seconds": f"{v:.1f}"} for k_, v in timings.items()]))
        print(f"total {total:.1f} s (work folder {root})")
        if args.json:
            args.json.write_text(json.dumps({"args": {k_: str(v) for k_, v in vars(args).items()}, "k": k,
                                             "results": results, "chains": chains, "timings": timings}, indent=2))
            print(f"figures written to {args.json}")
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
