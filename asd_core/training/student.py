"""Train the retain-not-denoise student on the mixtures of ``asd mix`` (methods.md section 3).

The student starts as a copy of the frozen teacher. Each mixture m = g_c c + g_n n is
regenerated from provenance; the teacher embeds the scaled parts g_c c and g_n n once (it
is frozen, so its targets are computed before training and cached), the student embeds m.
Loss and variants: training/objectives.py. A validation split of mixtures (by id hash)
drives early stopping; every epoch writes a checkpoint, and a re-run resumes from it.
Deterministic for a seed, including across a resume (per-epoch generators and torch seeds).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from asd_core.config import PIPELINE_SAMPLE_RATE, Workspace
from asd_core.hashing import json_id
from asd_core.mixing.artifacts import check_planned_on, read_mixtures
from asd_core.mixing.noise_library import read_noise_library
from asd_core.mixing.render import render
from asd_core.storage.audio import stream_waves
from asd_core.storage.content import clip_audio_keys, mixture_key, set_key
from asd_core.storage.models import current_model, set_current
from asd_core.storage.paths import model_dir
from asd_core.storage.scratch import scratch_clips
from asd_core.training import loop
from asd_core.training.backbone import Backbone, backbone_weights, load_backbone
from asd_core.training.data import fix_length
from asd_core.training.config import StudentTrainConfig
from asd_core.training.objectives import student_loss

logger = logging.getLogger("asd.student")


@dataclass
class StudentResult:
    model_dir: Path
    model_hash: str
    epochs_run: int
    best_epoch: int
    history: list[dict]
    resumed_from: int | None
    steps_per_s: float


def _hash(obj) -> str:
    return json_id(obj, 12)


def student_dir(ws: Workspace, key: str) -> Path:
    return model_dir(ws, "student", key)


def train_student(ws: Workspace, teacher_path: str | Path, cfg: StudentTrainConfig, device: str | None = None,
                  on_epoch_end: Callable[[int, dict], None] | None = None) -> StudentResult:
    """Train (or resume) a student of ``teacher_path`` in ``<workspace>/models/student/<key>/``."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    teacher = load_backbone(teacher_path, device, cfg.layer, cfg.pooling)
    teacher.net.eval()
    mixtures = sorted(read_mixtures(ws), key=lambda r: r["mixture_id"])
    if not mixtures:
        raise ValueError(f"no training mixtures in {ws.root}: `asd mix` planned none (is --mixtures-per-clip 0?)")
    audio_keys = clip_audio_keys(ws)
    check_planned_on(mixtures, audio_keys, "training mixtures")
    lib = read_noise_library(ws)
    key = _hash({"cfg": cfg.to_dict(), "teacher": teacher.source_hash, "mixtures": [r["mixture_id"] for r in mixtures]})
    # The checkpoint is also keyed by the audio the mixtures render to, so a replaced recording
    # (re-planned by `asd mix`) trains anew instead of resuming a stale student.
    data_key = set_key((r["mixture_id"], mixture_key(r, audio_keys[r["clip_id"]])) for r in mixtures)
    out = student_dir(ws, key)
    out.mkdir(parents=True, exist_ok=True)

    sr = PIPELINE_SAMPLE_RATE  # the mixtures are rendered from the stored clips, at the pipeline rate
    n = int(round((cfg.clip_seconds or float(np.median([r["num_samples"] for r in mixtures]) / sr)) * sr))
    planned = {r["clip_id"]: r["num_samples"] for r in mixtures}
    clean = scratch_clips(ws, planned, stream_waves(ws, planned.keys()), "clean clips of the training mixtures")
    missing = sorted(c for c in planned if c not in clean)
    if missing:
        raise FileNotFoundError(f"{len(missing)} clean clips of the mixtures are no longer in the workspace "
                                f"(e.g. {missing[0]}); run `asd mix` again")
    machine_tags = sorted({r["machine_type"] for r in mixtures})
    noise_tags = sorted({r["noise_class"] for r in mixtures})
    tags = [f"machine:{m}" for m in machine_tags] + [f"noise:{c}" for c in noise_tags]
    tag_targets = torch.zeros(len(mixtures), len(tags))
    for i, r in enumerate(mixtures):
        tag_targets[i, tags.index(f"machine:{r['machine_type']}")] = 1
        tag_targets[i, tags.index(f"noise:{r['noise_class']}")] = 1

    def parts(idx) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ms, cs, ns = [], [], []
        for i in idx:
            m, c, nz = render(mixtures[i], clean[mixtures[i]["clip_id"]], lib)
            ms.append(fix_length(m, n))
            cs.append(fix_length(c, n))
            ns.append(fix_length(nz, n))
        return np.stack(ms), np.stack(cs), np.stack(ns)

    # Frozen teacher: its embeddings of the scaled clean and noise parts are fixed targets.
    t0 = time.perf_counter()
    t_clean, t_noise = [], []
    with torch.inference_mode():
        for start in range(0, len(mixtures), cfg.batch_size):
            _, cs, ns = parts(range(start, min(start + cfg.batch_size, len(mixtures))))
            t_clean.append(teacher.net(torch.from_numpy(cs).to(device)).float().cpu())
            t_noise.append(teacher.net(torch.from_numpy(ns).to(device)).float().cpu())
    t_clean, t_noise = torch.cat(t_clean), torch.cat(t_noise)
    logger.info("student: teacher targets for %d mixtures in %.1f s", len(mixtures), time.perf_counter() - t0)

    is_val = np.array([loop.is_val(r["mixture_id"], cfg.val_fraction) for r in mixtures])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    torch.manual_seed(cfg.seed)
    student: Backbone = teacher.copy()
    for p in student.net.parameters():
        p.requires_grad_(True)
    head = nn.Linear(student.dim, len(tags)).to(device)
    opt = torch.optim.AdamW(list(student.net.parameters()) + list(head.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path, identity, modules = out / "checkpoint.pt", {"key": key, "data_key": data_key}, {"net": student.net, "head": head, "opt": opt}

    def batch_loss(idx):
        ms, _, _ = parts(idx)
        emb = student.net(torch.from_numpy(ms).to(device))
        return student_loss(emb, head(emb), tag_targets[idx].to(device), t_clean[idx].to(device),
                            t_noise[idx].to(device), cfg.objective)

    def start_epoch(epoch: int) -> None:
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout etc.: same draws after a resume

    def summarise(epoch: loop.Epoch) -> tuple[dict, float]:
        sums, steps = {"loss": 0.0, "tag_loss": 0.0, "align_loss": 0.0}, len(epoch.losses)
        for loss, part in zip(epoch.losses, epoch.parts):
            sums["loss"] += loss
            sums["tag_loss"] += part["tag_loss"]
            sums["align_loss"] += part["align_loss"]
        entry = {"epoch": epoch.number, "train_loss": sums["loss"] / max(steps, 1), "train_tag_loss": sums["tag_loss"] / max(steps, 1),
                 "train_align_loss": sums["align_loss"] / max(steps, 1), "val_loss": epoch.val_loss,
                 "seconds": round(epoch.train_seconds, 2), "steps_per_s": steps / max(epoch.train_seconds, 1e-9)}
        return entry, epoch.val_loss if np.isfinite(epoch.val_loss) else entry["train_loss"]

    def log(epoch: loop.Epoch, entry: dict) -> None:
        logger.info("student epoch %d/%d: loss %.4f (tag %.4f, align %.4f), val %.4f, %.1f s (%.2f steps/s)", epoch.number, cfg.epochs,
                    entry["train_loss"], entry["train_tag_loss"], entry["train_align_loss"], entry["val_loss"],
                    epoch.train_seconds, entry["steps_per_s"])

    state, resumed = loop.train_epochs(
        label="student", ckpt_path=ckpt_path, device=device, identity=identity, modules=modules, net=student.net,
        train_idx=train_idx, batch_size=cfg.batch_size, epochs=cfg.epochs, patience=cfg.patience, seed=cfg.seed,
        min_delta=1e-7, start_epoch=start_epoch, step=lambda idx, gen: batch_loss(idx),
        validate=lambda: loop.validation_loss([student.net, head], val_idx, cfg.batch_size,
                                              lambda start, b: batch_loss(b)[0].item() * len(b)),
        summarise=summarise, log=log, on_epoch_end=on_epoch_end)

    if state["best"] is not None:
        student.net.load_state_dict(state["best"])
    model_hash = _save_student(out, student, teacher, cfg, tags, state, key)
    set_current(ws, "student", out, objective=cfg.objective.objective)
    rates = [h["steps_per_s"] for h in state["history"]]
    return StudentResult(out, model_hash, state["epoch"], state["best_epoch"], state["history"], resumed,
                         float(np.mean(rates)) if rates else 0.0)


def _save_student(out: Path, student: Backbone, teacher: Backbone, cfg: StudentTrainConfig, tags: list[str],
                  state: dict, key: str) -> str:
    """``model.pt`` (teacher layout or BEATs official layout) + ``config.json`` with the weights' hash."""
    return loop.save_model(out, backbone_weights(student), lambda model_hash: {
        "kind": "student", "key": key, "objective": cfg.objective.objective, "teacher": teacher.describe(),
        "teacher_model": student.net.cfg.to_dict() if teacher.kind == "teacher" else None,
        "train": cfg.to_dict(), "objective_config": cfg.objective.to_dict(), "tags": tags, "model_hash": model_hash,
        "embedding_dim": student.dim, "best_epoch": state["best_epoch"], "history": state["history"]})


def latest_student(ws: Workspace, objective: str | None = None) -> Path:
    """The student folder ``asd train-student`` wrote last (of ``objective`` when given; the
    ``CURRENT`` pointer, storage/models.py)."""
    return current_model(ws, "student", objective)
