"""Does training longer move the paper's comparison? One scaling study run at several training lengths.

    nas study experiments/study_wrn10_cpu.py --run-dir runs/len_e6 --set trainer.epochs=6 ...
    python -m experiments.check_training_length runs/len_e2 runs/len_e6 runs/len_e18 --out DIR

Each argument is a study run directory (``nas study``: its ``config.json`` and ``summary.csv``) of
the same architectures trained for a different number of epochs. For every single model B that has
a smaller architecture beside it, the **margin** is the accuracy of the best ensemble (n >= 2) of
smaller models at fewer total FLOPs than B, minus B's accuracy (both means over the study's draws):
positive where the paper's claim holds at that training length. B's seed-to-seed standard deviation
(over its single members) is printed next to it as the noise to read a margin against. The same in
negative log-likelihood (B's NLL minus the ensemble's: positive where the ensemble is better), and
what each architecture's largest ensemble gains over its single models.

Writes ``OUT/training_length.txt`` (the table) and ``OUT/training_length.png`` (accuracy against
epochs per architecture and ensemble size; the margins against epochs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from nas.study import best_smaller_ensemble


def read_study(run: Path) -> tuple[int, pd.DataFrame]:
    """(epochs, summary) of one study run directory."""
    try:
        config = json.loads((run / "config.json").read_text())
        summary = pd.read_csv(run / "summary.csv")
    except (OSError, ValueError) as e:
        raise SystemExit(f"check_training_length: {run}: not a finished study run ({e})")
    return int(config["trainer"]["epochs"]), summary


def margins(epochs: int, summary: pd.DataFrame) -> list[dict]:
    """For each single model with smaller architectures beside it: the best ensemble of smaller models
    at fewer FLOPs, and its margin over the single model in accuracy points and NLL (nats)."""
    rows = []
    for _, b in summary[summary["n"] == 1].iterrows():
        best = best_smaller_ensemble(summary, b)
        if best is None:
            continue
        rows.append({"epochs": epochs, "single": b["architecture"], "single_accuracy": b["accuracy_mean"],
                     "single_sd": b["accuracy_std"], "single_members": int(b["draws"]),
                     "ensemble": f"{int(best['n'])} x {best['architecture']}",
                     "ensemble_accuracy": best["accuracy_mean"], "flops_ratio": best["flops"] / b["flops"],
                     "margin": 100 * (best["accuracy_mean"] - b["accuracy_mean"]),
                     "nll_margin": b["nll_mean"] - best["nll_mean"]})
    return rows


def ensemble_gains(epochs: int, summary: pd.DataFrame) -> list[dict]:
    """Per architecture: mean single accuracy, and what its largest ensemble adds (points)."""
    rows = []
    for arch, d in summary.groupby("architecture", sort=False):
        one, top = d[d["n"] == 1].iloc[0], d.sort_values("n").iloc[-1]
        rows.append({"epochs": epochs, "architecture": arch, "single": one["accuracy_mean"],
                     "largest_n": int(top["n"]), "ensemble": top["accuracy_mean"],
                     "gain": 100 * (top["accuracy_mean"] - one["accuracy_mean"])})
    return rows


def compare(runs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(margins, gains, summaries with their epochs), ordered by training length."""
    studies = sorted((read_study(r) for r in runs), key=lambda t: t[0])
    epochs = [e for e, _ in studies]
    if len(set(epochs)) != len(epochs):
        raise SystemExit(f"check_training_length: two runs trained for the same number of epochs ({epochs})")
    archs = [tuple(sorted(s["architecture"].unique())) for _, s in studies]
    if len(set(archs)) != 1:
        raise SystemExit(f"check_training_length: the runs studied different architectures ({archs})")
    m = pd.DataFrame([r for e, s in studies for r in margins(e, s)])
    g = pd.DataFrame([r for e, s in studies for r in ensemble_gains(e, s)])
    allsum = pd.concat([s.assign(epochs=e) for e, s in studies], ignore_index=True)
    return m, g, allsum


def format_table(m: pd.DataFrame, g: pd.DataFrame) -> str:
    lines = ["The best ensemble of smaller models at fewer FLOPs against each single model "
             "(margin > 0: the paper's claim holds)", "",
             "| epochs | single model | its accuracy (sd over members) | ensemble | its accuracy | FLOPs | "
             "margin (points) | NLL margin (nats) |",
             "|---:|---|---:|---|---:|---:|---:|---:|"]
    for _, r in m.iterrows():
        lines.append(f"| {r['epochs']} | {r['single']} | {100 * r['single_accuracy']:.2f}% "
                     f"({100 * r['single_sd']:.2f}, {r['single_members']}) | {r['ensemble']} | "
                     f"{100 * r['ensemble_accuracy']:.2f}% | {r['flops_ratio']:.2f}x | {r['margin']:+.2f} | "
                     f"{r['nll_margin']:+.3f} |")
    lines += ["", "What each architecture's largest ensemble adds over its single models", "",
              "| epochs | architecture | single (mean) | largest ensemble | its accuracy | gain (points) |",
              "|---:|---|---:|---:|---:|---:|"]
    for _, r in g.iterrows():
        lines.append(f"| {r['epochs']} | {r['architecture']} | {100 * r['single']:.2f}% | n = {r['largest_n']} | "
                     f"{100 * r['ensemble']:.2f}% | {r['gain']:+.2f} |")
    return "\n".join(lines) + "\n"


def figure(m: pd.DataFrame, allsum: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arch, d) in enumerate(allsum.groupby("architecture", sort=False)):
        for n, dn in d.groupby("n"):
            dn = dn.sort_values("epochs")
            err = 100 * dn["accuracy_std"].fillna(0) if n == 1 else None
            a.errorbar(dn["epochs"], 100 * dn["accuracy_mean"], yerr=err, color=colors[i % len(colors)],
                       marker="o", ms=3 + 2 * n, lw=1, alpha=0.45 + 0.18 * min(n, 3), capsize=3,
                       label=f"{n} x {arch}")
    a.set_xlabel("epochs per member")
    a.set_ylabel("test accuracy (%)")
    a.set_title("accuracy by training length")
    a.legend(fontsize=8)
    for i, (single, d) in enumerate(m.groupby("single", sort=False)):
        d = d.sort_values("epochs")
        c = colors[(i + 1) % len(colors)]
        b.plot(d["epochs"], d["margin"], marker="o", color=c, label=f"best smaller ensemble - {single}")
        b.fill_between(d["epochs"], -100 * d["single_sd"], 100 * d["single_sd"], color=c, alpha=0.12,
                       label=f"+-1 sd of {single}'s members")
    b.axhline(0, color="k", lw=0.8)
    epochs = sorted(allsum["epochs"].unique())
    for ax in (a, b):  # log scale, ticked at the runs' own training lengths
        ax.set_xscale("log")
        ax.set_xticks(epochs, [str(e) for e in epochs])
        ax.minorticks_off()
    b.set_xlabel("epochs per member")
    b.set_ylabel("accuracy margin (points)")
    b.set_title("ensemble of smaller models minus the single model")
    b.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="study run directories, one per training length")
    p.add_argument("--out", type=Path, required=True, help="folder for training_length.txt and .png")
    args = p.parse_args(argv)
    if len(args.runs) < 2:
        p.error("give at least two study runs")
    m, g, allsum = compare(args.runs)
    if m.empty:
        raise SystemExit("check_training_length: no single model has a smaller architecture beside it")
    text = format_table(m, g)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_length.txt").write_text(text)
    print(text, end="")
    print(f"figure: {figure(m, allsum, args.out / 'training_length.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
