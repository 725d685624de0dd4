"""Where the ingest artifacts live: kept importable here for older callers; the paths are
defined once, in ``asd_core.storage.paths``."""

from __future__ import annotations

from asd_core.storage.paths import (all_files, audio_file, clips_file, existing_machine_types, hive_value,
                                    quarantine_file)

__all__ = ["all_files", "audio_file", "clips_file", "existing_machine_types", "hive_value", "quarantine_file"]
