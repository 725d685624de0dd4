"""PNG figures for MLflow and reports (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def loss_curves_png(history: list[dict], keys: list[str], path: Path) -> Path:
    """One line per loss key over epochs."""
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [h["epoch"] for h in history]
    for k in keys:
        values = [h.get(k) for h in history]
        if any(v is not None for v in values):
            ax.plot(epochs, [float("nan") if v is None else v for v in values], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
