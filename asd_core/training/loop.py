"""The training loop the teacher and student trainers share.

It owns what the two have in common: the validation split by id hash (``is_val``), resuming
from and saving to ``checkpoint.pt`` (training/checkpoint.py holds its format), the per-epoch
driver with its generator seeded by (seed, epoch), shuffling and batching of the training
indices, the optimiser step, the validation loss over index batches, early stopping (patience
on the monitored loss, best weights kept in the checkpoint state) and writing the final model
with its content hash. What differs is passed in: a trainer's ``start_epoch`` (learning rate,
torch seed), its ``step`` (the loss of one batch, drawing from the epoch's generator), its
validation batch loss and how it summarises an epoch. The order of every random draw is that of
the trainers before they shared this loop, so a seed gives the same weights, across a resume too.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from asd_core.storage.models import weights_hash, write_model
from asd_core.training import checkpoint

__all__ = ["Epoch", "is_val", "save_model", "state_dict_blob", "train_epochs", "validation_loss"]


def is_val(item_id: str, fraction: float) -> bool:
    """Whether the clip or mixture ``item_id`` (a hex content id) is in the validation split."""
    return int(item_id[:8], 16) % 1000 < fraction * 1000


def validation_loss(modules: list[torch.nn.Module], idx: np.ndarray, batch_size: int,
                    batch_total: Callable[[int, np.ndarray], float]) -> float:
    """Mean loss over the validation indices ``idx``; ``batch_total(start, batch)`` is the summed loss
    of the batch starting at position ``start`` of ``idx``. NaN without validation indices."""
    if len(idx) == 0:
        return float("nan")
    for m in modules:
        m.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(idx), batch_size):
            total += batch_total(start, idx[start : start + batch_size])
    return total / len(idx)


@dataclass
class Epoch:
    """One epoch's run, handed to the trainer's ``summarise``."""

    number: int
    t0: float  # perf_counter() when training of the epoch began
    train_seconds: float = 0.0  # the training pass, without validation
    losses: list[float] = field(default_factory=list)  # loss.item() of each step
    parts: list[dict] = field(default_factory=list)  # the step's extra values, per step
    val_loss: float = float("nan")


def train_epochs(*, label: str, ckpt_path: Path, device: str, identity: dict, modules: dict, net: torch.nn.Module,
                 train_idx: np.ndarray, batch_size: int, epochs: int, patience: int, seed: int, min_delta: float,
                 start_epoch: Callable[[int], None],
                 step: Callable[[np.ndarray, np.random.Generator], tuple[torch.Tensor, dict]],
                 validate: Callable[[], float],
                 summarise: Callable[[Epoch], tuple[dict, float]],
                 log: Callable[[Epoch, dict], None],
                 on_epoch_end: Callable[[int, dict], None] | None = None) -> tuple[dict, int | None]:
    """Resume from ``ckpt_path`` when its identity matches, then train epoch by epoch until
    ``epochs`` or ``patience`` epochs without improvement; (state, epoch resumed after or None).

    ``modules`` (state-dict holders, with the optimiser as ``opt``) are checkpointed after every
    epoch; its modules other than ``opt`` are switched to training mode for each epoch. ``net``'s
    weights are kept as ``state["best"]`` when the monitored loss ``summarise`` returns improves
    by more than ``min_delta``.
    """
    state, resumed = checkpoint.resume(ckpt_path, device, identity, modules, label)
    opt = modules["opt"]
    trained = [m for name, m in modules.items() if name != "opt"]
    while checkpoint.keep_training(state, epochs, patience):
        number = state["epoch"] + 1
        gen = np.random.default_rng((seed, number))
        start_epoch(number)
        epoch = Epoch(number, time.perf_counter())
        for m in trained:
            m.train()
        order = gen.permutation(train_idx)
        for start in range(0, len(order), batch_size):
            loss, part = step(order[start : start + batch_size], gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            epoch.losses.append(loss.item())
            epoch.parts.append(part)
        epoch.train_seconds = time.perf_counter() - epoch.t0
        epoch.val_loss = validate()
        entry, monitored = summarise(epoch)
        checkpoint.end_epoch(state, number, entry, monitored, net, min_delta=min_delta)
        checkpoint.save(ckpt_path, identity, modules, state)
        log(epoch, entry)
        if on_epoch_end:
            on_epoch_end(number, entry)
    return state, resumed


def state_dict_blob(weights: dict) -> bytes:
    """A plain state dict serialised as ``torch.save`` writes it (loads with ``weights_only``)."""
    buf = io.BytesIO()
    torch.save(weights, buf)
    return buf.getvalue()


def save_model(out: Path, blob: bytes, card: Callable[[str], dict]) -> str:
    """Write ``model.pt`` (``blob``) and ``config.json`` (``card(model_hash)``); the weights' content hash."""
    model_hash = weights_hash(blob)
    write_model(out, blob, card(model_hash))
    return model_hash
