"""One network's seeds against different networks: the paper's ensembles (k copies of one
architecture, trained with k seeds) against the search's (k different architectures), at the same
cost.

`nas retrain --reseed K` retrains every member with its searched seed + K x 1000 in a setting of its
own (nas/retrained.py). Given several settings that differ only in that seed, each member retrained
in all of them gives one model per setting, and the models form three kinds of candidate per size
k: a single model; k seeds of one network; k different networks, each with any of its seeds
(ensembles mixing the two, such as two seeds of one network with a third network, are neither and
left out). As `nas pool --retrained` does for one setting (nas/pool_budget.py), each of ``splits``
seeded halvings of the test images picks the most accurate candidate of each kind within each
budget on one half (ties: the cheaper) and scores it on the other, and each kind is measured
against the single model picked under the same budget in the same halving, and different networks
against one network's seeds.

Every candidate is scored exhaustively, so the models' k-subsets are capped (``DEFAULT_SUBSETS``):
24 networks with 3 seeds make 72 models and C(72, 3) = 59,640 triples, 54,648 of them of three
networks and 24 of one; pairs and triples over 10 halvings of 10,000 test images took 51 s and 0.6 GB
(synthetic logits, 2-core Intel Xeon, 2026-12-07).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from nas.pareto import pareto_front
from nas.pool import PoolMember, halving
from nas.pool_budget import best_within, retrained_pool, subset_costs
from nas.retrained import recipe_parts, slug_setting
from nas.store import RunDir
from search_space.errors import UserError
from search_space.space import network_id
from search_space.spec import from_dict as spec_from_dict

DEFAULT_SUBSETS = 100_000  # k-subsets of the models enumerated per size, before the kinds are told apart


@dataclass(frozen=True)
class SeedsPool:
    """Models: each network retrained in each setting. ``members[j]``: model j's member (as searched:
    its searched seed); ``settings[j]``: its setting; ``networks[j]``: its network's index;
    ``log_probs``: (models, test images, classes) float32; ``left_out``: the members retrained in
    some of the settings but not in all, not in the pool."""

    members: list[PoolMember]
    settings: list[str]
    networks: np.ndarray
    log_probs: np.ndarray
    left_out: int = 0


def check_reseeded(slugs: Iterable[str]) -> list[str]:
    """``slugs``, each once, when they are two or more settings that differ only in `--reseed`
    (the same recipe, trainer settings, epochs and images); else one UserError line."""
    slugs = list(slugs)
    if len(set(slugs)) != len(slugs):
        raise UserError(f"--retrain-setting: {', '.join(sorted({s for s in slugs if slugs.count(s) > 1}))} given twice")
    if len(slugs) < 2:
        raise UserError("--retrain-setting: one network's seeds against different networks needs two or more settings")
    bases = {}
    for slug in slugs:
        recipe, epochs, n = slug_setting(slug)
        name, items, _ = recipe_parts(recipe)
        bases[slug] = (name, tuple(items), epochs, n)
    if len(set(bases.values())) > 1:
        raise UserError(f"--retrain-setting: {', '.join(slugs)} differ in more than the seed (`nas retrain --reseed`): "
                        "one recipe, epochs and data for all")
    return slugs


def seeds_pool(run: RunDir, slugs: Iterable[str], dataset: Any) -> SeedsPool:
    """The members retrained to the end in every one of ``slugs`` (``check_reseeded``), one model
    per member and setting, in setting order. Raises UserError when fewer than two networks are."""
    slugs = check_reseeded(slugs)
    pools = {slug: retrained_pool(run, slug, dataset) for slug in slugs}
    retrained = [{(m.id, m.seed) for m in p[0]} for p in pools.values()]  # per setting
    common = set.intersection(*retrained)
    first = [m for m in pools[slugs[0]][0] if (m.id, m.seed) in common]  # in the run's order
    nets: dict[str, int] = {}
    net_of = [nets.setdefault(network_id(spec_from_dict(m.spec)), len(nets)) for m in first]
    if len(nets) < 2:
        raise UserError(f"{run.path}: {len(nets)} network{'' if len(nets) == 1 else 's'} retrained in every one of "
                        f"{', '.join(slugs)}; different networks need two or more")
    members, settings, networks, log_probs = [], [], [], []
    for slug, (pool, lp, _) in pools.items():
        index = {(m.id, m.seed): i for i, m in enumerate(pool)}
        for m, net in zip(first, net_of):
            members.append(m)
            settings.append(slug)
            networks.append(net)
            log_probs.append(lp[index[m.id, m.seed]])
    return SeedsPool(members, settings, np.array(networks), np.stack(log_probs), len(set.union(*retrained) - common))


def kind_subsets(networks: np.ndarray, k: int, limit: int = DEFAULT_SUBSETS) -> dict[str, np.ndarray]:
    """Per kind, its candidates of size ``k`` as rows of model indices: every model alone for k = 1
    ("single"); else the k-subsets whose models are all one network, and those whose models are k
    different networks. Raises UserError past ``limit`` k-subsets."""
    n = len(networks)
    if k == 1:
        return {"single": np.arange(n)[:, None]}
    if math.comb(n, k) > limit:
        raise UserError(f"size {k}: {n} models make {math.comb(n, k):,} candidates, more than {limit:,} "
                        "(fewer settings, or --sizes 2)")
    subsets = np.array(list(itertools.combinations(range(n), k)))
    nets = networks[subsets]
    distinct = np.array([len(set(row)) for row in nets.tolist()])
    return {"one network": subsets[distinct == 1], "different networks": subsets[distinct == k]}


def _correct(log_probs: np.ndarray, labels: np.ndarray, subsets: np.ndarray,
             chunk: int = 128) -> Iterable[tuple[int, np.ndarray]]:
    """Per chunk of ``subsets`` (its first row's index, (rows, images) bool): whether each subset's
    geometric-mean ensemble (the argmax of its summed log-probabilities) is right on each image."""
    for lo in range(0, len(subsets), chunk):
        yield lo, log_probs[subsets[lo:lo + chunk]].sum(1).argmax(-1) == labels


def seeds_check(pool: SeedsPool, labels: np.ndarray, sizes: Iterable[int], cost: str = "latency", splits: int = 10,
                limit: int = DEFAULT_SUBSETS, progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per halving, size, kind and budget: the candidate of that kind and size picked on one
    half of the images within the budget (its model indices, cost, accuracy there) and its accuracy
    on the other half. Budgets: the costs of each kind's Pareto front (accuracy on all the images
    against cost), where some pick can change."""
    labels = np.asarray(labels)
    if pool.log_probs.shape[1] != len(labels):
        raise UserError(f"the saved test logits cover {pool.log_probs.shape[1]} images, the test set {len(labels)}")
    halves = [halving(len(labels), split) for split in range(splits)]
    scored = {}  # (size, kind) -> (subsets, their costs, accuracy on each choosing half, on each scoring half)
    budgets: set[float] = set()
    for k in sorted({1, *sizes}):
        for kind, subsets in kind_subsets(pool.networks, k, limit).items():
            if progress is not None:
                progress(f"size {k}, {kind}: {len(subsets):,} candidates")
            if not len(subsets):
                continue
            acc = np.empty(len(subsets))
            choose, score = np.empty((splits, len(subsets))), np.empty((splits, len(subsets)))
            for lo, right in _correct(pool.log_probs, labels, subsets):
                hi = lo + len(right)
                acc[lo:hi] = right.mean(1)
                for s, (c, v) in enumerate(halves):
                    choose[s, lo:hi], score[s, lo:hi] = right[:, c].mean(1), right[:, v].mean(1)
            costs = subset_costs(pool.members, subsets, cost)
            front = pareto_front(pd.DataFrame({"status": "ok", "accuracy": acc, "latency_max_ms": costs}))
            budgets |= {float(c) for c in costs[front.index.to_numpy()]}
            scored[k, kind] = (subsets, costs, choose, score)
    costliest_single = float(scored[1, "single"][1].max())
    rows = []
    for (k, kind), (subsets, costs, choose, score) in scored.items():
        for s in range(splits):
            for budget in sorted(budgets):
                pick = best_within(choose[s], costs, budget)
                if pick is not None:
                    rows.append({"split": s, "size": k, "kind": kind, "budget": budget,
                                 "beyond_singles": budget > costliest_single, "cost": float(costs[pick]),
                                 "choose_accuracy": float(choose[s, pick]), "score_accuracy": float(score[s, pick]),
                                 "models": " ".join(map(str, subsets[pick]))})
    return pd.DataFrame(rows)


def seeds_summary(checks: pd.DataFrame) -> pd.DataFrame:
    """Per budget, size and kind: the picks' held-out accuracy over the halvings; an ensemble's lead
    over the single model picked under the same budget in the same halving, and different
    networks' lead over one network's seeds (mean, sd over halvings, halvings it was positive in)."""
    wide = checks.pivot_table(index=["budget", "split"], columns=["size", "kind"], values="score_accuracy")
    out = []
    for (budget, k, kind), d in checks.groupby(["budget", "size", "kind"], sort=True):
        row: dict[str, Any] = {"budget": float(budget), "size": int(k), "kind": kind, "splits": int(len(d)),
                               "beyond_singles": bool(d["beyond_singles"].iloc[0]),
                               "score_accuracy": float(d["score_accuracy"].mean()), "cost": float(d["cost"].median()),
                               "picks": int(d["models"].nunique())}
        here = wide.loc[budget]  # one row per halving
        against = {"lead": (1, "single")} if kind != "single" else {}
        if kind == "different networks":
            against["over_one_network"] = (k, "one network")
        for name, other in against.items():
            if other not in here:
                continue
            diff = (here[(k, kind)] - here[other]).dropna()
            if len(diff):
                row.update({name: float(diff.mean()), f"{name}_std": float(diff.std(ddof=1)) if len(diff) > 1 else None,
                            f"{name}_positive": int((diff > 0).sum()), f"{name}_splits": int(len(diff))})
        out.append(row)
    return pd.DataFrame(out)


def seeds_verdicts(summary: pd.DataFrame) -> list[dict[str, Any]]:
    """Per size, over the budgets within the models' own costs where both ensemble kinds have a pick:
    how many there are, at how many different networks led one network's seeds in every halving and
    trailed them in every halving, and the median lead (accuracy, not points)."""
    if "over_one_network" not in summary:
        return []
    d = summary[summary["over_one_network"].notna() & ~summary["beyond_singles"]]
    return [{"size": int(k), "budgets": int(len(g)),
             "ahead": int((g["over_one_network_positive"] == g["over_one_network_splits"]).sum()),
             "behind": int((g["over_one_network_positive"] == 0).sum()),
             "median_lead": float(g["over_one_network"].median())} for k, g in d.groupby("size", sort=True)]
