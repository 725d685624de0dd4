"""The pipeline config: the documented file equals the defaults, overrides, clear errors; stage keys."""

import re
import tomllib

import numpy as np
import pytest
import soundfile as sf

from asd_core.pipeline.config import PipelineConfig, PipelineConfigError, load_config
from asd_core.pipeline.fingerprint import clips_fingerprint, stage_key, tree_fingerprint
from asd_core.pipeline.toml import dumps
from tests.conftest import REPO

DOC = REPO / "deployments" / "pipeline.toml"


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_documented_config_has_every_key_with_its_default():
    text = DOC.read_text()
    parsed = dict(_leaves(tomllib.loads(text)))
    defaults = dict(_leaves(PipelineConfig().to_dict()))
    for key, value in defaults.items():
        if value is None:  # unset by default: documented as a commented line in its table
            section, name = key.rsplit(".", 1)
            block = text.split(f"[{section}]", 1)[1].split("\n[", 1)[0]
            assert re.search(rf"^# {name} = ", block, re.M), f"{key} is not documented"
        else:
            assert key in parsed, f"{key} missing from {DOC.name}"
            assert parsed[key] == value, f"{key}: documented {parsed[key]!r}, default {value!r}"
    assert set(parsed) <= set(defaults), f"unknown keys documented: {set(parsed) - set(defaults)}"
    assert load_config(DOC).to_dict() == PipelineConfig().to_dict()


def test_toml_round_trip_and_overrides(tmp_path):
    cfg = PipelineConfig().with_overrides(["teacher.epochs=3", 'score.normalizations=["knn"]', "teacher.model.n_mels=32",
                                           "runner.task_runner=dask", "mix.lam=0.3", "student.objective.lam=0.3",
                                           "register.normalization=knn"])
    assert cfg.teacher.train.epochs == 3 and cfg.score.normalizations == ["knn"] and cfg.teacher.train.model.n_mels == 32
    assert cfg.runner.task_runner == "dask"  # a bare word is a string
    path = tmp_path / "c.toml"
    path.write_text(dumps(cfg.to_dict()))
    again = load_config(path, ["data.roots=['/x']"])
    assert again.data.roots == ["/x"]
    assert {k: v for k, v in again.to_dict().items() if k != "data"} == {k: v for k, v in cfg.to_dict().items() if k != "data"}


@pytest.mark.parametrize("overrides, message", [
    (["teacher.epoch=3"], "unknown key 'teacher.epoch'"),
    (["nosuch.key=1"], "no config section 'nosuch'"),
    (["teacher.epochs"], "not of the form"),
    (["embed.encoders=[\"mfcc\"]"], "unknown encoder 'mfcc'"),
    (["student.enabled=false"], "embed.encoders lists 'student'"),
    (["mix.lam=0.3"], "student.objective.lam (0.5) differs from mix.lam (0.3)"),
    (["runner.task_runner=spark"], "runner.task_runner must be one of thread, dask"),
    (["register.normalization=lof"], "register.normalization 'lof' is not in score.normalizations"),
    (["student.objective.objective=nope"], "unknown objective 'nope'"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(PipelineConfigError) as exc:
        PipelineConfig().with_overrides(overrides)
    assert message in str(exc.value)


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(PipelineConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\nroots = 1")
    with pytest.raises(PipelineConfigError, match=rf"{bad}: not valid TOML"):
        load_config(bad)
    typo = tmp_path / "typo.toml"
    typo.write_text("[score]\nnormalisations = ['knn']\n")
    with pytest.raises(PipelineConfigError, match=r"typo.toml: \[score\]: unknown key\(s\) normalisations"):
        load_config(typo)


def test_clip_fingerprint_follows_content_not_mtime(tmp_path, demo_small, ingest_tree):
    import shutil

    tree = tmp_path / "tree"
    shutil.copytree(demo_small / "dev_data", tree / "dev_data")
    ws = ingest_tree(tmp_path / "ws", tree)
    fp, raw = clips_fingerprint(ws), tree_fingerprint(tree)
    wav = sorted(tree.rglob("*train_normal*.wav"))[0]
    wav.touch()  # same content, new mtime: the raw-tree key changes, the content key does not
    ws = ingest_tree(tmp_path / "ws", tree)
    assert tree_fingerprint(tree) != raw and clips_fingerprint(ws) == fp
    audio, sr = sf.read(wav, dtype="float32")
    sf.write(wav, np.clip(audio * 0.5, -1, 1), sr, subtype="PCM_16")
    ws = ingest_tree(tmp_path / "ws", tree)
    assert clips_fingerprint(ws) != fp
    assert stage_key("x", "code", a=1) == stage_key("x", "code", a=1) != stage_key("x", "code2", a=1)


def test_cli_pipeline_errors_before_starting(tmp_path, capsys):
    from flows.cli import main

    assert main(["pipeline", "--workspace", str(tmp_path / "ws")]) == 2
    assert "data.roots is empty" in capsys.readouterr().err
    assert main(["pipeline", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: config file not found" in capsys.readouterr().err
    assert main(["pipeline", "--set", "score.k=0", "--data-root", str(tmp_path)]) == 2
    assert "[score]: k must be >= 1, got 0" in capsys.readouterr().err
    assert main(["pipeline", "--data-root", str(tmp_path), "--print-config"]) == 0
    out = capsys.readouterr().out
    assert tomllib.loads(out)["data"]["roots"] == [str(tmp_path)] and not (tmp_path / "ws").exists()
