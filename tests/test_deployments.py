"""deployments/prefect.yaml: every deployment builds against a real (test) Prefect API, and the
nightly pipeline deployment runs for real through a process worker."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.slow
PREFECT_YAML = REPO / "deployments" / "prefect.yaml"


def _prefect(args, env, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"prefect {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_every_deployment_builds_and_the_pipeline_one_runs(tmp_path, demo_small, prefect_harness):
    from prefect import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    declared = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PWD": str(REPO)}
    _prefect(["work-pool", "create", "asd-process", "--type", "process", "--overwrite"], env)
    _prefect(["--no-prompt", "deploy", "--prefect-file", str(PREFECT_YAML), "--all"], env)

    with get_client(sync_client=True) as client:
        built = {d.name: d for d in client.read_deployments()}
        for spec in declared:
            dep = built[spec["name"]]
            assert dep.work_pool_name == "asd-process" and dep.entrypoint == spec["entrypoint"]
            assert dep.parameters == spec["parameters"]
            assert dep.pull_steps[0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(REPO)
            assert len(dep.schedules) == len(spec["schedules"])
            flow = client.read_flow(dep.flow_id)
            assert f"{flow.name}/{dep.name}" in ("asd-pipeline/nightly-retraining", "asd-rescore/rescore-new-data",
                                                 "asd-monitor/watch-incoming")
        nightly = built["nightly-retraining"]
        assert nightly.schedules[0].schedule.cron == "0 2 * * *"
        watch = built["watch-incoming"]
        assert watch.schedules[0].schedule.interval.total_seconds() == 600 and watch.schedules[0].active
        assert watch.parameters["model"] == "asd-encoder@champion"
        # the parameters a deployment carries must make a valid config
        from asd_core.pipeline.config import load_config

        load_config(REPO / nightly.parameters["config_file"], nightly.parameters["overrides"])

    ws = tmp_path / "ws"
    overrides = [f'workspace="{ws}"', f'data.roots=["{demo_small}"]', "mix.enabled=false", "teacher.enabled=false",
                 "student.enabled=false", 'embed.encoders=["stft-mean"]', "embed.noisy_encoders=[]",
                 'score.normalizations=["knn"]', "register.enabled=false", "report.enabled=false"]
    run = run_deployment("asd-pipeline/nightly-retraining", parameters={"overrides": overrides}, timeout=0)
    _prefect(["worker", "start", "--pool", "asd-process", "--run-once"], env, timeout=420)
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    assert state.is_completed(), state
    import duckdb

    con = duckdb.connect(str(Path(ws) / "asd.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT encoder, normalization FROM runs").fetchall() == [("stft-mean", "knn")]
        assert con.execute("SELECT count(*) FROM scores").fetchone()[0] == 120
    finally:
        con.close()
