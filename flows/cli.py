"""The ``asd`` command: one sub-command per pipeline stage, each with ``--workspace``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from asd_core.config import PIPELINE_SAMPLE_RATE

DEFAULT_WORKSPACE = "./asd-workspace"


def _prefect_env() -> None:
    """Defaults for the temporary local Prefect server (set before prefect is imported)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "asd")
    # library code also logs outside flow runs (make-demo-data, sql): keep those lines local
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE, type=Path,
                   help="folder holding Parquet datasets, asd.duckdb, indexes and the MLflow store (default: %(default)s)")


# Commands that only read the workspace: a read-only workspace is fine for them.
READ_ONLY_COMMANDS = {"sql", "evaluate", "export-dcase"}
# Commands whose --workspace is not used (make-demo-data writes OUT only).
NO_WORKSPACE_COMMANDS = {"make-demo-data"}


def _check_folder(path: Path, what: str, writes: bool) -> None:
    """A one-line error, before anything starts, when ``path`` (a folder to use) is a file, lies under a
    file, or (``writes``) cannot be written. Root passes the write check whatever the permissions say."""
    path = Path(path).expanduser()
    existing = next(p for p in (path.absolute(), *path.absolute().parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == path.absolute() else f"lies under the file {existing}"
        raise ValueError(f"{what} {path} {where}, not a folder")
    if writes and not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} is not writable: no write permission on {existing}")


def _check_workspace_arg(args) -> None:
    """Check ``--workspace`` of the chosen command (pipeline also checks the workspace its config names)."""
    if getattr(args, "workspace", None) is None or args.command in NO_WORKSPACE_COMMANDS:
        return
    _check_folder(args.workspace, "--workspace", writes=args.command not in READ_ONLY_COMMANDS)


def _print_ingest_report(report: dict) -> None:
    from asd_core.textable import format_table

    print(format_table(report["summary"]))
    print(f"\n{report['clips']} clips in {report['workspace']} "
          f"({report['decoded']} decoded, {report['reused']} unchanged, {report['removed']} removed); "
          f"{len(report['quarantined'])} quarantined")
    for q in report["quarantined"]:
        where = Path(q["root"], q["relative_path"]) if q["relative_path"] else Path(q["root"])
        print(f"  quarantined: {where}: {q['reason']}", file=sys.stderr)
    for w in report.get("warnings", []):
        print(f"  warning: {w}", file=sys.stderr)


def cmd_make_demo_data(args) -> int:
    from asd_core.demo import make_demo_data

    counts = make_demo_data(args.out, seed=args.seed, size=args.size)
    print(f"wrote {counts['clips']} clips ({counts['anomalous']} anomalous) of {', '.join(counts['machines'])} "
          f"and {counts['noise_files']} noise files under {args.out}")
    return 0


def _run_ingest(roots: list[Path], args) -> dict:
    from flows.ingest import ingest_flow

    return ingest_flow(
        roots=[str(r) for r in roots], workspace=str(args.workspace), dataset_name=args.dataset_name,
        channel=args.channel, sample_rate=args.sample_rate, storage_dtype=args.storage_dtype,
        ground_truth=str(args.ground_truth) if args.ground_truth else None,
    )


def cmd_ingest(args) -> int:
    from asd_core.ingest import check_roots

    check_roots(args.roots)  # a missing or empty root is an error before Prefect starts
    report = _run_ingest(args.roots, args)
    _print_ingest_report(report)
    if report["clips"] == 0:
        print("error: no usable clips found in " + ", ".join(map(str, args.roots)), file=sys.stderr)
        return 1
    return 0


def _print_pipeline_report(r: dict, ws: Path) -> None:
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
    lines += [
        f"  asd sql --workspace {ws} \"SELECT encoder, normalization, official_score FROM run_metrics WHERE noise_subset = 'clean'\"",
        f"  asd sql --workspace {ws} \"SELECT * FROM section_metrics WHERE run_id = '{best_id}'\"",
        f"  duckdb -readonly {ws}/asd.duckdb        the DuckDB CLI, if installed (tables and views: sql/README.md)",
        f"  mlflow ui --backend-store-uri sqlite:///{mlflow_db}        MLflow UI: runs, reports, registered models",
        "  prefect server start        Prefect UI with these flow runs and their artifacts (http://127.0.0.1:4200)",
    ]
    print("\n".join(lines))


def _config_key(r: dict, run_id: str) -> str:
    """``<encoder as configured>/<normalization>`` of a run id (students are stored as student-<objective>)."""
    return next((key for key, rid in r["run_ids"].items() if rid == run_id), "")


def cmd_pipeline(args) -> int:
    from asd_core.pipeline.config import load_config

    overrides = list(args.set or [])
    if args.workspace is not None:
        overrides.append(f"workspace={_toml_str(args.workspace)}")
    if args.data_root:
        overrides.append("data.roots=[" + ", ".join(_toml_str(r) for r in args.data_root) + "]")
    if args.task_runner:
        overrides.append(f"runner.task_runner={_toml_str(args.task_runner)}")
    if args.dask_address:
        overrides.append(f"runner.dask_address={_toml_str(args.dask_address)}")
    cfg = load_config(args.config, overrides)
    if args.print_config:
        from asd_core.pipeline.toml import dumps

        print(dumps(cfg.to_dict()), end="")
        return 0
    if not cfg.data.roots:  # checked before Prefect starts, so the message is not buried in a flow-run traceback
        from asd_core.pipeline.config import PipelineConfigError

        raise PipelineConfigError("data.roots is empty: list the dataset roots in the config or pass --data-root DIR")
    _check_folder(Path(cfg.workspace), "workspace", writes=True)
    from flows.pipeline import pipeline_flow

    r = pipeline_flow(config=cfg.to_dict(), refresh=args.refresh)
    _print_pipeline_report(r, Path(cfg.workspace))
    return 0


def _toml_str(value) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def cmd_demo(args) -> int:
    from asd_core.pipeline.demo import demo_config, demo_data_dir, demo_session

    ws = args.workspace
    data = demo_data_dir(ws)
    cfg = demo_config(ws, data, args.set)  # --set errors come before any file is written
    with demo_session(ws, seed=args.seed, size=args.size) as counts:  # a busy workspace: refused before writing
        print(f"demo data: {counts['clips']} clips of {', '.join(counts['machines'])} and {counts['noise_files']} noise files under {data}")
        from flows.pipeline import pipeline_flow  # imports prefect (starts its server) only once the workspace is ours

        r = pipeline_flow(config=cfg.to_dict(), refresh=args.refresh)
    _print_pipeline_report(r, ws)
    return 0


def cmd_report(args) -> int:
    from flows.report import report_flow

    r = report_flow(workspace=str(args.workspace), run_id=args.run, tracking_uri=args.tracking_uri, mlflow=not args.no_mlflow)
    print(f"report of run {r['run_id']}: {r['index']} ({len(r['figures'])} figures)")
    if r.get("mlflow_uri"):
        print(f"MLflow: {r['mlflow_uri']} (experiment asd-reports, run {r['mlflow_run_id']})")
    return 0


def cmd_sql(args) -> int:
    """One read query (sql/README.md says what is allowed); ``--output`` writes its result outside the workspace."""
    from asd_core.config import Workspace
    from asd_core.storage.catalog import analyst_query, check_outside_workspace, result_format, write_result
    from asd_core.textable import format_table

    ws = Workspace(args.workspace)
    out = None
    if args.output is not None:
        result_format(args.output)
        out = check_outside_workspace(ws, args.output)
    with analyst_query(ws, args.query, tuple(args.allow_read or ())) as rel:
        if out is not None:
            table = rel.to_arrow_table()
            write_result(table, out)
            print(f"wrote {table.num_rows} rows to {out}")
            return 0
        columns = rel.columns
        rows = [dict(zip(columns, row)) for row in rel.limit(args.limit).fetchall()]
    print(format_table(rows))
    return 0


def cmd_embed(args) -> int:
    from flows.embed import embed_flow

    from asd_core.config import Workspace
    from asd_core.storage.models import current_model

    options = {}
    if args.encoder == "teacher":
        options = {"model": str(args.model or current_model(Workspace(args.workspace), "teacher"))}
    elif args.encoder == "student":
        options = {"model": str(args.model or current_model(Workspace(args.workspace), "student"))}
    elif args.encoder == "oracle":
        teacher = args.checkpoint or args.model or current_model(Workspace(args.workspace), "teacher")
        options = {"teacher": str(teacher), "lam": args.lam}
        if args.checkpoint:
            options.update(layer=args.layer, pooling=args.pooling)
    elif args.encoder == "beats":
        options = {"checkpoint": str(args.checkpoint) if args.checkpoint else None, "layer": args.layer,
                   "pooling": args.pooling, "clip_seconds": args.clip_seconds, "clip_mode": args.clip_mode}
    elif args.checkpoint:
        raise ValueError(f"--checkpoint is for --encoder beats, not {args.encoder}")
    from asd_core.encoders.registry import check_encoder_options

    check_encoder_options(args.encoder, options)  # wrong or damaged models fail before Prefect starts
    report = embed_flow(workspace=str(args.workspace), encoder=args.encoder, batch_size=args.batch_size,
                        threads=args.threads, encoder_options=options, workers=args.workers, noisy=args.noisy)
    print(f"{report['encoder']} (version {report['encoder_version']}, dim {report['dim']}): "
          f"{report['embedded']} clips embedded, {report['reused']} already done")
    return 0


def cmd_train_teacher(args) -> int:
    from flows.train_teacher import load_config_file, train_teacher_flow

    config = load_config_file(args.config)
    for key in ("epochs", "batch_size", "lr", "seed", "patience"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    r = train_teacher_flow(workspace=str(args.workspace), config=config, device=args.device, threads=args.threads,
                           tracking_uri=args.tracking_uri)
    resumed = f", resumed after epoch {r['resumed_from']}" if r["resumed_from"] else ""
    print(f"teacher {r['model_hash']} in {r['model_dir']}: best epoch {r['best_epoch']} of {r['epochs_run']}{resumed}")
    print(f"Embed with it:  asd embed --workspace {args.workspace} --encoder teacher --model {r['model_dir']}")
    return 0


def cmd_train_student(args) -> int:
    from flows.train_student import train_student_flow
    from asd_core.textable import format_table

    config = json.loads(Path(args.config).read_text()) if args.config else {}
    objective = dict(config.get("objective") or {})
    for key, value in (("objective", args.objective), ("lam", args.lam), ("distance", args.align_distance),
                       ("tag_weight", args.tag_weight), ("align_weight", args.align_weight)):
        if value is not None:
            objective[key] = value
    config["objective"] = objective
    for key in ("epochs", "batch_size", "lr", "seed", "patience", "layer"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.pooling:
        config["pooling"] = args.pooling
    teacher = args.teacher
    if teacher is None:
        from asd_core.config import Workspace
        from asd_core.storage.models import current_model

        teacher = current_model(Workspace(args.workspace), "teacher")
    from asd_core.training.backbone import check_backbone_source

    check_backbone_source(teacher)  # a wrong or damaged teacher fails before Prefect starts
    r = train_student_flow(workspace=str(args.workspace), teacher=str(teacher), config=config, device=args.device,
                           threads=args.threads, tracking_uri=args.tracking_uri, model_name=args.model_name,
                           evaluate=not args.no_evaluate, register=not args.no_register)
    resumed = f", resumed after epoch {r['resumed_from']}" if r["resumed_from"] else ""
    print(f"student ({r['objective']}) {r['model_hash']} in {r['model_dir']}: best epoch {r['best_epoch']} of "
          f"{r['epochs_run']}{resumed}, {r['steps_per_s']:.2f} steps/s")
    if r.get("evaluation"):
        print("\nOfficial score per noise subset and SNR bin:\n" + format_table(r["evaluation"]))
    if r.get("registered"):
        reg = r["registered"]
        print(f"\nregistered {reg['name']} version {reg['version']} (alias challenger), official score {reg['official_score']:.4f}")
        print(f"Promote it:  asd promote --workspace {args.workspace}")
    return 0


def _tracking(args):
    from asd_core.tracking.store import TrackingConfig

    return TrackingConfig(uri=args.tracking_uri, model_name=args.model_name)


def cmd_register(args) -> int:
    from asd_core.config import Workspace
    from asd_core.tracking.registry import register_run

    r = register_run(Workspace(args.workspace), args.run, _tracking(args))
    print(f"registered {r['name']} version {r['version']} from run {r['run_id']} (alias challenger), "
          f"official score {r['official_score']}")
    return 0


def cmd_promote(args) -> int:
    from asd_core.config import Workspace
    from asd_core.tracking.registry import promote

    r = promote(Workspace(args.workspace), _tracking(args), args.version)
    champ = "none" if r["champion_version"] is None else f"version {r['champion_version']}: {r['champion_score']:.4f}"
    print(f"challenger version {r['version']}: {r['challenger_score']:.4f}; champion {champ}")
    if r["promoted"]:
        print(f"promoted: {r['name']}@champion -> version {r['version']} ({r['reason']})")
        return 0
    print(f"refused: the challenger's official score is below the champion's; champion stays version {r['champion_version']}",
          file=sys.stderr)
    return 1


def cmd_models(args) -> int:
    from asd_core.config import Workspace
    from asd_core.textable import format_table
    from asd_core.tracking.registry import list_models

    rows = list_models(Workspace(args.workspace), _tracking(args))
    print(format_table(rows) if rows else f"no versions of {args.model_name}")
    return 0


def cmd_score(args) -> int:
    from flows.score import score_flow

    report = score_flow(workspace=str(args.workspace), encoder=args.encoder, normalization=args.normalization,
                        k=args.k, r=args.r, metric=args.metric, threshold_quantile=args.threshold_quantile,
                        index_type=args.index, strict=args.strict, threads=args.threads,
                        encoder_version=args.encoder_version, noisy=args.noisy)
    print(f"run {report['run_id']}: {report['scored']} test clips in {report['sections']} sections "
          f"({report['encoder']}, {report['normalization']}, {report['params']['metric']}); "
          f"{report['indexes_reused']} indexes re-used")
    for reason in report["skipped"]:
        print(f"  skipped: {reason}", file=sys.stderr)
    print(f"Metrics:  asd evaluate --workspace {args.workspace} --run {report['run_id']}")
    return 0


def cmd_evaluate(args) -> int:
    from flows.evaluate import evaluate_flow
    from asd_core.textable import format_table

    if args.noise:
        from asd_core.config import Workspace
        from asd_core.evaluation.noise import noise_comparison

        rows = noise_comparison(Workspace(args.workspace), [args.run] if args.run else None)
        if not rows:
            print("no runs over noisy test clips yet: asd mix, asd embed --noisy, asd score --noisy (or asd train-student)")
            return 1
        print("Official score per noise subset and SNR bin (columns: encoder/normalization):\n")
        print(format_table(rows))
        return 0

    t = evaluate_flow(workspace=str(args.workspace), run_id=args.run)
    run = t["run"]
    print(f"run {t['run_id']}: encoder {run['encoder']} ({run['encoder_version']}), normalization {run['normalization']}, "
          f"params {run['params']}" + ("  [transductive]" if run["transductive"] else ""))
    if t["sections"]:
        print("\n" + format_table(t["sections"]))
        print("\n" + format_table(t["summary"]))
    if t["sections_2020"]:
        print("\nDCASE 2020 style (per machine id, no domains)\n" + format_table(t["sections_2020"]))
        print("\n" + format_table(t["summary_2020"]))
    if not t["sections"] and not t["sections_2020"]:
        print("no labelled test clips were scored in this run")
    return 0


def _bins(text: str) -> list[list[float]]:
    """'-10:-5,-5:0' -> [[-10, -5], [-5, 0]]."""
    try:
        return [[float(x) for x in part.split(":")] for part in text.split(",") if part]
    except ValueError:
        raise ValueError(f"--eval-bins must look like -10:-5,-5:0,0:5,5:10; got {text!r}") from None


def cmd_mix(args) -> int:
    from asd_core.textable import format_table
    from flows.mix import mix_flow

    r = mix_flow(workspace=str(args.workspace), noise=str(args.noise) if args.noise else None,
                 supplemental=not args.no_supplemental, mismatched=args.mismatched.split(",") if args.mismatched else None,
                 seed=args.seed, snr_min=args.snr_min, snr_max=args.snr_max, mixtures_per_clip=args.mixtures_per_clip,
                 lam=args.lam, eval_subsets=args.eval_subsets.split(",") if args.eval_subsets else None,
                 eval_bins=_bins(args.eval_bins) if args.eval_bins else None)
    print(format_table(r["noise_classes"]))
    print("\n" + format_table(r["table"]))
    print(f"\n{r['mixtures']} training mixtures and {r['noisy_clips']} noisy test clips from {r['noise_recordings']} noise "
          f"recordings; tables mixtures, noisy_clips, noise in {args.workspace}/asd.duckdb")
    for reason in r["skipped"]:
        print(f"  not mixed: {reason}", file=sys.stderr)
    return 0


def cmd_export_dcase(args) -> int:
    from asd_core.config import Workspace
    from asd_core.evaluation import export_dcase

    _check_folder(args.out, "OUT", writes=True)  # export-dcase writes a folder of CSV files per dataset
    files = export_dcase(Workspace(args.workspace), args.run, args.out)
    print(f"wrote {len(files)} files under {args.out}")
    return 0


def cmd_forget(args) -> int:
    """Drop one dataset from the workspace; without --yes only list what would go and exit 1."""
    from asd_core.config import Workspace
    from asd_core.ingest.forget import forget_dataset

    report = forget_dataset(Workspace(args.workspace), args.dataset, dry_run=not args.yes)
    print("\n".join(report.lines()))
    if not args.yes and not report.nothing:
        print(f"nothing removed yet; to remove the above, re-run with --yes:\n"
              f"  asd forget --workspace {args.workspace} --dataset {args.dataset} --yes", file=sys.stderr)
        return 1
    return 0


def _add_tracking_uri(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: sqlite store in <workspace>/mlflow/mlflow.db)")


def _add_tracking(p: argparse.ArgumentParser) -> None:
    _add_tracking_uri(p)
    p.add_argument("--model-name", default="asd-encoder", help="registered model name (default: %(default)s)")


def _add_ingest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", default="0", help="channel of multichannel files: an index or 'mean' (default: %(default)s)")
    p.add_argument("--sample-rate", type=int, default=PIPELINE_SAMPLE_RATE, help="pipeline sample rate; other rates are resampled (default: %(default)s)")
    p.add_argument("--storage-dtype", choices=["int16", "float32"], default="int16", help="waveform storage type (default: %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asd", description="Anomalous sound detection pipeline (DCASE Task 2).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("make-demo-data", help="write a synthetic DCASE 2023-style dataset and a noise library",
                       description="Write a deterministic DCASE 2023-style WAV tree (machine sounds with source/target "
                                   "domains and labelled anomalies) plus a noise library under OUT.")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["small", "medium", "dcase"], default="small",
                   help="small: 3 machines, 2 s clips; medium: 4 machines, 5 s; dcase: DCASE 2023 dev counts, 10 s")
    _add_workspace(p)
    p.set_defaults(func=cmd_make_demo_data)

    p = sub.add_parser("ingest", help="ingest DCASE-style dataset roots into Parquet and DuckDB",
                       description="Scan, validate, decode and write clips/audio/quarantine Parquet datasets "
                                   "(a Prefect flow). Re-running on unchanged files decodes nothing. Exits "
                                   "non-zero only when no usable clip was found.")
    p.add_argument("roots", nargs="+", type=Path, metavar="ROOT")
    p.add_argument("--dataset-name", default=None, help="dataset name (default: each root's folder name)")
    p.add_argument("--ground-truth", type=Path, default=None,
                   help="folder with DCASE evaluator ground-truth CSVs for anonymised evaluation clips")
    _add_ingest_options(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_ingest)

    from asd_core.choices import ENCODER_NAMES, NORMALIZATIONS

    p = sub.add_parser("embed", help="embed every ingested clip with an encoder (Prefect flow)",
                       description="Write Parquet embeddings (clip_id, encoder, encoder_version, vector); clips "
                                   "already embedded by the same encoder version are skipped.")
    p.add_argument("--encoder", default="logmel-stats", choices=ENCODER_NAMES)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None, help="torch/FAISS threads (default: all available cores)")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader worker processes reading audio (default: %(default)s = read in the main process)")
    p.add_argument("--model", type=Path, default=None,
                   help="teacher / oracle: folder written by asd train-teacher; student: folder written by asd "
                        "train-student (default: the newest in the workspace)")
    p.add_argument("--noisy", action="store_true", help="also embed the noisy test clips of asd mix")
    p.add_argument("--lam", type=float, default=0.5,
                   help="oracle: lambda of lam * teacher(clean) + (1 - lam) * teacher(noise) (default: %(default)s)")
    beats = p.add_argument_group("beats")
    beats.add_argument("--checkpoint", type=Path, default=None,
                       help="BEATs checkpoint file (official layout), e.g. BEATs_iter3_plus_AS2M.pt; oracle: a BEATs teacher")
    beats.add_argument("--layer", type=int, default=None, help="transformer layer feeding the embedding (default: last)")
    beats.add_argument("--pooling", choices=["mean", "time-mean"], default="mean",
                       help="mean over tokens, or temporal mean keeping the 8 frequency patches (default: %(default)s)")
    beats.add_argument("--clip-seconds", type=float, default=None, help="fixed clip length for --clip-mode pad/crop/chunk")
    beats.add_argument("--clip-mode", choices=["full", "pad", "crop", "chunk"], default="full")
    _add_workspace(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train-teacher", help="train the teacher encoder from scratch (Prefect flow, resumable)",
                       description="Train a small CNN on log-mel input with an AdaCos auxiliary classification over "
                                   "machine type / section / attributes, with mixup, early stopping on a validation "
                                   "split and a checkpoint per epoch. Re-running the same config resumes. `asd embed "
                                   "--encoder teacher` then writes its multi-level embedding (see README).")
    p.add_argument("--config", default=None, help="JSON file with training/model settings (see README)")
    p.add_argument("--epochs", type=int, default=None, help="epochs, also the length of the cosine lr schedule (default 10)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None)
    _add_tracking_uri(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_train_teacher)

    p = sub.add_parser("train-student", help="train the retain-not-denoise student on mixtures, evaluate, register (Prefect flow)",
                       description="Copy the teacher into a student and train it on the mixtures of asd mix: tagging BCE "
                                   "(machine + noise classes) + alignment of student(mixture) to lam * teacher(clean) + "
                                   "(1 - lam) * teacher(noise). Then score teacher, student and oracle (none, knn) on clean "
                                   "and noisy test clips, log to MLflow and register the student as challenger.")
    p.add_argument("--teacher", type=Path, default=None,
                   help="teacher: folder written by asd train-teacher (default: the newest) or a BEATs checkpoint file")
    p.add_argument("--objective", choices=["retain", "denoise", "tagging", "alignment"], default=None,
                   help="retain (default; the paper's), denoise (target teacher(clean)), tagging only, alignment only")
    p.add_argument("--lam", type=float, default=None, help="lambda of the alignment target (default: the mixtures' lambda, 0.5)")
    p.add_argument("--align-distance", choices=["mse", "cosine"], default=None, help="alignment distance (default: mse)")
    p.add_argument("--tag-weight", type=float, default=None, help="weight of the tagging loss (default: 1)")
    p.add_argument("--align-weight", type=float, default=None, help="weight of the alignment loss (default: 1)")
    p.add_argument("--config", default=None, help="JSON file of StudentTrainConfig fields (objective nested)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--patience", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--layer", type=int, default=None, help="BEATs teacher: layer feeding the embedding (default: last)")
    p.add_argument("--pooling", choices=["mean", "time-mean"], default=None, help="BEATs teacher: pooling (default: mean)")
    p.add_argument("--no-evaluate", action="store_true", help="train only: no scoring runs, no registration")
    p.add_argument("--no-register", action="store_true", help="evaluate but do not register in MLflow")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    _add_tracking(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_train_student)

    p = sub.add_parser("register", help="register a scoring run in the MLflow model registry (alias challenger)",
                       description="Bundle the run's encoder, per-section FAISS indexes with rho and its normalisation "
                                   "config as an MLflow pyfunc that scores WAV files, register it as a new version.")
    p.add_argument("--run", default=None, metavar="ID", help="scoring run (default: the newest)")
    _add_tracking(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_register)

    p = sub.add_parser("promote", help="move alias champion to the challenger if its official score is at least the champion's")
    p.add_argument("--version", default=None, help="version to promote (default: the challenger)")
    _add_tracking(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("models", help="list registered model versions with aliases, key metrics and tags")
    _add_tracking(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("mix", help="build training mixtures and noisy test sets from a noise library (Prefect flow)",
                       description="Mix clean normal training clips with noise (SNR uniform in [--snr-min, --snr-max]) "
                                   "and each test clip with held-out noise per subset and SNR bin. Only provenance is "
                                   "stored (clip, noise, offset, gains, SNR); later stages regenerate the audio exactly.")
    p.add_argument("--noise", type=Path, default=None,
                   help="noise folder: one sub-folder of WAV files per class, optional classes.csv (class,kind,held_out)")
    p.add_argument("--no-supplemental", action="store_true", help="ignore ingested DCASE 2025 supplemental noise clips")
    p.add_argument("--mismatched", default=None, help="comma-separated noise classes held out of training (default: classes.csv, "
                                                      "else the last class of each kind)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--snr-min", type=float, default=-10.0)
    p.add_argument("--snr-max", type=float, default=10.0)
    p.add_argument("--mixtures-per-clip", type=int, default=1)
    p.add_argument("--lam", type=float, default=0.5, help="lambda of the alignment target, stored per mixture (default: %(default)s)")
    p.add_argument("--eval-subsets", default=None, help="comma-separated: stationary,non-stationary,mismatched (default: all)")
    p.add_argument("--eval-bins", default=None, help="SNR bins of the noisy test sets (default: -10:-5,-5:0,0:5,5:10)")
    _add_workspace(p)
    p.set_defaults(func=cmd_mix)

    p = sub.add_parser("score", help="score test clips per section and publish the run to DuckDB (Prefect flow)",
                       description="Fit one detector per section on its normal training clips (FAISS indexes under "
                                   "<workspace>/indexes, re-used while unchanged), score the test clips, decide with "
                                   "one threshold per section, and publish runs/scores/thresholds to asd.duckdb.")
    p.add_argument("--encoder", default="logmel-stats",
                   help="an encoder with embeddings in the workspace: " + ", ".join(ENCODER_NAMES) +
                        " (students are named student-<objective>) (default: %(default)s)")
    p.add_argument("--noisy", action="store_true",
                   help="also score the noisy test clips (asd mix, asd embed --noisy): metrics per noise subset and SNR bin")
    p.add_argument("--encoder-version", default=None, help="which embeddings of the encoder, when several versions exist")
    p.add_argument("--normalization", default="knn", choices=NORMALIZATIONS,
                   help="knn/gwrp: local-density ratio (the proposed method); *-diff: subtractive; the rest: baselines")
    p.add_argument("--k", type=int, default=1, help="K of knn / lof (default: %(default)s)")
    p.add_argument("--r", type=float, default=0.9, help="decay r of gwrp (default: %(default)s)")
    p.add_argument("--metric", choices=["cosine", "euclidean"], default=None,
                   help="distance (default: the encoder's preferred one)")
    p.add_argument("--threshold-quantile", type=float, default=0.9,
                   help="decision threshold: this quantile of the leave-one-out reference scores (default: %(default)s)")
    p.add_argument("--index", choices=["exact", "ivf"], default="exact", help="FAISS index type (default: %(default)s)")
    p.add_argument("--strict", action="store_true", help="fail when a section cannot be scored instead of skipping it")
    p.add_argument("--threads", type=int, default=None)
    _add_workspace(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="print the evaluator-style metrics of a run (default: the newest)")
    p.add_argument("--run", default=None, metavar="ID")
    p.add_argument("--noise", action="store_true",
                   help="compare the runs over noisy test clips: official score per noise subset and SNR bin")
    _add_workspace(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-dcase", help="write DCASE anomaly_score_* / decision_result_* CSVs of a run")
    p.add_argument("--run", required=True, metavar="ID")
    p.add_argument("out", type=Path, metavar="OUT")
    _add_workspace(p)
    p.set_defaults(func=cmd_export_dcase)

    p = sub.add_parser("forget", help="remove a whole dataset from the workspace (asks for --yes)",
                       description="Remove every clip, audio partition, quarantine entry and derived result of one "
                                   "dataset. Without --yes it only lists what would be removed and exits 1; `asd ingest` "
                                   "never drops a dataset whose root is missing or empty.")
    p.add_argument("--dataset", required=True, metavar="NAME", help="dataset name, as in clips.dataset")
    p.add_argument("--yes", action="store_true", help="really remove it (default: only list what would go)")
    _add_workspace(p)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("sql", help="run a SQL query against the workspace's asd.duckdb (read-only)",
                       description="Run one read query (SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW, SUMMARIZE) against "
                                   "<workspace>/asd.duckdb. Nothing is written: COPY, ATTACH, INSTALL/LOAD, SET, PRAGMA, "
                                   "EXPLAIN and changes are refused, and files are readable only under the workspace and "
                                   "--allow-read folders (sql/README.md).")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=1000, help="print at most this many rows (default: %(default)s)")
    p.add_argument("--output", type=Path, default=None, metavar="FILE",
                   help="write every row of the result to FILE.parquet or FILE.csv (outside the workspace) instead of printing")
    p.add_argument("--allow-read", action="append", type=Path, metavar="DIR",
                   help="also let the query read files (Parquet, CSV, ...) under DIR (repeatable)")
    _add_workspace(p)
    p.set_defaults(func=cmd_sql)

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

    p = sub.add_parser("report", help="(re)build the HTML report of a scoring run and log it to MLflow",
                       description="Write <workspace>/reports/<run>/index.html with PNG figures: per-section score "
                                   "histograms by domain and label before and after normalization, ROC curves per "
                                   "domain and the metrics table; log it as artifacts of the run's MLflow report run "
                                   "(experiment asd-reports) and link it from a Prefect markdown artifact.")
    p.add_argument("--run", default=None, metavar="ID", help="scoring run (default: the newest)")
    p.add_argument("--no-mlflow", action="store_true", help="only write the local report")
    _add_tracking_uri(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="generate the demo data and run the whole pipeline on it",
                       description="Generate the built-in demo dataset under <workspace>/demo-data and run the whole "
                                   "pipeline on it (asd pipeline with the demo config: spectral encoders, a teacher "
                                   "trained from scratch and its retain-not-denoise student; none/knn/gwrp scoring; "
                                   "HTML reports; MLflow registration), then print the results and where to look further.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["small", "medium", "dcase"], default="small")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a key of the demo config (repeatable)")
    p.add_argument("--refresh", action="store_true", help="recompute every stage, ignoring cached results")
    _add_workspace(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _prefect_env()
    if argv is None:  # the `asd` process itself; tests call main(argv) inside one long-lived process
        from flows import prefect_server

        prefect_server.install()  # its temporary Prefect server dies with it; SIGTERM unwinds like Ctrl-C
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("asd").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        _check_workspace_arg(args)  # before any flow, so a bad workspace fails at once, not after Prefect starts
        from asd_core.storage.cleanup import workspace_session

        workspace = None if args.command in NO_WORKSPACE_COMMANDS else getattr(args, "workspace", None)
        with workspace_session(workspace, clean=args.command not in READ_ONLY_COMMANDS):  # leftovers of dead runs go first
            return args.func(args)
    except (ValueError, OSError, RuntimeError) as exc:  # our own errors, and OSErrors, name what and where
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (prefect_server.install)
        print(f"error: {str(exc) or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
