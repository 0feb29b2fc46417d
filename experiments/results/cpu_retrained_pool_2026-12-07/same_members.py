"""The pools at 4, 12 and 24 epochs restricted to the members retrained at all three lengths (the 11
retrained at 24): how the ensembles' lead over the single model under a max-latency budget moves
with training, like for like. python same_members.py RUN"""
import sys

import numpy as np

from nas.config import from_dict, load_config_dataset
from nas.pool_budget import budget_check, budget_summary, budget_verdicts, retrained_pool
from nas.store import RunDir

run = RunDir(sys.argv[1])
ds = load_config_dataset(from_dict(run.read_search_config()))
pools = {s: retrained_pool(run, s, ds) for s in ("fast4-n10000", "fast12-n10000", "fast24-n10000")}
common = set.intersection(*({(m.id, m.seed) for m in p[0]} for p in pools.values()))
print(f"{len(common)} members retrained at 4, 12 and 24 epochs")
for slug, (members, log_probs, _) in pools.items():
    keep = [i for i, m in enumerate(members) if (m.id, m.seed) in common]
    sub = [members[i] for i in keep]
    summary = budget_summary(budget_check(sub, log_probs[keep], ds.y_test, [1, 2, 3], cost="latency", splits=10))
    singles = summary[summary["size"] == 1]["score_accuracy"]
    accs = 100 * (log_probs[keep].argmax(-1) == ds.y_test).mean(1)
    print(f"{slug}: members {np.min(accs):.2f}-{np.max(accs):.2f}%, best single held out {100 * singles.max():.2f}%")
    for v in budget_verdicts(summary):
        best = summary[summary["size"] == v["size"]]["score_accuracy"].max()
        print(f"  size {v['size']}: ahead in every halving at {v['ahead']} of {v['budgets']} budgets, behind at "
              f"{v['behind']}; median lead {100 * v['median_lead']:+.2f} points; best held out {100 * best:.2f}%")
