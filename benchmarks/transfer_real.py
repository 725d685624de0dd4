"""Do features learned on demo data transfer to real recordings? (issue 17 part 1's check)

Embeds the real DCASE 2023 clips of ``../shared/realdata`` (28 clips, 7 machine types, 4 each)
with ``logmel-stats``, each given teacher (trained on demo data) and the untrained net of the
same seed (the weights that teacher's training started from), and prints machine-type retrieval
per encoder: the share of clips whose nearest other clip (cosine) is of the same machine type
(chance 3/27), and the mean share of same-type clips among each clip's 3 nearest.

The set is far too small for an official score (five machine types hold one normal and one
anomalous test clip, two hold none); what it can show is whether training on demo data made the
features better or worse at telling real machines apart.

    .venv/bin/python benchmarks/teacher_seeds.py --workspace /tmp/ws-medium --seeds 0 1 2 --untrained
    .venv/bin/python benchmarks/transfer_real.py /tmp/ws-medium/models/teacher/*/
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REAL = REPO.parent / "shared" / "realdata" / "dcase2023_dev_mini" / "dev_data"


def vectors(ws, encoder) -> tuple[list[str], np.ndarray]:
    """Clip ids and unit-norm float64 embeddings of every stored clip, embedded by the library (no Prefect)."""
    from asd_core.embedding.embed import embed_partition
    from asd_core.storage.embeddings import read_vectors
    from asd_core.storage.paths import audio_partitions, embedding_files

    for mt, ds, path in audio_partitions(ws):
        embed_partition(ws, encoder, mt, ds, path)
    ids, x = read_vectors(embedding_files(ws, encoder.name, encoder.version))
    x = x.astype(np.float64)
    return ids, x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def figures(embedded: tuple[list[str], np.ndarray], clips: dict[str, dict]) -> dict[str, float]:
    ids, x = embedded
    types = np.array([clips[c]["machine_type"] for c in ids])
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    order = np.argsort(-sim, axis=1)
    top1 = float(np.mean(types[order[:, 0]] == types))
    top3 = float(np.mean(types[order[:, :3]] == types[:, None]))
    return {"type top-1": top1, "type top-3": top3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path, help="teacher model folders trained on demo data")
    ap.add_argument("--real", type=Path, default=REAL, help="a DCASE 2023-style root of real recordings")
    args = ap.parse_args()
    import pyarrow.parquet as pq

    from asd_core.config import Workspace
    from asd_core.encoders import get_encoder
    from asd_core.ingest import ingest_roots
    from asd_core.storage.paths import all_files
    from teacher_seeds import save_untrained  # benchmarks/teacher_seeds.py, beside this script

    rows = []
    with tempfile.TemporaryDirectory(prefix="asd-transfer-") as tmp:
        ws = Workspace(Path(tmp) / "ws")
        ingest_roots(ws, [args.real], "real", publish=False)
        clips = {r["clip_id"]: r for p in all_files(ws, "clips") for r in pq.read_table(p).to_pylist()}
        rows.append({"encoder": "logmel-stats", **figures(vectors(ws, get_encoder("logmel-stats")), clips)})
        for i, model in enumerate(args.models):
            seed = json.loads((model / "config.json").read_text())["train"]["seed"]
            untrained = save_untrained(model, seed, Path(tmp) / f"untrained-{i}")
            for name, folder in ((f"untrained teacher, seed {seed}", untrained), (f"trained teacher, seed {seed}", model)):
                enc = get_encoder("teacher", model=str(folder))
                rows.append({"encoder": name, **figures(vectors(ws, enc), clips)})
    from asd_core.textable import format_table

    print(f"{len(clips)} real clips of {args.real}; {len({c['machine_type'] for c in clips.values()})} machine types; "
          "cosine; chance of type top-1 and top-3 3/27 = 0.111\n")
    print(format_table([{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
