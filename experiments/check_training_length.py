"""Does training longer move the paper's comparison? One scaling study run at several training lengths.

    nas study experiments/study_wrn10_cpu.py --run-dir runs/len_e6 --set trainer.epochs=6 ...
    python -m experiments.check_training_length runs/len_e2 runs/len_e6 runs/len_e18 --out DIR

Each argument is a study run directory (``nas study``: its ``config.json``, ``summary.csv`` and
``records.jsonl``) of the same architectures trained for a different number of epochs, or on a
training set of another size (``--set train_examples=N``). For every single model B that has
a smaller architecture beside it, the **margin** is the accuracy of the best ensemble (n >= 2) of
smaller models at fewer total FLOPs than B, minus B's accuracy (both means over the study's draws):
positive where the paper's claim holds at that training length. B's seed-to-seed standard deviation
(over its single members) is printed next to it as the noise to read a margin against. The same in
negative log-likelihood (B's NLL minus the ensemble's: positive where the ensemble is better), and
what each architecture's largest ensemble gains over its single models.

Runs on training sets of different sizes tell apart two readings of a margin that turns with
training length: more optimizer steps, or more passes over the same images. Such runs are plotted
against optimizer steps per member (from the records), one line style per training-set size, so
that a run with twice the images and half the epochs stands at the same place as its partner;
runs on one training set are plotted against epochs.

Writes ``OUT/training_length.txt`` (the table) and ``OUT/training_length.png`` (accuracy against
training length per architecture and ensemble size; the margins against training length).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nas.study import best_smaller_ensemble


@dataclass(frozen=True)
class StudyRun:
    """One finished study run: its schedule, training set and summary."""

    epochs: int
    train_images: int | None  # the config's train_examples; None: the whole training split
    steps: int | None  # optimizer steps per member (its records; None without any finished member)
    summary: pd.DataFrame
    points: pd.DataFrame | None = None  # every ensemble draw (points.csv), where the run has it

    @property
    def images_label(self) -> str:
        return "all" if self.train_images is None else f"{self.train_images:,}"


def read_study(run: Path) -> StudyRun:
    """The schedule, training-set size, steps per member and summary of one study run directory."""
    try:
        config = json.loads((run / "config.json").read_text())
        summary = pd.read_csv(run / "summary.csv")
        points = pd.read_csv(run / "points.csv") if (run / "points.csv").exists() else None
        records = run / "records.jsonl"
        lines = records.read_text().splitlines() if records.exists() else []
        # every member of a run trains at one batch size on one set: one step count (the largest if not)
        steps = max((r["steps"] for r in map(json.loads, lines) if r.get("status") == "ok" and "steps" in r),
                    default=None)
        epochs, train = int(config["trainer"]["epochs"]), config.get("train_examples")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"check_training_length: {run}: not a finished study run ({type(e).__name__}: {e})")
    return StudyRun(epochs, None if train is None else int(train), steps, summary, points)


def _run_columns(run: StudyRun) -> dict:
    return {"train_images": run.images_label, "epochs": run.epochs, "steps": run.steps}


def margins(run: StudyRun) -> list[dict]:
    """For each single model with smaller architectures beside it: the best ensemble of smaller models
    at fewer FLOPs, and its margin over the single model in accuracy points and NLL (nats)."""
    rows = []
    summary = run.summary
    for _, b in summary[summary["n"] == 1].iterrows():
        best = best_smaller_ensemble(summary, b)
        if best is None:
            continue
        rows.append({**_run_columns(run), "single": b["architecture"], "single_accuracy": b["accuracy_mean"],
                     "single_sd": b["accuracy_std"], "single_members": int(b["draws"]),
                     "ensemble": f"{int(best['n'])} x {best['architecture']}",
                     "ensemble_accuracy": best["accuracy_mean"], "flops_ratio": best["flops"] / b["flops"],
                     "margin": 100 * (best["accuracy_mean"] - b["accuracy_mean"]),
                     "nll_margin": b["nll_mean"] - best["nll_mean"]})
    return rows


def ensemble_gains(run: StudyRun) -> list[dict]:
    """Per architecture: mean single accuracy, what its largest ensemble adds (points), and how
    often its members disagree: the share of test images on which two members' predictions differ,
    alone and over the members' error rate (1 - their mean accuracy), both means over the draws
    (NaN without the run's points.csv)."""
    rows = []
    for arch, d in run.summary.groupby("architecture", sort=False):
        one, top = d[d["n"] == 1].iloc[0], d.sort_values("n").iloc[-1]
        disagreement = error = float("nan")
        if run.points is not None:
            draws = run.points[(run.points["architecture"] == arch) & (run.points["n"] == top["n"])]
            disagreement, error = draws["disagreement"].mean(), 1 - draws["mean_member_accuracy"].mean()
        rows.append({**_run_columns(run), "architecture": arch, "single": one["accuracy_mean"],
                     "largest_n": int(top["n"]), "ensemble": top["accuracy_mean"],
                     "gain": 100 * (top["accuracy_mean"] - one["accuracy_mean"]),
                     "disagreement": disagreement, "disagreement_per_error": disagreement / error})
    return rows


def compare(runs: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(margins, gains, summaries with their run's columns), ordered by training-set size, then epochs."""
    studies = sorted((read_study(r) for r in runs),
                     key=lambda s: (s.train_images is None, s.train_images or 0, s.epochs))
    keys = [(s.images_label, s.epochs) for s in studies]
    if len(set(keys)) != len(keys):
        raise SystemExit("check_training_length: two runs trained for the same number of epochs on "
                         f"training sets of the same size ({keys})")
    archs = [tuple(sorted(s.summary["architecture"].unique())) for s in studies]
    if len(set(archs)) != 1:
        raise SystemExit(f"check_training_length: the runs studied different architectures ({archs})")
    if len({s.images_label for s in studies}) > 1 and any(s.steps is None for s in studies):
        # runs on several set sizes compare by steps per member (the table's column, the figure's axis)
        raise SystemExit("check_training_length: a run has no finished member, so no steps to compare by")
    m = pd.DataFrame([r for s in studies for r in margins(s)])
    g = pd.DataFrame([r for s in studies for r in ensemble_gains(s)])
    allsum = pd.concat([s.summary.assign(**_run_columns(s)) for s in studies], ignore_index=True)
    return m, g, allsum


def _steps(value) -> str:
    return "-" if pd.isna(value) else f"{int(value):,}"


def _share(value: float, fmt: str = ".1%") -> str:
    return "-" if pd.isna(value) else format(value, fmt)


def format_table(m: pd.DataFrame, g: pd.DataFrame) -> str:
    lines = ["The best ensemble of smaller models at fewer FLOPs against each single model "
             "(margin > 0: the paper's claim holds)", "",
             "| train images | epochs | steps per member | single model | its accuracy (sd over members) | "
             "ensemble | its accuracy | FLOPs | margin (points) | NLL margin (nats) |",
             "|---:|---:|---:|---|---:|---|---:|---:|---:|---:|"]
    for _, r in m.iterrows():
        lines.append(f"| {r['train_images']} | {r['epochs']} | {_steps(r['steps'])} | {r['single']} | "
                     f"{100 * r['single_accuracy']:.2f}% ({100 * r['single_sd']:.2f}, {r['single_members']}) | "
                     f"{r['ensemble']} | {100 * r['ensemble_accuracy']:.2f}% | {r['flops_ratio']:.2f}x | "
                     f"{r['margin']:+.2f} | {r['nll_margin']:+.3f} |")
    lines += ["", "What each architecture's largest ensemble adds over its single models", "",
              "| train images | epochs | architecture | single (mean) | largest ensemble | its accuracy | "
              "gain (points) | members' disagreement | over their error rate |",
              "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for _, r in g.iterrows():
        lines.append(f"| {r['train_images']} | {r['epochs']} | {r['architecture']} | {100 * r['single']:.2f}% | "
                     f"n = {r['largest_n']} | {100 * r['ensemble']:.2f}% | {r['gain']:+.2f} | "
                     f"{_share(r['disagreement'])} | {_share(r['disagreement_per_error'], '.2f')} |")
    return "\n".join(lines) + "\n"


LINE_STYLES = ("-", "--", ":", "-.")


def figure(m: pd.DataFrame, allsum: pd.DataFrame, path: Path) -> Path:
    """Accuracy and margins against epochs (one training set) or steps per member (several; one line
    style per set, the first one's markers filled)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(dict.fromkeys(allsum["train_images"]))
    x = "epochs" if len(sizes) == 1 else "steps"  # compare() saw that every run has its steps
    xlabel = "epochs per member" if x == "epochs" else "optimizer steps per member"

    def style(size: str) -> dict:
        i = sizes.index(size)
        return {"ls": LINE_STYLES[i % len(LINE_STYLES)], "mfc": None if i == 0 else "white"}

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (arch, d) in enumerate(allsum.groupby("architecture", sort=False)):
        for (n, size), dn in d.groupby(["n", "train_images"], sort=False):
            dn = dn.sort_values(x)
            err = 100 * dn["accuracy_std"].fillna(0) if n == 1 else None
            label = f"{n} x {arch}" if size == sizes[0] else None
            a.errorbar(dn[x], 100 * dn["accuracy_mean"], yerr=err, color=colors[i % len(colors)],
                       marker="o", ms=3 + 2 * n, lw=1, alpha=0.45 + 0.18 * min(n, 3), capsize=3,
                       label=label, **style(size))
    if len(sizes) > 1:  # one legend entry per training set, for its line style
        for size in sizes:
            a.plot([], [], color="gray", marker="o", label=f"{size} training images", **style(size))
    a.set_xlabel(xlabel)
    a.set_ylabel("test accuracy (%)")
    a.set_title("accuracy by training length")
    a.legend(fontsize=8)
    singles = list(dict.fromkeys(m["single"]))
    for (single, size), d in m.groupby(["single", "train_images"], sort=False):
        d = d.sort_values(x)
        c = colors[(singles.index(single) + 1) % len(colors)]
        on = "" if len(sizes) == 1 else f" ({size} images)"
        b.plot(d[x], d["margin"], marker="o", color=c, label=f"best smaller ensemble - {single}{on}",
               **style(size))
        band = f"+-1 sd of {single}'s members{on}"
        if len(d) > 1:
            b.fill_between(d[x], -100 * d["single_sd"], 100 * d["single_sd"], color=c, alpha=0.12, label=band)
        else:  # one run on this training set: its band is a bar
            b.errorbar(d[x], [0.0], yerr=100 * d["single_sd"], color=c, alpha=0.3, lw=4, capsize=0, label=band)
    b.axhline(0, color="k", lw=0.8)
    ticks: list[float] = []  # each run's training length, but none within 15% of another
    for t in sorted(allsum[x].unique()):
        if not ticks or t > 1.15 * ticks[-1]:
            ticks.append(t)
    for ax in (a, b):  # log scale, ticked at the runs' own training lengths
        ax.set_xscale("log")
        ax.set_xticks(ticks, [f"{int(t):,}" for t in ticks])
        ax.minorticks_off()
    b.set_xlabel(xlabel)
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
