"""``asd make-demo-data --held-out-domain`` (issue 16 part 4): a third operating condition per
machine type and section, outside dev_data, in the layouts ``asd monitor`` and ``asd enroll`` read;
deterministic; never in any training set; and the plain output is unchanged by it."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest

from asd_core.demo import DemoSize, make_demo_data
from asd_core.demo.machines import MACHINES

# every machine type, few clips, clips long enough for every machine's events
TINY = DemoSize(("fan", "valve", "slider", "gearbox"), 1, 3, 2, 2, 2.0, 1, 4, 3)


def _hashes(root: Path, skip: str | None = None) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and (skip is None or p.relative_to(root).parts[0] != skip)}


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("held_out")
    out = {}
    for name, held in (("a", True), ("b", True), ("plain", False)):
        out[name] = root / name
        make_demo_data(out[name], seed=5, size=TINY, held_out=held)
    return out


def _labels(tree: Path) -> list[dict]:
    with open(tree / "held_out" / "labels.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_layout_and_labels(trees):
    held = trees["a"] / "held_out"
    assert (held / ".asdignore").exists()  # `asd ingest OUT` skips it
    rows = _labels(trees["a"])
    assert set(rows[0]) == {"path", "split", "machine_type", "section", "label", "kind", "severity", "attributes"}
    for machine in TINY.machines:
        test = held / "test" / machine / "section_00"
        assert sorted(p.name for p in test.iterdir()) == \
            [f"anomaly_{i:04d}.wav" for i in range(4)] + [f"normal_{i:04d}.wav" for i in range(4)]
        enroll = held / "enroll" / machine / "section_00"
        assert sorted(p.name for p in enroll.iterdir()) == [f"enroll_{i:04d}.wav" for i in range(3)]
        mine = [r for r in rows if r["machine_type"] == machine]
        assert len(mine) == 4 + 4 + 3
        for r in mine:
            assert (held / r["path"]).is_file() and r["section"] == "00"
            anomalous = r["label"] == "anomaly"
            assert anomalous == r["path"].split("/")[-1].startswith("anomaly_")
            assert (r["split"] == "enroll") == r["path"].startswith("enroll/")
            if anomalous:
                assert r["kind"] in MACHINES[machine].anomaly_kinds and 0.15 <= float(r["severity"]) <= 1.0
            else:
                assert r["kind"] == "" and r["severity"] == ""
    # every file under held_out/ (but the marker and the labels) is a labelled clip
    assert {p.relative_to(held).as_posix() for p in held.rglob("*.wav")} == {r["path"] for r in rows}


def test_layout_is_what_monitor_and_ingest_expect(trees):
    from asd_core.datasets.scan import scan_root
    from asd_core.monitor.discover import discover_folder

    candidates, problems = discover_folder(trees["a"] / "held_out" / "test")
    assert not problems
    assert {(c.machine_type, c.section) for c in candidates} == {(m, "00") for m in TINY.machines}
    assert len(candidates) == len(TINY.machines) * 8
    # ingest of the whole OUT tree sees exactly the dev_data clips, none of the held-out domain
    with_held, _ = scan_root(trees["a"], "demo")
    plain, _ = scan_root(trees["plain"], "demo")
    assert sorted(c.relative_path for c in with_held) == sorted(c.relative_path for c in plain)
    assert not any(c.relative_path.startswith("held_out/") for c in with_held)


def test_deterministic_per_seed(trees, tmp_path):
    assert _hashes(trees["a"]) == _hashes(trees["b"])
    other = tmp_path / "other-seed"
    make_demo_data(other, seed=6, size=TINY, held_out=True)
    a, o = _hashes(trees["a"] / "held_out"), _hashes(other / "held_out")
    assert a.keys() == o.keys()
    assert a["test/fan/section_00/normal_0000.wav"] != o["test/fan/section_00/normal_0000.wav"]


def test_held_out_operating_condition_is_in_no_training_set(trees):
    rows = _labels(trees["a"])
    for machine in TINY.machines:
        # attributes of every dev_data clip of this machine, as the attribute CSV records them
        with open(trees["a"] / "dev_data" / "raw" / machine / "attributes_00.csv", newline="") as fh:
            dev = list(csv.reader(fh))[1:]
        train = {"_".join(r[1:]) for r in dev if "/train/" in r[0]}
        seen = {"_".join(r[1:]) for r in dev}
        assert train and seen
        held = {r["attributes"] for r in rows if r["machine_type"] == machine}
        assert held and not held & seen, (machine, held, seen)
        # and the held-out file names carry no source/target attribute either
        model = MACHINES[machine]
        declared = {"_".join(f"{k}_{v}" for k, v in a.items()) for a in model.source_attributes + model.target_attributes}
        assert not held & declared


def test_plain_output_is_unchanged_by_the_option(trees):
    """dev_data, anomalies.csv and the noise library are the same files with and without the flag."""
    plain = _hashes(trees["plain"])
    assert not (trees["plain"] / "held_out").exists()
    assert _hashes(trees["a"], skip="held_out") == plain
    assert any(k.startswith("dev_data/raw/fan/train/") for k in plain) and "anomalies.csv" in plain


def test_held_out_clips_differ_from_every_dev_clip(trees):
    dev = set(_hashes(trees["a"], skip="held_out").values())
    assert not dev & set(_hashes(trees["a"] / "held_out").values())


def test_cli_option(tmp_path, capsys):
    from flows.cli import main

    out = tmp_path / "demo"
    assert main(["make-demo-data", str(out), "--seed", "1", "--held-out-domain", "--held-out-enroll", "2"]) == 0
    said = capsys.readouterr().out
    assert "held-out domain" in said and "labels.csv" in said
    assert sorted(p.name for p in (out / "held_out" / "enroll" / "valve" / "section_00").iterdir()) == \
        ["enroll_0000.wav", "enroll_0001.wav"]
    assert len(list((out / "held_out" / "test" / "fan" / "section_00").glob("normal_*.wav"))) == 30
    assert main(["make-demo-data", str(tmp_path / "x"), "--held-out-enroll", "2"]) != 0
    assert not (tmp_path / "x").exists()
