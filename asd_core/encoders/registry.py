"""Name -> encoder class, used by ``asd embed --encoder NAME``."""

from __future__ import annotations

from pathlib import Path

from asd_core.encoders.base import Encoder
from asd_core.encoders.beats import BeatsEncoder
from asd_core.encoders.spectral import LogMelStats, StftMean
from asd_core.encoders.teacher import OracleEncoder, StudentEncoder, TeacherEncoder

_REGISTRY: dict[str, type[Encoder]] = {cls.name: cls for cls in (StftMean, LogMelStats, BeatsEncoder, TeacherEncoder, StudentEncoder, OracleEncoder)}


def list_encoders() -> list[str]:
    return sorted(_REGISTRY)


def get_encoder(name: str, **kwargs) -> Encoder:
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(list_encoders())}") from None
    encoder = cls(**kwargs)
    encoder.options = dict(kwargs)  # how to build it again (encoder.json, MLflow bundles)
    return encoder


def check_encoder_options(name: str, options: dict) -> None:
    """Cheap checks of the model files ``get_encoder(name, **options)`` will load (a folder of the
    wrong kind, an empty, damaged or planted weights file), so a command fails at once with one
    line, before a flow run starts; reads no tensors."""
    from asd_core.storage.models import check_model_folder
    from asd_core.storage.weights import check_weights_file

    if name in ("teacher", "student") and options.get("model"):
        check_model_folder(options["model"], name)
    elif name == "oracle" and options.get("teacher"):
        teacher = Path(options["teacher"])
        check_model_folder(teacher, "teacher") if teacher.is_dir() else check_weights_file(teacher)
    elif name == "beats" and options.get("checkpoint"):
        check_weights_file(options["checkpoint"])
