"""Student objectives of the retain-not-denoise method (methods.md section 3).

``retain`` (the paper's): tagging BCE + alignment of student(mixture) to
lam * teacher(clean) + (1 - lam) * teacher(noise). Comparisons: ``denoise`` (alignment to
teacher(clean), no tagging: retain with lam = 1 and tagging weight 0), ``tagging`` only and
``alignment`` only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from asd_core.training.config import ObjectiveConfig


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
