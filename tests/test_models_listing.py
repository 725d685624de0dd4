"""`asd models` reads MLflow's SQLite registry without importing MLflow; it must print exactly what
MlflowClient reports (tracking/versions.py vs tracking/registry.py list_models), on a real store."""

import pytest

from asd_core.config import Workspace
from asd_core.tracking.store import TrackingConfig, client
from asd_core.tracking.versions import sqlite_file, sqlite_versions


@pytest.fixture(scope="module")
def registry_ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("ws-models"))
    cfg = TrackingConfig(model_name="asd-encoder")
    c = client(ws, cfg)
    c.create_registered_model(cfg.model_name)
    c.create_registered_model("other-model")  # versions of another model stay out of the listing
    src = (ws.root / "bundle").as_uri()
    for i, score in enumerate(["0.81234567", "0.7", "not-a-number"]):
        c.create_model_version(cfg.model_name, src, tags={"official_score": score, "encoder": f"enc{i}", "run_id": f"r{i}",
                                                           "git_commit": "0123456789abcdef"})
    c.create_model_version("other-model", src, tags={"encoder": "x"})
    c.set_registered_model_alias(cfg.model_name, "champion", "1")
    c.set_registered_model_alias(cfg.model_name, "challenger", "3")
    c.set_registered_model_alias(cfg.model_name, "canary", "3")
    c.set_model_version_tag(cfg.model_name, "1", "promotion_decision", "promoted")
    c.delete_model_version(cfg.model_name, "2")  # deleted versions are not listed
    return ws, cfg


def test_sqlite_listing_equals_mlflow_client(registry_ws):
    from asd_core.tracking.registry import list_models

    ws, cfg = registry_ws
    fast = sqlite_versions(sqlite_file(cfg.resolved_uri(ws)), cfg.model_name)
    slow = list_models(ws, cfg)
    assert fast == slow
    assert [r["version"] for r in fast] == [1, 3] and fast[1]["aliases"] == "canary,challenger"
    assert fast[0]["official_score"] == "0.8123" and fast[0]["promotion"] == "promoted"


def test_unknown_model_and_other_stores_fall_back(registry_ws, tmp_path):
    ws, cfg = registry_ws
    db = sqlite_file(cfg.resolved_uri(ws))
    assert sqlite_versions(db, "never-registered") is None  # MLflow words that error
    assert sqlite_versions(tmp_path / "missing.db", cfg.model_name) is None
    (tmp_path / "junk.db").write_bytes(b"not a database")
    assert sqlite_versions(tmp_path / "junk.db", cfg.model_name) is None
    assert sqlite_file("http://mlflow.example:5000") is None and sqlite_file("file:///tmp/mlruns") is None
    assert sqlite_file("sqlite:////abs/m.db").as_posix() == "/abs/m.db" and sqlite_file("sqlite:///rel.db").as_posix() == "rel.db"


def test_cli_models_prints_the_listing(registry_ws, capsys):
    from flows.cli import main

    ws, _ = registry_ws
    assert main(["models", "--workspace", str(ws.root)]) == 0
    out = capsys.readouterr().out
    assert "champion" in out and "canary,challenger" in out and "enc1" not in out
