"""Every hash the project files things under, in one place (ids, versions, content keys, digests).

The functions keep the exact recipe each id was made with before they were gathered here
(algorithm, JSON options, length), so workspaces written earlier keep their run ids, encoder
versions and clip ids (tests/test_ids_are_stable.py pins them). New ids should use ``json_id``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime
from pathlib import Path


def json_id(obj, length: int = 16, *, sort_keys: bool = True, default=None, algorithm: str = "sha256") -> str:
    """Short hex hash of ``json.dumps(obj)``: configs, run ids, stage keys, provenance ids."""
    blob = json.dumps(obj, sort_keys=sort_keys, default=default).encode()
    return hashlib.new(algorithm, blob).hexdigest()[:length]


def text_id(text: str, length: int = 16, algorithm: str = "sha256") -> str:
    """Short hex hash of a string (clip ids hash ``dataset \\0 relative path`` with sha1)."""
    return hashlib.new(algorithm, text.encode()).hexdigest()[:length]


def bytes_id(blob: bytes, length: int | None = 16) -> str:
    """sha256 of bytes (model weights, noise waveforms); ``length=None`` keeps all 64 digits."""
    digest = hashlib.sha256(blob).hexdigest()
    return digest if length is None else digest[:length]


def file_sha256(path: str | Path, length: int | None = None, block: int = 1 << 20) -> str:
    """sha256 of a file, streamed (WAV files, BEATs checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest() if length is None else h.hexdigest()[:length]


def new_batch_id(now: datetime) -> str:
    """A monitor batch: sortable and unique, ``20261124T020003-1a2b3c4d``."""
    return f"{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
