"""The paper's scaling studies: ensembles of n independently trained copies of one architecture,
accuracy against total FLOPs, one curve per architecture (Kondratyuk et al., Figures 1 and 2).

    train: for seed in 0..members-1, for each architecture: one member (cached by content key)
    points: for each architecture and n = 1..members, ``draws`` random n-subsets of its trained
            members (every subset when there are no more than ``draws``), geometric-mean ensemble
            -> accuracy, NLL on the evaluation split
    findings: for each single model B, the cheapest ensemble of a smaller architecture that is at
            least as accurate at fewer total FLOPs, if any

Trained members live in the study directory's member cache (``members/KEY.npz``, the search's
format and key), so a study that is killed, rerun or extended (more members, more draws) trains
only what is missing. Training goes seed by seed, each seed's architectures handed to the evaluator
together (so a pipelined or Ray backend overlaps them), so that a time-limited run has every
architecture's first members before anyone's eighth.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from nas.config import load_config_dataset
from nas.ensemble import evaluate_ensemble
from nas.evaluators import Evaluator, MemberJob, SequentialEvaluator, member_summary, result_line
from nas.search import member_key, progress_prefix
from nas.store import RunDir
from nas.words import counted
from search_space import zoo
from search_space.errors import UserError, check_seed
from search_space.layers import count
from search_space.space import SMALL_INPUT_MAX, adapt_for_small_input
from search_space.spec import ArchSpec, MobileNetSpec
from trainer.config import TrainConfig
from trainer.data import Dataset, Split, check_image_size, test_split, validation_split

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """One scaling study. ``architectures`` are zoo names (``wrn-16-4``, ``efficientnet-b2``, ...).

    Resolution: ``resolution_scale`` multiplies each architecture's own resolution, which is the
    data set's native one for WRNs and the published one (224..456) for EfficientNets; CIFAR-10
    configs use 32/224, which keeps b0 at the native 32 px and scales b1..b5 to 34..65 px as the
    compound rule does. None runs WRNs at the native size and EfficientNets at the published one.
    ``width_multiplier`` shrinks non-WRN members (CPU miniatures); WRNs are scaled by their k.
    """

    architectures: tuple[str, ...] = ("wrn-16-1", "wrn-16-2", "wrn-16-4", "wrn-16-8")
    dataset: str = "cifar10"
    data_dir: str | None = None
    manual_dir: str | None = None
    image_size: int | None = None  # crop and resize a variable-size TFDS set (ImageNet) to this many px
    members: int = 8  # independently trained models per architecture = the largest ensemble
    draws: int = 8  # random member subsets per (architecture, n)
    eval_split: str = "test"  # "test" (the paper's) or "validation" (carved from train)
    val_size: int = 5000  # for eval_split="validation"
    train_examples: int | None = None  # class-balanced subset of the training split
    test_examples: int | None = None  # class-balanced subset of the evaluation split
    resolution_scale: float | None = None
    width_multiplier: float = 1.0
    seed: int = 0
    trainer: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        object.__setattr__(self, "architectures", tuple(str(a) for a in self.architectures))
        if not self.architectures:
            raise UserError("architectures: name at least one (e.g. wrn-16-1)")
        for a in self.architectures:
            if not zoo.is_named(a):
                raise UserError(f"architectures: unknown name {a!r}; known: {', '.join(zoo.named_architectures())}")
        if len(set(self.architectures)) != len(self.architectures):
            raise UserError(f"architectures: listed twice in {self.architectures!r}")
        if not 1 <= self.members <= 64:
            raise UserError(f"members: must be in 1..64, got {self.members!r}")
        if self.draws < 1:
            raise UserError(f"draws: must be positive, got {self.draws!r}")
        if self.eval_split not in ("test", "validation"):
            raise UserError(f"eval_split: must be 'test' or 'validation', got {self.eval_split!r}")
        if self.resolution_scale is not None and not 0 < self.resolution_scale <= 4:
            raise UserError(f"resolution_scale: must be in (0, 4], got {self.resolution_scale!r}")
        if not 0 < self.width_multiplier <= 4:
            raise UserError(f"width_multiplier: must be in (0, 4], got {self.width_multiplier!r}")
        check_image_size(self.image_size)
        check_seed(self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def architecture_spec(name: str, config: StudyConfig, native: int) -> ArchSpec:
    """The member spec a study trains for ``name`` on a data set of ``native`` px."""
    wrn = name.lower().startswith("wrn")
    base = native if wrn else zoo.get(name).resolution
    res = base if config.resolution_scale is None else max(8, int(round(base * config.resolution_scale)))
    if wrn:
        return zoo.get(name, resolution=res)
    spec = zoo.get(name, resolution=res, width_multiplier=config.width_multiplier)
    # ImageNet networks on small data (CIFAR 32 px, MNIST 28 px) take the search space's small-input
    # rule, decided by the data's native size as in the search: stride 8 instead of 32, so that a
    # 32 px input does not end as a 1x1 feature map.
    if isinstance(spec, MobileNetSpec) and native <= SMALL_INPUT_MAX and spec.stem_stride == 2:
        spec = adapt_for_small_input(spec)
    return spec


def study_split(config: StudyConfig, ds: Dataset) -> Split:
    if config.eval_split == "test":
        return test_split(ds, config.seed, config.train_examples, config.test_examples)
    split = validation_split(ds, config.val_size, seed=config.seed, train_examples=config.train_examples)
    if config.test_examples is not None and config.test_examples < len(split.y_val):
        split = dataclasses.replace(split, x_val=split.x_val[: config.test_examples],
                                    y_val=split.y_val[: config.test_examples])
    return split


@dataclasses.dataclass(frozen=True)
class TrainedMember:
    architecture: str
    seed: int
    status: str
    accuracy: float
    logits: np.ndarray | None


def train_study_members(run: RunDir, config: StudyConfig, split: Split, log: Log,
                        deadline: float | None = None, train: bool = True,
                        evaluator: Evaluator | None = None) -> dict[str, list[TrainedMember]]:
    """Train (or read back) every member, seed by seed, each seed's architectures together.

    Starts no new seed once ``time.monotonic()`` passes ``deadline``; with ``train=False`` only reads
    back what is already trained. ``evaluator`` (default: sequential) decides where members train.
    """
    specs = {a: architecture_spec(a, config, split.native_resolution) for a in config.architectures}
    from nas.search import versions

    evaluator = evaluator or SequentialEvaluator()
    provenance = versions()
    out: dict[str, list[TrainedMember]] = {a: [] for a in config.architectures}
    total, available, stopped = len(specs) * config.members, 0, False
    seeds = [config.seed + i for i in range(config.members)]
    keys_of = {seed: {a: member_key(spec, split, config.trainer, seed) for a, spec in specs.items()} for seed in seeds}
    # members to train in all, for the progress line ("[3/12, 5m10s, about 15m left]")
    to_train = sum(not run.member_path(k).is_file() for keys in keys_of.values() for k in keys.values()) if train else 0
    trained, start, first = 0, time.perf_counter(), None
    for seed in seeds:
        keys = keys_of[seed]
        arch_of = {k: a for a, k in keys.items()}
        missing = [MemberJob(keys[a], specs[a], seed, label=f"{a} seed {seed}") for a in specs
                   if not run.member_path(keys[a]).is_file()]
        if missing and train and not stopped and deadline is not None and time.monotonic() > deadline:
            log(f"study: time limit reached; {available}/{total} members trained, the rest left for a --resume")
            stopped = True
        if missing and train and not stopped:
            log(f"study: seed {seed}: training {', '.join(f'{arch_of[j.key]} {j.spec.resolution}px' for j in missing)} "
                f"({evaluator.name})")
            for job, r in evaluator.evaluate_many(missing, split, config.trainer):
                summary = {**member_summary(job, r), "architecture": arch_of[job.key]}
                run.save_member(job.key, summary, r.val_logits)
                run.append_record({**summary, "versions": provenance})  # where it ran: device, packages
                trained += 1
                elapsed = time.perf_counter() - start
                first = elapsed if first is None else first
                log(f"    {progress_prefix(trained, to_train, elapsed, first)}{arch_of[job.key]} seed {seed}: "
                    f"{result_line(r)}")
        for arch in specs:
            cached = run.load_member(keys[arch])
            if cached is None:
                continue
            summary, logits = cached
            ok = summary["status"] == "ok" and logits is not None
            out[arch].append(TrainedMember(arch, seed, summary["status"],
                                           float(summary["val_accuracy"]) if ok else float("nan"),
                                           logits if ok else None))
            available += 1
    return out


def member_subsets(count_ok: int, n: int, draws: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Every n-subset of range(count_ok) when there are at most ``draws``, else ``draws`` distinct
    random ones (sorted tuples), so small n average over all members and large n stay bounded."""
    if n > count_ok:
        return []
    if math.comb(count_ok, n) <= draws:
        return list(itertools.combinations(range(count_ok), n))
    seen: set[tuple[int, ...]] = set()
    while len(seen) < draws:  # terminates: C(count_ok, n) > draws distinct subsets exist
        seen.add(tuple(sorted(rng.choice(count_ok, size=n, replace=False).tolist())))
    return sorted(seen)


def study_points(config: StudyConfig, members: dict[str, list[TrainedMember]], labels: np.ndarray,
                 native: int, num_classes: int) -> pd.DataFrame:
    """One row per (architecture, n, draw): FLOPs and params of the whole ensemble, metrics."""
    rows = []
    for ai, arch in enumerate(config.architectures):
        spec = architecture_spec(arch, config, native)
        c = count(spec, num_classes)
        ok = [m for m in members.get(arch, []) if m.logits is not None]
        for n in range(1, len(ok) + 1):
            rng = np.random.default_rng([config.seed, ai, n])
            for draw, subset in enumerate(member_subsets(len(ok), n, config.draws, rng)):
                chosen = [ok[i] for i in subset]
                m = evaluate_ensemble([x.logits for x in chosen], labels)
                rows.append({"architecture": arch, "n": n, "draw": draw,
                             "seeds": " ".join(str(x.seed) for x in chosen), "resolution": spec.resolution,
                             "multiply_adds": n * c.multiply_adds, "flops": n * c.flops, "params": n * c.params,
                             "accuracy": m.accuracy, "nll": m.nll, "accuracy_arithmetic": m.accuracy_arithmetic,
                             "nll_arithmetic": m.nll_arithmetic, "ece": m.ece,
                             "mean_member_accuracy": float(np.mean(m.member_accuracies)),
                             "disagreement": m.disagreement})
    return pd.DataFrame(rows, columns=["architecture", "n", "draw", "seeds", "resolution", "multiply_adds", "flops",
                                       "params", "accuracy", "nll", "accuracy_arithmetic", "nll_arithmetic", "ece",
                                       "mean_member_accuracy", "disagreement"])


def summarize(points: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over draws per (architecture, n)."""
    if points.empty:
        return pd.DataFrame(columns=["architecture", "n", "draws", "flops", "params", "accuracy_mean",
                                     "accuracy_std", "nll_mean", "nll_std"])
    g = points.groupby(["architecture", "n"], sort=False)
    return g.agg(draws=("draw", "count"), flops=("flops", "first"), params=("params", "first"),
                 accuracy_mean=("accuracy", "mean"), accuracy_std=("accuracy", "std"),
                 nll_mean=("nll", "mean"), nll_std=("nll", "std")).reset_index()


def best_smaller_ensemble(summary: pd.DataFrame, single: pd.Series) -> pd.Series | None:
    """The most accurate ensemble (n >= 2) of architectures smaller than ``single`` (a summary row with
    n = 1) at fewer total FLOPs than it, the fewer FLOPs first among equals; None if there is none."""
    singles = summary[summary["n"] == 1]
    smaller = singles[singles["flops"] < single["flops"]]["architecture"]
    near = summary[summary["architecture"].isin(smaller) & (summary["n"] >= 2) & (summary["flops"] < single["flops"])]
    if near.empty:
        return None
    return near.sort_values(["accuracy_mean", "flops"], ascending=[False, True]).iloc[0]


def findings(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """For each single model B: the cheapest ensemble (n >= 2) of a smaller architecture whose mean
    accuracy is at least B's at fewer total FLOPs - the paper's claim, tested point by point."""
    out = []
    singles = summary[summary["n"] == 1]
    for _, b in singles.iterrows():
        smaller = singles[singles["flops"] < b["flops"]]["architecture"]
        cand = summary[summary["architecture"].isin(smaller) & (summary["n"] >= 2)
                       & (summary["flops"] < b["flops"]) & (summary["accuracy_mean"] >= b["accuracy_mean"])]
        row: dict[str, Any] = {"single": b["architecture"], "single_accuracy": float(b["accuracy_mean"]),
                               "single_flops": int(b["flops"]), "beaten": not cand.empty}
        if not cand.empty:
            best = cand.sort_values(["flops", "accuracy_mean"], ascending=[True, False]).iloc[0]
            row.update({"ensemble": f"{int(best['n'])} x {best['architecture']}",
                        "ensemble_accuracy": float(best["accuracy_mean"]), "ensemble_flops": int(best["flops"]),
                        "flops_ratio": float(best["flops"] / b["flops"])})
        else:  # how near it came: the most accurate ensemble of smaller models at fewer FLOPs, if any
            best = best_smaller_ensemble(summary, b)
            if best is not None:
                row.update({"closest": f"{int(best['n'])} x {best['architecture']}",
                            "closest_accuracy": float(best["accuracy_mean"]), "closest_flops": int(best["flops"]),
                            "closest_flops_ratio": float(best["flops"] / b["flops"]),
                            "shortfall": float(b["accuracy_mean"] - best["accuracy_mean"])})
        out.append(row)
    return out


def format_findings(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        head = f"{r['single']} ({100 * r['single_accuracy']:.2f}%, {r['single_flops'] / 1e9:.3g} GFLOPs)"
        if r["beaten"]:
            lines.append(f"{head}: matched by {r['ensemble']} at {100 * r['ensemble_accuracy']:.2f}% with "
                         f"{r['flops_ratio']:.2f}x its FLOPs")
        else:
            lines.append(f"{head}: no ensemble of smaller models is as accurate at fewer FLOPs"
                         + (f"; closest {r['closest']} at {100 * r['closest_accuracy']:.2f}% ({100 * r['shortfall']:.2f} "
                            f"points short) with {r['closest_flops_ratio']:.2f}x its FLOPs" if "closest" in r else ""))
    return "\n".join(lines)


def run_study(run: RunDir, config: StudyConfig, *, dataset: Dataset | None = None, log: Log | None = None,
              max_minutes: float | None = None, train: bool = True,
              evaluator: Evaluator | None = None) -> dict[str, Any]:
    """Train what is missing, then write points.csv, summary.csv, findings.json and the figure."""
    import json

    from nas.plots import scaling_figure
    from nas.search import enable_compilation_cache
    from nas.store import _atomic_write

    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    enable_compilation_cache(run)
    ds = dataset if dataset is not None else load_config_dataset(config)
    split = study_split(config, ds)
    epochs = counted(config.trainer.epochs, "epoch")
    log(f"study: {', '.join(config.architectures)} x {config.members} members on {ds.name} "
        f"({len(split.y_train)} train / {len(split.y_val)} {config.eval_split} images), {epochs} each")
    deadline = time.monotonic() + 60 * max_minutes if max_minutes else None
    members = train_study_members(run, config, split, log, deadline, train, evaluator)
    points = study_points(config, members, split.y_val, split.native_resolution, split.num_classes)
    summary = summarize(points)
    found = findings(summary)
    points.to_csv(run.path / "points.csv", index=False)
    summary.to_csv(run.path / "summary.csv", index=False)
    _atomic_write(run.path / "findings.json", json.dumps(found, indent=1).encode())
    trained = {a: len(m) for a, m in members.items()}
    figure = None
    if not points.empty:
        title = (f"{ds.name}, {epochs}, {len(split.y_val)} {config.eval_split} images; "
                 f"members trained: " + ", ".join(f"{a} {k}" for a, k in trained.items()))
        figure = scaling_figure(points, run.path / "plots" / "scaling.png", title, config.eval_split)
    log(format_findings(found))
    return {"points": run.path / "points.csv", "summary": run.path / "summary.csv", "figure": figure,
            "findings": found, "trained": trained}
