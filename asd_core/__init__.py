"""asd_core: the library behind the ASD pipeline (pure Python + torch, no Prefect).

Each stage reads typed inputs and writes typed outputs; see ``asd_core.schemas`` for the
declared Parquet schemas and ``asd_core.config`` for the configuration objects.

Layers, bottom-up (``LAYERS`` below; tests/test_architecture.py enforces it): a module imports
from its own package and from packages of lower layers only, never from a package of its own
layer or above, and no modules import each other in a cycle. ``flows`` (the Prefect flows and
the CLI) sits on top; nothing in ``asd_core`` imports it.

====  ====================================  =====================================================
 0    config, choices, hashing, schemas,    configuration objects, names offered on the command
      progress, runtime, textable           line, every id/digest recipe, Parquet schemas, helpers
 1    storage                               everything on disk: workspace paths, waveforms,
                                            embeddings + encoder cards, model folders + CURRENT
                                            pointers, weights files, atomic writes, DuckDB
 2    datasets, demo                        WAV decoding and dataset naming; demo data generator
 3    ingest, models                        dataset roots -> clips/audio; torch modules + loading
 4    encoders                              waveform -> vector (never imports training)
 5    embedding, mixing                     embed any (clip id, waveform) source; noise library,
                                            mixture plans and rendering (peers: neither imports
                                            the other, the embed flow joins them)
 6    training                              teacher and student training
 7    scoring                               detectors, FAISS indexes, scoring runs
 8    evaluation, tracking                  metric tables; MLflow store and registry
 9    reporting, monitor                    run reports (figures, HTML); scoring incoming recordings
                                            with a registered model (``asd monitor``)
10    pipeline, enrollment                  the configured run: config file, cache keys, results;
                                            adding a new domain to a registered version (``asd enroll``)
11    flows                                 Prefect flows and the ``asd`` CLI (outside asd_core)
====  ====================================  =====================================================
"""

__version__ = "0.1.0"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("config", "choices", "hashing", "schemas", "progress", "runtime", "textable"),
    ("storage",),
    ("datasets", "demo"),
    ("ingest", "models"),
    ("encoders",),
    ("embedding", "mixing"),
    ("training",),
    ("scoring",),
    ("evaluation", "tracking"),
    ("reporting", "monitor"),
    ("pipeline", "enrollment"),
    ("flows",),
)
