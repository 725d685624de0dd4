"""Whole-pipeline commands: pipeline (a config file) and demo (the built-in demo data)."""

from __future__ import annotations

import argparse
from pathlib import Path

from flows.cli.common import add_workspace, check_folder, toml_str


def print_pipeline_report(r: dict, ws: Path) -> None:
    from asd_core.textable import format_table

    print("Stages:\n" + format_table([{"stage": s["stage"], "status": s["status"], "seconds": f"{s['seconds']:.1f}"}
                                      for s in r["stages"]]))
    print(f"\nResults on the clean test clips (official score = harmonic mean of AUC_source, AUC_target and pAUC "
          f"over sections; {r['seconds']:.0f} s in all):\n")
    print(format_table([{k: v for k, v in row.items() if k != "run_id"} for row in r["results"]]))
    if r["noisy"]:
        print("\nNoisy test clips, official score per noise subset and SNR bin (columns: encoder/normalization):\n")
        print(format_table(r["noisy"]))
    if r.get("registered"):
        reg = r["registered"]
        print(f"\nregistered {reg['name']} version {reg['version']} (alias challenger), official score "
              f"{reg['official_score']:.4f}; promote it with: asd promote --workspace {ws}")
    best = r["results"][0] if r["results"] else None
    best_id = best["run_id"] if best else "RUN_ID"
    report = r["reports"].get(_config_key(r, best_id))
    mlflow_db = Path(ws).resolve() / "mlflow" / "mlflow.db"
    lines = [
        "",
        "Look further:",
        f"  asd evaluate --workspace {ws} --run {best_id}      per-section metrics of the best run",
        f"  asd report --workspace {ws} --run {best_id}        (re)build its HTML report",
    ]
    if report:
        lines.append(f"  {report}")
    if r.get("dashboard"):
        lines.append(f"  {r['dashboard']}        the workspace dashboard: every run, charts, registry versions")
    lines += [
        f"  asd sql --workspace {ws} \"SELECT encoder, normalization, official_score FROM run_metrics WHERE noise_subset = 'clean'\"",
        f"  asd sql --workspace {ws} \"SELECT * FROM section_metrics WHERE run_id = '{best_id}'\"",
        f"  duckdb -readonly {ws}/asd.duckdb        the DuckDB CLI, if installed (tables and views: sql/README.md)",
        f"  mlflow ui --backend-store-uri sqlite:///{mlflow_db}        MLflow UI: runs, reports, registered models",
        f"  asd server start --workspace {ws}        a resident Prefect server: UI with later flow runs (http://127.0.0.1:4200)",
    ]
    print("\n".join(lines))


def print_operating_loop(ws: Path, data: Path) -> None:
    """The next steps after ``asd demo``: monitor the held-out operating condition, enroll it, promote."""
    held = data / "held_out"
    if not (held / "enroll").is_dir():
        return
    first = sorted(p for p in (held / "enroll").glob("*/section_*") if p.is_dir())[:1]
    if not first:
        return
    mt, sec = first[0].parent.name, first[0].name.removeprefix("section_")
    print("\n".join([
        "",
        "The operating loop on a new operating condition (README \"The operating loop\"):",
        f"  asd promote --workspace {ws}",
        f"  asd monitor {held / 'test'} --workspace {ws}",
        f"  asd enroll {first[0]} --machine-type {mt} --section {sec} --domain held-out --workspace {ws}",
        f"  asd promote --workspace {ws}",
        f"  asd monitor {held / 'test'} --workspace {ws} --rescore",
    ]))


def _config_key(r: dict, run_id: str) -> str:
    """``<encoder as configured>/<normalization>`` of a run id (students are stored as student-<objective>)."""
    return next((key for key, rid in r["run_ids"].items() if rid == run_id), "")


def cmd_pipeline(args) -> int:
    from asd_core.pipeline.config import load_config

    overrides = list(args.set or [])
    if args.workspace is not None:
        overrides.append(f"workspace={toml_str(args.workspace)}")
    if args.data_root:
        overrides.append("data.roots=[" + ", ".join(toml_str(r) for r in args.data_root) + "]")
    if args.task_runner:
        overrides.append(f"runner.task_runner={toml_str(args.task_runner)}")
    if args.dask_address:
        overrides.append(f"runner.dask_address={toml_str(args.dask_address)}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        from asd_core.pipeline.toml import dumps

        print(dumps(cfg.to_dict()), end="")
        return 0
    if not cfg.data.roots:  # checked before Prefect starts, so the message is not buried in a flow-run traceback
        from asd_core.pipeline.config import PipelineConfigError

        raise PipelineConfigError("data.roots is empty: list the dataset roots in the config or pass --data-root DIR")
    check_folder(Path(cfg.workspace), "workspace", writes=True)
    from flows.pipeline import pipeline_flow

    r = pipeline_flow(config=cfg.to_dict(), refresh=args.refresh)
    print_pipeline_report(r, Path(cfg.workspace))
    return 0


def cmd_demo(args) -> int:
    from asd_core.pipeline.demo import demo_config, demo_data_dir, demo_session

    ws = args.workspace
    data = demo_data_dir(ws)
    cfg = demo_config(ws, data, args.set)  # --set errors come before any file is written
    with demo_session(ws, seed=args.seed, size=args.size, channels=args.channels) as counts:  # busy: refused before writing
        print(f"demo data: {counts['clips']} clips of {', '.join(counts['machines'])} and {counts['noise_files']} noise files under {data}")
        from flows.pipeline import pipeline_flow  # imports prefect (starts its server) only once the workspace is ours

        r = pipeline_flow(config=cfg.to_dict(), refresh=args.refresh)
        if args.channels == 2:
            from flows.channels import channel_comparison_flow

            rows = channel_comparison_flow(workspace=str(ws), encoders=_channel_encoders(Path(ws)))
    print_pipeline_report(r, ws)
    if args.channels == 2:
        from asd_core.textable import format_table

        print("\nTwo microphones, knn (README \"Two microphones\"): near = the pipeline's runs above, far, their fusions, "
              "and near conditioned on far:\n")
        print(format_table([{"encoder": x["encoder"], "channels": x["channels"],
                             "official score": f"{x['official_score']:.4f}" if x["official_score"] is not None else "-",
                             "run_id": x["run_id"]} for x in rows]))
    print_operating_loop(Path(ws), data)
    return 0


def _channel_encoders(ws: Path) -> list[str]:
    """The encoders the pipeline embedded with that can embed stored clips (not the oracle)."""
    from asd_core.config import Workspace
    from asd_core.storage.embeddings import newest_encoder_cards

    return [c["name"] for c in newest_encoder_cards(Workspace(ws)) if c["registry_name"] != "oracle"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pipeline", help="run the whole pipeline from a config file (Prefect flow, cached stages)",
                       description="ingest -> mixtures -> teacher -> student -> embeddings -> scores (+ HTML reports) -> "
                                   "evaluation -> MLflow registration, described by one TOML file (every key and default: "
                                   "deployments/pipeline.toml). Each stage is cached by the content of its inputs and the "
                                   "version of its code: a re-run recomputes only what changed. One run per workspace at a time.")
    p.add_argument("--config", default=None, metavar="FILE", help="TOML config (default: built-in defaults)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config key, value in TOML syntax, e.g. --set teacher.epochs=5 "
                        "--set 'score.normalizations=[\"knn\"]' (repeatable)")
    p.add_argument("--data-root", action="append", type=Path, metavar="DIR", help="dataset root (repeatable; replaces data.roots)")
    p.add_argument("--task-runner", choices=["thread", "dask"], default=None, help="sets runner.task_runner")
    p.add_argument("--dask-address", default=None, help="sets runner.dask_address, e.g. tcp://scheduler:8786")
    p.add_argument("--refresh", action="store_true", help="recompute every stage, ignoring cached results")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as TOML and exit")
    p.add_argument("--workspace", default=None, type=Path,
                   help="overrides the config's workspace (default: the config's, else ./asd-workspace)")
    p.set_defaults(func=cmd_pipeline)

    p = sub.add_parser("demo", help="generate the demo data and run the whole pipeline on it",
                       description="Generate the built-in demo dataset under <workspace>/demo-data and run the whole "
                                   "pipeline on it (asd pipeline with the demo config: spectral encoders, a teacher "
                                   "trained from scratch and its retain-not-denoise student; none/knn/gwrp scoring; "
                                   "HTML reports; MLflow registration), then print the results and where to look further.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["small", "medium", "dcase"], default="small")
    p.add_argument("--channels", type=int, choices=[1, 2], default=1,
                   help="2: two-microphone demo data (near + far, DCASE 2026-style); after the pipeline (near channel), "
                        "also score far, fusion mean / max and near conditioned on far for each encoder")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a key of the demo config (repeatable)")
    p.add_argument("--refresh", action="store_true", help="recompute every stage, ignoring cached results")
    add_workspace(p)
    p.set_defaults(func=cmd_demo)
