"""Reliability diagrams (PNG, matplotlib Agg): per attribute and overall, for one report-card row, plus
one figure comparing every row's overall curve."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from conf_profile.evaluate.metrics import Reliability  # noqa: E402


def _panel(ax, rel: Reliability, title: str) -> None:
    n_bins = len(rel.count)
    centers = (np.arange(n_bins) + 0.5) / n_bins
    ok = rel.count > 0
    ax.bar(centers[ok], rel.accuracy[ok], width=1.0 / n_bins, edgecolor="black", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    ax.plot(rel.confidence[ok], rel.accuracy[ok], "o-", color="tab:red", markersize=3, label="observed")
    ece = rel.ece
    ax.set_title(f"{title}\nECE {ece:.3f}, n={int(rel.count.sum())}" if ece is not None else f"{title}\n(no data)",
                 fontsize=8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([0, 0.5, 1])
    ax.set_yticks([0, 0.5, 1])
    ax.tick_params(labelsize=6)


def reliability_png(rels: dict[str, Reliability], title: str) -> bytes:
    """One PNG: "overall" first, then one panel per attribute."""
    names = ["overall"] + [k for k in rels if k != "overall"]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        _panel(ax, rels[name], name)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"Reliability: {title}", fontsize=10)
    fig.supxlabel("confidence", fontsize=8)
    fig.supylabel("accuracy", fontsize=8)
    # fixed margins: tight_layout would draw every panel twice (it dominated the report's run time)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.08, top=0.88, wspace=0.3, hspace=0.6)
    return _png(fig)


def overall_png(rels: dict[str, Reliability]) -> bytes:
    """Every row's overall reliability curve in one plot."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="gray", linewidth=1)
    for name, rel in rels.items():
        ok = rel.count > 0
        ece = rel.ece
        label = f"{name} (ECE {ece:.3f})" if ece is not None else name
        ax.plot(rel.confidence[ok], rel.accuracy[ok], "o-", markersize=3, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("Reliability, all attributes")
    ax.legend(fontsize=6, loc="upper left")
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.93)
    return _png(fig)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def slug(name: str) -> str:
    """Row name -> file-name part: "vote:calibrated" -> "vote-calibrated"."""
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in name)
