"""Dashboard charts (matplotlib PNG): official score per encoder x normalization, and per noise
subset the official score against SNR bin, one line per encoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from asd_core.reporting.dashboard_data import snr_order
from asd_core.tracking.plots import plt

OFFICIAL_PNG = "official_score.png"


def _colors(names: list[str]) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {n: cycle[i % len(cycle)] for i, n in enumerate(names)}


def best_per_combination(runs: list[dict]) -> dict[tuple[str, str], float]:
    """(encoder, normalization) -> the best clean official score among its runs (runs without one left out)."""
    best: dict[tuple[str, str], float] = {}
    for r in runs:
        if r["official_score"] is not None:
            key = (r["encoder"], r["normalization"])
            best[key] = max(best.get(key, -1.0), float(r["official_score"]))
    return best


def official_png(runs: list[dict], path: Path) -> Path:
    """Grouped bars: one group per encoder, one bar per normalization, the best run of each pair."""
    best = best_per_combination(runs)
    encoders = sorted({e for e, _ in best})
    norms = sorted({n for _, n in best})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(encoders) * max(1, len(norms)) ** 0.5 + 2), 3.6), dpi=100)
    width = 0.8 / max(1, len(norms))
    colors = _colors(norms)
    for j, norm in enumerate(norms):
        xs = [i + (j - (len(norms) - 1) / 2) * width for i, e in enumerate(encoders) if (e, norm) in best]
        ys = [best[(e, norm)] for e in encoders if (e, norm) in best]
        bars = ax.bar(xs, ys, width * 0.95, label=norm, color=colors[norm])
        ax.bar_label(bars, fmt="%.3f", fontsize=6, rotation=90 if len(best) > 8 else 0, padding=2)
    ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":", label="chance")
    ax.set_xticks(range(len(encoders)), encoders, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("official score (clean)")
    if not best:
        ax.text(0.5, 0.5, "no run has metrics yet", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=7, title="normalization", title_fontsize=7, loc="upper left", ncols=min(4, len(norms) + 1))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def noisy_png_name(subset: str) -> str:
    return "noisy_" + re.sub(r"[^A-Za-z0-9_-]+", "_", subset) + ".png"


def line_labels(noisy: list[dict]) -> dict[str, str]:
    """run id -> its line's label: the encoder, with the run id when another run of the same
    encoder and normalization is plotted too."""
    runs = {r["run_id"]: (r["encoder"], r["normalization"]) for r in noisy}
    count: dict[tuple[str, str], int] = {}
    for key in runs.values():
        count[key] = count.get(key, 0) + 1
    return {rid: enc if count[(enc, norm)] == 1 else f"{enc} ({rid})" for rid, (enc, norm) in runs.items()}


def noisy_pngs(noisy: list[dict], folder: Path) -> dict[str, Path]:
    """One PNG per noise subset: a panel per normalization, official score against SNR bin (clean
    at the right), one line per encoder."""
    labels = line_labels(noisy)
    colors = _colors(sorted({r["encoder"] for r in noisy}))
    clean = {r["run_id"]: r["official_score"] for r in noisy if r["noise_subset"] == "clean"}
    out = {}
    for subset in sorted({r["noise_subset"] for r in noisy} - {"clean"}):
        rows = [r for r in noisy if r["noise_subset"] == subset]
        bins = sorted({r["snr_bin"] for r in rows}, key=snr_order) + ["clean"]
        norms = sorted({r["normalization"] for r in rows})
        fig, axes = plt.subplots(1, len(norms), figsize=(max(4.2, 0.55 * len(bins) + 2.5) * len(norms), 3.6), dpi=100,
                                 squeeze=False, sharey=True)
        for ax, norm in zip(axes[0], norms):
            for rid in sorted({r["run_id"] for r in rows if r["normalization"] == norm}, key=lambda i: labels[i]):
                by_bin = {r["snr_bin"]: r["official_score"] for r in rows if r["run_id"] == rid}
                by_bin["clean"] = clean.get(rid)
                ys = [np.nan if by_bin.get(b) is None else float(by_bin[b]) for b in bins]
                enc = next(r["encoder"] for r in rows if r["run_id"] == rid)
                ax.plot(range(len(bins)), ys, marker="o", color=colors[enc], label=labels[rid])
            ax.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
            ax.set_xticks(range(len(bins)), [f"{b} dB" if b != "clean" else b for b in bins], rotation=20, fontsize=8)
            ax.set_title(f"{subset}, {norm}", fontsize=9)
            ax.set_xlabel("SNR bin")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        axes[0][0].set_ylabel("official score")
        fig.tight_layout()
        path = folder / noisy_png_name(subset)
        fig.savefig(path)
        plt.close(fig)
        out[subset] = path
    return out
