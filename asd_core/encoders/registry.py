"""Name -> encoder class, used by ``asd embed --encoder NAME``."""

from __future__ import annotations

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
