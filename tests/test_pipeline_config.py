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
    (["mix.snr_min=15"], "[mix]: SNR range must have snr_min <= snr_max, got (15.0, 10.0)"),  # MixConfig's own check
    (["mix.lam=1.5", "student.objective.lam=1.5"], "[mix]: lambda must be in [0, 1], got 1.5"),
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


# --- values of the wrong type are errors naming section.key, the value and the type (issue 18, part 6) ---

@pytest.mark.parametrize("override, message", [
    ('score.k="three"', 'score.k = "three": expected an integer, "auto" or a list of them'),
    ("score.k=2.5", "score.k = 2.5: expected an integer, \"auto\" or a list of them"),
    ("score.k=", 'score.k = "": expected an integer, "auto" or a list of them'),
    ("score.k=true", "score.k = true: expected an integer, \"auto\" or a list of them"),  # bool is an int subclass, not an int here
    ("score.r=true", "score.r = true: expected a number, \"auto\" or a list of them"),
    ("teacher.enabled=nope", 'teacher.enabled = "nope": expected true or false'),
    ("teacher.epochs=2.0", "teacher.epochs = 2.0: expected an integer"),
    ('teacher.model.channels=[16, "x"]', 'teacher.model.channels = [16, "x"]: expected a list of integers'),
    ("student.objective.tag_weight=heavy", 'student.objective.tag_weight = "heavy": expected a number'),
    ("student.layer=last", 'student.layer = "last": expected an integer or unset'),
    ("embed.encoders=teacher", 'embed.encoders = "teacher": expected a list of strings'),
    ("data.channel=false", "data.channel = false: expected an integer or a string"),
])
def test_wrong_types_name_key_value_and_type(override, message):
    with pytest.raises(PipelineConfigError) as exc:
        PipelineConfig().with_overrides([override])
    assert str(exc.value) == message


def test_right_types_pass_and_ints_widen_to_floats():
    cfg = PipelineConfig().with_overrides(["score.r=1", "teacher.speed_factors=[1, 0.9]", "data.channel=1",
                                           "student.layer=3", "teacher.clip_seconds=2"])
    assert cfg.score.r == 1.0 and isinstance(cfg.score.r, float)
    assert cfg.teacher.train.speed_factors == (1.0, 0.9) and cfg.teacher.train.clip_seconds == 2.0
    assert cfg.data.ingest.audio.channel == 1 and cfg.student.train.layer == 3


@pytest.mark.parametrize("body, message", [
    ('[score]\nk = "three"\n', 'score.k = "three": expected an integer, "auto" or a list of them'),
    ("[score]\nk = 2.5\n", "score.k = 2.5: expected an integer, \"auto\" or a list of them"),
    ("[score]\nk = true\n", "score.k = true: expected an integer, \"auto\" or a list of them"),
    ("workspace = 5\n", "workspace = 5: expected a string"),
    ("[teacher.model]\nn_mels = 6.4\n", "teacher.model.n_mels = 6.4: expected an integer"),
])
def test_wrong_types_in_a_file_name_the_file(tmp_path, body, message):
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(PipelineConfigError) as exc:
        load_config(path)
    assert str(exc.value) == f"{path}: {message}"


def test_cli_type_errors_come_before_any_flow(tmp_path, monkeypatch, capsys):
    import flows.pipeline
    from flows.cli import main

    def started(**_):
        raise AssertionError("pipeline_flow started")

    monkeypatch.setattr(flows.pipeline, "pipeline_flow", started)
    bad = tmp_path / "bad.toml"
    bad.write_text("[score]\nk = true\n")
    for argv, message in ((["--set", "score.k=three"], 'score.k = "three": expected an integer, "auto" or a list of them'),
                          (["--set", "score.k="], 'score.k = "": expected an integer, "auto" or a list of them'),
                          (["--config", str(bad)], f"{bad}: score.k = true: expected an integer, \"auto\" or a list of them")):
        assert main(["pipeline", "--data-root", str(tmp_path), *argv]) == 2
        assert capsys.readouterr().err.strip() == f"error: {message}"
    ws = tmp_path / "demo-ws"
    assert main(["demo", "--workspace", str(ws), "--set", "teacher.epochs=2.5"]) == 2
    assert capsys.readouterr().err.strip() == "error: teacher.epochs = 2.5: expected an integer"
    assert not ws.exists()  # refused before the demo data was written
    afile = tmp_path / "ws-file"
    afile.write_text("")
    assert main(["pipeline", "--data-root", str(tmp_path), "--workspace", str(afile)]) == 2
    assert capsys.readouterr().err.strip() == f"error: --workspace {afile} is a file, not a folder"
    assert main(["pipeline", "--data-root", str(tmp_path), "--set", f'workspace="{afile}"']) == 2
    assert capsys.readouterr().err.strip() == f"error: workspace {afile} is a file, not a folder"


def test_mix_stage_composes_mix_config_and_the_cli_offers_its_fields():
    """[mix] keys and `asd mix` options are MixConfig's fields (declared once, issue 14 part 3)."""
    from asd_core.mixing.config import MixConfig
    from flows.cli import build_parser

    cfg = PipelineConfig().with_overrides(["mix.seed=7", "mix.snr_max=4.5"])
    assert cfg.mix.params == MixConfig(seed=7, snr_max=4.5)
    assert {k: cfg.to_dict()["mix"][k] for k in ("seed", "snr_min", "snr_max", "mixtures_per_clip", "lam")} == \
        {"seed": 7, "snr_min": -10.0, "snr_max": 4.5, "mixtures_per_clip": 1, "lam": 0.5}
    args = build_parser().parse_args(["mix", "--seed", "3", "--snr-min", "-5", "--no-supplemental"])
    from flows.cli.options import given
    from asd_core.mixing.config import NoiseLibraryConfig

    assert given(args, MixConfig) == {"seed": 3, "snr_min": -5.0}
    assert given(args, NoiseLibraryConfig) == {"supplemental": False}


def test_mix_noise_from_channel_is_a_checked_key():
    from asd_core.pipeline.config import PipelineConfig

    assert PipelineConfig.from_dict({}).mix.noise_from_channel == ""
    assert PipelineConfig.from_dict({"mix": {"noise_from_channel": "far"}}).mix.noise_from_channel == "far"
    with pytest.raises(ValueError, match="noise_from_channel must be far"):
        PipelineConfig.from_dict({"mix": {"noise_from_channel": "near"}})
