"""Train the teacher from scratch: auxiliary classification with AdaCos and mixup (methods.md section 1).

Classes are (machine type, section, attribute values), the usual auxiliary task of
DCASE systems: it forces the embedding to separate operating conditions, so a changed
machine sound lands away from its normal neighbours. The target domain has only ~10 clips
per section; as in the DCASE 2022-2023 systems, its attribute combinations are their own
classes and its clips are oversampled (``target_oversample``) so the classifier does not
ignore them, and they all stay in training (none go to validation). Validation holds out a
fixed fraction of source clips, chosen by clip-id hash. Attribute classes alone are too easy
on small data (training left the embedding no better than a random network's on the demo
data), so each class is split by a speed factor (training/speed.py, ``speed_factors``); the
learning rate follows a cosine decay over ``epochs``; ``crop_seconds`` trains on random crops
(about 3x faster per epoch, same scores on the demo data). The head sees the projection of the
last block; the embedding that is scored is multi-level by default (models/teacher.py), because
the last block alone keeps mostly what the auxiliary task needs (on the medium demo data, seeds
0-4, the projection scored 0.826 on average, the multi-level embedding 0.863). Deterministic
for a seed, including across an interrupted and resumed run: every epoch draws from a
generator seeded by (seed, epoch), and the checkpoint holds model, head, optimiser and
early-stopping state.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from asd_core.config import Workspace
from asd_core.models.loading import load_teacher
from asd_core.models.teacher import AdaCos, TeacherNet
from asd_core.storage.content import clip_audio_keys, set_key
from asd_core.storage.models import current_model, set_current
from asd_core.storage.paths import model_dir
from asd_core.training import loop
from asd_core.training.data import load_training_set
from asd_core.training.config import TeacherTrainConfig
from asd_core.training.speed import apply_speeds, random_crops, speed_class

__all__ = ["TeacherTrainConfig", "TrainResult", "latest_teacher", "load_teacher", "teacher_dir", "train_teacher"]

logger = logging.getLogger("asd.teacher")

@dataclass
class TrainResult:
    model_dir: Path
    model_hash: str
    epochs_run: int
    best_epoch: int
    history: list[dict]
    resumed_from: int | None


def teacher_dir(ws: Workspace, cfg: TeacherTrainConfig) -> Path:
    return model_dir(ws, "teacher", cfg.key())


def _val_speed(clip_id: str, n_factors: int) -> int:
    """A fixed speed class per validation clip, so the validation loss measures the same task every epoch."""
    return int(clip_id[8:16], 16) % n_factors


def train_teacher(ws: Workspace, cfg: TeacherTrainConfig, device: str | None = None,
                  on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train (or resume) the teacher of ``cfg`` in ``<workspace>/models/teacher/<config-hash>/``."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = teacher_dir(ws, cfg)
    out.mkdir(parents=True, exist_ok=True)
    data = load_training_set(ws, cfg.clip_seconds, cfg.model.sample_rate)
    classes = sorted(set(data.labels))
    if len(classes) < 2:
        raise ValueError(f"teacher training needs at least 2 classes (machine/section/attributes), found {classes}")
    y = np.array([classes.index(c) for c in data.labels])
    is_val = np.array([d != "target" and loop.is_val(c, cfg.val_fraction) for c, d in zip(data.clip_ids, data.domains)])
    train_idx = np.flatnonzero(~is_val)
    weights = np.where(np.array(data.domains)[train_idx] == "target", cfg.target_oversample, 1)
    train_idx = np.repeat(train_idx, weights)
    val_idx = np.flatnonzero(is_val)

    factors, n_speeds = cfg.speed_factors, len(cfg.speed_factors)
    crop = data.waves.shape[1] if cfg.crop_seconds is None else int(round(cfg.crop_seconds * cfg.model.sample_rate))
    val_speed = torch.tensor([_val_speed(data.clip_ids[i], n_speeds) for i in val_idx], dtype=torch.long)

    torch.manual_seed(cfg.seed)
    net, head = TeacherNet(cfg.model).to(device), AdaCos(cfg.model.embedding_dim, len(classes) * n_speeds).to(device)
    opt = torch.optim.AdamW(list(net.parameters()) + list(head.parameters()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # The folder is keyed by the config; the checkpoint also by the training data's content, so a
    # replaced recording or a relabelled clip trains anew instead of resuming a stale model.
    audio_keys = clip_audio_keys(ws)
    data_key = set_key((c, f"{audio_keys.get(c)}|{label}|{domain}") for c, label, domain in zip(data.clip_ids, data.labels, data.domains))
    ckpt_path, identity = out / "checkpoint.pt", {"config_key": cfg.key(), "classes": classes, "data_key": data_key}
    modules = {"net": net, "head": head, "opt": opt}
    waves = torch.from_numpy(data.waves)
    y = torch.from_numpy(y)

    def start_epoch(epoch: int) -> None:
        for group in opt.param_groups:
            group["lr"] = cfg.epoch_lr(epoch)

    def step(idx: np.ndarray, gen: np.random.Generator) -> tuple[torch.Tensor, dict]:
        speed = torch.from_numpy(gen.integers(0, n_speeds, len(idx)))
        x = random_crops(apply_speeds(waves[idx], speed, factors), crop, gen).to(device)
        t = F.one_hot(speed_class(y[idx], speed, n_speeds), len(classes) * n_speeds).float().to(device)
        if cfg.mixup_alpha > 0 and len(idx) > 1:
            lam = torch.from_numpy(gen.beta(cfg.mixup_alpha, cfg.mixup_alpha, (len(idx), 1)).astype(np.float32)).to(device)
            perm = torch.from_numpy(gen.permutation(len(idx))).to(device)
            x, t = lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]
        logits = head(net.class_embedding(x), t)
        return -(t * F.log_softmax(logits, dim=1)).sum(1).mean(), {}

    def val_total(start: int, b: np.ndarray) -> float:
        """Summed cross-entropy of the (class, speed) task on validation clips, each at its fixed speed."""
        s = val_speed[start : start + cfg.batch_size]
        logits = head(net.class_embedding(apply_speeds(waves[b], s, factors).to(device)))
        return F.cross_entropy(logits, speed_class(y[b], s, n_speeds).to(device), reduction="sum").item()

    def summarise(epoch: loop.Epoch) -> tuple[dict, float]:
        entry = {"epoch": epoch.number, "train_loss": float(np.mean(epoch.losses)), "val_loss": epoch.val_loss,
                 "seconds": round(time.perf_counter() - epoch.t0, 2), "scale": float(head.scale), "lr": cfg.epoch_lr(epoch.number)}
        return entry, epoch.val_loss

    def log(epoch: loop.Epoch, entry: dict) -> None:
        logger.info("teacher epoch %d/%d: train loss %.4f, val loss %.4f, %.1f s (%.1f clips/s)", epoch.number, cfg.epochs,
                    entry["train_loss"], entry["val_loss"], entry["seconds"], len(train_idx) / max(entry["seconds"], 1e-9))

    state, resumed = loop.train_epochs(
        label="teacher", ckpt_path=ckpt_path, device=device, identity=identity, modules=modules, net=net,
        train_idx=train_idx, batch_size=cfg.batch_size, epochs=cfg.epochs, patience=cfg.patience, seed=cfg.seed,
        min_delta=1e-6, start_epoch=start_epoch, step=step,
        validate=lambda: loop.validation_loss([net, head], val_idx, cfg.batch_size, val_total),
        summarise=summarise, log=log, on_epoch_end=on_epoch_end)

    best = state["best"] or {k: v.cpu() for k, v in net.state_dict().items()}
    model_hash = _save_model(out, best, cfg, classes, state, data_key)
    set_current(ws, "teacher", out)
    return TrainResult(out, model_hash, state["epoch"], state["best_epoch"], state["history"], resumed)


def _save_model(out: Path, best: dict, cfg: TeacherTrainConfig, classes: list[str], state: dict, data_key: str) -> str:
    """``model.pt`` (plain state dict, loads with weights_only) + ``config.json`` with its content hash."""
    return loop.save_model(out, loop.state_dict_blob(best), lambda model_hash: {
        "model": cfg.model.to_dict(), "train": cfg.to_dict(), "classes": classes, "model_hash": model_hash,
        "best_epoch": state["best_epoch"], "history": state["history"], "data_key": data_key})


def latest_teacher(ws: Workspace) -> Path:
    """The teacher folder ``asd train-teacher`` wrote last (the ``CURRENT`` pointer, storage/models.py)."""
    return current_model(ws, "teacher")
