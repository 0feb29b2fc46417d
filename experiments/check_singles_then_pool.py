"""Search each ensemble size (the paper), or search single models and recombine them? Two runs of
equal member budget compared: one that searched sizes 1, 2 and 3 with a controller each, and one
that searched single models only, whose pairs and triples come from its member pool (`nas pool`).

    nas search --config experiments/search_cpu.py --set sizes=1 --set samples_per_size=120 \\
        --run-dir runs/search_cpu_singles
    nas pool runs/search_cpu --holdout; nas pool runs/search_cpu_singles --sizes 1,2,3 --holdout
    nas retrain runs/search_cpu_singles --pool --pareto --recipe fast --epochs 4 --train-examples 10000
    python -m experiments.check_singles_then_pool runs/search_cpu runs/search_cpu_singles \\
        --setting fast4-n10000 --out experiments/results/DIR

Two readings, per ensemble size:

- **held out, on the proxy** (each run's ``pool_holdout.csv``; the halvings are seeded by their
  index, so over the same validation images both runs' picks are scored on the same halves): the
  best ensemble of each strategy chosen on one half of the validation images and scored on the
  other, and the paired difference between strategies over the halvings;
- **retrained** (each run's ``retrain.jsonl`` in one setting): each strategy's retrained Pareto
  front by test accuracy, its best, and how many of its ensembles of two or more beat every
  retrained single model of either run at no higher max latency.

Strategies: "sizes searched" (the first run's searched ensembles), "its pool" (the first run's
pool), "singles searched" (the second run's, size 1) and "singles + pool" (the second run's pool).
Writes ``OUT/singles_then_pool.txt`` and ``OUT/singles_then_pool.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from nas.words import counted

STRATEGIES = {("joint", "searched"): "sizes searched", ("joint", "pool"): "its pool",
              ("singles", "searched"): "singles searched", ("singles", "pool"): "singles + pool"}


def held_out(joint: Path, singles: Path) -> pd.DataFrame:
    """Per size, each strategy's held-out accuracy (mean over halvings) and the paired differences
    of "singles + pool" against the first run's two strategies, in accuracy points."""
    a, b = (pd.read_csv(p / "pool_holdout.csv") for p in (joint, singles))
    m = a.merge(b, on=["split", "size"], suffixes=("_joint", "_singles"))
    if (m["score_images_joint"] != m["score_images_singles"]).any():
        raise SystemExit("check_singles_then_pool: the runs' halvings differ (another validation split?)")
    rows = []
    for size, d in m.groupby("size"):
        row = {"size": int(size), "halvings": len(d),
               "sizes searched": d["searched_score_accuracy_joint"].mean(),
               "its pool": d["pool_score_accuracy_joint"].mean(),
               "singles searched": d["searched_score_accuracy_singles"].mean() if size == 1 else np.nan,
               "singles + pool": d["pool_score_accuracy_singles"].mean()}
        for ref, col in (("sizes searched", "searched_score_accuracy_joint"), ("its pool", "pool_score_accuracy_joint")):
            diff = 100 * (d["pool_score_accuracy_singles"] - d[col])
            row[f"vs {ref}"] = diff.mean()
            row[f"vs {ref} sd"] = diff.std(ddof=1)
        rows.append(row)
    return pd.DataFrame(rows)


def retrained(joint: Path, singles: Path, slug: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every retrained ensemble of both runs in setting ``slug`` with its strategy, and each one of
    two or more members next to the best retrained single model of either run at no higher latency."""
    from nas.retrained import against_singles, member_frame, retrain_frame, setting_slug
    from nas.store import RunDir

    frames, members = [], []
    for name, path in (("joint", joint), ("singles", singles)):
        run = RunDir(path)
        rows = run.retrains()
        f = retrain_frame(rows)
        f = f[[setting_slug(*s) == slug for s in zip(f["recipe"], f["epochs"], f["train_examples"])]]
        if f.empty:
            raise SystemExit(f"check_singles_then_pool: {path}: nothing retrained in setting {slug}")
        if name == "singles":  # a search of single models is its own pool of single models
            f = f[(f["source"] == "searched") | (f["size"] > 1)]
        frames.append(f.assign(strategy=[STRATEGIES[(name, s)] for s in f["source"]]))
        members.append(member_frame(rows, run.records()))
    ensembles = pd.concat(frames, ignore_index=True)
    # an ensemble both runs retrained (the same members and seeds) is compared once, for each strategy
    versus = against_singles(ensembles.drop_duplicates("ensemble_id"), pd.concat(members, ignore_index=True))
    versus = versus.merge(ensembles[["ensemble_id", "strategy"]], on="ensemble_id")
    return ensembles, versus


def retrained_table(ensembles: pd.DataFrame, versus: pd.DataFrame) -> pd.DataFrame:
    from nas.retrained import retrained_fronts

    rows = []
    for (size, strategy), d in ensembles.groupby(["size", "strategy"], sort=True):
        best = d.loc[d["test_accuracy"].idxmax()]
        front = retrained_fronts(d.drop(columns=["strategy"]))
        v = versus[(versus["size"] == size) & (versus["strategy"] == strategy)]
        rows.append({"size": int(size), "strategy": strategy, "retrained": len(d),
                     "best test": best["test_accuracy"], "at ms": best["latency_max_ms"], "front points": len(front),
                     "front": " ".join(f"{a:.4f}@{ms:.2f}" for a, ms in
                                       sorted(zip(front["test_accuracy"], front["latency_max_ms"]), key=lambda t: t[1])),
                     "beat every single": f"{int((v['margin'] > 0).sum())} of {len(v)}" if size > 1 else "-"})
    return pd.DataFrame(rows)


def figure(ensembles: pd.DataFrame, out: Path, label: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.retrained import retrained_fronts

    colors = {"sizes searched": "tab:blue", "its pool": "tab:cyan", "singles searched": "tab:red",
              "singles + pool": "tab:orange"}
    sizes = sorted(ensembles["size"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4.2), sharey=True)
    singles = ensembles[ensembles["size"] == 1]
    for ax, size in zip(np.atleast_1d(axes), sizes):
        if size > 1:  # every retrained single model, for reference
            ax.scatter(singles["latency_max_ms"], 100 * singles["test_accuracy"], s=10, c="lightgray",
                       label="retrained one-member samples, both runs")
        for strategy, d in ensembles[ensembles["size"] == size].groupby("strategy"):
            c = colors[strategy]
            ax.scatter(d["latency_max_ms"], 100 * d["test_accuracy"], s=22, c=c, alpha=0.8, label=strategy)
            f = retrained_fronts(d.drop(columns=["strategy"])).sort_values("latency_max_ms")
            ax.step(f["latency_max_ms"], 100 * f["test_accuracy"], where="post", c=c, lw=1.2)
        ax.set_title(counted(size, "member"))
        ax.set_xlabel("max member latency, ms (Pixel-1 model)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    np.atleast_1d(axes)[0].set_ylabel("test accuracy, %")
    fig.suptitle(f"Retrained ({label}): sizes searched vs single models searched then recombined", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("joint", type=Path, help="the run that searched sizes 1, 2 and 3")
    p.add_argument("singles", type=Path, help="the run that searched single models only")
    p.add_argument("--setting", default="fast4-n10000", help="retraining setting slug (default fast4-n10000)")
    p.add_argument("--held-out-only", action="store_true",
                   help="only the held-out comparison on the proxy (runs not retrained): OUT/singles_then_pool.txt")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from nas.retrained import setting_label

    for run in (args.joint, args.singles):
        if not (run / "pool_holdout.csv").is_file():
            print(f"check_singles_then_pool: {run}: no pool_holdout.csv; run `nas pool {run} --holdout` first",
                  file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_colwidth", 120)
    held = held_out(args.joint, args.singles)
    lines = [f"joint: {args.joint}; singles: {args.singles}",
             "held out on the proxy (validation accuracy of each strategy's pick, chosen on one half and scored on "
             "the other; 'vs': singles + pool minus that strategy, points, mean and sd over the halvings):",
             held.to_string(index=False, float_format=lambda x: f"{x:.4f}")]
    written = [args.out / "singles_then_pool.txt"]
    if not args.held_out_only:
        ensembles, versus = retrained(args.joint, args.singles, args.setting)
        recipe, epochs, n = ensembles.iloc[0][["recipe", "epochs", "train_examples"]]
        label = setting_label(recipe, int(epochs), int(n))
        lines += ["", f"retrained ({label}; test accuracy; front as accuracy@max ms; 'beat every single': ensembles "
                  "above every retrained single model of either run, members included, at no higher max latency):",
                  retrained_table(ensembles, versus).to_string(index=False, float_format=lambda x: f"{x:.4f}")]
        written.append(args.out / "singles_then_pool.png")
        figure(ensembles, written[1], label)
    text = "\n".join(lines)
    written[0].write_text(text + "\n")
    print(text)
    print("written: " + ", ".join(str(w) for w in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
