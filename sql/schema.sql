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
    channel_selection    VARCHAR NOT NULL,   -- mono | <index> | mean
    pipeline_sample_rate INTEGER NOT NULL,
    file_size            BIGINT NOT NULL,
    file_mtime_ns        BIGINT NOT NULL,
    sha256               VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS quarantine (
    dataset       VARCHAR NOT NULL,
    root          VARCHAR NOT NULL,
    relative_path VARCHAR NOT NULL,
    stage         VARCHAR NOT NULL,          -- scan | probe | decode
    reason        VARCHAR NOT NULL,
    file_size     BIGINT
);
