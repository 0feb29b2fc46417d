"""`nas plot`: the paper's Figure 3 (accuracy vs max latency per ensemble size, fronts, medians), the
reward and entropy curves, and what the ensembles gain over their best members (nas/diversity.py).
Reads only the append-only files, so it works while a search runs."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402

from nas.diversity import rho_text  # noqa: E402
from nas.pareto import pareto_front, records_frame  # noqa: E402
from nas.retrained import agreement_scope, retrained_fronts  # noqa: E402
from nas.words import counted  # noqa: E402

COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green", 4: "tab:red", 5: "tab:purple"}


def figure3(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    df = records_frame(records)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for n in sorted(df["size"].unique()):
        d = df[(df["size"] == n) & (df["status"] == "ok")]
        if d.empty:
            continue
        c = COLORS.get(int(n), None)
        ax.scatter(d["latency_max_ms"], 100 * d["accuracy"], s=14, alpha=0.45, color=c, label=counted(int(n), "member"))
        f = pareto_front(d)
        ax.step(f["latency_max_ms"], 100 * f["accuracy"], where="post", color=c, lw=1.5)
        for lat, acc, sample in zip(f["latency_max_ms"], f["accuracy"], f["sample"]):
            # the sample number, as `nas show RUN --front` lists the front's architectures
            ax.annotate(str(int(sample)), (lat, 100 * acc), textcoords="offset points", xytext=(2, 3), fontsize=6,
                        color=c)
        ax.scatter([np.median(d["latency_max_ms"])], [100 * np.median(d["accuracy"])], marker="*", s=260, color=c,
                   edgecolor="black", zorder=5)
    return _save_latency_figure(fig, ax, path, title or "Search samples, Pareto fronts (sample numbers), and "
                                "medians (stars) per ensemble size")


def _save_latency_figure(fig: Any, ax: Any, path: Path, title: str) -> Path:
    """Axis labels, title, grid and legend of an accuracy-vs-max-latency figure; saved and closed."""
    ax.set_xlabel("max member latency on Pixel 1 (ms)")
    ax.set_ylabel("validation accuracy (%), geometric-mean ensemble")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# What each controller reports as "entropy" after an update (controller/*.py)
ENTROPY_LABELS = {"reinforce": "policy entropy (nats)", "random": "sampling entropy (nats, constant)",
                  "evolution": "population diversity (nats, entropy per decision summed)"}


def curves(records: list[dict[str, Any]], updates: list[dict[str, Any]], path: Path,
           controller: str = "reinforce") -> Path:
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
    for ax in (a, b):  # samples and updates are counts: integer ticks, and room for them with one point
        lo, hi = ax.get_xlim()
        if hi - lo < 2:
            ax.set_xlim((lo + hi) / 2 - 1, (lo + hi) / 2 + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    # wrapped: the longest label does not fit the 3.6-inch height on one line
    b.set_ylabel("\n".join(textwrap.wrap(ENTROPY_LABELS.get(controller, "entropy (nats)"), 32)))
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def diversity_figure(df: Any, summary: Any, path: Path, title: str = "") -> Path:
    """Each ensemble's gain over its best member (points) against its members' pairwise disagreement
    (left) and the spread of their accuracies, best minus weakest (right), one color per size, with
    each size's Spearman correlation in the legend (nas/diversity.py)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    rho = {int(s["size"]): s for s in summary.to_dict("records")}
    for ax, key, label, rkey in ((axes[0], "disagreement", "mean pairwise disagreement of the members (fraction)",
                                  "spearman_gain_disagreement"),
                                 (axes[1], "spread", "members' accuracy spread, best minus weakest (points)",
                                  "spearman_gain_spread")):
        scale = 100.0 if key == "spread" else 1.0
        for n, d in df.groupby("size", sort=True):
            s = rho.get(int(n), {})
            ax.scatter(scale * d[key], 100 * d["gain"], s=16, alpha=0.6, color=COLORS.get(int(n)),
                       label=f"{int(n)} members: {s.get('above_best', 0)} of {len(d)} above best, "
                             f"Spearman {rho_text(s.get(rkey))}")
        ax.axhline(0.0, color="0.3", lw=0.8)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("ensemble accuracy minus its best member's (points)")
    fig.suptitle(title or "What the geometric mean gains over each ensemble's best member", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def scaling_figure(points: Any, path: Path, title: str = "", split_name: str = "test") -> Path:
    """The paper's Figures 1-2: accuracy (left) and NLL (right) against total FLOPs on a log axis,
    one curve per architecture through its ensembles of n = 1, 2, ... (n written at each point),
    mean over draws with the spread (min-max) as error bars."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    cmap = plt.get_cmap("viridis")
    archs = list(dict.fromkeys(points["architecture"]))
    for i, arch in enumerate(archs):
        d = points[points["architecture"] == arch]
        g = d.groupby("n").agg(flops=("flops", "first"), acc=("accuracy", "mean"), acc_lo=("accuracy", "min"),
                               acc_hi=("accuracy", "max"), nll=("nll", "mean"), nll_lo=("nll", "min"),
                               nll_hi=("nll", "max")).reset_index()
        color = cmap(i / max(1, len(archs) - 1) * 0.9)
        for ax, key, scale in ((axes[0], "acc", 100.0), (axes[1], "nll", 1.0)):
            y = scale * g[key]
            err = [y - scale * g[f"{key}_lo"], scale * g[f"{key}_hi"] - y]
            ax.errorbar(g["flops"], y, yerr=err, fmt="-o", ms=4, lw=1.4, capsize=2, color=color, label=arch)
            for _, r in g.iterrows():
                ax.annotate(str(int(r["n"])), (r["flops"], scale * r[key]), textcoords="offset points",
                            xytext=(3, 4), fontsize=7, color=color)
    for ax, label in ((axes[0], f"{split_name} accuracy (%), geometric-mean ensemble"), (axes[1], "NLL (nats)")):
        ax.set_xscale("log")
        ax.set_xlabel("total FLOPs of the ensemble (2 x multiply-adds)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title or "Ensembles of n models per architecture (n at each point)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _faint_samples_and_front(ax: Any, df: Any, n: int, **step_style: Any) -> None:
    """A size's successful samples, faint, and its searched Pareto front, solid, labelled "n searched"
    (the background of the pool and seeds figures)."""
    c = COLORS.get(int(n), None)
    d = df[(df["size"] == n) & (df["status"] == "ok")]
    if not d.empty:
        ax.scatter(d["latency_max_ms"], 100 * d["accuracy"], s=12, alpha=0.3, color=c)
        f = pareto_front(d)
        ax.step(f["latency_max_ms"], 100 * f["accuracy"], where="post", color=c, lw=1.5, label=f"{int(n)} searched",
                **step_style)


def pool_figure(records: list[dict[str, Any]], pool_front: Any, path: Path, title: str = "") -> Path:
    """Figure 3's samples (faint) and searched fronts (solid, filled markers), with the member pool's
    fronts (dashed, open markers; nas/pool.py) over them."""
    df = records_frame(records)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for n in sorted(set(df["size"].unique()) | set(pool_front["size"].unique() if len(pool_front) else ())):
        c = COLORS.get(int(n), None)
        _faint_samples_and_front(ax, df, n, marker="o", ms=5)
        p = pool_front[pool_front["size"] == n].sort_values("latency_max_ms") if len(pool_front) else pool_front
        if len(p):
            ax.step(p["latency_max_ms"], 100 * p["accuracy"], where="post", color=c, lw=1.5, ls="--")
            ax.scatter(p["latency_max_ms"], 100 * p["accuracy"], s=30, facecolors="none", edgecolors=c,
                       label=f"{int(n)} from the pool")
    return _save_latency_figure(fig, ax, path, title or "Searched fronts and the member pool's")


def budget_figure(summary: Any, cost: str, path: Path, title: str = "") -> Path:
    """`nas pool --retrained` (nas/pool_budget.py): left, under each cost budget, the held-out test
    accuracy of the best pick of each size (a step: a budget holds until the next); right, each
    ensemble size's lead over the single model picked under the same budget, with its sd over the
    halvings as error bars."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    scale, unit = (1.0, "max member latency on Pixel 1 (ms)") if cost == "latency" else (1e-6, "summed MFLOPs")
    for k, d in summary.groupby("size", sort=True):
        d = d.sort_values("budget")
        c, label = COLORS.get(int(k)), "single model" if k == 1 else f"{int(k)} members"
        a.step(d["budget"] * scale, 100 * d["score_accuracy"], where="post", color=c, label=label)
        a.scatter(d["budget"] * scale, 100 * d["score_accuracy"], color=c, s=12)
        if k != 1 and "lead" in d and d["lead"].notna().any():
            e = d[d["lead"].notna()]
            b.errorbar(e["budget"] * scale, 100 * e["lead"], yerr=100 * e["lead_std"].fillna(0.0), color=c, fmt="o-",
                       ms=3, lw=1, capsize=2, label=label)
    b.axhline(0.0, color="gray", lw=0.8)
    beyond = summary[summary["beyond_singles"]]["budget"] * scale
    for ax in (a, b):
        if len(beyond):  # no pooled model costs this much alone: ensembles face the best single, not one of that cost
            ax.axvspan(beyond.min(), beyond.max(), color="gray", alpha=0.12, lw=0,
                       label="above every pooled model's own cost")
        ax.set_xlabel(f"budget: {unit}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    a.set_ylabel("held-out test accuracy (%), best pick within the budget")
    b.set_ylabel("lead over the single model (points)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def seeds_pool_figure(summary: Any, cost: str, path: Path, title: str = "") -> Path:
    """`nas pool --retrained` with several reseeded settings (nas/pool_seeds.py): a panel per
    ensemble size, under each cost budget the held-out test accuracy of the best single model, the
    best ensemble of one network's seeds and the best of different networks (a step: a budget holds
    until the next)."""
    sizes = sorted(int(k) for k in summary["size"].unique() if k != 1)
    fig, axes = plt.subplots(1, len(sizes), figsize=(max(7.0, 5.5 * len(sizes)), 4.4), sharey=True, squeeze=False)
    scale, unit = (1.0, "max member latency on Pixel 1 (ms)") if cost == "latency" else (1e-6, "summed MFLOPs")
    styles = {"single": ("black", "single model"), "one network": ("C0", "{k} seeds of one network"),
              "different networks": ("C3", "{k} different networks")}
    for ax, k in zip(axes[0], sizes):
        for kind, (color, label) in styles.items():
            d = summary[(summary["kind"] == kind) & (summary["size"] == (1 if kind == "single" else k))]
            d = d.sort_values("budget")
            ax.step(d["budget"] * scale, 100 * d["score_accuracy"], where="post", color=color, label=label.format(k=k))
            ax.scatter(d["budget"] * scale, 100 * d["score_accuracy"], color=color, s=12)
        ax.set(title=f"ensembles of {k}", xlabel=f"budget: {unit}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    axes[0][0].set_ylabel("held-out test accuracy (%),\nbest pick within the budget")
    fig.suptitle("\n".join(textwrap.wrap(title, 110)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def seeds_figure(records: list[dict[str, Any]], rows: Any, path: Path, title: str = "") -> Path:
    """Figure 3's samples (faint) and searched fronts, with n copies of searched members (nas/seeds.py)
    over them: diamonds in the n-member color, straight above their member (same max latency)."""
    df = records_frame(records)
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for n in sorted(df["size"].unique()):
        _faint_samples_and_front(ax, df, n)
    for sample, d in rows.groupby("sample", sort=False):
        d = d.sort_values("n")
        ax.plot(d["latency_max_ms"], 100 * d["accuracy"], color="gray", lw=0.8, zorder=4)
        for n, lat, acc in zip(d["n"], d["latency_max_ms"], d["accuracy"]):
            ax.scatter([lat], [100 * acc], marker="D", s=34, color=COLORS.get(int(n)), edgecolor="black", zorder=5)
            ax.annotate(f"{int(n)}", (lat, 100 * acc), textcoords="offset points", xytext=(5, -3), fontsize=7)
    for n in sorted(rows["n"].unique()) if len(rows) else ():
        ax.scatter([], [], marker="D", s=34, color=COLORS.get(int(n)), edgecolor="black",
                   label="the searched member" if n == 1 else f"{int(n)} copies of it (seeds)")
    return _save_latency_figure(fig, ax, path, title or "Copies of searched members against the searched fronts")


def retrain_figure(ensembles: Any, members: Any, agreement: list[dict[str, Any]], path: Path, title: str = "",
                   gains: Any = None) -> Path:
    """One retraining setting (nas/retrained.py): left, each retrained ensemble's proxy validation
    accuracy against its test accuracy after retraining (and each distinct member's, alone, as gray
    crosses), with the rank agreement; middle, test accuracy against max member latency with the
    retrained Pareto front per size (Figure 3 after retraining); right, where ``gains`` has rows
    (nas.diversity.retrained_gains), each ensemble of two or more members' test gain over its best
    member against the spread of its members' test accuracies. Searched ensembles filled, pool
    ensembles open; labels are sample numbers."""
    with_gains = gains is not None and len(gains) > 0
    fig, axes = plt.subplots(1, 3 if with_gains else 2, figsize=(16.5 if with_gains else 11.5, 4.8))
    left, right = axes[0], axes[1]
    if len(members):  # each a single model too: on the right, the rivals `nas show` compares ensembles with
        left.scatter(100 * members["proxy_val_accuracy"], 100 * members["test_accuracy"], marker="x", s=16,
                     color="0.55", lw=0.8, label="members, each alone", zorder=2)
        right.scatter(members["latency_ms"], 100 * members["test_accuracy"], marker="x", s=16, color="0.55", lw=0.8,
                      label="members, each alone", zorder=2)
    for n in sorted(ensembles["size"].unique()):
        c = COLORS.get(int(n), None)
        d = ensembles[ensembles["size"] == n]
        for source, face in (("searched", c), ("pool", "none")):
            s = d[d["source"] == source]
            if s.empty:
                continue
            label = counted(int(n), "member") + (" (pool)" if source == "pool" else "")
            for ax, x in ((left, 100 * s["proxy_val_accuracy"]), (right, s["latency_max_ms"])):
                ax.scatter(x, 100 * s["test_accuracy"], s=26, facecolors=face, edgecolors=c, label=label, zorder=3)
                for xi, yi, sample in zip(x, 100 * s["test_accuracy"], s["sample"] if source == "searched" else ()):
                    ax.annotate(str(sample), (xi, yi), textcoords="offset points", xytext=(3, 3), fontsize=6, color=c)
        f = retrained_fronts(d)
        right.step(f["latency_max_ms"], 100 * f["test_accuracy"], where="post", color=c, lw=1.5)
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    text = "\n".join(f"{agreement_scope(a)} (n {a['n']}): Spearman {fmt(a['spearman'])}, Kendall {fmt(a['kendall'])}"
                     for a in agreement)
    left.text(0.02, 0.98, text, transform=left.transAxes, va="top", fontsize=7,
              bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
    left.set_xlabel("proxy validation accuracy (%), as searched")
    left.set_ylabel("test accuracy after retraining (%)")
    right.set_xlabel("max member latency on Pixel 1 (ms)")
    right.set_ylabel("test accuracy after retraining (%)")
    if with_gains:
        _gain_panel(axes[2], gains)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("\n".join(textwrap.wrap(title, 150 if with_gains else 110)), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _gain_panel(ax: Any, gains: Any) -> None:
    """Retrained ensembles' test gain over their best member against their members' test accuracy
    spread (points), one color per size, pool ensembles open."""
    for n in sorted(gains["size"].unique()):
        c = COLORS.get(int(n), None)
        d = gains[gains["size"] == n]
        for source, face in (("searched", c), ("pool", "none")):
            s = d[d["source"] == source]
            if len(s):
                ax.scatter(100 * s["spread"], 100 * s["gain"], s=26, facecolors=face, edgecolors=c,
                           label=f"{int(n)} members" + (" (pool)" if source == "pool" else ""), zorder=3)
    ax.axhline(0.0, color="0.3", lw=0.8)
    ax.set_xlabel("members' test accuracy spread, best minus weakest (points)")
    ax.set_ylabel("test accuracy minus the best member's (points)")
