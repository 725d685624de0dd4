"""Encoders turn waveforms into clip embeddings; look them up by name in the registry.

``EncoderSpec`` (encoders/spec.py) names an encoder and the options that build it, without
loading torch; the registry and encoder classes load on first use (PEP 562), so the CLI can
describe encoders cheaply.
"""

from asd_core.encoders.spec import EncoderSpec

__all__ = ["Encoder", "EncoderSpec", "get_encoder", "list_encoders"]


def __getattr__(name: str):
    if name == "Encoder":
        from asd_core.encoders.base import Encoder

        return Encoder
    if name in ("get_encoder", "list_encoders"):
        from asd_core.encoders import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'asd_core.encoders' has no attribute {name!r}")
