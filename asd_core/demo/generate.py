"""``asd make-demo-data``: a deterministic DCASE 2023-style tree plus a noise library.

Layout written under OUT::

    dev_data/raw/<machine>/train/section_<ss>_<source|target>_train_normal_<nnnn>_<attrs>.wav
    dev_data/raw/<machine>/test/section_<ss>_<domain>_test_<normal|anomaly>_<nnnn>_<attrs>.wav
    dev_data/raw/<machine>/attributes_<ss>.csv
    noise/<class>/<class>_<nnnn>.wav, noise/classes.csv, noise/.asdignore   (skipped by ingest)
    anomalies.csv       ground truth of every anomalous clip: kind and severity

Every clip draws from its own generator seeded by (seed, machine, section, split, domain,
label, index), so the output is identical for a seed whatever the order of work.
"""

from __future__ import annotations

import csv
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from asd_core.config import PIPELINE_SAMPLE_RATE
from asd_core.demo.machines import MACHINES, Anomaly, domain_background, section_params
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


SIZES: dict[str, DemoSize] = {
    "small": DemoSize(("fan", "valve", "slider"), 1, 40, 10, 10, 2.0, 4),
    "medium": DemoSize(("fan", "valve", "slider", "gearbox"), 1, 150, 10, 25, 5.0, 10),
    "dcase": DemoSize(("fan", "valve", "slider", "gearbox"), 1, 990, 10, 50, 10.0, 30),
}


@dataclass(frozen=True)
class _Job:
    path: Path
    seed: tuple[int, ...]
    machine: str
    section: int
    domain: str
    attrs: dict
    anomaly: Anomaly | None


def _key(*parts) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode())


def _attr_suffix(attrs: dict) -> str:
    return "_".join(f"{k}_{v}" for k, v in attrs.items())


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
                anomaly = None
                if label == "anomaly":
                    anomaly = Anomaly(model.anomaly_kinds[i % len(model.anomaly_kinds)], float(rng.uniform(0.15, 1.0)))
                name = f"section_{section:02d}_{domain}_{split}_{label}_{i:04d}_{_attr_suffix(attrs)}.wav"
                jobs.append(_Job(folder / split / name, seed_parts, machine, section, domain, attrs, anomaly))
    return jobs


def _render(job: _Job, size: DemoSize, seed: int) -> None:
    n = int(size.duration_s * SAMPLE_RATE)
    sec = section_params(np.random.default_rng((seed, _key(job.machine), job.section, 7)))
    rng = np.random.default_rng(job.seed + (1,))
    x = MACHINES[job.machine].render(rng, n, SAMPLE_RATE, sec, job.attrs, job.anomaly)
    x = x / (np.sqrt(np.mean(x * x)) + 1e-12) + domain_background(rng, n, job.domain)
    x = LEVEL_RMS * x / np.sqrt(np.mean(x * x))
    _write(job.path, x)


def _write(path: Path, x: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -0.999, 0.999).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")


def make_demo_data(out: Path, seed: int = 0, size: str | DemoSize = "small", workers: int = 2) -> dict:
    """Write the demo tree under ``out``; returns counts. Re-running with the same seed rewrites identical files."""
    spec = SIZES[size] if isinstance(size, str) else size
    out = Path(out)
    jobs = [job for m in spec.machines for job in _plan_machine(out, m, spec, seed)]
    progress = Progress("make-demo-data", len(jobs), "clips")

    def render(job: _Job) -> None:
        _render(job, spec, seed)
        progress.update()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(render, jobs))
    progress.close()
    _write_attribute_csvs(out, jobs)
    _write_anomaly_truth(out, jobs)
    noise_files = _write_noise_library(out / "noise", spec, seed)
    return {"clips": len(jobs), "machines": list(spec.machines), "noise_files": noise_files,
            "anomalous": sum(j.anomaly is not None for j in jobs)}


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
