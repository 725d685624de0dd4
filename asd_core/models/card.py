"""Model cards: the ``config.json`` of a folder written by ``asd train-teacher`` or ``asd train-student``.

Read before any weights, so a folder of the wrong kind (a teacher given as ``--encoder student``)
or a damaged card is a one-line error naming the folder instead of a ``KeyError`` deep inside.
"""

from __future__ import annotations

import json
from pathlib import Path

from asd_core.storage.weights import check_weights_file

KINDS = ("teacher", "student")
_COMMAND = {"teacher": "asd train-teacher", "student": "asd train-student"}
# what each loader reads from the card
_REQUIRED = {"teacher": ("model", "model_hash"), "student": ("teacher", "model_hash", "objective", "embedding_dim")}


class ModelCardError(ValueError):
    """A model folder whose card is missing, damaged or of another kind; the message names the folder."""


def card_kind(card: dict) -> str:
    """``student`` for cards that say so; teacher cards (written before kinds were recorded) say nothing."""
    return "student" if card.get("kind") == "student" else "teacher"


def read_card(folder: str | Path, kind: str) -> dict:
    """The card of ``folder``, checked to be a ``kind`` model with the fields its loader reads."""
    folder = Path(folder)
    path = folder / "config.json"
    if not path.is_file():
        what = "not a folder" if folder.exists() and not folder.is_dir() else "config.json missing"
        raise FileNotFoundError(f"{folder}: no trained {kind} here ({what}); run `{_COMMAND[kind]}`")
    try:
        card = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelCardError(f"{path}: not a model card ({type(exc).__name__}: {exc})") from None
    if not isinstance(card, dict):
        raise ModelCardError(f"{path}: not a model card (a JSON {type(card).__name__}, expected an object)")
    found = card_kind(card)
    if found != kind:
        has = "has 'kind': 'student'" if found == "student" else "has no 'kind': 'student'"
        raise ModelCardError(f"{folder}: is a {found} model, not a {kind} (config.json {has})")
    missing = [k for k in _REQUIRED[kind] if k not in card]
    if missing:
        raise ModelCardError(f"{path}: {kind} model card lacks {', '.join(repr(k) for k in missing)}")
    return card


def check_model_folder(folder: str | Path, kind: str) -> dict:
    """Card and ``model.pt`` checks that read no tensors (``storage.weights.check_weights_file``):
    run before a flow starts, so a wrong or damaged folder is an error at once."""
    card = read_card(folder, kind)
    check_weights_file(Path(folder) / "model.pt")
    return card
