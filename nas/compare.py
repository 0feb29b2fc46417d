"""`nas compare`: several searches over the same data, trainer and space, side by side.

The question it answers is the one a controller has to earn its keep on: at the same cost, did
REINFORCE (or evolution, a reward setting, a seed) find better ensembles than random search? Per
ensemble size and run it reports the samples and the distinct members they needed (the cost: a
member an earlier sample of the run used costs nothing again, so an evolution child usually costs
one of its n; members a run imported from a shared --member-cache count as its own), the best
accuracy, the best reward and the hypervolume of the Pareto front (accuracy up, max member latency
down), and draws each size's fronts over each other with the best accuracy found so far against
members trained.

With ``--retrained``, the same table and figure come from each run's searched ensembles as `nas
retrain` retrained them (one retraining setting, shared by the runs), with test accuracy in place of
the proxy's validation accuracy: the comparison for searches whose proxies differ (epochs, training
images), whose validation accuracies measure different things. Only the data, the space and the
latency device must agree then. Its cost column counts the distinct members retrained.

Hypervolume: the area the front dominates between latency 0 and a reference latency shared by the
compared runs (1.1 x the slowest ok sample of that size in any of them, so the slowest point still
counts), above accuracy 0; in accuracy x ms, larger is better. It grows when a front moves up or
left, so it ranks fronts that cross each other, which best accuracy alone cannot.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from nas.config import SpaceConfig, from_dict  # noqa: E402
from nas.pareto import pareto_front, records_frame  # noqa: E402
from nas.retrained import row_setting, row_source, setting_label, setting_slug  # noqa: E402
from nas.store import RunDir  # noqa: E402
from nas.words import counted  # noqa: E402
from search_space.errors import UserError  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402

# What must agree for accuracies and latencies to be comparable (config keys, dotted into nested
# ones); the controller and its settings (policy, evolution), the reward's target and exponents,
# the seed and the sample budget may differ: they are what one compares.
COMPARABLE_KEYS = ("dataset", "data_dir", "image_size", "val_size", "train_examples", "space", "trainer",
                   "reward.device")
# How members are run, not what they learn: per-layer or whole-member programs train the same
# network on the same batches (their floating-point sums differ in order, as on another machine),
# and the scoring batch size leaves the logits as they are.
EXECUTION_KEYS = ("trainer.compile_unit", "trainer.eval_batch_size")
# After retraining the proxy is what may differ: its trainer, training images and validation split.
RETRAINED_COMPARABLE_KEYS = ("dataset", "data_dir", "image_size", "space", "reward.device")
REFERENCE_LATENCY_FACTOR = 1.1


def hypervolume(front: pd.DataFrame, reference_ms: float) -> float:
    """Area dominated by a Pareto front (rows with ``latency_max_ms`` and ``accuracy``) between its
    points and (``reference_ms``, accuracy 0): sum over the front, by latency, of (reference -
    latency) x the accuracy it adds over the faster points."""
    area, below = 0.0, 0.0
    for lat, acc in sorted(zip(front["latency_max_ms"], front["accuracy"])):
        if acc > below and lat < reference_ms:
            area += (reference_ms - lat) * (acc - below)
            below = acc
    return float(area)


def load_runs(paths: list[str], keys: tuple[str, ...] = COMPARABLE_KEYS
              ) -> list[tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """(label, config, records) per run; one clear error when a run is missing or the runs differ in
    ``keys``, what makes their accuracies comparable."""
    if len(paths) < 2:
        raise UserError(f"give at least two run directories to compare (got {len(paths)})")
    resolved = [Path(p).resolve() for p in paths]
    for i, (p, where) in enumerate(zip(paths, resolved)):
        if where in resolved[:i]:  # the second time a run is named
            first = paths[resolved.index(where)]
            raise UserError(f"{p}: given twice{f' (as {first})' if first != p else ''}; compare different runs")
    loaded = []
    for p in paths:
        run = RunDir(p)
        cfg, records = run.read_search_config(), run.records()
        if not records:
            raise UserError(f"{p}: no records yet")
        loaded.append((cfg, records))
    names = [Path(p).resolve().name for p in paths]
    if len(set(names)) < len(names):  # two directories of the same name: the paths tell them apart
        names = list(paths)
    runs = [(f"{name} ({cfg.get('controller', '?')}, seed {cfg.get('seed', '?')})", cfg, records)
            for name, (cfg, records) in zip(names, loaded)]
    first_path, first = paths[0], _comparable(runs[0][1], keys)
    for p, (_, cfg, _) in zip(paths[1:], runs[1:]):
        mine = _comparable(cfg, keys)
        for key in sorted(set(mine) | set(first)):
            if mine.get(key) != first.get(key):
                raise UserError(f"{p} and {first_path} differ in {key!r} ({mine.get(key)!r} vs {first.get(key)!r}); "
                                "compare runs on the same data, trainer, space and latency device")
    return runs


def _comparable(config: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The config's ``keys`` as dotted leaves, less ``EXECUTION_KEYS``. The trainer and
    the space get their defaults filled in first, so that a run stored before a field existed (no
    ``compile_unit``) or with a default written out compares equal to one without it."""
    sections = {"trainer": TrainConfig, "space": SpaceConfig}
    out: dict[str, Any] = {}
    for key in keys:
        value = _get(config, key)
        if key in sections and isinstance(value, dict):
            try:
                value = dataclasses.asdict(from_dict(value, sections[key], f"{key}."))
            except (UserError, TypeError):  # a config this code cannot rebuild: compared as stored
                pass
        out.update(_leaves(key, value))
    return {k: v for k, v in out.items() if k not in EXECUTION_KEYS}


def _leaves(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for name, sub in value.items() for k, v in _leaves(f"{prefix}.{name}", sub).items()}
    return {prefix: list(value) if isinstance(value, tuple) else value}


def _get(config: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def retrained_runs(paths: list[str], setting: str | None = None
                   ) -> tuple[list[tuple[str, dict[str, Any], list[dict[str, Any]]]], str]:
    """``load_runs`` over the runs' searched ensembles as `nas retrain` retrained them with one setting
    (``setting``, a slug such as "fast4-n10000"; None: the one every run has), each as a record whose
    accuracy is its test accuracy and whose members are the distinct retrained (member, seed) pairs.
    Returns the runs and the setting's label."""
    runs = load_runs(paths, RETRAINED_COMPARABLE_KEYS)
    retrains = [[r for r in RunDir(p).retrains() if row_source(r) == "searched"] for p in paths]
    per_run = [{setting_slug(*row_setting(r)): row_setting(r) for r in rows} for rows in retrains]
    shared = sorted(set.intersection(*(set(s) for s in per_run)))
    if setting is None:
        if len(shared) != 1:
            had = "; ".join(f"{p}: {', '.join(sorted(s)) or 'none'}" for p, s in zip(paths, per_run))
            raise UserError(f"--retrained: {'no' if not shared else 'more than one'} retraining setting of searched "
                            f"ensembles is shared by every run ({had})"
                            + ("; choose one with --retrain-setting" if shared else "; `nas retrain` them alike first"))
        setting = shared[0]
    elif setting not in shared:
        raise UserError(f"--retrain-setting {setting}: not a setting every run retrained searched ensembles with "
                        f"(shared: {', '.join(shared) or 'none'})")
    key = per_run[0][setting]
    out = []
    for (label, cfg, records), rows in zip(runs, retrains):
        last = {r["ensemble_id"]: r for r in rows if row_setting(r) == key}  # an ensemble retrained twice: its last row
        members = {r["ensemble_id"]: r.get("members") for r in records}
        retrained = []
        for r in sorted(last.values(), key=lambda r: (int(r["size"]), int(r["sample"]))):
            named = r.get("members") or members.get(r["ensemble_id"]) or []
            retrained.append({"size": int(r["size"]), "sample": int(r["sample"]), "status": "ok",
                              "accuracy": float(r["test_accuracy"]), "latency_max_ms": float(r["latency_max_ms"]),
                              "reward": None, "ensemble_id": r["ensemble_id"],
                              "members": [{"key": f"{m['id']}-seed{m.get('seed')}"} for m in named]})
        out.append((label, cfg, retrained))
    return out, setting_label(*key)


def members_trained(records: list[dict[str, Any]]) -> dict[tuple[int, int], int]:
    """How many members each (size, sample) trained: member-cache keys no earlier record of the run
    used (records.jsonl is in evaluation order). What a sample costs: an ensemble whose members all
    came from the cache cost nothing, and a child in regularized evolution usually trains one
    member of its n. Records without member keys count 0."""
    seen: set[str] = set()
    out = {}
    for r in records:
        new = {m["key"] for m in r.get("members") or [] if m.get("key")} - seen
        seen |= new
        out[(int(r["size"]), int(r["sample"]))] = len(new)
    return out


def _cost_axis(d: pd.DataFrame, trained: dict[tuple[int, int], int]) -> tuple[list[int], str]:
    """x values for best-accuracy-so-far over the samples ``d`` (one size, by sample): cumulative
    members trained where the records say, else samples drawn."""
    new = [trained.get((int(n), int(i)), 0) for n, i in zip(d["size"], d["sample"])]
    if sum(new) == 0:
        return list(range(1, len(d) + 1)), "samples drawn"
    return list(np.cumsum(new)), "members trained"


def compare(runs: list[tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    """One row per (size, run): samples, members trained, failed, best accuracy, best reward, front
    points, hypervolume."""
    frames = [(label, records_frame(records)) for label, _, records in runs]
    trained = [members_trained(records) for _, _, records in runs]
    sizes = sorted({int(n) for _, df in frames for n in df["size"].unique()})
    rows = []
    for n in sizes:
        ok = [df[(df["size"] == n) & (df["status"] == "ok")] for _, df in frames]
        slowest = max((float(d["latency_max_ms"].max()) for d in ok if len(d)), default=0.0)
        reference = REFERENCE_LATENCY_FACTOR * slowest
        for (label, df), d, t in zip(frames, ok, trained):
            all_n = df[df["size"] == n]
            front = pareto_front(d) if len(d) else d
            rows.append({"size": n, "run": label, "samples": int(len(all_n)),
                         "members_trained": sum(v for (size, _), v in t.items() if size == n),
                         "failed": int((all_n["status"] != "ok").sum()),
                         "best_accuracy": float(d["accuracy"].max()) if len(d) else None,
                         "best_reward": float(d["reward"].max()) if len(d) and d["reward"].notna().any() else None,
                         "front_points": int(len(front)), "hypervolume": hypervolume(front, reference),
                         "reference_latency_ms": reference})
    return rows


def comparison_figure(runs: list[tuple[str, dict[str, Any], list[dict[str, Any]]]], rows: list[dict[str, Any]],
                      path: Path, retrained: str | None = None) -> Path:
    """Top row: each size's samples and fronts, one colour per run, out to the reference latency of
    ``rows`` (``compare(runs)``). Bottom row: best accuracy found so far against members trained
    (the search's cost; samples drawn for records without member keys). ``retrained``: the label
    of the retraining setting ``runs`` come from (``retrained_runs``): test accuracy, members
    retrained."""
    accuracy = "validation accuracy" if retrained is None else "test accuracy"
    frames = [(label, records_frame(records)) for label, _, records in runs]
    trained = [members_trained(records) for _, _, records in runs]
    references = {r["size"]: r["reference_latency_ms"] for r in rows}
    sizes = sorted(references)
    fig, axes = plt.subplots(2, len(sizes), figsize=(4.2 * len(sizes), 7.2), squeeze=False)
    colors = plt.get_cmap("tab10")
    for j, n in enumerate(sizes):
        top, bottom = axes[0][j], axes[1][j]
        xlabels = set()
        for i, ((label, df), t) in enumerate(zip(frames, trained)):
            d = df[df["size"] == n].sort_values("sample")
            ok = d[d["status"] == "ok"]
            if ok.empty:
                continue
            c = colors(i % 10)
            top.scatter(ok["latency_max_ms"], 100 * ok["accuracy"], s=12, alpha=0.35, color=c)
            f = pareto_front(ok)
            # the staircase bounding what the front dominates, out to the shared reference latency
            xs = list(f["latency_max_ms"]) + [references[n]]
            ys = list(100 * f["accuracy"]) + [100 * f["accuracy"].iloc[-1]]
            top.step(xs, ys, where="post", color=c, lw=1.6, label=label)
            top.scatter(f["latency_max_ms"], 100 * f["accuracy"], s=28, color=c, edgecolor="black", lw=0.5, zorder=4)
            best = d["accuracy"].where(d["status"] == "ok").cummax()
            xs, xlabel = _cost_axis(d, t)
            xlabels.add(xlabel)
            bottom.plot(xs, 100 * best, "-o", ms=3, drawstyle="steps-post", color=c, lw=1.6, label=label)
        top.set_title(f"{counted(n, 'member')}: samples and Pareto fronts", fontsize=9)
        top.set_xlabel("max member latency on Pixel 1 (ms)")
        bottom.set_xlabel("members retrained" if retrained else " / ".join(sorted(xlabels)) or "samples drawn")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
        if j == 0:
            top.set_ylabel(f"{accuracy} (%)")
            bottom.set_ylabel(f"best {accuracy} so far (%)")
            bottom.legend(fontsize=7)
    if retrained is not None:
        fig.suptitle(f"Searched ensembles retrained ({retrained}), in sample order", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_compare_cmd(args: Any) -> int:
    """`nas compare RUN RUN [...] [--out PATH] [--json]`."""
    import json

    if args.retrain_setting and not args.retrained:
        raise UserError("--retrain-setting: give it with --retrained")
    runs, setting = retrained_runs(args.runs, args.retrain_setting) if args.retrained else (load_runs(args.runs), None)
    rows = compare(runs)
    out = Path(args.out)
    try:
        comparison_figure(runs, rows, out, setting)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write: {e.strerror}") from None
    if args.json:
        print(json.dumps({"runs": [label for label, _, _ in runs], "sizes": rows, "figure": str(out),
                          "accuracy": "validation" if setting is None else "test", "retrain_setting": setting}))
        return 0
    if setting is not None:
        print(f"searched ensembles retrained ({setting}): samples are those retrained, members the distinct "
              "members retrained, accuracy their test accuracy")
    f = lambda x, p=4: "-" if x is None else f"{x:.{p}f}"  # noqa: E731
    width = max(len(r["run"]) for r in rows)
    print(f"{'size':>4}  {'run':<{width}}{'samples':>9}{'members':>9}{'failed':>8}{'best acc':>10}"
          f"{'best reward':>13}{'front':>7}{'hypervolume':>13}")
    for r in rows:
        print(f"{r['size']:>4}  {r['run']:<{width}}{r['samples']:>9}{r['members_trained']:>9}{r['failed']:>8}"
              f"{f(r['best_accuracy']):>10}{f(r['best_reward']):>13}{r['front_points']:>7}{r['hypervolume']:>13.4f}")
    print(f"hypervolume: accuracy x ms dominated below each size's reference latency "
          f"({REFERENCE_LATENCY_FACTOR} x its slowest ok sample in any run); figure {out}")
    return 0
