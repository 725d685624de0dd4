"""Data commands: make-demo-data, ingest, forget, mix."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asd_core.config import AudioConfig
from asd_core.mixing.config import MixConfig, NoiseLibraryConfig
from flows.cli.common import add_workspace, run_or_reuse
from flows.cli.options import add_config_options, given


def print_ingest_report(report: dict) -> None:
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

    if args.held_out_enroll is not None and not args.held_out_domain:
        raise ValueError("--held-out-enroll needs --held-out-domain")
    counts = make_demo_data(args.out, seed=args.seed, size=args.size, held_out=args.held_out_domain,
                            held_out_enroll=args.held_out_enroll, channels=args.channels,
                            difficulty=args.difficulty)
    print(f"wrote {counts['clips']} clips ({counts['anomalous']} anomalous) of {', '.join(counts['machines'])} "
          f"and {counts['noise_files']} noise files under {args.out}")
    if "microphones" in counts:
        print(f"two channels per clip (0: near microphone, 1: far microphone); each clip's far-microphone gain and "
              f"delay in {counts['microphones']}")
    if "held_out" in counts:
        h = counts["held_out"]
        attrs = "; ".join(f"{m} {' / '.join(a)}" for m, a in h["attributes"].items())
        print(f"held-out domain ({attrs}): {h['test_normal']} normal and {h['test_anomaly']} anomalous test clips "
              f"under {h['folder']}/test, {h['enroll']} enrollment clips under {h['folder']}/enroll, "
              f"labels in {h['folder']}/labels.csv")
    return 0


def cmd_ingest(args) -> int:
    from asd_core.config import Workspace
    from asd_core.ingest import check_roots
    from asd_core.pipeline.uptodate import as_ingest_noop, ingest_cache

    check_roots(args.roots)  # a missing or empty root is an error before Prefect starts
    AudioConfig(**given(args, AudioConfig))  # a bad --channel / --sample-rate fails here, in one line
    kwargs = dict(roots=[str(r) for r in args.roots], workspace=str(args.workspace), dataset_name=args.dataset_name,
                  ground_truth=str(args.ground_truth) if args.ground_truth else None,
                  **{k: str(v) if k == "channel" else v for k, v in given(args, AudioConfig).items()})

    def run():
        from flows.ingest import ingest_flow

        return ingest_flow(**kwargs)

    # unchanged roots and workspace: the stored report, without importing Prefect or torch
    report = run_or_reuse(lambda: ingest_cache(Workspace(args.workspace), kwargs), run, as_ingest_noop)
    print_ingest_report(report)
    if report["clips"] == 0:
        print("error: no usable clips found in " + ", ".join(map(str, args.roots)), file=sys.stderr)
        return 1
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


def _bins(text: str) -> list[list[float]]:
    """'-10:-5,-5:0' -> [[-10, -5], [-5, 0]]."""
    try:
        return [[float(x) for x in part.split(":")] for part in text.split(",") if part]
    except ValueError:
        raise ValueError(f"--eval-bins must look like -10:-5,-5:0,0:5,5:10; got {text!r}") from None


def cmd_mix(args) -> int:
    from asd_core.textable import format_table

    NoiseLibraryConfig(**given(args, NoiseLibraryConfig))  # a bad --noise-from-channel fails here, in one line
    from flows.mix import mix_flow

    r = mix_flow(workspace=str(args.workspace), noise=str(args.noise) if args.noise else None,
                 mismatched=args.mismatched.split(",") if args.mismatched else None,
                 eval_subsets=args.eval_subsets.split(",") if args.eval_subsets else None,
                 eval_bins=_bins(args.eval_bins) if args.eval_bins else None,
                 **given(args, MixConfig), **given(args, NoiseLibraryConfig))
    print(format_table(r["noise_classes"]))
    print("\n" + format_table(r["table"]))
    print(f"\n{r['mixtures']} training mixtures and {r['noisy_clips']} noisy test clips from {r['noise_recordings']} noise "
          f"recordings; tables mixtures, noisy_clips, noise in {args.workspace}/asd.duckdb")
    if r["channel_noise_recordings"]:
        print(f"{r['channel_noise_recordings']} noise recordings are {args.noise_from_channel} channels of training clips "
              "(noise.source_clip_id / source_channel; a clip is never mixed with its own)")
    if r["eval_subsets_dropped"]:
        print(f"  no noisy test clips for {', '.join(r['eval_subsets_dropped'])}: the noise library holds no held-out "
              "recordings of them", file=sys.stderr)
    for reason in r["skipped"]:
        print(f"  not mixed: {reason}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-demo-data", help="write a synthetic DCASE 2023-style dataset and a noise library",
                       description="Write a deterministic DCASE 2023-style WAV tree (machine sounds with source/target "
                                   "domains and labelled anomalies) plus a noise library under OUT.")
    p.add_argument("out", type=Path, metavar="OUT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=["small", "medium", "dcase"], default="small",
                   help="small: 3 machines, 2 s clips; medium: 4 machines, 5 s; dcase: DCASE 2023 dev counts, 10 s")
    p.add_argument("--held-out-domain", action="store_true",
                   help="also write, under OUT/held_out (outside dev_data, skipped by asd ingest), an operating condition "
                        "no training set contains: test/<machine>/section_<ss>/{normal,anomaly}_<nnnn>.wav (30 each "
                        "per section for small, 40 medium, 50 dcase; for asd monitor), enroll/<machine>/section_<ss>/"
                        "enroll_<nnnn>.wav (normal clips for asd enroll) and labels.csv (ground truth)")
    p.add_argument("--held-out-enroll", type=int, default=None, metavar="N",
                   help="enrollment clips per section of the held-out domain (default: 10; needs --held-out-domain)")
    p.add_argument("--channels", type=int, choices=[1, 2], default=1,
                   help="1: mono clips (DCASE 2023-style, the default); 2: DCASE 2026-style two-microphone clips, "
                        "channel 0 the near microphone (the mono clip), channel 1 the far one (the machine 10-20 dB "
                        "weaker and 2-15 ms later, the same site's noise 3-6 dB stronger, correlated with channel 0's "
                        "but not a copy); each clip's far gain and delay in OUT/microphones.csv. The noise library "
                        "stays mono")
    p.add_argument("--difficulty", choices=["standard", "hard"], default="standard",
                   help="standard (the default, unchanged): one section per machine type, one background per domain; "
                        "hard: three sections per machine type and, on every clip, site nuisance that says nothing "
                        "about the machine (background level -3..+6 dB, extra spectral tilt, in two clips of three an "
                        "intermittent hum, impacts or bursts), and only anomalies a spectral mean cannot see (no valve "
                        "leak, no slider missing_events): data on which a trained encoder can beat a spectral one")
    add_workspace(p, used=False)
    p.set_defaults(func=cmd_make_demo_data)

    p = sub.add_parser("ingest", help="ingest DCASE-style dataset roots into Parquet and DuckDB",
                       description="Scan, validate, decode and write clips/audio/quarantine Parquet datasets "
                                   "(a Prefect flow). Re-running on unchanged files decodes nothing; with the roots and "
                                   "the workspace's ingested data untouched since the last run it prints that run's "
                                   "report without starting a flow. Exits non-zero only when no usable clip was found.")
    p.add_argument("roots", nargs="+", type=Path, metavar="ROOT")
    p.add_argument("--dataset-name", default=None, help="dataset name (default: each root's folder name)")
    p.add_argument("--ground-truth", type=Path, default=None,
                   help="folder with DCASE evaluator ground-truth CSVs for anonymised evaluation clips")
    add_config_options(p, AudioConfig)
    add_workspace(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("forget", help="remove a whole dataset from the workspace (asks for --yes)",
                       description="Remove every clip, audio partition, quarantine entry and derived result of one "
                                   "dataset. Without --yes it only lists what would be removed and exits 1; `asd ingest` "
                                   "never drops a dataset whose root is missing or empty.")
    p.add_argument("--dataset", required=True, metavar="NAME", help="dataset name, as in clips.dataset")
    p.add_argument("--yes", action="store_true", help="really remove it (default: only list what would go)")
    add_workspace(p)
    p.set_defaults(func=cmd_forget)

    p = sub.add_parser("mix", help="build training mixtures and noisy test sets from a noise library (Prefect flow)",
                       description="Mix clean normal training clips with noise (SNR uniform in [--snr-min, --snr-max]) "
                                   "and each test clip with held-out noise per subset and SNR bin. Only provenance is "
                                   "stored (clip, noise, offset, gains, SNR); later stages regenerate the audio exactly. "
                                   "Noise comes from --noise, ingested supplemental noise clips and/or, with "
                                   "--noise-from-channel far, the far microphone of the other two-channel training clips.")
    p.add_argument("--noise", type=Path, default=None,
                   help="noise folder: one sub-folder of WAV files per class, optional classes.csv (class,kind,held_out)")
    add_config_options(p, NoiseLibraryConfig)  # --supplemental / --no-supplemental, --noise-from-channel
    p.add_argument("--mismatched", default=None, help="comma-separated noise classes held out of training (default: classes.csv, "
                                                      "else the last class of each kind, far-channel classes not counted)")
    add_config_options(p, MixConfig)
    p.add_argument("--eval-subsets", default=None, help="comma-separated: stationary,non-stationary,mismatched (default: every "
                                                        "one the noise library has held-out recordings for)")
    p.add_argument("--eval-bins", default=None, help="SNR bins of the noisy test sets (default: -10:-5,-5:0,0:5,5:10)")
    add_workspace(p)
    p.set_defaults(func=cmd_mix)
