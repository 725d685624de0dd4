"""How a registered model decodes the WAV files sent to it: as ingest decoded the clips it was fit on.

Ingest's channel options (``--channel``, ``--channels all``, ``--channel-roles far,near``) decide which
channel of a multichannel file is the clip's primary waveform and what role each stored channel
plays. A bundle records them in ``audio.json`` (absent: the defaults, e.g. mono data), read back from
the training clips' ``channel_selection`` / ``channel_roles`` columns, so the pyfunc, ``asd monitor``
and ``asd enroll`` hand the model the same channel it was trained on instead of assuming channel 0
is the near microphone.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from asd_core.config import CHANNEL_ROLES, AudioConfig

AUDIO_FILE = "audio.json"


class ChannelLayoutError(ValueError):
    """Training clips decoded with different channel options: no one decoding serves requests."""


def layout_of(rows: list[dict]) -> dict | None:
    """The ingest channel options that produced ``rows`` (``channels``, ``channel_selection``,
    ``channel_roles`` of training clips; one row per distinct combination is enough), as
    :class:`AudioConfig` keywords; None when every row is mono or decoded with the defaults."""
    layouts = {}
    for r in rows:
        if r["channels"] <= 1:
            continue
        selection, roles = r["channel_selection"], list(r["channel_roles"] or [])
        if selection == "mean":
            layout = {"channel": "mean"}
        elif roles and roles[0].startswith("ch"):
            layout = {"channels": "all"}
        elif roles:  # near and far stored, near (the primary) at file channel `selection`
            near = int(selection)
            layout = {"channel_roles": list(CHANNEL_ROLES) if near == 0 else list(reversed(CHANNEL_ROLES))}
        else:  # one channel of the file kept, by index or role
            layout = {"channel": int(selection)}
        layouts[json.dumps(layout, sort_keys=True)] = layout
    if len(layouts) > 1:
        raise ChannelLayoutError(f"the training clips were ingested with different channel options ({', '.join(layouts)}); "
                                 "re-ingest them with one set of --channel / --channel-roles options")
    layout = next(iter(layouts.values()), None)
    return None if layout in (None, {"channel_roles": list(CHANNEL_ROLES)}) else layout


def write_layout(bundle: Path, layout: dict | None) -> None:
    if layout is not None:
        (bundle / AUDIO_FILE).write_text(json.dumps(layout, indent=2, sort_keys=True))


def request_audio_config(bundle: Path, sample_rate: int) -> AudioConfig:
    """The :class:`AudioConfig` that decodes requests for the model in ``bundle`` as its training clips were."""
    cfg = AudioConfig(sample_rate=sample_rate)
    path = bundle / AUDIO_FILE
    return replace(cfg, **json.loads(path.read_text())) if path.exists() else cfg
