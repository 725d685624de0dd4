"""Student objectives of the retain-not-denoise method (methods.md section 3).

``retain`` (the paper's): tagging BCE + alignment of student(mixture) to
lam * teacher(clean) + (1 - lam) * teacher(noise). Comparisons: ``denoise`` (alignment to
teacher(clean), no tagging: retain with lam = 1 and tagging weight 0), ``tagging`` only and
``alignment`` only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

OBJECTIVES = ("retain", "denoise", "tagging", "alignment")
DISTANCES = ("mse", "cosine")


@dataclass(frozen=True)
class ObjectiveConfig:
    objective: str = "retain"
    lam: float = 0.5
    distance: str = "mse"  # alignment distance on pooled embeddings
    tag_weight: float = 1.0
    align_weight: float = 1.0

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


def alignment_target(t_clean: torch.Tensor, t_noise: torch.Tensor, lam: float) -> torch.Tensor:
    """lam * teacher(clean) + (1 - lam) * teacher(noise); lam = 1 is the denoising target."""
    return lam * t_clean + (1.0 - lam) * t_noise


def alignment_loss(student: torch.Tensor, target: torch.Tensor, distance: str = "mse") -> torch.Tensor:
    if distance == "mse":
        return F.mse_loss(student, target)
    return (1.0 - F.cosine_similarity(student, target, dim=1)).mean()


def student_loss(student_emb: torch.Tensor, tag_logits: torch.Tensor | None, tags: torch.Tensor,
                 t_clean: torch.Tensor, t_noise: torch.Tensor, cfg: ObjectiveConfig) -> tuple[torch.Tensor, dict]:
    """Weighted sum of tagging BCE and alignment loss; also the parts (floats) for logging."""
    lam, w_tag, w_align = cfg.effective()
    zero = student_emb.new_zeros(())
    tag = F.binary_cross_entropy_with_logits(tag_logits, tags) if w_tag > 0 and tag_logits is not None else zero
    align = alignment_loss(student_emb, alignment_target(t_clean, t_noise, lam), cfg.distance) if w_align > 0 else zero
    total = w_tag * tag + w_align * align
    return total, {"tag_loss": float(tag.detach()), "align_loss": float(align.detach())}
