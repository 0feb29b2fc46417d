"""The paper's question asked of retrained members: under a cost budget, is the best ensemble of
smaller models more accurate than the best single model?

`nas retrain` leaves each retrained member's test logits in its folder (trainer/retrain.py). Every
distinct member retrained in one setting forms a pool (nas/pool.py's, with test logits in place of
the proxy's validation logits), and any k of them an ensemble whose geometric-mean accuracy costs
no training to know. Chosen and scored on the same test images, the best of many candidates would
be optimistic, so, as `nas pool --holdout` does for the proxy, each of ``splits`` seeded random
halvings of the test images chooses on one half and scores on the other: per size k and budget B,
the most accurate k-member ensemble on the first half whose cost is within B (ties: the cheaper) is
scored on the second. The single model is a size like any other: every retrained member, including
those searched as part of an ensemble, competes alone.

Costs: ``latency``, the maximum member latency on the Pixel-1 model (members run in parallel, the
search's reward), and ``flops``, the summed FLOPs (2 x multiply-adds) of the members, the paper's
axis. Budgets: the costs of every size's Pareto front on all the test images, the points at which a
best pick can change.

Sizes above two are searched exhaustively up to nas.pool.DEFAULT_LIMIT candidates, then by
nas.pool's beam, which extends the size below's (accuracy, max latency) front; under a FLOPs budget
that beam is a heuristic twice over, and reported as "beam" in the rows.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from nas.ensemble import log_softmax
from nas.pareto import pareto_front
from nas.pool import (DEFAULT_BEAM, DEFAULT_LIMIT, PoolMember, distinct_members, halving, search_sizes,
                      subset_accuracies)
from nas.retrained import member_retraining, retrain_seed, slug_options, slug_setting
from nas.store import RunDir
from search_space.errors import UserError
from search_space.spec import from_dict as spec_from_dict

COSTS = {"latency": "max member latency (ms, Pixel-1 model)", "flops": "summed FLOPs (2 x multiply-adds)"}


def retrained_settings(run: RunDir) -> list[str]:
    """The settings (slugs, e.g. fast12-n10000) in which some member's retraining finished (its test
    logits saved), sorted. Folders: "{member id}-seed{seed}-{slug}" (nas.retrained.retrain_dir)."""
    from trainer.retrain import SAVED_LOGITS

    slugs = {f.parent.name.split("-", 2)[-1] for f in (run.path / "retrain").glob(f"*-seed*-*/{SAVED_LOGITS}")}
    return sorted(s for s in slugs if slug_options(s) is not None)


def choose_setting(run: RunDir, setting: str | None, option: str) -> str:
    """``setting`` where members' retraining finished in it, else, not given, the one setting where
    any did; ``option`` names the command's flag in the one-line errors."""
    settings = retrained_settings(run)
    if not settings:
        raise UserError(f"{run.path}: no member retrained to the end yet (`nas retrain {run.path}` first)")
    if setting is None:
        if len(settings) > 1:
            raise UserError(f"{run.path}: members were retrained in several settings; choose one with {option} "
                            f"({', '.join(settings)})")
        return settings[0]
    if setting not in settings:
        raise UserError(f"{option} {setting}: no member retrained to the end in it (settings: {', '.join(settings)})")
    return setting


def retrained_pool(run: RunDir, slug: str, dataset: Any) -> tuple[list[PoolMember], np.ndarray, list[str]]:
    """The distinct members (one per network and seed) of the run's records whose retraining in
    setting ``slug`` finished, with their test log-probabilities, float32 (members, test images,
    classes), and the checkpoint folders they came from. ``dataset``: the run's, whose test set the
    logits were saved for. Raises UserError when fewer than two are there."""
    from trainer.retrain import saved_test_logits

    recipe, epochs, _ = slug_setting(slug)
    members: list[PoolMember] = []
    log_probs: list[np.ndarray] = []
    folders: list[str] = []
    for m in distinct_members(run.records(), int(run.read_search_config().get("seed", 0))):
        seed = retrain_seed(m.seed, recipe)  # moved by `nas retrain --reseed` (m.seed: the searched one)
        _, folder = member_retraining(run.path, spec_from_dict(m.spec), m.id, seed, slug)
        logits = saved_test_logits(folder, epochs, dataset)
        if logits is not None:
            members.append(m)
            log_probs.append(log_softmax(np.asarray(logits, np.float32)))
            folders.append(folder.name)
    if len(members) < 2:
        raise UserError(f"{run.path}: {len(members)} member{'' if len(members) == 1 else 's'} retrained in setting "
                        f"{slug} with test logits saved; the pool needs two or more (`nas retrain` first)")
    return members, np.stack(log_probs), folders


def subset_costs(members: list[PoolMember], subsets: np.ndarray, cost: str) -> np.ndarray:
    """Each row of ``subsets``' cost: its max member latency (ms) or its summed FLOPs."""
    if cost == "latency":
        return np.array([m.latency_ms for m in members])[subsets].max(1)
    if cost == "flops":
        return 2.0 * np.array([m.multiply_adds for m in members], np.float64)[subsets].sum(1)
    raise UserError(f"--cost {cost}: one of {', '.join(COSTS)}")


def best_within(accuracy: np.ndarray, costs: np.ndarray, budget: float) -> int | None:
    """The most accurate candidate costing at most ``budget`` (ties: the cheaper, then the first)."""
    ok = np.flatnonzero(costs <= budget)
    return None if not len(ok) else int(ok[np.lexsort((costs[ok], -accuracy[ok]))[0]])


def budget_check(members: list[PoolMember], log_probs: np.ndarray, labels: np.ndarray, sizes: Iterable[int],
                 cost: str = "latency", splits: int = 10, limit: int = DEFAULT_LIMIT, beam: int = DEFAULT_BEAM,
                 progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per split, size and budget: the pick chosen on one half of the images (its members'
    pool indices, cost and accuracy on that half) and its accuracy on the other half.
    ``beyond_singles``: the budget is above every member's own cost, so the single model it is
    compared with is the best of the pool, not one of that cost (under a FLOPs budget ensembles
    reach costs no pooled single model has; under max latency they cannot)."""
    labels = np.asarray(labels)
    if log_probs.shape[1] != len(labels):
        raise UserError(f"the saved test logits cover {log_probs.shape[1]} images, the test set {len(labels)}")
    sizes = sorted(set(sizes))
    if sizes[-1] > len(members):
        raise UserError(f"{len(members)} retrained members make no ensemble of size {sizes[-1]}")
    latency = np.array([m.latency_ms for m in members])
    costliest_single = float(subset_costs(members, np.arange(len(members))[:, None], cost).max())
    budgets: set[float] = set()
    for k, found in search_sizes(log_probs, labels, latency, sizes, limit, beam).items():
        if k in sizes:
            costs = subset_costs(members, found.subsets, cost)
            df = pd.DataFrame({"status": "ok", "accuracy": found.accuracy, "latency_max_ms": costs})
            budgets |= {float(c) for c in costs[pareto_front(df).index.to_numpy()]}
    rows = []
    for split in range(splits):
        if progress is not None:
            progress(f"halving {split + 1}/{splits}")
        choose, score = halving(len(labels), split)
        scored: dict[tuple[int, ...], float] = {}
        for k, found in search_sizes(log_probs[:, choose], labels[choose], latency, sizes, limit, beam).items():
            if k not in sizes:
                continue
            costs = subset_costs(members, found.subsets, cost)
            for budget in sorted(budgets):
                pick = best_within(found.accuracy, costs, budget)
                if pick is None:
                    continue
                subset = tuple(int(j) for j in found.subsets[pick])
                if subset not in scored:
                    scored[subset] = float(subset_accuracies(log_probs[:, score], labels[score], np.array([subset]))[0])
                rows.append({"split": split, "size": k, "budget": budget, "beyond_singles": budget > costliest_single,
                             "cost": float(costs[pick]),
                             "choose_accuracy": float(found.accuracy[pick]), "score_accuracy": scored[subset],
                             "members": " ".join(map(str, subset)), "method": found.method})
    return pd.DataFrame(rows)


def budget_summary(checks: pd.DataFrame) -> pd.DataFrame:
    """Per budget and size: the picks' held-out accuracy averaged over the halvings and, for
    ensembles, their lead over the single model picked under the same budget in the same halving
    (mean, standard deviation over halvings, and in how many it was positive)."""
    singles = checks[checks["size"] == 1].set_index(["split", "budget"])["score_accuracy"]
    out = []
    for (budget, k), d in checks.groupby(["budget", "size"], sort=True):
        row: dict[str, Any] = {"budget": float(budget), "size": int(k), "splits": int(len(d)),
                               "beyond_singles": bool(d["beyond_singles"].iloc[0]),
                               "score_accuracy": float(d["score_accuracy"].mean()),
                               "score_std": float(d["score_accuracy"].std(ddof=1)) if len(d) > 1 else None,
                               "cost": float(d["cost"].median()), "picks": int(d["members"].nunique())}
        if k != 1:
            lead = (d.set_index(["split", "budget"])["score_accuracy"] - singles).dropna()
            if len(lead):
                row.update({"lead": float(lead.mean()), "lead_std": float(lead.std(ddof=1)) if len(lead) > 1 else None,
                            "lead_positive": int((lead > 0).sum()), "lead_splits": int(len(lead))})
        out.append(row)
    return pd.DataFrame(out)


def budget_verdicts(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per ensemble size, over the budgets within the pooled models' own costs (``budget_summary``'s
    rows not ``beyond_singles``): how many there are, at how many the size led the single model in
    every halving and trailed it in every halving, and its median lead (accuracy, not points)."""
    out = []
    if "lead" not in summary:
        return out
    for k, d in summary[summary["lead"].notna() & ~summary["beyond_singles"]].groupby("size", sort=True):
        out.append({"size": int(k), "budgets": int(len(d)), "ahead": int((d["lead_positive"] == d["lead_splits"]).sum()),
                    "behind": int((d["lead_positive"] == 0).sum()), "median_lead": float(d["lead"].median())})
    return out
