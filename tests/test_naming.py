"""File-name parsing for every DCASE Task 2 year and MIMII (real file names)."""

import pytest

from asd_core.datasets.naming import NamingError, parse_attributes, parse_clip_path


@pytest.mark.parametrize(
    "path, expected",
    [
        # DCASE 2020 dev (MIMII / ToyADMOS ids)
        ("fan/train/normal_id_00_00000000.wav", ("dcase2020", "fan", "00", "train", None, "normal", {})),
        ("ToyCar/test/anomaly_id_04_00000123.wav", ("dcase2020", "ToyCar", "04", "test", None, "anomaly", {})),
        # DCASE 2020 eval test (anonymised)
        ("pump/test/id_01_00000003.wav", ("dcase2020", "pump", "01", "test", None, None, {})),
        # 2021-2022 (no attributes / machine-condition attributes)
        ("gearbox/train/section_02_target_train_normal_0003.wav",
         ("dcase2021+", "gearbox", "02", "train", "target", "normal", {})),
        # DCASE 2023 dev, with raw/ level, values with dots and dashes
        ("raw/gearbox/test/section_00_source_test_normal_0026_volt_1.5_wt_150.wav",
         ("dcase2021+", "gearbox", "00", "test", "source", "normal", {"volt": "1.5", "wt": "150"})),
        ("raw/fan/test/section_00_source_test_anomaly_0022_m-n_W.wav",
         ("dcase2021+", "fan", "00", "test", "source", "anomaly", {"m-n": "W"})),
        ("raw/ToyCar/train/section_00_source_train_normal_0362_car_C2_spd_31V_mic_1.wav",
         ("dcase2021+", "ToyCar", "00", "train", "source", "normal", {"car": "C2", "spd": "31V", "mic": "1"})),
        ("raw/slider/test/section_00_target_test_normal_0013_vel_620_ac_0.08.wav",
         ("dcase2021+", "slider", "00", "test", "target", "normal", {"vel": "620", "ac": "0.08"})),
        # 2024/2025: machines without attributes
        ("3DPrinter/train/section_00_source_train_normal_0765_noAttribute.wav",
         ("dcase2021+", "3DPrinter", "00", "train", "source", "normal", {})),
        # 2023+ evaluation test (anonymised: label/domain from ground truth)
        ("eval_data/raw/ToyDrone/test/section_00_0000.wav", ("dcase-eval", "ToyDrone", "00", "test", None, None, {})),
        # 2025 supplemental: noise-only and clean machine recordings
        ("fan/supplemental/section_00_noise_supplemental_normal_0000.wav",
         ("dcase2021+", "fan", "00", "supplemental", None, None, {"supplemental_kind": "noise"})),
        ("fan/supplemental/section_00_source_supplemental_machine_0003.wav",
         ("dcase2021+", "fan", "00", "supplemental", "source", "normal", {"supplemental_kind": "machine"})),
        # MIMII, flattened names and the original tree
        ("valve_id06_abn_00000008.wav", ("mimii", "valve", "06", "test", None, "anomaly", {})),
        ("valve_id00_n_00000117_quiet.wav", ("mimii", "valve", "00", "train", None, "normal", {"quiet": ""})),
        ("6_dB_pump/pump/id_02/normal/00000042.wav", ("mimii", "pump", "02", "train", None, "normal", {})),
    ],
)
def test_parse_real_names(path, expected):
    p = parse_clip_path(path)
    assert (p.scheme, p.machine_type, p.section, p.split, p.domain, p.label, p.attributes) == expected


@pytest.mark.parametrize(
    "path, message",
    [
        ("fan/train/recording_01.wav", "matches no DCASE"),
        ("section_00_source_train_normal_0000.wav", "outside a <machine>"),
        ("fan/test/section_00_source_train_normal_0000.wav", "name says split 'train'"),
        ("fan/train/normal_id_00_00000000.mp3", "not a .wav"),
        ("fan/misc/section_00_0001.wav", "outside a <machine>"),
    ],
)
def test_unknown_names_are_reported_not_guessed(path, message):
    with pytest.raises(NamingError, match=message):
        parse_clip_path(path)


def test_attribute_pairs_keep_dots_dashes_and_odd_tokens():
    assert parse_attributes("volt_1.5_wt_150") == {"volt": "1.5", "wt": "150"}
    assert parse_attributes("m-n_W_x_-1.5e-3") == {"m-n": "W", "x": "-1.5e-3"}
    assert parse_attributes("noAttributes") == {}
    assert parse_attributes("a_1_lonely") == {"a": "1", "lonely": ""}
