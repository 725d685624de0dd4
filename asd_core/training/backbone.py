"""The teacher a student is copied from: a model trained by ``asd train-teacher`` (a folder)
or a BEATs checkpoint (a file), as one differentiable waveform -> embedding module."""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from asd_core.models.beats import PooledBEATs
from asd_core.models.beats_checkpoint import file_hash, load_beats, save_beats
from asd_core.models.loading import load_teacher
from asd_core.storage.models import check_model_folder
from asd_core.storage.weights import check_weights_file


_NOT_FOUND = "{path}: teacher not found (give a folder written by `asd train-teacher` or a BEATs checkpoint file)"


@dataclass
class Backbone:
    kind: str  # teacher | beats
    net: nn.Module  # waveforms [B, T] -> embeddings [B, net.dim]
    source: str  # the path it was loaded from
    source_hash: str
    options: dict  # beats: layer and pooling

    def copy(self) -> "Backbone":
        return Backbone(self.kind, copy.deepcopy(self.net), self.source, self.source_hash, dict(self.options))

    @property
    def dim(self) -> int:
        return self.net.dim

    def describe(self) -> dict:
        return {"kind": self.kind, "source": self.source, "source_hash": self.source_hash, **self.options}


def load_backbone(path: str | Path, device: str = "cpu", layer: int | None = None, pooling: str = "mean") -> Backbone:
    """A teacher model folder (``config.json`` + ``model.pt``) or a BEATs checkpoint file."""
    path = Path(path)
    if path.is_dir():
        check_model_folder(path, "teacher")  # a student folder, a damaged card or planted weights: one clear error
        net, card = load_teacher(path, device)
        return Backbone("teacher", net, str(path), card["model_hash"], {})
    if path.is_file():
        model, _ = load_beats(path, device)
        pooled = PooledBEATs(model, layer, pooling).to(device)
        return Backbone("beats", pooled, str(path), file_hash(path), {"layer": layer, "pooling": pooling})
    raise FileNotFoundError(_NOT_FOUND.format(path=path))


def check_backbone_source(path: str | Path) -> None:
    """What ``load_backbone`` will read, checked without reading tensors (before a flow run starts)."""
    path = Path(path)
    if path.is_dir():
        check_model_folder(path, "teacher")
    elif path.is_file():
        check_weights_file(path)
    else:
        raise FileNotFoundError(_NOT_FOUND.format(path=path))


def backbone_weights(backbone: Backbone) -> bytes:
    """The ``model.pt`` of a backbone: a teacher-layout state dict, or a BEATs checkpoint in the
    official layout (so a BEATs student also loads with ``asd embed --encoder beats --checkpoint``).

    Serialised in memory: torch.save names the archive after the file, so bytes written to a
    temporary name would not hash the same from run to run (storage/models.py writes them).
    """
    buf = io.BytesIO()
    if backbone.kind == "beats":
        save_beats(backbone.net.model, buf)
    else:
        torch.save({k: v.detach().cpu() for k, v in backbone.net.state_dict().items()}, buf)
    return buf.getvalue()
