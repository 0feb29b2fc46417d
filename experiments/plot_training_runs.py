"""Training runs side by side: each run's loss per epoch and its validation accuracy, in one figure.

    python -m experiments.plot_training_runs experiments/results/cpu_full_schedule_2026-12-05/*.json \
        --out experiments/results/cpu_full_schedule_2026-12-05/runs.png

Each argument is the JSON object of ``nas train --json`` (or a study's ``records.jsonl``, one member
record a line, named by the study's folder and the member's seed, with the trainer settings of the
``config.json`` beside it). Left, the mean training loss of each epoch; right, the validation accuracy as is
and, where the run scored test-time flips too, with them. Losses under label smoothing have a floor
above zero (about 0.50 nats at 0.1 over 10 classes), so those lines are dashed: a dashed line and a
solid one are not comparable in height, only in shape. A file that is not such a record is one error
line and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nas.store import RunDir  # noqa: E402
from search_space.errors import UserError  # noqa: E402


@dataclass(frozen=True)
class TrainingRun:
    """What the figure needs of one trained member."""

    name: str
    loss_curve: tuple[float, ...]
    val_accuracy: float
    as_is: float | None  # the accuracy without test-time flips, where the run scored with them
    label_smoothing: float | None  # None: not recorded


def read_runs(path: Path) -> list[TrainingRun]:
    """The finished members of one ``nas train --json`` file or a run's ``records.jsonl`` (failed ones
    left out); the latter read as the run store reads it (nas.store.RunDir: a half-written last line,
    of a study still running, is left out) with the trainer settings of the run's config.json."""
    study_trainer = None
    try:
        if path.suffix == ".json":
            objs = [json.loads(path.read_text())]
        elif path.name == "records.jsonl":
            if not path.is_file():
                raise ValueError(f"{path}: cannot read (no such file)")
            run = RunDir(path.parent)
            objs = run.records()
            if run.exists():  # a study's records leave the trainer settings to its config.json
                study_trainer = run.read_config().get("trainer")
        else:
            raise ValueError(f"{path}: expected a nas train --json file (.json) or a run's records.jsonl")
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg}, line {e.lineno})") from None
    except UserError as e:
        raise ValueError(str(e)) from None
    runs = []
    for i, d in enumerate(objs):
        seed = d.get("seed") if isinstance(d, dict) else None
        name = path.stem if path.suffix == ".json" else f"{path.parent.name}:{i + 1 if seed is None else f'seed{seed}'}"
        if not isinstance(d, dict) or "status" not in d:
            raise ValueError(f"{path}: {name} is not a member record (no 'status')")
        if d["status"] != "ok":
            continue
        if not d.get("loss_curve") or "val_accuracy" not in d:
            raise ValueError(f"{path}: {name} has no loss_curve or val_accuracy")
        views = d.get("view_accuracies") or []
        smoothing = (d.get("trainer") or study_trainer or {}).get("label_smoothing")
        runs.append(TrainingRun(name, tuple(float(x) for x in d["loss_curve"]), float(d["val_accuracy"]),
                                float(views[0]) if len(views) == 2 else None,
                                None if smoothing is None else float(smoothing)))
    return runs


def figure(runs: list[TrainingRun], path: Path) -> Path:
    """Loss per epoch (left) and accuracy as is / with flips (right), one colour per run."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    as_is = [r.val_accuracy if r.as_is is None else r.as_is for r in runs]
    left = max(0.0, 100 * min(as_is) - 5)
    for i, r in enumerate(runs):
        c = colors[i % len(colors)]
        smoothed = r.label_smoothing is not None and r.label_smoothing > 0
        ls = "--" if smoothed else "-"
        label = r.name + (f" (label smoothing {r.label_smoothing:g})" if smoothed else "")
        ax_loss.plot(range(1, len(r.loss_curve) + 1), r.loss_curve, ls, color=c, marker=".", label=label)
        ax_acc.barh(i, 100 * as_is[i], color=c, alpha=0.9)
        # the as-is figure at the bar's visible start: a flips tick is near its end
        ax_acc.text(left + 0.2, i, f"{100 * as_is[i]:.2f}", va="center", fontsize=8, color="white", fontweight="bold")
        if r.as_is is not None:
            ax_acc.plot([100 * r.val_accuracy], [i], "k|", markersize=14)
            ax_acc.text(100 * r.val_accuracy + 0.2, i, f"flips {100 * r.val_accuracy:.2f}", fontsize=7, va="center")
    ax_loss.set(xlabel="epoch", ylabel="mean training loss (nats)", title="training loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=7)
    ax_acc.set(xlabel="validation accuracy (%): bar as is, | with test-time flips", yticks=range(len(runs)),
               yticklabels=[r.name for r in runs], xlim=(left, 100 * max(r.val_accuracy for r in runs) + 4))
    ax_acc.invert_yaxis()
    ax_acc.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+", type=Path, help="nas train --json outputs or records.jsonl files")
    p.add_argument("--out", type=Path, required=True, help="the PNG to write")
    args = p.parse_args(argv)
    try:
        runs = [r for f in args.files for r in read_runs(f)]
    except ValueError as e:
        print(f"plot_training_runs: {e}", file=sys.stderr)
        return 2
    if not runs:
        print("plot_training_runs: no finished run in the files given", file=sys.stderr)
        return 2
    print(figure(runs, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
