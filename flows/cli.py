"""The ``asd`` command: one sub-command per pipeline stage, each with ``--workspace``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

DEFAULT_WORKSPACE = "./asd-workspace"


def _prefect_env() -> None:
    """Defaults for the temporary local Prefect server (set before prefect is imported)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "asd")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def _add_workspace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workspace", default=DEFAULT_WORKSPACE, type=Path,
                   help="folder holding Parquet datasets, asd.duckdb, indexes and the MLflow store (default: %(default)s)")


def _print_ingest_report(report: dict) -> None:
    from asd_core.textable import format_table

    print(format_table(report["summary"]))
    print(f"\n{report['clips']} clips in {report['workspace']} "
          f"({report['decoded']} decoded, {report['reused']} unchanged, {report['removed']} removed); "
          f"{len(report['quarantined'])} quarantined")
    for q in report["quarantined"]:
        where = Path(q["root"], q["relative_path"]) if q["relative_path"] else Path(q["root"])
        print(f"  quarantined: {where}: {q['reason']}", file=sys.stderr)


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
    report = _run_ingest(args.roots, args)
    _print_ingest_report(report)
    if report["clips"] == 0:
        print("error: no usable clips found in " + ", ".join(map(str, args.roots)), file=sys.stderr)
        return 1
    return 0


def cmd_demo(args) -> int:
    from asd_core.demo import make_demo_data

    data = args.workspace / "demo-data"
    counts = make_demo_data(data, seed=args.seed, size=args.size)
    print(f"demo data: {counts['clips']} clips of {', '.join(counts['machines'])} under {data}")
    args.dataset_name, args.ground_truth = "demo", None
    report = _run_ingest([data], args)
    _print_ingest_report(report)
    print(f"\nQuery it:  asd sql --workspace {args.workspace} \"SELECT machine_type, split, count(*) FROM clips GROUP BY ALL\"")
    return 0 if report["clips"] else 1


def cmd_sql(args) -> int:
    from asd_core.storage.catalog import connect
    from asd_core.config import Workspace
    from asd_core.textable import format_table

    with connect(Workspace(args.workspace), read_only=True) as con:
        cur = con.execute(args.query)
        if cur.description is None:
            return 0
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r)) for r in cur.fetchmany(args.limit)]
    print(format_table(rows, cols))
    return 0


def _add_ingest_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--channel", default="0", help="channel of multichannel files: an index or 'mean' (default: %(default)s)")
    p.add_argument("--sample-rate", type=int, default=16_000, help="pipeline sample rate; other rates are resampled (default: %(default)s)")
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

    p = sub.add_parser("sql", help="run a SQL query against the workspace's asd.duckdb (read-only)")
    p.add_argument("query")
    p.add_argument("--limit", type=int, default=1000, help="print at most this many rows (default: %(default)s)")
    _add_workspace(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("demo", help="generate the demo data and run the pipeline on it",
                       description="Generate the built-in demo dataset under <workspace>/demo-data and run the "
                                   "pipeline on it (currently: ingest), printing the summary.")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["small", "medium", "dcase"], default="small")
    _add_ingest_options(p)
    _add_workspace(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _prefect_env()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("asd").setLevel(logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # our own errors carry a clear message
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
