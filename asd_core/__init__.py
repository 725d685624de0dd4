"""asd_core: the library behind the ASD pipeline (pure Python + torch, no Prefect).

Each stage reads typed inputs and writes typed outputs; see ``asd_core.schemas`` for the
declared Parquet schemas and ``asd_core.config`` for the configuration objects.
"""

__version__ = "0.1.0"
