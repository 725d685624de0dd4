"""Prefect flows: thin orchestration over asd_core (every computation lives in asd_core)."""
