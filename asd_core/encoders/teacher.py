"""Embeddings of trained torch encoders: the teacher (``asd train-teacher``), the student
(``asd train-student``) and the oracle mixture embedding of the student method."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from asd_core.encoders.base import Encoder


class NetEncoder(Encoder):
    """A waveform -> embedding torch module; clips of equal length run as one batch."""

    distance = "cosine"
    net: torch.nn.Module
    device: str

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        out = np.empty((len(batch), self.dim), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, wave in enumerate(batch):
            by_length.setdefault(len(wave), []).append(i)
        with torch.inference_mode():
            for idx in by_length.values():
                x = torch.from_numpy(np.stack([np.asarray(batch[i], np.float32) for i in idx])).to(self.device)
                out[idx] = self.net(x).float().cpu().numpy()
        return out


def _device(device: str | None) -> str:
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


class TeacherEncoder(NetEncoder):
    name = "teacher"

    def __init__(self, model: str, device: str | None = None, clip_seconds: float | None = None):
        from asd_core.models.loading import load_teacher
        from asd_core.storage.models import check_model_folder

        if model is None:
            raise ValueError("the teacher encoder needs --model DIR (a folder written by `asd train-teacher`)")
        check_model_folder(model, "teacher")  # a student folder, a damaged card or planted weights: one clear error
        self.device = _device(device)
        self.net, self.card = load_teacher(model, self.device)
        self.sample_rate = self.net.cfg.sample_rate  # the rate it was trained at
        self.clip_seconds = clip_seconds or self.card["train"].get("clip_seconds")

    @property
    def dim(self) -> int:
        return self.net.dim

    def params(self) -> dict:
        # The weights' hash does not say which vector is read out of them.
        return {"model_hash": self.card["model_hash"], "clip_seconds": self.clip_seconds,
                "embedding": self.net.cfg.embedding}


class StudentEncoder(NetEncoder):
    """A student of ``asd train-student``; named ``student-<objective>`` (e.g. student-retain,
    student-denoise) so the variants sit side by side in the runs table."""

    name = "student"

    def __init__(self, model: str, device: str | None = None):
        from asd_core.models.loading import load_student_net

        if model is None:
            raise ValueError("the student encoder needs --model DIR (a folder written by `asd train-student`)")
        self.device = _device(device)
        self.net, self.card = load_student_net(model, self.device)
        self.name = f"student-{self.card['objective']}"
        self._dim = int(self.card["embedding_dim"])

    @property
    def dim(self) -> int:
        return self._dim

    def params(self) -> dict:
        return {"model_hash": self.card["model_hash"], "teacher": self.card["teacher"]["source_hash"]}


class OracleEncoder(Encoder):
    """The oracle of the student method: lam * teacher(clean) + (1 - lam) * teacher(noise) of
    each noisy test clip (its parts at the levels used in the mixture); clean clips get the
    teacher's own embedding. An upper reference, not a deployable encoder."""

    name = "oracle"
    distance = "cosine"

    def __init__(self, teacher: str, lam: float = 0.5, device: str | None = None, layer: int | None = None,
                 pooling: str = "mean"):
        if teacher is None:
            raise ValueError("the oracle encoder needs --model (the teacher: a teacher folder or a BEATs checkpoint)")
        if Path(teacher).is_dir():
            self.teacher: Encoder = TeacherEncoder(teacher, device)
        else:
            from asd_core.encoders.beats import BeatsEncoder

            self.teacher = BeatsEncoder(teacher, layer=layer, pooling=pooling, device=device)
        self.lam = float(lam)

    @property
    def dim(self) -> int:
        return self.teacher.dim

    def params(self) -> dict:
        return {"teacher": self.teacher.name, "teacher_version": self.teacher.version, "lam": self.lam}

    def embed(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        return self.teacher.embed(batch)

    def embed_parts(self, cleans: Sequence[np.ndarray], noises: Sequence[np.ndarray]) -> np.ndarray:
        return self.lam * self.teacher.embed(cleans) + (1.0 - self.lam) * self.teacher.embed(noises)
