"""Model folders: ``model.pt`` + ``config.json`` (the model card) written by ``asd train-teacher`` /
``asd train-student`` under ``models/<kind>/<key>/``, and the ``CURRENT`` pointer naming the
folder the last training wrote.

Cards are read before any weights, so a folder of the wrong kind (a teacher given as
``--encoder student``) or a damaged card is a one-line error naming the folder instead of a
``KeyError`` deep inside. The pointer is a text file written atomically when a training run
finishes; workspaces written before it existed fall back to the newest card by file time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from asd_core.config import Workspace
from asd_core.hashing import bytes_id
from asd_core.storage.atomic import atomic_path
from asd_core.storage.paths import MODEL_KINDS, current_model_file, models_dir
from asd_core.storage.weights import check_weights_file

KINDS = MODEL_KINDS
CARD_FILE, WEIGHTS_FILE = "config.json", "model.pt"
_COMMAND = {"teacher": "asd train-teacher", "student": "asd train-student"}
# what each loader reads from the card
_REQUIRED = {"teacher": ("model", "model_hash"), "student": ("teacher", "model_hash", "objective", "embedding_dim")}


class ModelCardError(ValueError):
    """A model folder whose card is missing, damaged or of another kind; the message names the folder."""


@dataclass(frozen=True, eq=False)
class ModelCard(Mapping):
    """The checked card of a model folder: its kind and weights hash typed, every field of
    ``config.json`` by key (``card["train"]``), as written."""

    folder: Path
    kind: str  # teacher | student
    model_hash: str
    fields: dict

    def __getitem__(self, key: str):
        return self.fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self.fields)

    @property
    def objective(self) -> str | None:
        """The student's objective (retain, denoise, ...); None for a teacher."""
        return self.fields.get("objective")

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS_FILE


def card_kind(card: Mapping) -> str:
    """``student`` for cards that say so; teacher cards (written before kinds were recorded) say nothing."""
    return "student" if card.get("kind") == "student" else "teacher"


def read_card(folder: str | Path, kind: str) -> ModelCard:
    """The card of ``folder``, checked to be a ``kind`` model with the fields its loader reads."""
    folder = Path(folder)
    path = folder / CARD_FILE
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
    return ModelCard(folder, kind, card["model_hash"], card)


def check_model_folder(folder: str | Path, kind: str) -> ModelCard:
    """Card and ``model.pt`` checks that read no tensors (``storage.weights.check_weights_file``):
    run before a flow starts, so a wrong or damaged folder is an error at once."""
    card = read_card(folder, kind)
    check_weights_file(Path(folder) / WEIGHTS_FILE)
    return card


def weights_hash(blob: bytes) -> str:
    """The ``model_hash`` of serialised weights."""
    return bytes_id(blob, 16)


def write_model(folder: Path, weights: bytes, card: dict) -> None:
    """``model.pt`` (the serialised weights), then ``config.json``, each written atomically."""
    folder = Path(folder)
    with atomic_path(folder / WEIGHTS_FILE) as tmp:
        tmp.write_bytes(weights)
    with atomic_path(folder / CARD_FILE) as tmp:
        tmp.write_text(json.dumps(card, indent=2))


def set_current(ws: Workspace, kind: str, folder: Path, objective: str | None = None) -> None:
    """Point ``CURRENT`` of ``kind`` (and, given a student's ``objective``, ``CURRENT-<objective>``)
    at ``folder``, a folder of ``models/<kind>/``; each pointer is replaced atomically."""
    folder = Path(folder)
    if folder.parent.resolve() != models_dir(ws, kind).resolve():
        raise ValueError(f"{folder} is not a {kind} folder of {ws.root}")
    for pointer in [current_model_file(ws, kind)] + ([current_model_file(ws, kind, objective)] if objective else []):
        with atomic_path(pointer) as tmp:
            tmp.write_text(folder.name + "\n")


def current_model(ws: Workspace, kind: str, objective: str | None = None) -> Path:
    """The folder the ``CURRENT`` pointer of ``kind`` (of a student ``objective`` when given) names;
    without a pointer (workspaces written before it), or when it names a folder that is gone, the
    folder whose card was written last."""
    base = models_dir(ws, kind)
    try:
        name = current_model_file(ws, kind, objective).read_text().strip()
    except OSError:
        name = ""
    if name and name == Path(name).name and name not in (".", "..") and (base / name / CARD_FILE).is_file():
        return base / name
    cards = sorted(base.glob(f"*/{CARD_FILE}"), key=lambda p: p.stat().st_mtime)
    if objective:
        cards = [c for c in cards if json.loads(c.read_text()).get("objective") == objective]
    if not cards:
        if kind == "teacher":
            raise FileNotFoundError(f"no trained teacher in {ws.root}; run `asd train-teacher` first or pass --model")
        raise FileNotFoundError(f"no trained {objective or ''} student in {ws.root}; run `asd train-student` first or pass --model")
    return cards[-1].parent
