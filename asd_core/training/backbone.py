"""The teacher a student is copied from: a model trained by ``asd train-teacher`` (a folder)
or a BEATs checkpoint (a file), as one differentiable waveform -> embedding module."""

from __future__ import annotations

import copy
import io
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from asd_core.models.beats import PooledBEATs
from asd_core.models.beats_checkpoint import file_hash, load_beats, save_beats
from asd_core.storage.atomic import atomic_path


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
    from asd_core.training.teacher import load_teacher

    path = Path(path)
    if path.is_dir():
        net, card = load_teacher(path, device)
        return Backbone("teacher", net, str(path), card["model_hash"], {})
    if path.is_file():
        model, _ = load_beats(path, device)
        pooled = PooledBEATs(model, layer, pooling).to(device)
        return Backbone("beats", pooled, str(path), file_hash(path), {"layer": layer, "pooling": pooling})
    raise FileNotFoundError(f"{path}: teacher not found (give a folder written by `asd train-teacher` or a BEATs checkpoint file)")


def save_backbone_weights(backbone: Backbone, folder: Path) -> tuple[Path, bytes]:
    """``model.pt``: a teacher-layout state dict, or a BEATs checkpoint in the official layout
    (so a BEATs student also loads with ``asd embed --encoder beats --checkpoint``).

    Serialised in memory first: torch.save names the archive after the file, so bytes written
    to a temporary name would not hash the same from run to run. Returns the path and bytes.
    """
    buf = io.BytesIO()
    if backbone.kind == "beats":
        save_beats(backbone.net.model, buf)
    else:
        torch.save({k: v.detach().cpu() for k, v in backbone.net.state_dict().items()}, buf)
    target = folder / "model.pt"
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.getvalue())
    return target, buf.getvalue()


def load_student_net(folder: str | Path, device: str = "cpu") -> tuple[nn.Module, dict]:
    """The student of ``folder`` (written by ``asd train-student``) in eval mode, and its card."""
    from asd_core.models.teacher import TeacherConfig, TeacherNet

    folder = Path(folder)
    card_path = folder / "config.json"
    if not card_path.exists():
        raise FileNotFoundError(f"{folder}: no trained student here (config.json missing); run `asd train-student`")
    card = json.loads(card_path.read_text())
    if card["teacher"]["kind"] == "beats":
        model, _ = load_beats(folder / "model.pt", device)
        net = PooledBEATs(model, card["teacher"].get("layer"), card["teacher"].get("pooling", "mean"))
    else:
        net = TeacherNet(TeacherConfig.from_card(card["teacher_model"]))
        net.load_state_dict(torch.load(folder / "model.pt", map_location=device, weights_only=True))
    return net.to(device).eval(), card
