"""Storage: atomic Parquet writes and the DuckDB catalogue."""
