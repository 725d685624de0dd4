"""Official score over a grid of K (knn) and r (gwrp), the ``none`` baseline and the label-free
``auto`` choice (issue 15 part 4), per data set and training-free encoder.

For each data set a workspace under ``--root`` is built if missing (``asd make-demo-data`` +
``asd ingest``, or ``asd ingest`` of a DCASE-layout folder), embedded with each encoder, and
scored with one grid run through the ``asd`` CLI (``asd score --normalization knn,gwrp,none
--k 1,2,4,8,auto --r 0,0.5,0.75,0.9,auto``, one embedding read per machine type). The table per
(data set, encoder) lists every run's official score and its parts (``asd evaluate --compare``),
then the best and worst fixed choice in hindsight next to the auto run, per normalisation.

    nice .venv/bin/python benchmarks/param_grid.py --root /tmp/asd-grid
    nice .venv/bin/python benchmarks/param_grid.py --root /tmp/asd-grid --data small,medium \\
        --data real=../shared/realdata/dcase2023_dev_mini/dev_data

Official scores of sections lacking a domain or labelled test clips are undefined; such runs
show an empty score and are left out of best / worst.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

DEFAULT_DATA = "small,real=/work/shared/realdata/dcase2023_dev_mini/dev_data"


def _asd(argv: list[str]) -> None:
    from flows.cli import main

    rc = main(argv)
    if rc:
        raise SystemExit(f"asd {' '.join(argv)} failed with exit status {rc}")


def _workspace(root: Path, name: str, source: str | None) -> Path:
    """The data set's workspace under ``root``, built (data, ingest) when it has no catalog yet."""
    ws = root / name
    if (ws / "asd.duckdb").exists():
        return ws
    if source is None:  # a demo size
        data = root / f"{name}-data"
        if not data.exists():
            _asd(["make-demo-data", str(data), "--size", name, "--seed", "0"])
        _asd(["ingest", str(data), "--workspace", str(ws), "--dataset-name", "demo"])
    else:
        _asd(["ingest", source, "--workspace", str(ws), "--dataset-name", name])
    return ws


def _score(row: dict) -> float:
    return float(row["official_score"]) if row["official_score"] not in ("", None) else math.nan


def _table(rows: list[dict]) -> str:
    from asd_core.textable import format_table

    shown = [{"run": f"{r['normalization']} {'k=' + str(r['k']) if r['k'] != '' else ''}"
                     f"{'r=' + str(r['r']) if r['r'] != '' else ''}".strip(),
              "official": r["official_score"], "auc_source": r["auc_source"], "auc_target": r["auc_target"],
              "pauc": r["pauc"], "auto chose": r["chosen"]} for r in rows]
    return format_table(shown)


def _summary(rows: list[dict]) -> str:
    """Per normalisation with a parameter: best / worst fixed choice in hindsight and the auto run."""
    from asd_core.textable import format_table

    none = [_score(r) for r in rows if r["normalization"] == "none"]
    out = []
    for norm, param in (("knn", "k"), ("gwrp", "r")):
        runs = [r for r in rows if r["normalization"] == norm]
        fixed = [(r[param], _score(r)) for r in runs if str(r[param]) != "auto" and not math.isnan(_score(r))]
        auto = [r for r in runs if str(r[param]) == "auto"]
        if not runs:
            continue
        best = max(fixed, key=lambda t: t[1]) if fixed else ("", math.nan)
        worst = min(fixed, key=lambda t: t[1]) if fixed else ("", math.nan)
        a = _score(auto[0]) if auto else math.nan
        rank = sum(s > a for _, s in fixed) + 1 if fixed and not math.isnan(a) else ""
        out.append({"normalization": norm, "none": f"{none[0]:.4f}" if none and not math.isnan(none[0]) else "",
                    "best fixed": f"{param}={best[0]}: {best[1]:.4f}" if fixed else "",
                    "worst fixed": f"{param}={worst[0]}: {worst[1]:.4f}" if fixed else "",
                    "auto": f"{a:.4f}" if not math.isnan(a) else "",
                    "auto rank": f"{rank} of {len(fixed) + 1}" if rank else "",
                    "auto chose": auto[0]["chosen"] if auto else ""})
    return format_table(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True, help="folder holding one workspace per data set")
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="comma list: demo sizes (small, medium) and NAME=FOLDER of DCASE-layout recordings")
    ap.add_argument("--encoders", default="logmel-stats,stft-mean")
    ap.add_argument("--k", default="1,2,4,8,auto")
    ap.add_argument("--r", default="0,0.5,0.75,0.9,auto")
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows import prefect_server

    prefect_server.install()  # one temporary Prefect server for every command of this process

    from asd_core.config import Workspace
    from asd_core.evaluation.compare import compare_runs

    args.root.mkdir(parents=True, exist_ok=True)
    for item in [d.strip() for d in args.data.split(",") if d.strip()]:
        name, _, source = item.partition("=")
        t0 = time.time()
        ws = _workspace(args.root, name, source or None)
        for encoder in args.encoders.split(","):
            _asd(["embed", "--workspace", str(ws), "--encoder", encoder])
            t1 = time.time()
            k = args.k
            try:
                _asd(["score", "--workspace", str(ws), "--encoder", encoder, "--normalization", "knn,gwrp,none",
                      "--k", k, "--r", args.r])
            except SystemExit:  # a K that no section has K + 1 references for: the feasible part
                k = ",".join(v for v in k.split(",") if v in ("1", "auto"))
                print(f"note: some K of {args.k} exceed every section's references; re-running with --k {k}")
                _asd(["score", "--workspace", str(ws), "--encoder", encoder, "--normalization", "knn,gwrp,none",
                      "--k", k, "--r", args.r])
            t2 = time.time()
            rows = [r for r in compare_runs(Workspace(ws)) if r["encoder"] == encoder]
            print(f"\n=== {name} / {encoder}  (--k {k} --r {args.r}; grid scored in {t2 - t1:.1f} s; {ws})")
            print(_table(rows))
            print(_summary(rows))
        print(f"--- {name}: {time.time() - t0:.1f} s in all")


if __name__ == "__main__":
    main()
