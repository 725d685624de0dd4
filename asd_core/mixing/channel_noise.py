"""Noise recordings from a stored channel of the workspace's normal training clips (methods.md
section 7): the far microphone of DCASE 2026 two-channel recordings records the plant's real noise,
so it can be the noise part of training mixtures (near-channel machine sound + recorded noise) and
teacher(noise) in the alignment target (section 3), in place of or beside a synthetic library.

Each clip's channel becomes one recording of class ``<machine_type>-<role>`` (e.g. ``fan-far``)
that remembers its clip and channel, so plan.py never mixes a clip with its own far channel and
the noise table names where each recording came from. Channels ingest flagged silent or clipped
(``clips.channel_flags``) are left out: a silent one has no SNR, a clipped one is distorted.
"""

from __future__ import annotations

import logging
from collections import Counter

import pyarrow.parquet as pq

from asd_core.config import Workspace
from asd_core.mixing.config import MixingError
from asd_core.mixing.recording import Recording
from asd_core.schemas import CLIPS
from asd_core.storage.audio import channel_waves
from asd_core.storage.paths import all_files

logger = logging.getLogger("asd.mixing")

_COLUMNS = ["clip_id", "machine_type", "split", "label", "channel_roles", "channel_flags"]


def channel_noise_recordings(ws: Workspace, role: str) -> list[Recording]:
    """One recording per normal training clip that stores an unflagged ``role`` channel, by clip id.

    A one-line error when no training clip stores that channel (mono data: ingest the two-channel
    recordings) or when every one is flagged."""
    classes: dict[str, str] = {}
    flagged: dict[str, str] = {}
    for path in all_files(ws, "clips"):
        # schema=CLIPS: clips files written before two-channel support read with null roles and flags
        for r in pq.read_table(path, columns=_COLUMNS, schema=CLIPS).to_pylist():
            if r["split"] != "train" or r["label"] == "anomaly" or role not in (r["channel_roles"] or ()):
                continue
            flag = dict(r["channel_flags"] or {}).get(role)
            if flag:
                flagged[r["clip_id"]] = flag
            else:
                classes[r["clip_id"]] = f"{r['machine_type']}-{role}"
    if not classes and not flagged:
        raise MixingError(f"noise from the {role} channel: the training clips in workspace {ws.root} have no {role} "
                          f"channel; ingest two-channel (DCASE 2026-style) recordings, which keep near and far channels")
    if not classes:
        raise MixingError(f"noise from the {role} channel: every {role} channel of the training clips in workspace "
                          f"{ws.root} is flagged ({', '.join(sorted(set(flagged.values())))}); none is usable as noise")
    if flagged:
        logger.info("noise from the %s channel: %d flagged channels left out (%s)", role, len(flagged),
                    ", ".join(f"{n} {f}" for f, n in sorted(Counter(flagged.values()).items())))
    waves = channel_waves(ws, role, set(classes))
    return [Recording(classes[cid], f"clip:{cid}:{role}", waves[cid], cid, role) for cid in sorted(waves)]

