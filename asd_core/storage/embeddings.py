"""Stored embeddings: one vector per (clip, encoder version), and the encoder card beside them.

Layout (storage/paths.py): ``parquet/embeddings/encoder=<name>/version=<v>/encoder.json`` and
``.../machine_type=<mt>/dataset=<ds>/embeddings.parquet`` (``noisy.parquet`` for the noisy test
clips of ``asd mix``, ``embeddings.<role>.parquet`` for another stored channel such as the far
microphone), schema ``schemas.embeddings_schema``; each row records the channel role it was
computed from. Every vector carries the content key
of what it was computed from (storage/content.py), so a reader can refuse stale vectors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.schemas import embeddings_schema
from asd_core.storage.atomic import atomic_path
from asd_core.storage.paths import encoder_card_file, encoder_card_files, encoder_root, hive_value

# --- encoder cards ---------------------------------------------------------------------------------


def encoder_card(encoder) -> dict:
    """What later stages need of an encoder without loading its model (any object with the
    ``Encoder`` attributes: name, version, dim, distance, sample_rate, params(), options)."""
    return {"name": encoder.name, "version": encoder.version, "dim": encoder.dim, "distance": encoder.distance,
            "sample_rate": encoder.sample_rate, "params": encoder.params(),
            "registry_name": type(encoder).name, "options": getattr(encoder, "options", {})}


def write_encoder_card(ws: Workspace, encoder) -> Path:
    """``encoder.json`` beside the embeddings of ``encoder`` (atomic)."""
    path = encoder_card_file(ws, encoder.name, encoder.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(encoder_card(encoder), indent=2, sort_keys=True))
    return path


def read_encoder_card(ws: Workspace, encoder: str, version: str | None = None) -> dict:
    """The card of ``encoder`` (the only version in the workspace unless ``version`` is given)."""
    base = encoder_root(ws, encoder)
    versions = sorted(hive_value(p.parent) for p in base.glob("version=*/encoder.json"))
    if version is None:
        if not versions:
            raise FileNotFoundError(f"no {encoder} embeddings in {ws.root}; run `asd embed --encoder {encoder}` first")
        if len(versions) > 1:
            raise ValueError(f"{encoder} has embeddings of several versions ({', '.join(versions)}); pick one with --encoder-version")
        version = versions[0]
    elif version not in versions:
        raise FileNotFoundError(f"no {encoder} embeddings of version {version} in {ws.root} (found: {', '.join(versions) or 'none'})")
    return json.loads(encoder_card_file(ws, encoder, version).read_text())


def newest_encoder_cards(ws: Workspace) -> list[dict]:
    """The newest ``encoder.json`` card (by file time) of each encoder with embeddings, by name;
    cards written without a ``registry_name`` (which cannot be rebuilt) are left out."""
    newest: dict[str, tuple[float, dict]] = {}
    for path in encoder_card_files(ws):
        card = json.loads(path.read_text())
        if card.get("registry_name") and (card["name"] not in newest or path.stat().st_mtime > newest[card["name"]][0]):
            newest[card["name"]] = (path.stat().st_mtime, card)
    return [newest[k][1] for k in sorted(newest)]


# --- vectors ---------------------------------------------------------------------------------------


def stored_keys(path: Path) -> dict[str, str | None]:
    """clip_id -> content_key of an embeddings file (None for files written before the column existed)."""
    if not path.exists():
        return {}
    table = pq.read_table(path)
    ids = table.column("clip_id").to_pylist()
    keys = table.column("content_key").to_pylist() if "content_key" in table.column_names else [None] * len(ids)
    return dict(zip(ids, keys))


class EmbeddingsWriter:
    """Writes one embeddings file: the rows of the file as it is whose ids are in ``keep`` first,
    then each batch given to ``write``. Used as ``with atomic_path(path) as tmp, EmbeddingsWriter(...)``
    by the caller, so the file is replaced only if the whole block succeeds."""

    def __init__(self, tmp: Path, current: Path, encoder: str, version: str, dim: int, keep: Iterable[str] = (),
                 channel: str | None = None):
        self.encoder, self.version, self.dim, self.channel = encoder, version, dim, channel
        self.schema = embeddings_schema(dim)
        self._writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")
        keep = sorted(keep)
        if keep:
            old = pq.read_table(current)
            old = old.filter(pc.is_in(old.column("clip_id"), pa.array(keep)))
            if "channel" not in old.column_names:  # kept rows were computed from the same channel
                old = old.append_column("channel", pa.array([channel] * old.num_rows, pa.string()))
            self._writer.write_table(old.select(self.schema.names).cast(self.schema))

    def write(self, ids: list[str], vectors: np.ndarray, content_keys: list[str | None]) -> None:
        """One batch: ``vectors`` float32 [len(ids), dim], each with the content key it was computed from."""
        self._writer.write_table(pa.Table.from_arrays([
            pa.array(ids, pa.string()),
            pa.array([self.encoder] * len(ids), pa.string()),
            pa.array([self.version] * len(ids), pa.string()),
            pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(vectors, np.float32).ravel(), pa.float32()), self.dim),
            pa.array(content_keys, pa.string()),
            pa.array([self.channel] * len(ids), pa.string()),
        ], schema=self.schema))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "EmbeddingsWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_channel(path: Path) -> str | None:
    """The channel role an embeddings file was computed from (None: written before roles were recorded)."""
    if "channel" not in pq.read_schema(path).names:
        return None
    values = pc.unique(pq.read_table(path, columns=["channel"]).column("channel").drop_null()).to_pylist()
    return values[0] if len(values) == 1 else None


def read_vectors(files: list[Path]) -> tuple[list[str], np.ndarray]:
    """Clip ids and vectors [N, dim] of embedding files (all of one encoder version)."""
    ids, vectors, _ = read_keyed_vectors(files)
    return ids, vectors


def read_keyed_vectors(files: list[Path]) -> tuple[list[str], np.ndarray, list[str | None]]:
    """Clip ids, vectors [N, dim] and content keys (None where a file predates them)."""
    tables = []
    for p in files:
        t = pq.read_table(p)
        if "content_key" not in t.column_names:
            t = t.append_column("content_key", pa.nulls(t.num_rows, pa.string()))
        tables.append(t.select(["clip_id", "vector", "content_key"]))
    table = pa.concat_tables(tables)
    vec = table.column("vector").combine_chunks()
    return (table.column("clip_id").to_pylist(), vec.flatten().to_numpy().reshape(-1, vec.type.list_size),
            table.column("content_key").to_pylist())
