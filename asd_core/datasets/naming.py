"""Parse DCASE Task 2 (2020-2025, dev and eval) and MIMII file names (methods.md section 5).

One parser per layout family behind :func:`parse_clip_path`; a path that matches no
scheme raises :class:`NamingError` with the reason, it is never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

SPLIT_DIRS = ("train", "test", "supplemental")
NO_ATTRIBUTE_TOKENS = {"noattribute", "noattributes"}


class NamingError(ValueError):
    """A file name that matches no known dataset naming scheme."""


@dataclass(frozen=True)
class ParsedName:
    scheme: str  # dcase2020 | dcase2021+ | dcase-eval | mimii
    machine_type: str
    section: str
    split: str | None
    domain: str | None
    label: str | None
    index: str
    attributes: dict[str, str] = field(default_factory=dict)


# 2021-2025 dev/eval-train: section_00_source_train_normal_0000[_key_value...]
_DCASE_2021 = re.compile(
    r"^section_(?P<section>\d+)_(?P<domain>source|target)_(?P<split>train|test)_"
    r"(?P<label>normal|anomaly)_(?P<index>\d+)(?:_(?P<attrs>.+))?$"
)
# 2025 supplemental: section_00_source_supplemental_<kind>_0000[...] or section_00_noise_supplemental_...
_DCASE_SUPPLEMENTAL = re.compile(
    r"^section_(?P<section>\d+)_(?P<first>[A-Za-z]+)_supplemental_(?P<second>[A-Za-z]+)_"
    r"(?P<index>\d+)(?:_(?P<attrs>.+))?$"
)
# anonymised evaluation test clip: section_00_0000
_DCASE_EVAL = re.compile(r"^section_(?P<section>\d+)_(?P<index>\d+)$")
# 2020 dev: normal_id_00_00000000 ; 2020 eval test (anonymised): id_00_00000000
_DCASE_2020 = re.compile(r"^(?:(?P<label>normal|anomaly)_)?id_(?P<section>\d+)_(?P<index>\d+)$")
# MIMII, flattened: valve_id00_n_00000000[_tag]
_MIMII_FLAT = re.compile(
    r"^(?P<machine>[A-Za-z][A-Za-z0-9-]*)_id_?(?P<section>\d+)_(?P<label>n|abn|normal|abnormal)_"
    r"(?P<index>\d+)(?:_(?P<attrs>.+))?$"
)
# MIMII, original tree: <machine>/id_00/<normal|abnormal>/00000000.wav
_MIMII_INDEX = re.compile(r"^(?P<index>\d+)$")

_MIMII_LABELS = {"n": "normal", "normal": "normal", "abn": "anomaly", "abnormal": "anomaly"}


def parse_attributes(text: str | None) -> dict[str, str]:
    """Split ``key_value_key_value`` pairs; values may hold dots and dashes (``volt_1.5``).

    A lone ``noAttribute`` marker gives no attributes; an odd trailing token becomes a key
    with an empty value, so nothing in the name is dropped.
    """
    if not text:
        return {}
    tokens = text.split("_")
    if len(tokens) == 1 and tokens[0].lower() in NO_ATTRIBUTE_TOKENS:
        return {}
    attrs: dict[str, str] = {}
    for i in range(0, len(tokens) - 1, 2):
        attrs[tokens[i]] = tokens[i + 1]
    if len(tokens) % 2:
        attrs.setdefault(tokens[-1], "")
    return attrs


def _dcase_dirs(parts: tuple[str, ...]) -> tuple[str, str]:
    """(machine_type, split folder) from ``.../<machine>/<split>/<file>``."""
    if len(parts) < 3 or parts[-2] not in SPLIT_DIRS:
        raise NamingError(
            "DCASE file name outside a <machine>/{train,test,supplemental}/ folder"
        )
    return parts[-3], parts[-2]


def parse_clip_path(relative_path: str) -> ParsedName:
    """Parse a clip's path relative to its dataset root."""
    path = PurePosixPath(relative_path)
    if path.suffix.lower() != ".wav":
        raise NamingError(f"not a .wav file name (suffix {path.suffix or 'none'!r})")
    stem, parts = path.stem, path.parts

    if m := _DCASE_2021.match(stem):
        machine, folder = _dcase_dirs(parts)
        if folder != m["split"]:
            raise NamingError(f"name says split {m['split']!r} but the file is in {folder}/")
        return ParsedName(
            scheme="dcase2021+", machine_type=machine, section=m["section"], split=m["split"],
            domain=m["domain"], label=m["label"], index=m["index"],
            attributes=parse_attributes(m["attrs"]),
        )
    if m := _DCASE_SUPPLEMENTAL.match(stem):
        machine, _ = _dcase_dirs(parts)
        first, second = m["first"].lower(), m["second"].lower()
        attrs = parse_attributes(m["attrs"])
        attrs["supplemental_kind"] = "noise" if "noise" in (first, second) else "machine"
        # Noise-only recordings have no machine condition; clean machine clips are normal.
        if attrs["supplemental_kind"] == "noise":
            label = None
        else:
            label = second if second in ("normal", "anomaly") else "normal"
        return ParsedName(
            scheme="dcase2021+", machine_type=machine, section=m["section"], split="supplemental",
            domain=first if first in ("source", "target") else None, label=label,
            index=m["index"], attributes=attrs,
        )
    if m := _DCASE_EVAL.match(stem):
        machine, folder = _dcase_dirs(parts)
        return ParsedName(
            scheme="dcase-eval", machine_type=machine, section=m["section"], split=folder,
            domain=None, label=None, index=m["index"],
        )
    if m := _DCASE_2020.match(stem):
        machine, folder = _dcase_dirs(parts)
        return ParsedName(
            scheme="dcase2020", machine_type=machine, section=m["section"], split=folder,
            domain=None, label=m["label"], index=m["index"],
        )
    if m := _MIMII_FLAT.match(stem):
        label = _MIMII_LABELS[m["label"]]
        return ParsedName(
            scheme="mimii", machine_type=m["machine"], section=m["section"],
            split=_mimii_split(label), domain=None, label=label, index=m["index"],
            attributes=parse_attributes(m["attrs"]),
        )
    if (m := _MIMII_INDEX.match(stem)) and len(parts) >= 4 and parts[-2] in ("normal", "abnormal"):
        id_match = re.fullmatch(r"id_?(\d+)", parts[-3])
        if id_match:
            label = _MIMII_LABELS[parts[-2]]
            return ParsedName(
                scheme="mimii", machine_type=parts[-4], section=id_match[1],
                split=_mimii_split(label), domain=None, label=label, index=m["index"],
            )
    raise NamingError("file name matches no DCASE 2020-2025 or MIMII naming scheme")


def _mimii_split(label: str) -> str:
    # Raw MIMII has no split: normal clips are references (train), anomalies test clips.
    return "train" if label == "normal" else "test"
