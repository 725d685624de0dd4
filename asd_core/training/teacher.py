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

import hashlib
import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from asd_core.config import Workspace
from asd_core.models.loading import load_teacher
from asd_core.models.teacher import AdaCos, TeacherConfig, TeacherNet
from asd_core.storage.content import clip_audio_keys, set_key
from asd_core.storage.models import current_model, set_current, weights_hash, write_model
from asd_core.storage.paths import model_dir
from asd_core.training import checkpoint
from asd_core.training.data import load_training_set
from asd_core.training.speed import apply_speeds, check_factors, random_crops, speed_class

__all__ = ["TeacherTrainConfig", "TrainResult", "latest_teacher", "load_teacher", "teacher_dir", "train_teacher"]

logger = logging.getLogger("asd.teacher")
LR_SCHEDULES = ("cosine", "constant")


@dataclass
class TeacherTrainConfig:
    model: TeacherConfig = field(default_factory=TeacherConfig)
    epochs: int = 10  # also the length of the cosine schedule; its annealed end gives the steadiest embeddings
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    mixup_alpha: float = 0.2  # Beta(alpha, alpha) mixing weights; 0 disables mixup
    target_oversample: int = 5
    val_fraction: float = 0.1
    patience: int = 5
    clip_seconds: float | None = None
    seed: int = 0
    # Self-supervised speed classes (training/speed.py); (1.0,) turns them off.
    speed_factors: tuple[float, ...] = (1.0, 0.96, 1.04)
    lr_schedule: str = "cosine"  # cosine (decay to 0 at ``epochs``) | constant
    crop_seconds: float | None = None  # random crop of each training clip per step (training/speed.py); None: whole clips

    def __post_init__(self) -> None:
        self.speed_factors = check_factors(tuple(self.speed_factors))
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if self.crop_seconds is not None and not self.crop_seconds > 0:
            raise ValueError(f"crop_seconds must be positive or None (whole clips), got {self.crop_seconds}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["speed_factors"] = list(self.speed_factors)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TeacherTrainConfig":
        d = dict(d)
        d["model"] = TeacherConfig.from_dict(d.get("model", TeacherConfig().to_dict()))
        return cls(**d)

    def epoch_lr(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch``: a function of the epoch only, so a resumed run follows the same curve."""
        if self.lr_schedule == "constant":
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / max(self.epochs, 1)))

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


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


def _is_val(clip_id: str, fraction: float) -> bool:
    return int(clip_id[:8], 16) % 1000 < fraction * 1000


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
    is_val = np.array([d != "target" and _is_val(c, cfg.val_fraction) for c, d in zip(data.clip_ids, data.domains)])
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
    state, resumed = checkpoint.resume(ckpt_path, device, identity, modules, "teacher")
    waves = torch.from_numpy(data.waves)
    y = torch.from_numpy(y)

    while checkpoint.keep_training(state, cfg.epochs, cfg.patience):
        epoch = state["epoch"] + 1
        gen = np.random.default_rng((cfg.seed, epoch))
        for group in opt.param_groups:
            group["lr"] = cfg.epoch_lr(epoch)
        t0 = time.perf_counter()
        net.train()
        head.train()
        order = gen.permutation(train_idx)
        losses = []
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            speed = torch.from_numpy(gen.integers(0, n_speeds, len(idx)))
            x = random_crops(apply_speeds(waves[idx], speed, factors), crop, gen).to(device)
            t = F.one_hot(speed_class(y[idx], speed, n_speeds), len(classes) * n_speeds).float().to(device)
            if cfg.mixup_alpha > 0 and len(idx) > 1:
                lam = torch.from_numpy(gen.beta(cfg.mixup_alpha, cfg.mixup_alpha, (len(idx), 1)).astype(np.float32)).to(device)
                perm = torch.from_numpy(gen.permutation(len(idx))).to(device)
                x, t = lam * x + (1 - lam) * x[perm], lam * t + (1 - lam) * t[perm]
            logits = head(net.class_embedding(x), t)
            loss = -(t * F.log_softmax(logits, dim=1)).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        val_loss = _evaluate(net, head, waves, y, val_idx, val_speed, factors, cfg.batch_size, device)
        entry = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                 "seconds": round(time.perf_counter() - t0, 2), "scale": float(head.scale), "lr": cfg.epoch_lr(epoch)}
        checkpoint.end_epoch(state, epoch, entry, val_loss, net, min_delta=1e-6)
        checkpoint.save(ckpt_path, identity, modules, state)
        logger.info("teacher epoch %d/%d: train loss %.4f, val loss %.4f, %.1f s (%.1f clips/s)", epoch, cfg.epochs,
                    entry["train_loss"], val_loss, entry["seconds"], len(train_idx) / max(entry["seconds"], 1e-9))
        if on_epoch_end:
            on_epoch_end(epoch, entry)

    best = state["best"] or {k: v.cpu() for k, v in net.state_dict().items()}
    model_hash = _save_model(out, best, cfg, classes, state, data_key)
    set_current(ws, "teacher", out)
    return TrainResult(out, model_hash, state["epoch"], state["best_epoch"], state["history"], resumed)


def _evaluate(net, head, waves, y, idx, speed, factors, batch_size, device) -> float:
    """Mean cross-entropy of the (class, speed) task on the validation clips, each at its fixed speed."""
    if len(idx) == 0:
        return float("nan")
    net.eval()
    head.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(idx), batch_size):
            b, s = idx[start : start + batch_size], speed[start : start + batch_size]
            logits = head(net.class_embedding(apply_speeds(waves[b], s, factors).to(device)))
            total += F.cross_entropy(logits, speed_class(y[b], s, len(factors)).to(device), reduction="sum").item()
    return total / len(idx)


def _save_model(out: Path, best: dict, cfg: TeacherTrainConfig, classes: list[str], state: dict, data_key: str) -> str:
    """``model.pt`` (plain state dict, loads with weights_only) + ``config.json`` with its content hash."""
    buf = io.BytesIO()
    torch.save(best, buf)
    blob = buf.getvalue()
    model_hash = weights_hash(blob)
    card = {"model": cfg.model.to_dict(), "train": cfg.to_dict(), "classes": classes, "model_hash": model_hash,
            "best_epoch": state["best_epoch"], "history": state["history"], "data_key": data_key}
    write_model(out, blob, card)
    return model_hash


def latest_teacher(ws: Workspace) -> Path:
    """The teacher folder ``asd train-teacher`` wrote last (the ``CURRENT`` pointer, storage/models.py)."""
    return current_model(ws, "teacher")
