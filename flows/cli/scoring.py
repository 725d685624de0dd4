"""Scoring and analysis commands: score, evaluate, export-dcase, report, sql."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asd_core.choices import ENCODER_NAMES, NORMALIZATIONS
from asd_core.scoring.config import ScoringConfig
from flows.cli.common import add_tracking_uri, add_workspace, check_folder
from flows.cli.options import add_config_options, given


def _list(text: str, what: str, choices=None) -> list[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if choices is not None and v not in choices]
    if not values or bad:
        raise ValueError(f"{what}: {', '.join(bad) or repr(text)} is not one of {', '.join(choices)}" if bad else f"{what}: no value given")
    return values


def cmd_score(args) -> int:
    from asd_core.scoring.sweep import expand, parse_values

    norms = _list(args.normalization, "--normalization", NORMALIZATIONS)
    ks, rs = parse_values(args.k, "k"), parse_values(args.r, "r")
    chosen = given(args, ScoringConfig)
    common = {name: chosen.get(name, getattr(ScoringConfig, name)) for name in ("index_type", "threshold_quantile")}
    grid = expand(norms, ks, rs, metric=chosen.get("metric", "cosine"), **common)  # a bad value fails before Prefect starts
    from asd_core.scoring.channels import ChannelSpec

    channels = args.channels.split(",") if args.channels else None
    spec = ChannelSpec.from_options(args.channel, channels, args.fusion, args.noise_reference)  # fails before Prefect starts
    if not spec.default:  # so does a channel no machine type has embeddings of
        from asd_core.config import Workspace
        from asd_core.scoring.channels import machine_types_with_channels
        from asd_core.storage.embeddings import read_encoder_card

        card = read_encoder_card(Workspace(args.workspace), args.encoder, args.encoder_version)
        machine_types_with_channels(Workspace(args.workspace), card["name"], card["version"], spec)
    kwargs = dict(workspace=str(args.workspace), encoder=args.encoder, metric=chosen.get("metric"), strict=args.strict,
                  threads=args.threads, encoder_version=args.encoder_version, noisy=args.noisy, channel=args.channel,
                  channels=channels, fusion=args.fusion, noise_reference=args.noise_reference, **common)
    if len(grid) == 1:
        from flows.score import score_flow

        reports, unscorable = [score_flow(normalization=norms[0], k=ks[0], r=rs[0], **kwargs)], []
    else:
        from flows.score import score_grid_flow

        result = score_grid_flow(normalizations=norms, k=list(ks), r=list(rs), **kwargs)
        reports, unscorable = result["runs"], result["unscorable"]
    for report in reports:
        print(f"run {report['run_id']}: {report['scored']} test clips in {report['sections']} sections "
              f"({report['encoder']}, {report['label']}, {report['params']['metric']}); "
              f"{report['indexes_reused']} indexes re-used")
        for reason in report["skipped"]:
            print(f"  skipped: {reason}", file=sys.stderr)
    for reason in unscorable:
        print(f"  not written: {reason}", file=sys.stderr)
    if len(reports) == 1:
        print(f"Metrics:  asd evaluate --workspace {args.workspace} --run {reports[0]['run_id']}")
    else:
        ids = " ".join(f"--run {r['run_id']}" for r in reports)
        print(f"Side by side:  asd evaluate --workspace {args.workspace} --compare {ids}")
    return 0


def cmd_evaluate(args) -> int:
    from asd_core.textable import format_table

    if args.compare:
        from asd_core.config import Workspace
        from asd_core.evaluation.compare import compare_runs

        rows = compare_runs(Workspace(args.workspace), args.run or None)
        if not rows:
            print("no runs with labelled test clips yet: asd score")
            return 1
        print("Official score per run on the clean test clips (k / r as configured; chosen: per-section choices of auto runs):\n")
        print(format_table(rows))
        return 0
    if args.run and len(args.run) > 1:
        raise ValueError("several --run ids need --compare")
    args.run = args.run[0] if args.run else None
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

    from flows.evaluate import evaluate_flow

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


def cmd_export_dcase(args) -> int:
    from asd_core.config import Workspace
    from asd_core.evaluation import export_dcase

    check_folder(args.out, "OUT", writes=True)  # export-dcase writes a folder of CSV files per dataset
    files = export_dcase(Workspace(args.workspace), args.run, args.out)
    print(f"wrote {len(files)} files under {args.out}")
    return 0


def cmd_report(args) -> int:
    if args.run is not None or not args.dashboard:  # --dashboard alone builds only the dashboard
        from flows.report import report_flow

        r = report_flow(workspace=str(args.workspace), run_id=args.run, tracking_uri=args.tracking_uri, mlflow=not args.no_mlflow)
        print(f"report of run {r['run_id']}: {r['index']} ({len(r['figures'])} figures)")
        if r.get("mlflow_uri"):
            print(f"MLflow: {r['mlflow_uri']} (experiment asd-reports, run {r['mlflow_run_id']})")
    if args.dashboard:
        from asd_core.config import Workspace
        from asd_core.reporting.dashboard import build_dashboard
        from asd_core.tracking.store import TrackingConfig

        d = build_dashboard(Workspace(args.workspace), TrackingConfig(uri=args.tracking_uri))
        print(f"dashboard: {d.index} ({len(d.data.runs)} runs, {len(d.figures)} figures, "
              f"{len(d.registry.versions)} registered versions)")
        print(f"  open {d.index.resolve().as_uri()}")
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


def register(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--normalization", default="knn", metavar="NAME[,NAME...]",
                   help="one or several of " + ", ".join(NORMALIZATIONS) + "; knn/gwrp: local-density ratio (the "
                        "proposed method); *-diff: subtractive; the rest: baselines (default: %(default)s)")
    p.add_argument("--k", default=str(ScoringConfig.k), metavar="K[,K...]",
                   help="K of knn / lof; a list runs each value; 'auto' chooses per section without labels (default: %(default)s)")
    p.add_argument("--r", default=str(ScoringConfig.r), metavar="R[,R...]",
                   help="decay r of gwrp; a list runs each value; 'auto' chooses per section without labels (default: %(default)s)")
    add_config_options(p, ScoringConfig, defaults={"metric": None})
    p.add_argument("--strict", action="store_true", help="fail when a section cannot be scored instead of skipping it")
    p.add_argument("--threads", type=int, default=None)
    ch = p.add_argument_group("channels", "two-microphone recordings (DCASE 2026): embed each channel first with "
                                          "asd embed --channel")
    ch.add_argument("--channel", default=None, metavar="ROLE",
                    help="score one stored channel: near, far, mean, ch<N> (default: each clip's primary waveform, "
                         "the near microphone or the only channel)")
    ch.add_argument("--channels", default=None, metavar="ROLE,ROLE",
                    help="score several channels, each against its own references, and fuse their scores per clip")
    ch.add_argument("--fusion", choices=["mean", "max"], default=None,
                    help="with --channels: the fused score is the mean or max of the channels' normalised scores")
    ch.add_argument("--noise-reference", default=None, metavar="ROLE",
                    help="condition --channel on this channel (e.g. far): per section a ridge regression from its "
                         "embeddings to the scored channel's (penalty by generalised cross-validation, recorded in "
                         "runs.params) on the training normals; the residuals are scored")
    add_workspace(p)
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("evaluate", help="print the evaluator-style metrics of a run (default: the newest)")
    p.add_argument("--run", action="append", default=None, metavar="ID",
                   help="the run (default: the newest); with --compare repeatable (default: every run)")
    p.add_argument("--compare", action="store_true",
                   help="print runs side by side: official score, AUCs and pAUC, K / r and what auto runs chose")
    p.add_argument("--noise", action="store_true",
                   help="compare the runs over noisy test clips: official score per noise subset and SNR bin")
    add_workspace(p, reads_only=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export-dcase", help="write DCASE anomaly_score_* / decision_result_* CSVs of a run")
    p.add_argument("--run", required=True, metavar="ID")
    p.add_argument("out", type=Path, metavar="OUT")
    add_workspace(p, reads_only=True)
    p.set_defaults(func=cmd_export_dcase)

    p = sub.add_parser("report", help="(re)build the HTML report of a scoring run and log it to MLflow; "
                                      "--dashboard: the workspace dashboard",
                       description="Write <workspace>/reports/<run>/index.html with PNG figures: per-section score "
                                   "histograms by domain and label before and after normalization, ROC curves per "
                                   "domain and the metrics table; log it as artifacts of the run's MLflow report run "
                                   "(experiment asd-reports) and link it from a Prefect markdown artifact. "
                                   "With --dashboard, (re)build <workspace>/reports/index.html: every scoring run in "
                                   "one sortable table, official score per encoder x normalization, the noisy-test "
                                   "chart and the registry's versions (static files, open it from disk).")
    p.add_argument("--run", default=None, metavar="ID", help="scoring run (default: the newest)")
    p.add_argument("--no-mlflow", action="store_true", help="only write the local report")
    p.add_argument("--dashboard", action="store_true",
                   help="(re)build the workspace dashboard reports/index.html; with --run also that run's report")
    add_tracking_uri(p)
    add_workspace(p)
    p.set_defaults(func=cmd_report)

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
    add_workspace(p, reads_only=True)
    p.set_defaults(func=cmd_sql)
