"""What a run report shows, read from the catalogue and the stored embeddings.

"Before normalization" is the plain k-NN distance (methods.md section 1, s(x) = d_k(x)) of
the same encoder, metric and K, recomputed from the embeddings, with its own threshold at
the run's quantile: the pair of pictures shows why one threshold serves both domains only
after normalization.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from asd_core.config import Workspace
from asd_core.evaluation import evaluation_tables
from asd_core.scoring.detector import make_detector
from asd_core.scoring.run import load_sections, scoring_config
from asd_core.storage.catalog import connect, query_rows


@dataclass
class SectionScores:
    dataset: str
    machine_type: str
    section: str
    domains: np.ndarray  # per test clip: source | target
    labels: np.ndarray  # 1 = anomaly
    scores: np.ndarray  # the run's (normalized) scores
    threshold: float
    raw_scores: np.ndarray | None = None  # plain k-NN distance; None when the run is unnormalized
    raw_threshold: float | None = None

    @property
    def name(self) -> str:
        return f"{self.dataset}/{self.machine_type}/section_{self.section}"


@dataclass
class ReportInputs:
    run: dict
    sections: list[SectionScores]
    section_metrics: list[dict] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)


def report_inputs(ws: Workspace, run_id: str) -> ReportInputs:
    """Clean test clips of every section of ``run_id`` with their scores (and raw distances)."""
    tables = evaluation_tables(ws, run_id)
    run = tables.run
    with connect(ws, read_only=True) as con:
        rows = query_rows(con, """
            SELECT sc.clip_id, sc.dataset, sc.machine_type, sc.section, sc.domain, sc.label, sc.score, t.threshold
            FROM scored_clips sc JOIN thresholds t
              ON t.run_id = sc.run_id AND t.dataset = sc.dataset AND t.machine_type = sc.machine_type AND t.section = sc.section
            WHERE sc.run_id = ? AND sc.noise_subset = 'clean' ORDER BY sc.dataset, sc.machine_type, sc.section, sc.clip_id""",
                          [tables.run_id])
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["machine_type"], r["section"]), []).append(r)
    cfg = scoring_config(run)
    raw = _raw_scores(ws, run, cfg, groups) if cfg.normalization != "none" else {}
    sections = []
    for (ds, mt, sec), items in sorted(groups.items()):
        ids = [it["clip_id"] for it in items]
        raw_sec = raw.get((ds, mt, sec))
        sections.append(SectionScores(
            ds, mt, sec, np.array([it["domain"] for it in items]), np.array([it["label"] == "anomaly" for it in items], int),
            np.array([it["score"] for it in items], float), float(items[0]["threshold"]),
            None if raw_sec is None else np.array([raw_sec[0][i] for i in ids]), None if raw_sec is None else raw_sec[1]))
    return ReportInputs(run, sections, tables.sections, tables.summary)


def _raw_scores(ws: Workspace, run: dict, cfg, groups) -> dict:
    """(dataset, machine type, section) -> ({clip_id: k-NN distance}, threshold at the run's quantile)."""
    plain = replace(cfg, normalization="none")
    out = {}
    for mt in sorted({k[1] for k in groups}):
        for sec in load_sections(ws, run["encoder"], run["encoder_version"], mt):
            key = (sec.dataset, sec.machine_type, sec.section)
            if key not in groups or not sec.ref_ids:
                continue
            det = make_detector(plain).fit(sec.refs, np.asarray(sec.ref_domains, dtype=object), ids=sec.ref_ids)
            scores = det.score(sec.tests, ids=sec.test_ids)
            out[key] = (dict(zip(sec.test_ids, scores.tolist())), det.threshold_)
    return out
