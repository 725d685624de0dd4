"""``asd make-demo-data``: a deterministic DCASE 2023-style tree plus a noise library.

Layout written under OUT::

    dev_data/raw/<machine>/train/section_<ss>_<source|target>_train_normal_<nnnn>_<attrs>.wav
    dev_data/raw/<machine>/test/section_<ss>_<domain>_test_<normal|anomaly>_<nnnn>_<attrs>.wav
    dev_data/raw/<machine>/attributes_<ss>.csv
    noise/<class>/<class>_<nnnn>.wav, noise/classes.csv, noise/.asdignore   (skipped by ingest)
    anomalies.csv       ground truth of every anomalous clip: kind and severity

With ``held_out=True`` (``--held-out-domain``) also, outside ``dev_data`` (and skipped by
``asd ingest OUT``: ``held_out/.asdignore``), a third operating condition per machine type and
section that no training set contains (other attribute values, other background)::

    held_out/test/<machine>/section_<ss>/{normal,anomaly}_<nnnn>.wav    for asd monitor
    held_out/enroll/<machine>/section_<ss>/enroll_<nnnn>.wav             normal clips for asd enroll
    held_out/labels.csv   path (relative to held_out/), split, machine_type, section, label, kind,
                          severity, attributes of every held-out clip

Without it the output is byte-identical to what it was before the option existed.

With ``channels=2`` (``--channels 2``, DCASE 2026-style) every clip above (not the noise library,
which stays mono) is a two-channel file: channel 0 the near microphone, sample for sample the
one-channel clip; channel 1 the far microphone (``asd_core.demo.microphones``: the machine 10-20 dB
weaker and 2-15 ms later, the site's noise stronger and correlated with channel 0's). Also::

    microphones.csv     path (relative to OUT), far_gain_db, far_delay_ms, far_noise_gain_db of every clip

With ``channels=1`` (the default) the output is byte-identical to what it was before the option existed.

Every clip draws from its own generator seeded by (seed, machine, section, split, domain,
label, index), so the output is identical for a seed whatever the order of work.
"""

from __future__ import annotations

import csv
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from asd_core.config import PIPELINE_SAMPLE_RATE
from asd_core.demo.machines import MACHINES, Anomaly, MachineModel, domain_background, section_params
from asd_core.demo.microphones import FarMicrophone, MicPair, two_microphones
from asd_core.demo.nuisance import nuisance
from asd_core.demo.noise import NOISE_CLASSES, render_noise
from asd_core.progress import Progress

logger = logging.getLogger("asd.demo")
SAMPLE_RATE = PIPELINE_SAMPLE_RATE
LEVEL_RMS = 0.08  # clip level; peaks stay well below full scale


@dataclass(frozen=True)
class DemoSize:
    machines: tuple[str, ...]
    sections: int
    source_train: int
    target_train: int
    test_per_cell: int  # per (domain, label) cell
    duration_s: float
    noise_per_class: int
    held_out_test: int = 30  # held-out domain: normal and anomalous test clips each, per section
    held_out_enroll: int = 10  # held-out domain: normal enrollment clips per section
    # ``difficulty="hard"``: per-clip site nuisance (asd_core.demo.nuisance) and the hard anomaly
    # kinds (machines.HARD_DROPPED)
    nuisance: bool = False


SIZES: dict[str, DemoSize] = {
    "small": DemoSize(("fan", "valve", "slider"), 1, 40, 10, 10, 2.0, 4, 30),
    "medium": DemoSize(("fan", "valve", "slider", "gearbox"), 1, 150, 10, 25, 5.0, 10, 40),
    "dcase": DemoSize(("fan", "valve", "slider", "gearbox"), 1, 990, 10, 50, 10.0, 30, 50),
}
DIFFICULTIES = ("standard", "hard")
HARD_SECTIONS = 3
HELD_OUT = "held_out"  # the domain name of the held-out operating condition, and its folder under OUT


@dataclass(frozen=True)
class _Job:
    path: Path
    seed: tuple[int, ...]
    machine: str
    section: int
    domain: str
    attrs: dict
    anomaly: Anomaly | None
    split: str = ""


def _key(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _attr_suffix(attrs: dict) -> str:
    return "_".join(f"{k}_{v}" for k, v in attrs.items())


def _anomaly(model: MachineModel, size: DemoSize, i: int, rng: np.random.Generator) -> Anomaly:
    """The i-th anomalous clip's kind (the kinds in turn) and severity, uniform in [0.15, 1]."""
    kinds = model.kinds(hard=size.nuisance)
    return Anomaly(kinds[i % len(kinds)], float(rng.uniform(0.15, 1.0)))


def _plan_machine(out: Path, machine: str, size: DemoSize, seed: int) -> list[_Job]:
    model = MACHINES[machine]
    jobs: list[_Job] = []
    for section in range(size.sections):
        folder = out / "dev_data" / "raw" / machine
        cells = [("train", "source", "normal", size.source_train), ("train", "target", "normal", size.target_train)]
        for domain in ("source", "target"):
            for label in ("normal", "anomaly"):
                cells.append(("test", domain, label, size.test_per_cell))
        for split, domain, label, count in cells:
            attr_sets = model.source_attributes if domain == "source" else model.target_attributes
            for i in range(count):
                seed_parts = (seed, _key(machine), section, _key(split, domain, label), i)
                rng = np.random.default_rng(seed_parts)
                attrs = attr_sets[int(rng.integers(len(attr_sets)))]
                anomaly = _anomaly(model, size, i, rng) if label == "anomaly" else None
                name = f"section_{section:02d}_{domain}_{split}_{label}_{i:04d}_{_attr_suffix(attrs)}.wav"
                jobs.append(_Job(folder / split / name, seed_parts, machine, section, domain, attrs, anomaly))
    return jobs


def _plan_held_out(out: Path, machine: str, size: DemoSize, seed: int, enroll: int) -> list[_Job]:
    """The held-out domain of one machine type: test normals and anomalies, and enrollment normals.

    Seeds carry the key of ("held_out", split, label), which no dev_data cell uses, so these clips
    neither change nor repeat any dev_data clip.
    """
    model = MACHINES[machine]
    if not model.held_out_attributes:
        raise ValueError(f"machine {machine!r} defines no held-out attributes")
    jobs: list[_Job] = []
    for section in range(size.sections):
        cells = [("test", "normal", size.held_out_test), ("test", "anomaly", size.held_out_test),
                 ("enroll", "normal", enroll)]
        for split, label, count in cells:
            folder = out / HELD_OUT / split / machine / f"section_{section:02d}"
            for i in range(count):
                seed_parts = (seed, _key(machine), section, _key(HELD_OUT, split, label), i)
                rng = np.random.default_rng(seed_parts)
                attrs = model.held_out_attributes[int(rng.integers(len(model.held_out_attributes)))]
                anomaly = _anomaly(model, size, i, rng) if label == "anomaly" else None
                name = f"{'enroll' if split == 'enroll' else label}_{i:04d}.wav"
                jobs.append(_Job(folder / name, seed_parts, machine, section, HELD_OUT, attrs, anomaly, split))
    return jobs


@dataclass(frozen=True)
class _Clip:
    """One rendered clip: its samples (n, or n x 2 with channels=2) and, with two channels, the
    unscaled parts of both microphones and the factor that scaled them to ``audio``."""

    audio: np.ndarray
    pair: MicPair | None = None
    scale: float = 1.0


def _render_clip(job: _Job, size: DemoSize, seed: int, channels: int = 1) -> _Clip:
    n = int(size.duration_s * SAMPLE_RATE)
    sec = section_params(np.random.default_rng((seed, _key(job.machine), job.section, 7)))
    rng = np.random.default_rng(job.seed + (1,))
    x = MACHINES[job.machine].render(rng, n, SAMPLE_RATE, sec, job.attrs, job.anomaly)
    machine = x / (np.sqrt(np.mean(x * x)) + 1e-12)
    background = domain_background(rng, n, job.domain)
    if size.nuisance:  # its own generator: the machine sound stays the standard data's
        background = nuisance(np.random.default_rng(job.seed + (3,)), background, SAMPLE_RATE)
    x = machine + background
    level = np.sqrt(np.mean(x * x))
    near = LEVEL_RMS * x / level  # the one-channel clip, unchanged since before two channels existed
    if channels == 1:
        return _Clip(near)
    # the far microphone draws from a generator of its own, so channel 0 stays the one-channel clip
    pair = two_microphones(np.random.default_rng(job.seed + (2,)), machine, background, job.domain, SAMPLE_RATE)
    return _Clip(np.stack([near, LEVEL_RMS * pair.far_mix / level], axis=1), pair, LEVEL_RMS / level)


def _render(job: _Job, size: DemoSize, seed: int, channels: int = 1) -> FarMicrophone | None:
    """Render and write one clip; returns its far-microphone placement (None with one channel)."""
    clip = _render_clip(job, size, seed, channels)
    _write(job.path, clip.audio)
    return clip.pair.far if clip.pair else None


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -0.999, 0.999).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def make_demo_data(out: Path, seed: int = 0, size: str | DemoSize = "small", workers: int = 2,
                   held_out: bool = False, held_out_enroll: int | None = None, channels: int = 1,
                   difficulty: str = "standard") -> dict:
    """Write the demo tree under ``out``; returns counts. Re-running with the same seed rewrites identical files.

    ``held_out``: also write the held-out domain under ``out/held_out`` (module docstring);
    ``held_out_enroll``: its enrollment clips per section (default: the size's, 10);
    ``channels``: 1 (mono, DCASE 2023-style) or 2 (DCASE 2026-style near and far microphones,
    ``asd_core.demo.microphones``; each clip's far-microphone placement in ``out/microphones.csv``);
    ``difficulty``: ``standard`` or ``hard`` (at least three sections per machine type and per-clip
    site nuisance, ``asd_core.demo.nuisance``; only anomalies a spectral mean cannot see,
    ``machines.HARD_DROPPED``; the machine sound of every normal clip stays the standard data's).
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")
    spec = SIZES[size] if isinstance(size, str) else size
    if difficulty == "hard":
        spec = replace(spec, sections=max(spec.sections, HARD_SECTIONS), nuisance=True)
    out = Path(out)
    jobs = [job for m in spec.machines for job in _plan_machine(out, m, spec, seed)]
    held: list[_Job] = []
    if held_out:
        enroll = spec.held_out_enroll if held_out_enroll is None else int(held_out_enroll)
        if enroll < 0:
            raise ValueError(f"held_out_enroll must be >= 0, got {enroll}")
        held = [job for m in spec.machines for job in _plan_held_out(out, m, spec, seed, enroll)]
    progress = Progress("make-demo-data", len(jobs) + len(held), "clips")

    def render(job: _Job) -> FarMicrophone | None:
        far = _render(job, spec, seed, channels)
        progress.update()
        return far

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        placements = list(pool.map(render, jobs + held))
    progress.close()
    _write_attribute_csvs(out, jobs)
    _write_anomaly_truth(out, jobs)
    noise_files = _write_noise_library(out / "noise", spec, seed)
    counts = {"clips": len(jobs), "machines": list(spec.machines), "noise_files": noise_files,
              "anomalous": sum(j.anomaly is not None for j in jobs)}
    if channels == 2:
        counts["microphones"] = str(_write_microphones(out, jobs + held, placements))
    if held_out:
        _write_held_out_labels(out / HELD_OUT, held)
        counts["held_out"] = {
            "folder": str(out / HELD_OUT),
            "test_normal": sum(j.split == "test" and j.anomaly is None for j in held),
            "test_anomaly": sum(j.anomaly is not None for j in held),
            "enroll": sum(j.split == "enroll" for j in held),
            "attributes": {m: [_attr_suffix(a) for a in MACHINES[m].held_out_attributes] for m in spec.machines},
        }
    return counts


def _write_microphones(out: Path, jobs: list[_Job], placements: list[FarMicrophone | None]) -> Path:
    """``microphones.csv``: every two-channel clip's far-microphone placement (path relative to OUT)."""
    path = out / "microphones.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "far_gain_db", "far_delay_ms", "far_noise_gain_db"])
        for job, far in zip(jobs, placements):
            w.writerow([job.path.relative_to(out).as_posix(), f"{far.gain_db:.3f}", f"{far.delay_ms:.4f}",
                        f"{far.noise_gain_db:.3f}"])
    return path


def _write_held_out_labels(folder: Path, jobs: list[_Job]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".asdignore").write_text("Held-out domain (asd monitor / asd enroll input); not part of any training set, "
                                       "so `asd ingest` skips it.\n")
    with open(folder / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "split", "machine_type", "section", "label", "kind", "severity", "attributes"])
        for job in jobs:
            w.writerow([job.path.relative_to(folder).as_posix(), job.split, job.machine, f"{job.section:02d}",
                        "anomaly" if job.anomaly else "normal", job.anomaly.kind if job.anomaly else "",
                        f"{job.anomaly.severity:.3f}" if job.anomaly else "", _attr_suffix(job.attrs)])


def _write_attribute_csvs(out: Path, jobs: list[_Job]) -> None:
    by_file: dict[Path, list[list[str]]] = {}
    for job in jobs:
        csv_path = job.path.parents[1] / f"attributes_{job.section:02d}.csv"
        row = [f"{job.machine}/{job.path.parent.name}/{job.path.name}"]
        for i, (k, v) in enumerate(job.attrs.items(), start=1):
            row += [k, v]
        by_file.setdefault(csv_path, []).append(row)
    for csv_path, rows in by_file.items():
        width = max(len(r) for r in rows)
        header = ["file_name"] + [f"d{i}{kind}" for i in range(1, (width - 1) // 2 + 1) for kind in ("p", "v")]
        with open(csv_path, "w", newline="") as fh:
            csv.writer(fh).writerows([header] + rows)


def _write_anomaly_truth(out: Path, jobs: list[_Job]) -> None:
    with open(out / "anomalies.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["relative_path", "kind", "severity"])
        for job in jobs:
            if job.anomaly:
                w.writerow([job.path.relative_to(out).as_posix(), job.anomaly.kind, f"{job.anomaly.severity:.3f}"])


def _write_noise_library(folder: Path, spec: DemoSize, seed: int) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ".asdignore").write_text("Noise library for `asd mix`; not machine clips, so `asd ingest` skips it.\n")
    n = int(spec.duration_s * SAMPLE_RATE)
    with open(folder / "classes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["class", "kind"])
        for name, (kind, _) in NOISE_CLASSES.items():
            w.writerow([name, kind])
    count = 0
    for name in NOISE_CLASSES:
        for i in range(spec.noise_per_class):
            x = render_noise(np.random.default_rng((seed, _key("noise", name), i)), name, n, SAMPLE_RATE)
            _write(folder / name / f"{name}_{i:04d}.wav", x)
            count += 1
    return count
