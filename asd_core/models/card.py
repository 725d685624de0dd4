"""Model cards: importable here for older callers; they live with the model folders in
``asd_core.storage.models``."""

from __future__ import annotations

from asd_core.storage.models import KINDS, ModelCard, ModelCardError, card_kind, check_model_folder, read_card

__all__ = ["KINDS", "ModelCard", "ModelCardError", "card_kind", "check_model_folder", "read_card"]
