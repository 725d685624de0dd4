"""An MLflow pyfunc that scores WAV files on its own: encoder + per-section FAISS indexes with
rho + the normalisation config, bundled as one artifact folder (see registry.bundle_run).

Input: a DataFrame with ``machine_type``, ``section`` (and ``dataset`` when the bundle holds
several datasets for that section) and, per row, exactly one of ``path`` (a WAV file the scoring
process can read) or ``audio_b64`` (a WAV file's bytes, base64: for HTTP clients of
``mlflow models serve``). A model of a channel run (``channels.json``: far channel, fused near +
far, near conditioned on far) reads those channels from each two-channel WAV; a mono file is a
row error. Output: the rows without ``audio_b64``, plus ``score`` (higher = more
anomalous), ``threshold`` and ``decision`` (1 = anomalous). Bad rows raise
:class:`ScoringRequestError`, which the MLflow scoring server answers with HTTP 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from asd_core.tracking.bundle_audio import request_audio_config
from asd_core.tracking.channel_bundle import (PRIMARY, BundleChannels, ChannelScorer, channel_waves,  # noqa: F401
                                              load_section_detectors)

BUNDLE = "bundle"
SOURCES = ("path", "audio_b64")  # exactly one per row
MAX_LISTED_ERRORS = 20


class ScoringRequestError(MlflowException, ValueError):
    """A request the model cannot score; the message names the rows and the problem.

    An MlflowException with INVALID_PARAMETER_VALUE so the scoring server answers 400 with this
    message (any other exception becomes a generic 400 with a stack trace); a ValueError so
    in-process callers catch it as before.
    """

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def load_bundle_encoder(bundle: Path):
    """Rebuild the encoder of ``encoder.json`` with its files from the bundle."""
    from asd_core.encoders import EncoderSpec

    card = json.loads((bundle / "encoder.json").read_text())
    encoder = EncoderSpec.from_card(card, bundle).build()
    if encoder.version != card["version"]:
        raise ValueError(f"{bundle}: the bundled encoder rebuilds as version {encoder.version}, expected {card['version']}")
    return encoder, card


def decode_wav(path: Path, audio_cfg, roles: list[str] | None = None):
    """The waveform ingest would store for this file: probe (header, truncation), decode to mono at
    the model's rate, limit float samples to full scale; AudioFileError/OSError on bad files.
    With ``roles`` (a channel model, channel_bundle.py): role -> waveform of each of those channels
    (``primary``: the clip's primary waveform), an AudioFileError when the file lacks one."""
    from asd_core.datasets import audio_io

    if not path.exists() and not path.is_symlink():  # audio_io's reason ("vanished during ingest") fits ingest only
        raise audio_io.AudioFileError("no such file")
    info = audio_io.probe(path)
    waves = {r: audio_io.limit_full_scale(w, info)[0] for r, w in channel_waves(path, info, audio_cfg, roles).items()}
    return waves[PRIMARY] if roles is None else waves


def decode_wav_b64(text: str, audio_cfg, tmp: Path, roles: list[str] | None = None):
    """``decode_wav`` of base64 WAV bytes (written to a file under ``tmp`` so the checks are the same)."""
    from asd_core.datasets.audio_io import AudioFileError

    try:
        data = base64.b64decode("".join(str(text).split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioFileError(f"audio_b64 is not valid base64 ({exc})") from None
    if not data:
        raise AudioFileError("audio_b64 decodes to 0 bytes")
    path = tmp / "clip.wav"
    path.write_bytes(data)
    try:
        return decode_wav(path, audio_cfg, roles)
    finally:
        path.unlink(missing_ok=True)


def _given(value) -> bool:
    """A cell that holds a value (not None / NaN / blank)."""
    if value is None or (isinstance(value, float) and value != value):
        return False
    return not (isinstance(value, str) and not value.strip())


def _raise_rows(errors: list[str]) -> None:
    if errors:
        more = f"\n... and {len(errors) - MAX_LISTED_ERRORS} more rows" if len(errors) > MAX_LISTED_ERRORS else ""
        raise ScoringRequestError(f"{len(errors)} of the request's rows cannot be scored (rows count from 0):\n"
                                  + "\n".join(errors[:MAX_LISTED_ERRORS]) + more)


class AsdScoringModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        bundle = Path(context.artifacts[BUNDLE])
        self.encoder, self.card = load_bundle_encoder(bundle)
        self.detectors = load_section_detectors(bundle)
        self.scoring = json.loads((bundle / "scoring.json").read_text())
        self.channels = BundleChannels.read(bundle)
        self.audio_cfg = request_audio_config(bundle, self.card["sample_rate"])
        self.channel_scorer = ChannelScorer(bundle, self.channels, self.detectors) if self.channels else None

    def _detector(self, dataset, machine_type: str, section: str):
        return self.detectors[self._section(dataset, machine_type, section)]

    def _section(self, dataset, machine_type: str, section: str) -> tuple[str, str, str]:
        section = str(section).zfill(2) if str(section).isdigit() else str(section)
        keys = [k for k in self.detectors if k[1] == machine_type and k[2] == section and (dataset is None or k[0] == dataset)]
        if not keys:
            known = sorted({f"{k[1]}/section_{k[2]}" for k in self.detectors})
            where = f"{machine_type}/section_{section}" + (f" of dataset {dataset}" if dataset is not None else "")
            raise ValueError(f"unknown section: no index for {where} in this model (it covers: {', '.join(known)})")
        if len(keys) > 1:
            raise ValueError(f"{machine_type}/section_{section} exists in several datasets ({', '.join(k[0] for k in keys)}): "
                             "add a dataset column")
        return keys[0]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Score every row, or raise ScoringRequestError listing all bad rows (nothing partial)."""
        from asd_core.datasets.audio_io import AudioFileError

        df = pd.DataFrame(model_input).reset_index(drop=True)
        missing = {"machine_type", "section"} - set(df.columns)
        if missing or not set(SOURCES) & set(df.columns):
            need = sorted(missing) + ([] if set(SOURCES) & set(df.columns) else ["path or audio_b64"])
            raise ScoringRequestError(f"input needs columns machine_type, section and one of path, audio_b64; missing: {', '.join(need)}")
        cols = {c: df[c].tolist() if c in df.columns else [None] * len(df) for c in (*SOURCES, "dataset")}
        errors, sections = [], []
        for i, (mt, sec) in enumerate(zip(df["machine_type"], df["section"])):
            given = [c for c in SOURCES if _given(cols[c][i])]
            if len(given) != 1:
                errors.append(f"row {i}: give exactly one of path or audio_b64 (got {' and '.join(given) or 'neither'})")
            ds = cols["dataset"][i] if _given(cols["dataset"][i]) else None
            try:
                sections.append(self._section(ds, mt, sec))
            except ValueError as exc:
                errors.append(f"row {i}: {exc}")
        _raise_rows(errors)  # before any decoding: the cheap checks answer at once

        audio_cfg = self.audio_cfg
        roles = self.channels.roles if self.channels else None
        waves = []
        with tempfile.TemporaryDirectory(prefix="asd-serve-") as tmp:
            for i, (path, b64) in enumerate(zip(cols["path"], cols["audio_b64"])):
                try:
                    waves.append(decode_wav(Path(path), audio_cfg, roles) if _given(path)
                                 else decode_wav_b64(b64, audio_cfg, Path(tmp), roles))
                except (AudioFileError, OSError) as exc:
                    what = f"path {path}" if _given(path) else "audio_b64"
                    errors.append(f"row {i}: undecodable audio in {what}: {exc}")
        _raise_rows(errors)

        if self.channel_scorer is not None:
            vectors = {r: np.asarray(self.encoder.embed([w[r] for w in waves]), np.float32) for r in roles}
            scores, thresholds = self.channel_scorer.score(sections, vectors)
        else:
            vectors = np.asarray(self.encoder.embed(waves), np.float32)
            scores, thresholds = np.empty(len(df)), np.empty(len(df))
            for i, key in enumerate(sections):
                det, threshold = self.detectors[key]
                scores[i] = float(det.score(vectors[i : i + 1])[0])
                thresholds[i] = threshold
        out = df.drop(columns="audio_b64", errors="ignore")  # echoing megabytes of audio back helps nobody
        out["score"], out["threshold"] = scores, thresholds
        out["decision"] = (scores > thresholds).astype(np.int64)
        return out
