"""Per-epoch checkpoints and early-stopping state of the training loop (training/loop.py) the teacher and student share.

A checkpoint holds the modules' state dicts (net, head, optimiser), the trainer's ``state``
(epoch, best validation loss and weights, epochs without improvement, history) and identity
fields; a later run resumes from it only when the identity matches its own. It holds only
tensors, numbers, strings and containers, so it loads with ``weights_only=True``
(storage/weights.py): a planted ``checkpoint.pt`` is refused, never executed. No RNG state is
needed: the trainers draw every epoch from generators seeded by (seed, epoch).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from asd_core.storage.atomic import atomic_path
from asd_core.storage.weights import WeightsFileError, load_weights

logger = logging.getLogger("asd.training")


def new_state() -> dict:
    return {"epoch": 0, "best_val": float("inf"), "best_epoch": 0, "bad_epochs": 0, "history": [], "best": None}


def resume(path: Path, device: str, identity: dict, modules: dict, label: str) -> tuple[dict, int | None]:
    """Load ``modules`` from ``path`` if its identity matches; (state, epoch resumed after or None).

    A checkpoint that cannot be read, or does not fit the modules, is an error naming the file
    (``WeightsFileError``), not a silent fresh start: it was planted or damaged, and the user decides.
    """
    path = Path(path)
    if not path.exists():
        return new_state(), None
    hint = "; delete it to train from scratch"
    try:
        ckpt = load_weights(path, map_location=device)
    except WeightsFileError as exc:
        raise WeightsFileError(path, exc.reason + hint) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state"), dict) or not set(new_state()) <= set(ckpt["state"]) \
            or not all(isinstance(ckpt.get(name), dict) for name in modules):
        raise WeightsFileError(path, f"not a {label} training checkpoint of this pipeline{hint}")
    if not all(ckpt.get(k) == v for k, v in identity.items()):
        return new_state(), None
    try:
        for name, module in modules.items():
            module.load_state_dict(ckpt[name])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise WeightsFileError(path, f"checkpoint does not fit the {label} ({first}){hint}") from None
    state = ckpt["state"]
    logger.info("%s: resuming after epoch %d from %s", label, state["epoch"], path)
    return state, state["epoch"]


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
    """Write the checkpoint atomically, in types the weights-only loader accepts."""
    ckpt = {**identity, **{name: m.state_dict() for name, m in modules.items()}, "state": state}
    with atomic_path(path) as tmp:
        torch.save(_plain(ckpt), tmp)


def _plain(obj):
    """NumPy scalars and arrays -> Python numbers and tensors (``weights_only`` refuses NumPy globals)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    return obj
