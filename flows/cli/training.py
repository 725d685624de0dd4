"""Encoder commands: embed, train-teacher, train-student."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asd_core.choices import ENCODER_NAMES
from asd_core.training.config import ObjectiveConfig, StudentTrainConfig, TeacherTrainConfig
from flows.cli.common import add_tracking, add_tracking_uri, add_workspace, run_or_reuse
from flows.cli.options import add_config_options, given


def encoder_spec(args):
    """The ``EncoderSpec`` that ``asd embed``'s options describe (models default to the workspace's current)."""
    from asd_core.config import Workspace
    from asd_core.encoders import EncoderSpec
    from asd_core.storage.models import current_model

    def current(kind: str) -> Path:
        return current_model(Workspace(args.workspace), kind)

    if args.encoder in ("teacher", "student"):
        spec = (EncoderSpec.teacher if args.encoder == "teacher" else EncoderSpec.student)(args.model or current(args.encoder))
    elif args.encoder == "oracle":
        teacher = args.checkpoint or args.model or current("teacher")
        spec = EncoderSpec.oracle(teacher, args.lam, args.layer, args.pooling if args.checkpoint else None)
    elif args.encoder == "beats":
        spec = EncoderSpec.beats(args.checkpoint, args.layer, args.pooling, args.clip_seconds, args.clip_mode)
    elif args.checkpoint:
        raise ValueError(f"--checkpoint is for --encoder beats, not {args.encoder}")
    else:
        spec = EncoderSpec.spectral(args.encoder)
    spec.check()  # wrong or damaged models fail before Prefect starts
    return spec


def cmd_embed(args) -> int:
    from asd_core.config import Workspace
    from asd_core.pipeline.uptodate import as_embed_noop, embed_cache

    spec = encoder_spec(args)
    if args.channel is not None:  # a channel no dataset stores fails before Prefect starts (importing flows starts it)
        from asd_core.storage.audio import choose_channels
        from asd_core.storage.paths import audio_partitions

        if parts := audio_partitions(Workspace(args.workspace)):
            choose_channels(parts, args.channel)

    def run():
        from flows.embed import embed_flow

        return embed_flow(workspace=str(args.workspace), encoder=spec.name, batch_size=args.batch_size,
                          threads=args.threads, encoder_options=spec.options, workers=args.workers, noisy=args.noisy,
                          channel=args.channel)

    # every clip already embedded by this code and model: the stored report, without Prefect or torch
    report = run_or_reuse(lambda: embed_cache(Workspace(args.workspace), spec, args.noisy, args.channel), run, as_embed_noop)
    channels = f", channel {', '.join(report['channels'])}" if args.channel is not None else ""
    print(f"{report['encoder']} (version {report['encoder_version']}, dim {report['dim']}{channels}): "
          f"{report['embedded']} clips embedded, {report['reused']} already done")
    return 0


def cmd_train_teacher(args) -> int:
    from flows.train_teacher import load_config_file, train_teacher_flow

    config = {**load_config_file(args.config), **given(args, TeacherTrainConfig)}
    r = train_teacher_flow(workspace=str(args.workspace), config=config, device=args.device, threads=args.threads,
                           tracking_uri=args.tracking_uri)
    resumed = f", resumed after epoch {r['resumed_from']}" if r["resumed_from"] else ""
    print(f"teacher {r['model_hash']} in {r['model_dir']}: best epoch {r['best_epoch']} of {r['epochs_run']}{resumed}")
    print(f"Embed with it:  asd embed --workspace {args.workspace} --encoder teacher --model {r['model_dir']}")
    return 0


def cmd_train_student(args) -> int:
    from asd_core.textable import format_table

    config = json.loads(Path(args.config).read_text()) if args.config else {}
    config["objective"] = {**dict(config.get("objective") or {}), **given(args, ObjectiveConfig)}
    config.update(given(args, StudentTrainConfig))
    teacher = args.teacher
    if teacher is None:
        from asd_core.config import Workspace
        from asd_core.storage.models import current_model

        teacher = current_model(Workspace(args.workspace), "teacher")
    from asd_core.training.backbone import check_backbone_source

    check_backbone_source(teacher)  # a wrong or damaged teacher fails before Prefect starts
    from flows.train_student import train_student_flow

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="embed every ingested clip with an encoder (Prefect flow)",
                       description="Write Parquet embeddings (clip_id, encoder, encoder_version, vector); clips "
                                   "already embedded by the same encoder version are skipped. A re-run with nothing "
                                   "to do (same clips, model, code and options, outputs untouched) prints its stored "
                                   "report without starting a flow.")
    p.add_argument("--encoder", default="logmel-stats", choices=ENCODER_NAMES)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=None, help="torch/FAISS threads (default: all available cores)")
    p.add_argument("--workers", type=int, default=0,
                   help="DataLoader worker processes reading audio (default: %(default)s = read in the main process)")
    p.add_argument("--model", type=Path, default=None,
                   help="teacher / oracle: folder written by asd train-teacher; student: folder written by asd "
                        "train-student (default: the newest in the workspace)")
    p.add_argument("--noisy", action="store_true", help="also embed the noisy test clips of asd mix")
    p.add_argument("--channel", default=None, metavar="near|far|mean|N",
                   help="which stored channel to embed: near or far (two-channel recordings), mean (of the stored "
                        "channels), a channel index, or ch<N> (--channels all). Default: each clip's primary "
                        "waveform (the near microphone, or the only channel). Datasets without it are left out")
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
    add_workspace(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("train-teacher", help="train the teacher encoder from scratch (Prefect flow, resumable)",
                       description="Train a small CNN on log-mel input with an AdaCos auxiliary classification over "
                                   "machine type / section / attributes, with mixup, early stopping on a validation "
                                   "split and a checkpoint per epoch. Re-running the same config resumes. `asd embed "
                                   "--encoder teacher` then writes its multi-level embedding (see README).")
    p.add_argument("--config", default=None, help="JSON file with training/model settings (see README)")
    add_config_options(p, TeacherTrainConfig)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None)
    add_tracking_uri(p)
    add_workspace(p)
    p.set_defaults(func=cmd_train_teacher)

    p = sub.add_parser("train-student", help="train the retain-not-denoise student on mixtures, evaluate, register (Prefect flow)",
                       description="Copy the teacher into a student and train it on the mixtures of asd mix: tagging BCE "
                                   "(machine + noise classes) + alignment of student(mixture) to lam * teacher(clean) + "
                                   "(1 - lam) * teacher(noise). Then score teacher, student and oracle (none, knn) on clean "
                                   "and noisy test clips, log to MLflow and register the student as challenger.")
    p.add_argument("--teacher", type=Path, default=None,
                   help="teacher: folder written by asd train-teacher (default: the newest) or a BEATs checkpoint file")
    add_config_options(p, ObjectiveConfig)
    p.add_argument("--config", default=None, help="JSON file of StudentTrainConfig fields (objective nested)")
    add_config_options(p, StudentTrainConfig)
    p.add_argument("--no-evaluate", action="store_true", help="train only: no scoring runs, no registration")
    p.add_argument("--no-register", action="store_true", help="evaluate but do not register in MLflow")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None)
    add_tracking(p)
    add_workspace(p)
    p.set_defaults(func=cmd_train_student)
