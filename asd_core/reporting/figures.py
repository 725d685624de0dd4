"""Report figures (matplotlib, headless): score histograms per domain and label, ROC per domain."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asd_core.reporting.data import SectionScores
from asd_core.tracking.plots import plt

CELLS = (("source", 0, "source normal", "#1f77b4"), ("source", 1, "source anomaly", "#d62728"),
         ("target", 0, "target normal", "#17becf"), ("target", 1, "target anomaly", "#ff9896"))


def roc_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of every distinct threshold, tied scores as one step (anomaly = higher score)."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[distinct]
    fp = np.cumsum(1 - y)[distinct]
    pos, neg = max(y.sum(), 1), max((1 - y).sum(), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


@dataclass(frozen=True)
class HistScale:
    """An x axis for a histogram: matplotlib scale name, bin edges, and symlog's linear range."""

    name: str  # linear | log | symlog
    bins: np.ndarray
    linthresh: float | None = None


DECADES = 2.0  # positive scores spanning more than this many decades get a log axis


def hist_scale(values: np.ndarray, n_bins: int = 30) -> HistScale:
    """Log bins when the positive scores span more than two decades (symlog when zeros are among
    them, so they stay visible); linear when the scores are negative somewhere, flat or narrow."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return HistScale("linear", np.linspace(0.0, 1.0, n_bins + 1))
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        return HistScale("linear", np.linspace(lo - 0.5, hi + 0.5, n_bins + 1))
    pos = v[v > 0]
    if lo < 0 or pos.size < 2 or np.log10(pos.max() / pos.min()) <= DECADES:
        return HistScale("linear", np.linspace(lo, hi, n_bins + 1))
    if lo > 0:
        return HistScale("log", np.geomspace(lo, hi, n_bins + 1))
    linthresh = float(pos.min())  # zeros: one linear bin [0, smallest positive), log bins above it
    return HistScale("symlog", np.r_[0.0, np.geomspace(linthresh, hi, n_bins)], linthresh)


def histograms_png(sec: SectionScores, path: Path) -> Path:
    """Scores by domain and label, before (plain k-NN distance) and after normalization, with
    the one section threshold each side uses."""
    fig = histograms_figure(sec)
    fig.savefig(path)
    plt.close(fig)
    return path


def histograms_figure(sec: SectionScores):
    """The figure of ``histograms_png``; each panel's x axis as ``hist_scale`` chooses for its scores."""
    panels = [("after: " + ("normalized score" if sec.raw_scores is not None else "score"), sec.scores, sec.threshold)]
    if sec.raw_scores is not None:
        panels.insert(0, ("before: k-NN distance", sec.raw_scores, sec.raw_threshold))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), dpi=100, squeeze=False)
    for ax, (title, values, thr) in zip(axes[0], panels):
        scale = hist_scale(values if thr is None else np.r_[values, thr])  # the threshold stays on the axis
        for domain, label, name, color in CELLS:
            sel = (sec.domains == domain) & (sec.labels == label) & np.isfinite(values)
            if sel.any():
                ax.hist(values[sel], bins=scale.bins, alpha=0.55, color=color, label=f"{name} ({sel.sum()})",
                        histtype="stepfilled" if label == 0 else "step", linewidth=1.5)
        if thr is not None:
            ax.axvline(thr, color="black", linestyle="--", linewidth=1, label="threshold")
        if scale.name == "symlog":
            ax.set_xscale("symlog", linthresh=scale.linthresh)
            ax.set_xlim(0, scale.bins[-1] * 1.3)  # no negative half: the scores are >= 0
        elif scale.name == "log":
            ax.set_xscale("log")
        ax.set_title(title if scale.name == "linear" else f"{title} ({scale.name} scale)", fontsize=10)
        ax.set_xlabel("anomaly score")
        ax.set_ylabel("clips")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(sec.name, fontsize=10)
    fig.tight_layout()
    return fig


def roc_png(sec: SectionScores, path: Path) -> Path:
    """ROC per domain: each domain's normal clips against all anomalous clips of the section
    (the AUC_source / AUC_target convention of methods.md section 6)."""
    fig, ax = plt.subplots(figsize=(3.8, 3.6), dpi=100)
    anomalies = sec.labels == 1
    for domain, color in (("source", "#1f77b4"), ("target", "#ff7f0e")):
        sel = anomalies | ((sec.domains == domain) & (sec.labels == 0))
        if (sel & ~anomalies).any() and anomalies.any():
            fpr, tpr = roc_points(sec.scores[sel], sec.labels[sel])
            auc = float(np.trapezoid(tpr, fpr))
            ax.plot(fpr, tpr, color=color, label=f"{domain} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":")
    ax.axvspan(0, 0.1, color="grey", alpha=0.1, label="pAUC range (FPR <= 0.1)")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(sec.name, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
