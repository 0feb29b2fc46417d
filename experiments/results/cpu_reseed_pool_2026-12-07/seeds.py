"""The 4-epoch pool retrained with three seeds per member (searched, + 1000, + 2000: `nas retrain
--reseed`): how much of the ensembles' lead over the single model under a max-latency budget is
the training seed's, whether the architectures picked on one seed's training keep their lead
retrained with another, and whether ensembles of different networks beat ensembles of one network
trained with different seeds (the paper's ensembles) at the same max latency.
python seeds.py RUN [SETTING SETTING SETTING] (other settings' pools in the seeds' place, as a check)"""
import itertools
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from nas.config import from_dict, load_config_dataset
from nas.pool_budget import budget_check, budget_summary, budget_verdicts, retrained_pool
from nas.retrained import spearman
from nas.store import RunDir

SETTINGS = tuple(sys.argv[2:]) or ("fast4-n10000", "fast4+reseed=1-n10000", "fast4+reseed=2-n10000")
SPLITS = 10

run = RunDir(sys.argv[1])
ds = load_config_dataset(from_dict(run.read_search_config()))
y = ds.y_test
pools = {s: retrained_pool(run, s, ds) for s in SETTINGS}
common = sorted(set.intersection(*({(m.id, m.seed) for m in p[0]} for p in pools.values())))
members, lp = None, []
for members_k, log_probs, _ in pools.values():
    index = {(m.id, m.seed): i for i, m in enumerate(members_k)}
    keep = [index[c] for c in common]
    members = [members_k[i] for i in keep]
    lp.append(log_probs[keep])
lp = np.stack(lp)  # (seeds, members, images, classes)
n_seeds, n = lp.shape[:2]
latency = np.array([m.latency_ms for m in members])
print(f"{n} members retrained at 4 epochs with each of {n_seeds} seeds ({', '.join(SETTINGS)}), "
      f"{latency.min():.2f}-{latency.max():.2f} ms")

# (a) the seed's share of a member's test accuracy
acc = 100 * (lp.argmax(-1) == y).mean(-1)  # (seeds, members), %
sd = acc.std(0, ddof=1)
print(f"\n(a) member test accuracy: {acc.min():.2f}-{acc.max():.2f}% across members; per member, sd over the "
      f"{n_seeds} seeds median {np.median(sd):.2f} points (max {sd.max():.2f}), range over seeds median "
      f"{np.median(np.ptp(acc, 0)):.2f} (max {np.ptp(acc, 0).max():.2f})")
print("    members' rank agreement between seeds (Spearman): "
      + ", ".join(f"{a} vs {b} {spearman(acc[a], acc[b]):.2f}" for a, b in itertools.combinations(range(n_seeds), 2)))

# (b) each seed's pool on its own, as `nas pool --retrained` scores it
print("\n(b) each seed's pool alone (budgets: its fronts' max latencies; 10 halvings of the test images)")
leads_by_seed = {}
for k, slug in enumerate(SETTINGS):
    summary = budget_summary(budget_check(members, lp[k], y, [1, 2, 3], cost="latency", splits=SPLITS))
    leads_by_seed[k] = summary
    best = summary.groupby("size")["score_accuracy"].max()
    halving_sd = {k: 100 * d["lead_std"].median() for k, d in summary[summary["size"] > 1].groupby("size")}
    parts = [f"size {v['size']}: ahead in every halving at {v['ahead']} of {v['budgets']} budgets, behind at "
             f"{v['behind']}, median lead {100 * v['median_lead']:+.2f} (its sd over halvings, median "
             f"{halving_sd[v['size']]:.2f})" for v in budget_verdicts(summary)]
    print(f"  {slug}: best held out {', '.join(f'{100 * a:.2f}%' for a in best)} (sizes 1-3); " + "; ".join(parts))


# the correctness of every single model, pair and triple of the common members, per seed
def correct(log_probs: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """(subsets, images) bool: the geometric-mean ensemble of each subset right (chunks of 256)."""
    out = np.empty((len(subsets), log_probs.shape[1]), bool)
    for lo in range(0, len(subsets), 256):
        chunk = subsets[lo:lo + 256]
        out[lo:lo + 256] = log_probs[chunk].sum(1).argmax(-1) == y
    return out


subsets = {k: np.array(list(itertools.combinations(range(n), k))) for k in (1, 2, 3)}
cost = {k: latency[s].max(1) for k, s in subsets.items()}
right = {(seed, k): correct(lp[seed], s) for seed in range(n_seeds) for k, s in subsets.items()}
halves = []
for split in range(SPLITS):  # as nas.pool.holdout_check and nas.pool_budget.budget_check halve
    order = np.random.default_rng(split).permutation(len(y))
    halves.append((np.sort(order[: len(y) // 2]), np.sort(order[len(y) // 2:])))
budgets = sorted(leads_by_seed[0]["budget"].unique())


def pick(accuracy: np.ndarray, costs: np.ndarray, budget: float) -> int | None:
    """The most accurate within ``budget``, ties to the cheaper then the first (as budget_check)."""
    ok = np.flatnonzero(costs <= budget)
    return None if not len(ok) else int(ok[np.lexsort((costs[ok], -accuracy[ok]))[0]])


# (c) the picks chosen on the searched seed's training, retrained with the other seeds
print("\n(c) picks chosen on seed 0's half, scored on the other half: with seed 0's training, and retrained "
      "with seeds 1 and 2 (the architectures kept, the weights new), against each seed's own picks")
for k in (2, 3):
    rows = {s: [] for s in range(n_seeds)}
    own = {s: [] for s in range(n_seeds)}
    for budget in budgets:
        lead = {s: [] for s in range(n_seeds)}
        lead_own = {s: [] for s in range(n_seeds)}
        for choose, score in halves:
            p1 = pick(right[0, 1][:, choose].mean(1), cost[1], budget)
            pk = pick(right[0, k][:, choose].mean(1), cost[k], budget)
            if p1 is None or pk is None:
                continue
            for s in range(n_seeds):
                lead[s].append(right[s, k][pk, score].mean() - right[s, 1][p1, score].mean())
                q1 = pick(right[s, 1][:, choose].mean(1), cost[1], budget)
                qk = pick(right[s, k][:, choose].mean(1), cost[k], budget)
                lead_own[s].append(right[s, k][qk, score].mean() - right[s, 1][q1, score].mean())
        if lead[0]:
            for s in range(n_seeds):
                rows[s].append(np.mean(lead[s]))
                own[s].append(np.mean(lead_own[s]))
    for s in range(n_seeds):
        r, o = 100 * np.array(rows[s]), 100 * np.array(own[s])
        print(f"  size {k}, seed {s}: seed 0's picks lead at {int((r > 0).sum())} of {len(r)} budgets, median "
              f"{np.median(r):+.2f} points (mean {r.mean():+.2f}); seed {s}'s own picks: {int((o > 0).sum())} of "
              f"{len(o)}, median {np.median(o):+.2f}")
    by_budget = 100 * np.array([own[s] for s in range(n_seeds)])  # (seeds, budgets): each seed's own picks' lead
    print(f"  size {k}: the lead of each seed's own picks, per budget: sd over the seeds median "
          f"{np.median(by_budget.std(0, ddof=1)):.2f} points (max {by_budget.std(0, ddof=1).max():.2f}); positive "
          f"with every seed at {int((by_budget > 0).all(0).sum())} of {by_budget.shape[1]} budgets, negative with "
          f"every seed at {int((by_budget < 0).all(0).sum())}")

# (d) one network with several seeds against different networks, at the same max latency
print("\n(d) under a max-latency budget, from all members at all seeds: the best single model, the best ensemble "
      "of one network's seeds, and the best ensemble of different networks (any seeds), each chosen on one half "
      "and scored on the other")
models = [(i, s) for s in range(n_seeds) for i in range(n)]  # member i trained with seed s
all_lp = lp.reshape(n_seeds * n, *lp.shape[2:])
model_latency = latency[[i for i, _ in models]]
single = correct(all_lp, np.arange(len(models))[:, None])
fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, k in zip(axes, (2, 3)):
    combos = np.array(list(itertools.combinations(range(len(models)), k)))
    nets = np.array([[models[j][0] for j in c] for c in combos])
    same = (nets == nets[:, :1]).all(1)
    distinct = np.array([len(set(r)) == k for r in nets])
    kinds = {"one network": combos[same], "different networks": combos[distinct]}
    kinds_right = {name: correct(all_lp, c) for name, c in kinds.items()}
    kinds_cost = {name: model_latency[c].max(1) for name, c in kinds.items()}
    table = []
    for budget in budgets:
        got = {name: [] for name in ("single", *kinds)}
        for choose, score in halves:
            p1 = pick(single[:, choose].mean(1), model_latency, budget)
            picks = {name: pick(kinds_right[name][:, choose].mean(1), kinds_cost[name], budget) for name in kinds}
            if p1 is None or any(p is None for p in picks.values()):
                continue
            got["single"].append(single[p1, score].mean())
            for name, p in picks.items():
                got[name].append(kinds_right[name][p, score].mean())
        if got["single"]:
            table.append((budget, *(100 * np.array(got[name]) for name in ("single", *kinds))))
    print(f"  size {k}: {len(kinds['one network'])} one-network and {len(kinds['different networks'])} "
          "different-network ensembles")
    print("    budget ms | single | one network (lead) | different networks (lead) | different - one network "
          "(halvings ahead)")
    diffs = []
    for budget, s1, one, diff in table:
        d = diff - one
        diffs.append(d.mean())
        print(f"    {budget:9.2f} | {s1.mean():6.2f} | {one.mean():6.2f} ({(one - s1).mean():+.2f}) | "
              f"{diff.mean():6.2f} ({(diff - s1).mean():+.2f}) | {d.mean():+.2f} ({int((d > 0).sum())}/{len(d)})")
    at = np.array([t[0] for t in table])
    for j, (name, style) in enumerate((("single model", "k-"), (f"{k} seeds of one network", "C0o-"),
                                        (f"{k} different networks", "C3s-")), start=1):
        ax.plot(at, [t[j].mean() for t in table], style, label=name, ms=4)
    ax.set(title=f"ensembles of {k}", xlabel="max member latency budget (ms, Pixel-1 model)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    diffs = np.array(diffs)
    print(f"    different networks ahead of one network's seeds at {int((diffs > 0).sum())} of {len(diffs)} budgets, "
          f"median {np.median(diffs):+.2f} points")
axes[0].set_ylabel("test accuracy, held-out half (%, mean of 10)")
fig.suptitle(f"{n} CPU-search members x {n_seeds} seeds, 4 epochs: best under each budget, chosen on one half")
fig.tight_layout()
out = Path(__file__).with_name("seeds_vs_networks.png")
fig.savefig(out, dpi=120)
print(f"\nfigure {out.name}")
