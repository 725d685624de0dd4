"""Report figures (matplotlib, headless): score histograms per domain and label, ROC per domain."""

from __future__ import annotations

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


def histograms_png(sec: SectionScores, path: Path) -> Path:
    """Scores by domain and label, before (plain k-NN distance) and after normalization, with
    the one section threshold each side uses."""
    panels = [("after: " + ("normalized score" if sec.raw_scores is not None else "score"), sec.scores, sec.threshold)]
    if sec.raw_scores is not None:
        panels.insert(0, ("before: k-NN distance", sec.raw_scores, sec.raw_threshold))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.4), dpi=100, squeeze=False)
    for ax, (title, values, thr) in zip(axes[0], panels):
        finite = values[np.isfinite(values)]
        bins = np.linspace(finite.min(), finite.max(), 31) if finite.size and finite.min() < finite.max() else 30
        for domain, label, name, color in CELLS:
            sel = (sec.domains == domain) & (sec.labels == label) & np.isfinite(values)
            if sel.any():
                ax.hist(values[sel], bins=bins, alpha=0.55, color=color, label=f"{name} ({sel.sum()})",
                        histtype="stepfilled" if label == 0 else "step", linewidth=1.5)
        if thr is not None:
            ax.axvline(thr, color="black", linestyle="--", linewidth=1, label="threshold")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("anomaly score")
        ax.set_ylabel("clips")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.suptitle(sec.name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


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
