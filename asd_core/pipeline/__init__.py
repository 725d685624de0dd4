"""The whole pipeline as one configured run: config file, stage cache keys, workspace lock, results."""
