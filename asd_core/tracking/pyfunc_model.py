"""An MLflow pyfunc that scores WAV files on its own: encoder + per-section FAISS indexes with
rho + the normalisation config, bundled as one artifact folder (see registry.bundle_run).

Input: a DataFrame with ``path`` (WAV file), ``machine_type``, ``section`` (and ``dataset``
when the bundle holds several datasets for that section). Output: the same rows with
``score`` (higher = more anomalous), ``threshold`` and ``decision`` (1 = anomalous).
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

BUNDLE = "bundle"


def load_bundle_encoder(bundle: Path):
    """Rebuild the encoder of ``encoder.json`` with its files from the bundle."""
    from asd_core.encoders import get_encoder

    card = json.loads((bundle / "encoder.json").read_text())
    options = dict(card.get("options") or {})
    for key, rel in (card.get("bundled_files") or {}).items():
        options[key] = str(bundle / rel)
    encoder = get_encoder(card["registry_name"], **options)
    if encoder.version != card["version"]:
        raise ValueError(f"{bundle}: the bundled encoder rebuilds as version {encoder.version}, expected {card['version']}")
    return encoder, card


def load_section_detectors(bundle: Path) -> dict[tuple[str, str, str], tuple]:
    """(dataset, machine_type, section) -> (detector, threshold) from the bundled index folders."""
    from asd_core.scoring.index_store import load_saved

    out = {}
    for manifest in sorted((bundle / "indexes").glob("*/*/section_*/manifest.json")):
        folder = manifest.parent
        dataset, machine_type, section = folder.parent.parent.name, folder.parent.name, folder.name.removeprefix("section_")
        out[(dataset, machine_type, section)] = load_saved(folder)
    return out


class AsdScoringModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        bundle = Path(context.artifacts[BUNDLE])
        self.encoder, self.card = load_bundle_encoder(bundle)
        self.detectors = load_section_detectors(bundle)
        self.scoring = json.loads((bundle / "scoring.json").read_text())

    def _detector(self, dataset, machine_type: str, section: str):
        section = str(section).zfill(2) if str(section).isdigit() else str(section)
        keys = [k for k in self.detectors if k[1] == machine_type and k[2] == section and (dataset is None or k[0] == dataset)]
        if not keys:
            known = sorted({f"{k[1]}/section_{k[2]}" for k in self.detectors})
            raise ValueError(f"no index for {machine_type}/section_{section} in this model (it covers: {', '.join(known)})")
        if len(keys) > 1:
            raise ValueError(f"{machine_type}/section_{section} exists in several datasets ({', '.join(k[0] for k in keys)}): "
                             "add a dataset column")
        return self.detectors[keys[0]]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from asd_core.config import AudioConfig
        from asd_core.datasets import audio_io

        df = pd.DataFrame(model_input).copy()
        missing = {"path", "machine_type", "section"} - set(df.columns)
        if missing:
            raise ValueError(f"input needs columns path, machine_type, section; missing: {', '.join(sorted(missing))}")
        audio_cfg = AudioConfig(sample_rate=self.card["sample_rate"])
        waves = []
        for path in df["path"]:
            p = Path(path)
            try:
                waves.append(audio_io.decode(p, audio_io.probe(p), audio_cfg))
            except (audio_io.AudioFileError, OSError) as exc:
                raise ValueError(f"{p}: {exc}") from None
        vectors = np.asarray(self.encoder.embed(waves), np.float32)
        scores, thresholds = np.empty(len(df)), np.empty(len(df))
        datasets = df["dataset"] if "dataset" in df.columns else [None] * len(df)
        for i, (ds, mt, sec) in enumerate(zip(datasets, df["machine_type"], df["section"])):
            det, threshold = self._detector(ds, mt, sec)
            scores[i] = float(det.score(vectors[i : i + 1])[0])
            thresholds[i] = threshold
        df["score"], df["threshold"] = scores, thresholds
        df["decision"] = (scores > thresholds).astype(np.int8)
        return df
