"""How far apart in test accuracy (points, on all 10,000 test images) and latency (ms) the members of
each pick in pool_retrained_fast12-n10000_latency.csv are: python picks_spread.py RUN."""
import sys

import numpy as np
import pandas as pd

from nas.config import from_dict, load_config_dataset
from nas.pool_budget import retrained_pool
from nas.store import RunDir

run = RunDir(sys.argv[1])
ds = load_config_dataset(from_dict(run.read_search_config()))
members, log_probs, _ = retrained_pool(run, "fast12-n10000", ds)
accuracy = 100 * (log_probs.argmax(-1) == ds.y_test).mean(1)
latency = np.array([m.latency_ms for m in members])
picks = pd.read_csv(run.path / "pool_retrained_fast12-n10000_latency.csv")
picks = picks[picks["size"] > 1].copy()
index = [list(map(int, s.split())) for s in picks["members"]]
picks["accuracy_spread"] = [np.ptp(accuracy[i]) for i in index]
picks["latency_spread_ms"] = [np.ptp(latency[i]) for i in index]
print(picks.groupby("size")[["accuracy_spread", "latency_spread_ms"]].median().round(2).to_string())
print(picks[picks["split"] == 0][["size", "budget", "members", "accuracy_spread"]].round(2).to_string(index=False))
