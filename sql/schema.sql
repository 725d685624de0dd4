-- Tables of asd.duckdb. Parquet under <workspace>/parquet is the source of truth; `asd`
-- publishes into these tables in one short transaction after each stage.

CREATE TABLE IF NOT EXISTS clips (
    clip_id              VARCHAR PRIMARY KEY,
    dataset              VARCHAR NOT NULL,
    scheme               VARCHAR NOT NULL,   -- dcase2020 | dcase2021+ | dcase-eval | mimii
    split                VARCHAR,            -- train | test | supplemental
    machine_type         VARCHAR NOT NULL,
    section              VARCHAR NOT NULL,   -- '00'; machine id for DCASE 2020 / MIMII
    domain               VARCHAR,            -- source | target | NULL
    label                VARCHAR,            -- normal | anomaly | NULL (unknown)
    attributes           MAP(VARCHAR, VARCHAR),
    relative_path        VARCHAR NOT NULL,
    root                 VARCHAR NOT NULL,
    sample_rate          INTEGER NOT NULL,   -- of the file, before resampling
    channels             SMALLINT NOT NULL,
    num_samples          BIGINT NOT NULL,
    duration_s           DOUBLE NOT NULL,
    channel_selection    VARCHAR NOT NULL,   -- the primary waveform: mono | <index> | mean
    pipeline_sample_rate INTEGER NOT NULL,
    file_size            BIGINT NOT NULL,
    file_mtime_ns        BIGINT NOT NULL,
    sha256               VARCHAR NOT NULL,
    channel_roles        VARCHAR[],          -- stored channels' roles, primary first ([near, far]); NULL: one stored
    channel_flags        MAP(VARCHAR, VARCHAR) -- role -> silent | clipped; NULL: no channel flagged
);
ALTER TABLE clips ADD COLUMN IF NOT EXISTS channel_roles VARCHAR[];
ALTER TABLE clips ADD COLUMN IF NOT EXISTS channel_flags MAP(VARCHAR, VARCHAR);

CREATE TABLE IF NOT EXISTS quarantine (
    dataset       VARCHAR NOT NULL,
    root          VARCHAR NOT NULL,
    relative_path VARCHAR NOT NULL,
    stage         VARCHAR NOT NULL,          -- scan | probe | decode
    reason        VARCHAR NOT NULL,
    file_size     BIGINT
);

-- One row per scoring configuration; re-running a configuration replaces its rows.
CREATE TABLE IF NOT EXISTS runs (
    run_id          VARCHAR PRIMARY KEY,    -- hash of encoder, encoder_version, normalization, params
    created_at      TIMESTAMP NOT NULL,
    encoder         VARCHAR NOT NULL,
    encoder_version VARCHAR NOT NULL,
    normalization   VARCHAR NOT NULL,
    params          JSON NOT NULL,          -- metric, k, r, threshold_quantile, index_type, data_snapshot, ...
    transductive    BOOLEAN NOT NULL        -- true when test-set statistics were used (domain-standardize)
);

CREATE TABLE IF NOT EXISTS scores (
    run_id   VARCHAR NOT NULL,
    clip_id  VARCHAR NOT NULL,
    score    DOUBLE NOT NULL,               -- higher = more anomalous
    decision TINYINT NOT NULL,              -- 1 = anomalous: score above the section's threshold
    PRIMARY KEY (run_id, clip_id)
);

CREATE TABLE IF NOT EXISTS thresholds (
    run_id       VARCHAR NOT NULL,
    dataset      VARCHAR NOT NULL,
    machine_type VARCHAR NOT NULL,
    section      VARCHAR NOT NULL,
    threshold    DOUBLE NOT NULL,
    n_references BIGINT NOT NULL,
    PRIMARY KEY (run_id, dataset, machine_type, section)
);

-- Noise library of `asd mix` (waveforms stay in Parquet).
CREATE TABLE IF NOT EXISTS noise (
    noise_id    VARCHAR PRIMARY KEY,         -- content hash of the recording
    noise_class VARCHAR NOT NULL,
    kind        VARCHAR NOT NULL,            -- stationary | non-stationary
    held_out    BOOLEAN NOT NULL,            -- class never mixed into training (mismatched subset)
    split       VARCHAR NOT NULL,            -- train | eval
    source      VARCHAR NOT NULL,            -- file path, clip:<clip_id> or clip:<clip_id>:<role>
    num_samples BIGINT NOT NULL,
    source_clip_id VARCHAR,                  -- the ingested clip it comes from (supplemental clip, far channel); NULL: a file
    source_channel VARCHAR                   -- that clip's channel role (far); NULL: its primary waveform
);
ALTER TABLE noise ADD COLUMN IF NOT EXISTS source_clip_id VARCHAR;
ALTER TABLE noise ADD COLUMN IF NOT EXISTS source_channel VARCHAR;

-- Training mixtures: provenance from which the audio is regenerated exactly.
CREATE TABLE IF NOT EXISTS mixtures (
    mixture_id   VARCHAR PRIMARY KEY,
    clip_id      VARCHAR NOT NULL,           -- clean training clip
    dataset      VARCHAR NOT NULL,
    machine_type VARCHAR NOT NULL,
    noise_id     VARCHAR NOT NULL,
    noise_class  VARCHAR NOT NULL,
    subset       VARCHAR NOT NULL,           -- stationary | non-stationary
    snr_db       DOUBLE NOT NULL,
    clean_gain   DOUBLE NOT NULL,
    noise_gain   DOUBLE NOT NULL,
    noise_offset BIGINT NOT NULL,
    num_samples  BIGINT NOT NULL,
    seed         BIGINT NOT NULL,
    lam          DOUBLE NOT NULL,
    clean_key    VARCHAR                     -- audio key of the clean clip the gains were measured on
);
ALTER TABLE mixtures ADD COLUMN IF NOT EXISTS clean_key VARCHAR;

-- Noisy test clips: each test clip mixed with held-out noise per subset and SNR bin.
-- Their scores sit in `scores` under noisy_clip_id; scored_clips resolves them.
CREATE TABLE IF NOT EXISTS noisy_clips (
    noisy_clip_id VARCHAR PRIMARY KEY,
    clip_id       VARCHAR NOT NULL,          -- clean test clip
    dataset       VARCHAR NOT NULL,
    machine_type  VARCHAR NOT NULL,
    noise_id      VARCHAR NOT NULL,
    noise_class   VARCHAR NOT NULL,
    subset        VARCHAR NOT NULL,          -- stationary | non-stationary | mismatched
    snr_db        DOUBLE NOT NULL,
    clean_gain    DOUBLE NOT NULL,
    noise_gain    DOUBLE NOT NULL,
    noise_offset  BIGINT NOT NULL,
    num_samples   BIGINT NOT NULL,
    seed          BIGINT NOT NULL,
    snr_bin       VARCHAR NOT NULL,          -- '-10..-5', '-5..0', '0..5', '5..10'
    clean_key     VARCHAR                    -- audio key of the clean clip the gains were measured on
);
ALTER TABLE noisy_clips ADD COLUMN IF NOT EXISTS clean_key VARCHAR;

-- `asd monitor`: incoming recordings scored by a registered model, one row per (file content,
-- machine type, section, model version); Parquet under parquet/detections/batch=<id>/.
CREATE TABLE IF NOT EXISTS detections (
    path               VARCHAR NOT NULL,     -- absolute path the file was scored at
    sha256             VARCHAR NOT NULL,     -- of the file's bytes: the clip's identity
    machine_type       VARCHAR NOT NULL,
    section            VARCHAR NOT NULL,
    recorded_at        TIMESTAMP NOT NULL,   -- UTC: manifest, else a time in the file name, else mtime
    model_name         VARCHAR NOT NULL,
    model_version      VARCHAR NOT NULL,
    score              DOUBLE NOT NULL,      -- higher = more anomalous
    threshold          DOUBLE NOT NULL,      -- the section's one threshold in that model version
    decision           TINYINT NOT NULL,     -- 1 = anomalous: score above the threshold
    scored_at          TIMESTAMP NOT NULL,   -- UTC
    recorded_at_source VARCHAR NOT NULL,     -- manifest | file name | mtime
    dataset            VARCHAR NOT NULL,     -- the model's dataset whose section detector scored it
    sample_rate        INTEGER NOT NULL,     -- of the file (resampled to the model's rate if other)
    threshold_quantile DOUBLE,               -- quantile of the normal reference scores the threshold sits at
    batch_id           VARCHAR NOT NULL,     -- the monitor run that scored it
    PRIMARY KEY (sha256, machine_type, section, model_name, model_version)
);

-- Files `asd monitor` could not score (scored = false) and notes on files it scored after a change
-- (scored = true: resampled from another sample rate, float samples clipped).
CREATE TABLE IF NOT EXISTS monitor_quarantine (
    path           VARCHAR NOT NULL,
    sha256         VARCHAR,                  -- NULL when the file could not be read
    machine_type   VARCHAR,                  -- NULL when the path names none
    section        VARCHAR,
    model_name     VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    stage          VARCHAR NOT NULL,         -- discover | read | model | decode | embed | resample | clip
    reason         VARCHAR NOT NULL,
    scored         BOOLEAN NOT NULL,
    file_size      BIGINT,
    quarantined_at TIMESTAMP NOT NULL,       -- UTC
    batch_id       VARCHAR NOT NULL
);

-- `asd enroll`: the clips each model version was enrolled with (one row per clip); the clips
-- themselves are in `clips` (split 'train', domain = the enrolled operating condition).
CREATE TABLE IF NOT EXISTS enrollments (
    enrollment_id    VARCHAR NOT NULL,
    model_name       VARCHAR NOT NULL,
    model_version    VARCHAR NOT NULL,       -- the version the enrollment registered
    parent_version   VARCHAR NOT NULL,       -- the version it enrolled into (left untouched)
    dataset          VARCHAR NOT NULL,       -- the model's dataset of the section
    machine_type     VARCHAR NOT NULL,
    section          VARCHAR NOT NULL,
    domain           VARCHAR NOT NULL,       -- the new operating condition's name
    clip_id          VARCHAR NOT NULL,       -- the stored clip (clips: split 'train', this domain)
    sha256           VARCHAR NOT NULL,
    path             VARCHAR NOT NULL,       -- absolute path the clip was enrolled from
    threshold_before DOUBLE NOT NULL,        -- the section's threshold in the parent version
    threshold_after  DOUBLE NOT NULL,        -- ... and in the enrolled version
    enrolled_at      TIMESTAMP NOT NULL      -- UTC
);
