"""Anonymised evaluation clips get label, domain and attributes from evaluator CSVs."""

import pytest

from asd_core.datasets.ground_truth import GroundTruthError, load_ground_truth
from asd_core.datasets.scan import scan_root


def test_eval_labels_domains_and_full_names(tmp_path):
    test = tmp_path / "eval_data/raw/ToyDrone/test"
    test.mkdir(parents=True)
    for i in range(3):
        (test / f"section_00_{i:04d}.wav").write_bytes(b"")
    gt = tmp_path / "gt"
    (gt / "ground_truth_data").mkdir(parents=True)
    (gt / "ground_truth_domain").mkdir()
    (gt / "ground_truth_attributes/ToyDrone").mkdir(parents=True)
    (gt / "ground_truth_data/ground_truth_ToyDrone_section_00_test.csv").write_text(
        "section_00_0000.wav,1\nsection_00_0001.wav,0\nsection_00_0002.wav,0\n")
    (gt / "ground_truth_domain/ground_truth_ToyDrone_section_00_test.csv").write_text(
        "section_00_0000.wav,0\nsection_00_0001.wav,1\nsection_00_0002.wav,0\n")
    (gt / "ground_truth_attributes/ToyDrone/attributes_00.csv").write_text(
        "file_name,full_name\nToyDrone/test/section_00_0002.wav,section_00_target_test_normal_0007_spd_3.wav\n")
    cands, bad = scan_root(tmp_path, "eval", load_ground_truth(gt))
    assert bad == []
    got = {c.relative_path.split("/")[-1]: (c.parsed.label, c.parsed.domain, c.parsed.attributes) for c in cands}
    assert got == {
        "section_00_0000.wav": ("anomaly", "source", {}),
        "section_00_0001.wav": ("normal", "target", {}),
        # the full name wins for domain and brings the attributes
        "section_00_0002.wav": ("normal", "target", {"spd": "3"}),
    }
    assert {c.parsed.scheme for c in cands} == {"dcase-eval"}


def test_bad_ground_truth_names_the_file(tmp_path):
    (tmp_path / "ground_truth_fan_section_00_test.csv").write_text("section_00_0000.wav,yes\n")
    with pytest.raises(GroundTruthError, match=r"ground_truth_fan_section_00_test.csv.*'yes'"):
        load_ground_truth(tmp_path)
    with pytest.raises(GroundTruthError, match="does not exist"):
        load_ground_truth(tmp_path / "missing")


def test_attribute_csv_beside_the_clips_is_merged(tmp_path):
    train = tmp_path / "dev_data/raw/3DPrinter/train"
    train.mkdir(parents=True)
    (train / "section_00_source_train_normal_0000_noAttribute.wav").write_bytes(b"")
    (train / "section_00_target_train_normal_0001_spd_5.wav").write_bytes(b"")
    (tmp_path / "dev_data/raw/3DPrinter/attributes_00.csv").write_text(
        "file_name,d1p,d1v,d2p,d2v\n"
        "3DPrinter/train/section_00_source_train_normal_0000_noAttribute.wav,speed,1.5e-2,mode,a-b\n"
        "3DPrinter/train/section_00_target_train_normal_0001_spd_5.wav,spd,6,load,50\n")
    cands, bad = scan_root(tmp_path, "d")
    assert bad == []
    got = {c.relative_path.rsplit("/", 1)[-1]: c.parsed.attributes for c in cands}
    assert got["section_00_source_train_normal_0000_noAttribute.wav"] == {"speed": "1.5e-2", "mode": "a-b"}
    # the file name wins over the CSV where both give a value
    assert got["section_00_target_train_normal_0001_spd_5.wav"] == {"spd": "5", "load": "50"}
