"""One noise recording as a source hands it to the noise library (noise_library.py), before the
library decides its kind, held-out status and split (methods.md section 3)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Recording(NamedTuple):
    cls: str  # noise class: a folder's sub-folder, <machine_type>-noise, <machine_type>-<role>
    source: str  # file path, clip:<clip_id> (supplemental clip) or clip:<clip_id>:<role> (a stored channel)
    wave: np.ndarray  # float32 at the library's sample rate
    clip_id: str | None = None  # the ingested clip it was taken from (None: a file)
    channel: str | None = None  # that clip's channel role (None: its primary waveform, or a file)
