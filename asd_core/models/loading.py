"""Trained models loaded from their folders (storage/models.py): the teacher of ``asd train-teacher``
and the student of ``asd train-student``, in eval mode, each with its checked card.

Cards are checked for kind before any weights are read; weights load weights-only
(storage/weights.py), so a planted file is refused, never executed.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from asd_core.models.beats import PooledBEATs
from asd_core.models.beats_checkpoint import load_beats
from asd_core.models.teacher import TeacherConfig, TeacherNet
from asd_core.storage.models import ModelCard, ModelCardError, read_card
from asd_core.storage.weights import load_weights


def load_teacher(model_dir: str | Path, device: str = "cpu") -> tuple[TeacherNet, ModelCard]:
    """The teacher of a ``train-teacher`` folder: its card checked for kind, weights read weights-only."""
    model_dir = Path(model_dir)
    card = read_card(model_dir, "teacher")
    net = TeacherNet(TeacherConfig.from_card(card["model"]))
    net.load_state_dict(load_weights(card.weights, map_location=device))
    return net.to(device).eval(), card


def load_student_net(folder: str | Path, device: str = "cpu") -> tuple[nn.Module, ModelCard]:
    """The student of ``folder`` (written by ``asd train-student``) in eval mode, and its card."""
    folder = Path(folder)
    card = read_card(folder, "student")
    teacher = card["teacher"]
    if not isinstance(teacher, dict) or teacher.get("kind") not in ("teacher", "beats"):
        raise ModelCardError(f"{folder / 'config.json'}: student card has no valid 'teacher' entry")
    weights = card.weights
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
