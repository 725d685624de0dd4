"""Encoders turn waveforms into clip embeddings; look them up by name in the registry."""

from asd_core.encoders.base import Encoder
from asd_core.encoders.registry import get_encoder, list_encoders

__all__ = ["Encoder", "get_encoder", "list_encoders"]
