"""Torch-free configuration of teacher and student training (methods.md section 3): the CLI and
the pipeline config read these without loading torch; the training modules re-export them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from asd_core.config import option
from asd_core.hashing import json_id
from asd_core.models.config import TeacherConfig

OBJECTIVES = ("retain", "denoise", "tagging", "alignment")
DISTANCES = ("mse", "cosine")


@dataclass(frozen=True)
class ObjectiveConfig:
    objective: str = option("retain", choices=OBJECTIVES,
                            help="retain (the paper's), denoise (target teacher(clean)), tagging only, alignment only")
    lam: float = option(0.5, help="lambda of the alignment target lam * teacher(clean) + (1 - lam) * teacher(noise)")
    distance: str = option("mse", flag="--align-distance", choices=DISTANCES, help="alignment distance on pooled embeddings")
    tag_weight: float = option(1.0, help="weight of the tagging loss")
    align_weight: float = option(1.0, help="weight of the alignment loss")

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.distance not in DISTANCES:
            raise ValueError(f"unknown alignment distance {self.distance!r}; choose one of {', '.join(DISTANCES)}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lambda must be in [0, 1], got {self.lam}")
        if self.tag_weight < 0 or self.align_weight < 0:
            raise ValueError("loss weights must be >= 0")

    def effective(self) -> tuple[float, float, float]:
        """(lambda, tagging weight, alignment weight) the objective trains with."""
        if self.objective == "denoise":
            return 1.0, 0.0, self.align_weight
        if self.objective == "tagging":
            return self.lam, self.tag_weight, 0.0
        if self.objective == "alignment":
            return self.lam, 0.0, self.align_weight
        return self.lam, self.tag_weight, self.align_weight

    def to_dict(self) -> dict:
        lam, wt, wa = self.effective()
        return {**asdict(self), "effective": {"lam": lam, "tag_weight": wt, "align_weight": wa}}


def check_factors(factors: tuple[float, ...]) -> tuple[float, ...]:
    """Factor 1.0 (the clip as recorded) first, then the others in the given order, no duplicates."""
    bad = [f for f in factors if not 0.5 <= f <= 2.0]
    if bad:
        raise ValueError(f"speed factors must lie in [0.5, 2.0], got {bad}")
    rest = [float(f) for f in factors if f != 1.0]
    if len(set(rest)) != len(rest):
        raise ValueError(f"speed factors repeat: {list(factors)}")
    return (1.0, *rest)


LR_SCHEDULES = ("cosine", "constant")


@dataclass
class TeacherTrainConfig:
    model: TeacherConfig = field(default_factory=TeacherConfig)
    # epochs is also the length of the cosine schedule; its annealed end gives the steadiest embeddings
    epochs: int = option(10, help="epochs, also the length of the cosine lr schedule")
    batch_size: int = option(32, help="clips per step")
    lr: float = option(2e-3, help="peak learning rate")
    weight_decay: float = 1e-4
    mixup_alpha: float = 0.2  # Beta(alpha, alpha) mixing weights; 0 disables mixup
    target_oversample: int = 5
    val_fraction: float = 0.1
    patience: int = option(5, help="stop after this many epochs without a better validation loss")
    clip_seconds: float | None = None
    seed: int = option(0, help="seed of initialisation, splits, mixup and crops")
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
        return json_id(self.to_dict(), 12)


@dataclass
class StudentTrainConfig:
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    epochs: int = option(10, help="epochs")
    batch_size: int = option(16, help="mixtures per step")
    lr: float = option(1e-4, help="learning rate (fine-tuning a trained encoder: small steps)")
    weight_decay: float = 1e-4
    val_fraction: float = 0.1
    patience: int = option(3, help="stop after this many epochs without a better validation loss")
    clip_seconds: float | None = None  # default: the median mixture length
    seed: int = option(0, help="seed of splits, batches and initialisation of the heads")
    layer: int | None = option(None, help="BEATs teacher: transformer layer feeding the embedding (default: last)")
    pooling: str = option("mean", choices=("mean", "time-mean"), help="BEATs teacher: pooling over tokens")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["objective"] = {k: v for k, v in asdict(self.objective).items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StudentTrainConfig":
        d = dict(d)
        d["objective"] = ObjectiveConfig(**d.get("objective", {}))
        return cls(**d)
