"""One declared pyarrow schema per Parquet artifact (lhotse-style manifests).

Every writer validates against these, so a reader can rely on names and types.
"""

from __future__ import annotations

import pyarrow as pa

CLIPS = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),  # sha1(dataset \0 relative_path)[:16]
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("scheme", pa.string(), nullable=False),  # dcase2020 | dcase2021+ | dcase-eval | mimii
        pa.field("split", pa.string()),  # train | test | supplemental
        pa.field("machine_type", pa.string(), nullable=False),
        pa.field("section", pa.string(), nullable=False),  # "00"; machine id in DCASE 2020 / MIMII
        pa.field("domain", pa.string()),  # source | target | null
        pa.field("label", pa.string()),  # normal | anomaly | null (unknown)
        pa.field("attributes", pa.map_(pa.string(), pa.string())),
        pa.field("relative_path", pa.string(), nullable=False),  # posix, relative to root
        pa.field("root", pa.string(), nullable=False),  # absolute root the file was found under
        pa.field("sample_rate", pa.int32(), nullable=False),  # of the file, before resampling
        pa.field("channels", pa.int16(), nullable=False),  # of the file
        pa.field("num_samples", pa.int64(), nullable=False),  # frames in the file
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("channel_selection", pa.string(), nullable=False),  # the primary waveform: "mono" | "<index>" | "mean"
        pa.field("pipeline_sample_rate", pa.int32(), nullable=False),
        pa.field("file_size", pa.int64(), nullable=False),
        pa.field("file_mtime_ns", pa.int64(), nullable=False),
        pa.field("sha256", pa.string(), nullable=False),
        # roles of the stored channels, primary first (e.g. [near, far]); null: only the primary is stored
        pa.field("channel_roles", pa.list_(pa.string())),
        # role -> "silent" | "clipped" for a stored channel without usable signal; null: none flagged
        pa.field("channel_flags", pa.map_(pa.string(), pa.string())),
    ]
)


def audio_schema(storage_dtype: str) -> pa.Schema:
    """The ``audio`` artifact: waveforms at the pipeline rate, apart from ``clips``."""
    value_type = {"int16": pa.int16(), "float32": pa.float32()}[storage_dtype]
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("sample_rate", pa.int32(), nullable=False),
            # int16 samples are PCM counts (divide by 32768); float32 samples are in [-1, 1].
            pa.field("waveform", pa.list_(value_type), nullable=False),
            # the file's channel index (null: the mean of its channels) and its role (mono, mean, near,
            # far, ch<N>); partitions written before two-channel support lack both (the primary channel)
            pa.field("channel", pa.int16()),
            pa.field("role", pa.string()),
        ]
    )


QUARANTINE = pa.schema(
    [
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("root", pa.string(), nullable=False),
        pa.field("relative_path", pa.string(), nullable=False),  # "" when the root itself failed
        pa.field("stage", pa.string(), nullable=False),  # scan | probe | decode
        pa.field("reason", pa.string(), nullable=False),
        pa.field("file_size", pa.int64()),
    ]
)


def embeddings_schema(dim: int) -> pa.Schema:
    """The ``embeddings`` artifact: one fixed-size float32 vector per (clip, encoder version)."""
    return pa.schema(
        [
            pa.field("clip_id", pa.string(), nullable=False),
            pa.field("encoder", pa.string(), nullable=False),
            pa.field("encoder_version", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            # What the vector was computed from (storage/content.py): a clip's audio key, a noisy
            # clip's mixture key. Reuse needs it to match; files written before it existed have none.
            pa.field("content_key", pa.string()),
            # The channel role the vector was computed from (near, far, mean, mono, ch<N>); null in
            # files written before two-channel support (the clip's primary waveform).
            pa.field("channel", pa.string()),
        ]
    )


SCORES = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("decision", pa.int8(), nullable=False),  # 1 = anomalous (score > section threshold)
    ]
)

THRESHOLDS = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("machine_type", pa.string(), nullable=False),
        pa.field("section", pa.string(), nullable=False),
        pa.field("threshold", pa.float64(), nullable=False),
        pa.field("n_references", pa.int64(), nullable=False),
    ]
)


NOISE = pa.schema(
    [
        pa.field("noise_id", pa.string(), nullable=False),  # sha256 of the float32 waveform [:16]
        pa.field("noise_class", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # stationary | non-stationary
        pa.field("held_out", pa.bool_(), nullable=False),  # class never mixed into training (mismatched subset)
        pa.field("split", pa.string(), nullable=False),  # train | eval (recordings kept out of training)
        pa.field("source", pa.string(), nullable=False),  # file path, clip:<clip_id> or clip:<clip_id>:<role>
        pa.field("num_samples", pa.int64(), nullable=False),
        pa.field("waveform", pa.list_(pa.float32()), nullable=False),  # pipeline rate, float32
        # The ingested clip a recording was taken from (a supplemental noise clip, or the far channel
        # of a training clip: `asd mix --noise-from-channel far`) and that clip's channel role (null:
        # its primary waveform); both null for a file. Last, so files and tables written before they
        # existed read with nulls (sql/schema.sql adds them by ALTER TABLE).
        pa.field("source_clip_id", pa.string()),
        pa.field("source_channel", pa.string()),
    ]
)

# Provenance shared by training mixtures and noisy test clips: enough to regenerate the audio
# exactly as clean_gain * clean + noise_gain * noise[(noise_offset + t) % len(noise)].
_MIX_FIELDS = [
    pa.field("clip_id", pa.string(), nullable=False),  # the clean clip
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("machine_type", pa.string(), nullable=False),
    pa.field("noise_id", pa.string(), nullable=False),
    pa.field("noise_class", pa.string(), nullable=False),
    pa.field("subset", pa.string(), nullable=False),  # stationary | non-stationary | mismatched
    pa.field("snr_db", pa.float64(), nullable=False),  # requested = measured on the scaled parts
    pa.field("clean_gain", pa.float64(), nullable=False),
    pa.field("noise_gain", pa.float64(), nullable=False),
    pa.field("noise_offset", pa.int64(), nullable=False),
    pa.field("num_samples", pa.int64(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
]

# The audio key (storage/content.py) of the clean clip the row was planned on: the gains were
# measured on that audio, so a later change of the recording makes the row stale. Last, so
# tables created before it existed gain it by ALTER TABLE (sql/schema.sql).
_CLEAN_KEY = pa.field("clean_key", pa.string())

MIXTURES = pa.schema(
    [pa.field("mixture_id", pa.string(), nullable=False)] + _MIX_FIELDS
    + [pa.field("lam", pa.float64(), nullable=False), _CLEAN_KEY]  # lam: weight of teacher(clean) in the alignment target
)

NOISY_CLIPS = pa.schema(
    [pa.field("noisy_clip_id", pa.string(), nullable=False)] + _MIX_FIELDS
    + [pa.field("snr_bin", pa.string(), nullable=False), _CLEAN_KEY]  # snr_bin: e.g. "-10..-5"
)


# `asd monitor` (asd_core/monitor): one row per (file content, machine type, section, model version)
# scored; Parquet per monitor run under parquet/detections/batch=<id>/, published into DuckDB.
DETECTIONS = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),  # absolute path the file was scored at
        pa.field("sha256", pa.string(), nullable=False),  # of the file's bytes: the clip's identity
        pa.field("machine_type", pa.string(), nullable=False),
        pa.field("section", pa.string(), nullable=False),
        pa.field("recorded_at", pa.timestamp("us"), nullable=False),  # UTC (a name without a zone is taken as UTC)
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),  # higher = more anomalous
        pa.field("threshold", pa.float64(), nullable=False),  # the section's one threshold in that version
        pa.field("decision", pa.int8(), nullable=False),  # 1 = anomalous (score > threshold)
        pa.field("scored_at", pa.timestamp("us"), nullable=False),  # UTC
        pa.field("recorded_at_source", pa.string(), nullable=False),  # manifest | file name | mtime
        pa.field("dataset", pa.string(), nullable=False),  # the model's dataset whose section detector scored it
        pa.field("sample_rate", pa.int32(), nullable=False),  # of the file (resampled to the model's rate if other)
        pa.field("threshold_quantile", pa.float64()),  # quantile of the normal reference scores the threshold is
        pa.field("batch_id", pa.string(), nullable=False),  # the monitor run that scored it
    ]
)

# Files `asd monitor` could not score (scored = false), and notes on files it scored after a
# change (scored = true: resampled from another rate, float samples clipped).
MONITOR_QUARANTINE = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("sha256", pa.string()),  # null when the file could not be read
        pa.field("machine_type", pa.string()),  # null when the path does not name one
        pa.field("section", pa.string()),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("stage", pa.string(), nullable=False),  # discover | read | model | decode | embed | resample | clip
        pa.field("reason", pa.string(), nullable=False),
        pa.field("scored", pa.bool_(), nullable=False),
        pa.field("file_size", pa.int64()),
        pa.field("quarantined_at", pa.timestamp("us"), nullable=False),  # UTC
        pa.field("batch_id", pa.string(), nullable=False),
    ]
)

# `asd enroll` (asd_core/enrollment): one row per clip enrolled into a model version's section;
# Parquet per enrollment under parquet/enrollments/enrollment=<id>/, published into DuckDB.
ENROLLMENTS = pa.schema(
    [
        pa.field("enrollment_id", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),  # the version the enrollment registered
        pa.field("parent_version", pa.string(), nullable=False),  # the version it was enrolled into (untouched)
        pa.field("dataset", pa.string(), nullable=False),  # the model's dataset of the section
        pa.field("machine_type", pa.string(), nullable=False),
        pa.field("section", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),  # the new operating condition's name
        pa.field("clip_id", pa.string(), nullable=False),  # the stored clip (clips table, split 'train')
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),  # absolute path the clip was enrolled from
        pa.field("threshold_before", pa.float64(), nullable=False),  # the section's threshold in the parent
        pa.field("threshold_after", pa.float64(), nullable=False),  # ... and in the enrolled version
        pa.field("enrolled_at", pa.timestamp("us"), nullable=False),  # UTC
    ]
)
