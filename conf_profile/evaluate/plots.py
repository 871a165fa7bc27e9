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


def history_png(points: list[tuple[str, float | None, float | None]], title: str = "Champion history") -> bytes:
    """Headline F1 (left axis, points) and ECE (right axis) per week, for [(interval, f1, ece)] in the
    order given (oldest first): the champion's record over weeks. A missing value leaves a gap."""
    labels = [str(p[0]) for p in points]
    x = np.arange(len(points))
    f1 = np.array([np.nan if p[1] is None else float(p[1]) for p in points])
    ece = np.array([np.nan if p[2] is None else float(p[2]) for p in points])
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(points) + 2), 3.5))
    ax.plot(x, f1, "o-", color="tab:blue", label="F1")
    ax.set_ylabel("headline F1", color="tab:blue")
    ax.set_ylim(0, 100)
    ax2 = ax.twinx()
    ax2.plot(x, ece, "s--", color="tab:red", label="ECE")
    ax2.set_ylabel("ECE", color="tab:red")
    ax2.set_ylim(0, max(0.2, float(np.nanmax(ece)) * 1.2) if np.isfinite(ece).any() else 0.2)
    ax.set_xticks(x)
    ax.set_xticklabels([lab.split("..")[0] for lab in labels], rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.12, right=0.86, bottom=0.28, top=0.9)
    return _png(fig)
