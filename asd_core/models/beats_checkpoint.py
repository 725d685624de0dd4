"""Load and save BEATs checkpoints in the official layout: ``{"cfg": ..., "model": ..., ["label_dict"]}``."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from asd_core.hashing import file_sha256
from asd_core.models.beats import BEATs, BEATsConfig
from asd_core.storage.weights import WeightsFileError, load_weights


class BEATsCheckpointError(ValueError):
    """A file that is not a usable BEATs checkpoint; the message names the file and the problem."""


# torch >= 2.1 weight-norm parametrisations name g and v differently from the upstream checkpoints
_PARAMETRIZED = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
_SHARED_BIAS = re.compile(r"^encoder\.layers\.([1-9]\d*)\.self_attn\.relative_attention_bias\.weight$")


def map_state_dict(state: dict) -> dict:
    """Upstream / newer-torch key names -> this module's names."""
    out = {}
    for key, value in state.items():
        for new, old in _PARAMETRIZED.items():
            key = key.replace(new, old)
        if _SHARED_BIAS.match(key):
            continue  # the relative position table is shared: upstream repeats layer 0's under every layer
        out[key] = value
    return out


def load_beats(path: str | Path, device: str = "cpu") -> tuple[BEATs, dict]:
    """Build the model from the checkpoint's own ``cfg`` and load its weights (storage/weights.py)."""
    path = Path(path)
    if not path.is_file():
        raise BEATsCheckpointError(f"{path}: BEATs checkpoint not found")
    try:
        ckpt = load_weights(path, map_location=device)
    except WeightsFileError as exc:  # empty, damaged, not a pickle, unsafe globals ...
        raise BEATsCheckpointError(f"{path}: not a BEATs checkpoint (torch.load failed: {exc.detail})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("cfg"), dict) or not isinstance(ckpt.get("model"), dict):
        keys = sorted(map(str, ckpt))[:5] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise BEATsCheckpointError(f"{path}: not a BEATs checkpoint (expected a dict with 'cfg' and 'model', found {keys})")
    try:
        cfg = BEATsConfig.from_dict(ckpt["cfg"])
        model = BEATs(cfg)
        state = map_state_dict(ckpt["model"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise BEATsCheckpointError(f"{path}: the BEATs config or weights in the checkpoint are unusable ({exc})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise BEATsCheckpointError(f"{path}: weights do not match the BEATs config in the checkpoint "
                                   f"({str(exc).splitlines()[-1].strip()})") from None
    if missing or unexpected:
        raise BEATsCheckpointError(f"{path}: weights do not match the BEATs config in the checkpoint "
                                   f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, {"label_dict": ckpt.get("label_dict"), "cfg": cfg.to_dict()}


def save_beats(model: BEATs, path: str | Path, label_dict: dict | None = None) -> None:
    """Write the official layout (weight-norm keys ``weight_g``/``weight_v``, shared bias repeated per layer)."""
    state = dict(model.state_dict())
    table = "encoder.layers.0.self_attn.relative_attention_bias.weight"
    if table in state:
        for i in range(1, model.cfg.encoder_layers):
            state[f"encoder.layers.{i}.self_attn.relative_attention_bias.weight"] = state[table]
    ckpt = {"cfg": model.cfg.to_dict(), "model": state}
    if label_dict is not None:
        ckpt["label_dict"] = label_dict
    torch.save(ckpt, path)


def file_hash(path: str | Path) -> str:
    return file_sha256(path, 16)
