"""`nas plot`: the paper's Figure 3 (accuracy vs max latency per ensemble size, fronts, medians) and
the reward and entropy curves. Reads only the append-only files, so it works while a search runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nas.pareto import pareto_front, records_frame  # noqa: E402

COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "tab:red", 5: "tab:purple"}


def figure3(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    df = records_frame(records)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for n in sorted(df["size"].unique()):
        d = df[(df["size"] == n) & (df["status"] == "ok")]
        if d.empty:
            continue
        c = COLORS.get(int(n), None)
        ax.scatter(d["latency_max_ms"], 100 * d["accuracy"], s=14, alpha=0.45, color=c, label=f"{int(n)} member{'s' if n > 1 else ''}")
        f = pareto_front(d)
        ax.step(f["latency_max_ms"], 100 * f["accuracy"], where="post", color=c, lw=1.5)
        ax.scatter([np.median(d["latency_max_ms"])], [100 * np.median(d["accuracy"])], marker="*", s=260, color=c,
                   edgecolor="black", zorder=5)
    ax.set_xlabel("max member latency on Pixel 1 (ms)")
    ax.set_ylabel("validation accuracy (%), geometric-mean ensemble")
    ax.set_title(title or "Search samples, Pareto fronts, and medians (stars) per ensemble size", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def curves(records: list[dict[str, Any]], updates: list[dict[str, Any]], path: Path) -> Path:
    df = records_frame(records)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for n in sorted(df["size"].unique()):
        d = df[df["size"] == n].sort_values("sample")
        a.plot(d["sample"], d["reward"], ".", alpha=0.5, color=COLORS.get(int(n)), label=f"size {n}")
        a.plot(d["sample"], d["reward"].rolling(5, min_periods=1).mean(), color=COLORS.get(int(n)))
        u = [x for x in updates if x["size"] == n]
        b.plot([x["step"] for x in u], [x["entropy"] for x in u], "-o", ms=3, color=COLORS.get(int(n)), label=f"size {n}")
    a.set_xlabel("sample")
    a.set_ylabel("reward (rolling mean of 5)")
    b.set_xlabel("controller update")
    b.set_ylabel("policy entropy (nats)")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
