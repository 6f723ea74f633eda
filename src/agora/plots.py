"""Plots as PNG files (matplotlib on the Agg backend, no display needed): a kit known to no
layer, so models draw their training curves and evaluation its metric-vs-K curve alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_curve(curve: dict[str, list[float]], path: str | Path, title: str = "") -> Path:
    """NDCG@k and Recall@k for k = 1..K as a PNG (Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=100)
    ax.plot(curve["k"], curve["ndcg"], marker="o", label="NDCG@k")
    ax.plot(curve["k"], curve["recall"], marker="s", label="Recall@k")
    ax.set_xlabel("k")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_training_curve(
    path: str | Path, loss: Any, valid: Any = None, best_epoch: int = 0, title: str = ""
) -> Path:
    """Training loss and valid NDCG@10 per epoch (1..n) as a PNG; ``valid`` is NaN where it was
    not measured, and a dotted line marks the best epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    loss = np.asarray(loss, dtype=np.float64)
    epochs = np.arange(1, len(loss) + 1)
    fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=100)
    ax.plot(epochs, loss, color="tab:blue", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss", color="tab:blue")
    valid = np.full(len(loss), np.nan) if valid is None else np.asarray(valid, dtype=np.float64)
    seen = np.isfinite(valid)
    if seen.any():
        other = ax.twinx()
        other.plot(epochs[seen], valid[seen], "o-", color="tab:orange", ms=3)
        other.set_ylabel("valid NDCG@10", color="tab:orange")
        if best_epoch:
            other.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
    ax.set_title(f"{title}: best epoch {best_epoch}" if best_epoch else title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
