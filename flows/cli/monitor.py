"""The monitor command: score incoming recordings with a registered model version."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flows.cli.common import add_tracking_uri, add_workspace, run_or_reuse


MAX_PRINTED = 20  # anomalies listed by path (highest scores); the rest are one query away


def _print_report(r: dict) -> None:
    from asd_core.textable import format_table

    per_section: dict[tuple[str, str], dict] = {}
    for d in r["detections"]:
        row = per_section.setdefault((d["machine_type"], d["section"]), {
            "machine_type": d["machine_type"], "section": d["section"], "scored": 0, "anomalies": 0, "max_score": float("-inf"),
            "threshold": f"{d['threshold']:.4f}"})
        row["scored"] += 1
        row["anomalies"] += d["decision"]
        row["max_score"] = max(row["max_score"], d["score"])
    if per_section:
        print(format_table([{**row, "max_score": f"{row['max_score']:.4f}"} for _, row in sorted(per_section.items())]))
        print()
    anomalies = sorted((d for d in r["detections"] if d["decision"]), key=lambda d: -d["score"])
    for d in anomalies[:MAX_PRINTED]:
        print(f"  anomaly: {d['path']}: score {d['score']:.4f} > threshold {d['threshold']:.4f} "
              f"({d['machine_type']}/section_{d['section']}, recorded {d['recorded_at']:%Y-%m-%d %H:%M:%S})")
    if len(anomalies) > MAX_PRINTED:
        print(f"  ... and {len(anomalies) - MAX_PRINTED} more: asd sql \"SELECT * FROM detections WHERE batch_id = "
              f"'{r['batch_id']}' AND decision = 1 ORDER BY score DESC\"")
    print(f"{r['model_name']} version {r['model_version']}: {r['scored']} clips scored ({r['anomalies']} anomalous), "
          f"{r['quarantined']} quarantined, {r['already_scored']} already scored, "
          f"{r['already_quarantined']} already quarantined (batch {r['batch_id']})")
    for q in r["quarantine"]:
        kind = "note" if q["scored"] else "quarantined"
        print(f"  {kind}: {q['path']}: {q['reason']}", file=sys.stderr)


def cmd_monitor(args) -> int:
    from asd_core.config import Workspace
    from asd_core.pipeline.uptodate import as_monitor_noop, monitor_cache

    manifest = str(args.manifest) if args.manifest else None

    def run():
        from flows.monitor import monitor_flow

        state = monitor_flow(incoming=str(args.incoming), workspace=str(args.workspace), model=args.model,
                             manifest=manifest, rescore=args.rescore, tracking_uri=args.tracking_uri,
                             max_events=args.max_events, return_state=True)
        r = state.result(raise_on_failure=False)
        if isinstance(r, BaseException):  # the flow raised: its own error, as any other command's
            raise r
        return r

    # no new or changed recording, the same registry: the stored report, without Prefect, torch or MLflow
    r = run_or_reuse(lambda: monitor_cache(Workspace(args.workspace), args.incoming, args.model, args.rescore, manifest,
                                           args.tracking_uri),
                     run, as_monitor_noop)
    _print_report(r)
    if r["nothing_scored"]:
        print(f"error: none of the {r['found']} recordings in {args.manifest or args.incoming} could be scored",
              file=sys.stderr)
        return 1
    return 0


def cmd_enroll(args) -> int:
    from asd_core.enrollment.clips import check_domain, find_wavs

    check_domain(args.domain)  # the cheap mistakes answer before Prefect starts
    if not find_wavs(args.clips_dir):
        raise ValueError(f"{args.clips_dir}: no WAV files to enroll")
    from flows.enroll import enroll_flow

    r = enroll_flow(clips_dir=str(args.clips_dir), machine_type=args.machine_type, section=args.section, domain=args.domain,
                    workspace=str(args.workspace), model=args.model, tracking_uri=args.tracking_uri)
    where = f"{r['machine_type']}/section_{r['section']}"
    if r["already_enrolled"]:
        origin = ("by an earlier enrollment in its lineage" if r["version"] == r["parent_version"]
                  else f"enrolled into version {r['parent_version']}")
        print(f"{r['name']} version {r['version']} already holds these {r['clips']} clips of {where} ({origin}); "
              "nothing new registered")
        return 0
    print(f"enrolled {r['clips']} clips as domain {r['domain']} of {where}: {r['references_before']} -> "
          f"{r['references_after']} references, threshold {r['threshold_before']:.6g} -> {r['threshold_after']:.6g}")
    print(f"registered {r['name']} version {r['version']} (alias challenger; parent version {r['parent_version']} untouched); "
          f"`asd promote --version {r['version']} --workspace {args.workspace}` makes it the champion")
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in r["timings"].items())
    print(f"timings: {timings}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="score incoming recordings with a registered model (detections table, Prefect events)",
                       description="Score each new WAV file under INCOMING/<machine_type>/section_<ss>/ (nested folders "
                                   "allowed) or listed in --manifest once per content and model, into the detections "
                                   "table; files that cannot be scored go to monitor_quarantine. Exit 1 only when "
                                   "nothing could be scored. A re-run over the same files with the registry unchanged "
                                   "prints the no-op report without starting a flow.")
    p.add_argument("incoming", type=Path, metavar="INCOMING",
                   help="folder of incoming recordings (with --manifest: the folder relative paths are under)")
    p.add_argument("--model", default="asd-encoder@champion",
                   help="registered model: NAME@ALIAS, NAME/VERSION or models:/... (default: %(default)s)")
    p.add_argument("--manifest", type=Path, default=None, metavar="CSV",
                   help="CSV with columns path, machine_type, section and optional recorded_at, dataset")
    p.add_argument("--rescore", action="store_true",
                   help="score files already scored by another version of the model again with this one")
    p.add_argument("--max-events", type=int, default=100, metavar="N",
                   help="Prefect events for at most the N highest-scoring anomalies; the others as one "
                        "asd.anomaly.burst event per section (default: %(default)s)")
    add_tracking_uri(p)
    add_workspace(p)
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("enroll", help="add a new operating condition to a registered model's section, without retraining",
                       description="Embed the normal clips in DIR (every *.wav below it) with the model's own encoder, add "
                                   "them to the section's references, refit rho and the section's single threshold, store "
                                   "the clips (clips table: split train, domain NAME) and register the result as a new "
                                   "version with alias challenger; the parent version is untouched. Refused, with nothing "
                                   "registered: fewer than K + 1 clips, unreadable files, another sample rate, durations far "
                                   "from the section's, a section the model does not have.")
    p.add_argument("clips_dir", type=Path, metavar="DIR", help="folder of normal clips of the new operating condition")
    p.add_argument("--machine-type", required=True, metavar="M")
    p.add_argument("--section", required=True, metavar="S", help="section as the model names it (0 and 00 both work)")
    p.add_argument("--domain", required=True, metavar="NAME", help="name of the new operating condition (clips.domain)")
    p.add_argument("--model", default="asd-encoder@champion",
                   help="registered model to enroll into: NAME@ALIAS, NAME/VERSION or models:/... (default: %(default)s)")
    add_tracking_uri(p)
    add_workspace(p)
    p.set_defaults(func=cmd_enroll)
