"""Per-epoch checkpoints and early-stopping state shared by the teacher and student trainers.

A checkpoint holds the modules' state dicts (net, head, optimiser), the trainer's ``state``
(epoch, best validation loss and weights, epochs without improvement, history) and identity
fields; a later run resumes from it only when the identity matches its own.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from asd_core.storage.atomic import atomic_path

logger = logging.getLogger("asd.training")


def new_state() -> dict:
    return {"epoch": 0, "best_val": float("inf"), "best_epoch": 0, "bad_epochs": 0, "history": [], "best": None}


def resume(path: Path, device: str, identity: dict, modules: dict, label: str) -> tuple[dict, int | None]:
    """Load ``modules`` from ``path`` if its identity matches; (state, epoch resumed after or None)."""
    if path.exists():
        ckpt = torch.load(path, map_location=device, weights_only=False)
        if all(ckpt.get(k) == v for k, v in identity.items()):
            for name, module in modules.items():
                module.load_state_dict(ckpt[name])
            state = ckpt["state"]
            logger.info("%s: resuming after epoch %d from %s", label, state["epoch"], path)
            return state, state["epoch"]
    return new_state(), None


def keep_training(state: dict, epochs: int, patience: int) -> bool:
    return state["epoch"] < epochs and state["bad_epochs"] < patience


def end_epoch(state: dict, epoch: int, entry: dict, monitored: float, net: torch.nn.Module, min_delta: float) -> None:
    """Record the epoch; keep a copy of the weights when ``monitored`` improved by more than ``min_delta``."""
    state["history"].append(entry)
    if monitored < state["best_val"] - min_delta:
        state.update(best_val=monitored, best_epoch=epoch, bad_epochs=0,
                     best={k: v.detach().cpu().clone() for k, v in net.state_dict().items()})
    else:
        state["bad_epochs"] += 1
    state["epoch"] = epoch


def save(path: Path, identity: dict, modules: dict, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save({**identity, **{name: m.state_dict() for name, m in modules.items()}, "state": state}, tmp)
