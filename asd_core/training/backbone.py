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
from asd_core.models.card import ModelCardError, check_model_folder, read_card
from asd_core.storage.atomic import atomic_path
from asd_core.storage.weights import check_weights_file, load_weights


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
    from asd_core.training.teacher import load_teacher

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
    card = read_card(folder, "student")
    teacher = card["teacher"]
    if not isinstance(teacher, dict) or teacher.get("kind") not in ("teacher", "beats"):
        raise ModelCardError(f"{folder / 'config.json'}: student card has no valid 'teacher' entry")
    weights = folder / "model.pt"
    try:
        if teacher["kind"] == "beats":
            model, _ = load_beats(weights, device)
            net = PooledBEATs(model, teacher.get("layer"), teacher.get("pooling", "mean"))
        else:
            net = TeacherNet(TeacherConfig.from_card(card["teacher_model"]))
            net.load_state_dict(load_weights(weights, map_location=device))
    except (RuntimeError, TypeError, KeyError, AttributeError) as exc:  # weights or card of another architecture
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ModelCardError(f"{weights}: weights do not fit the student described in config.json ({first})") from None
    return net.to(device).eval(), card
