"""Homogeneous ensembles of a searched architecture, against the searched diverse ones.

The paper searches n x m decisions so that an ensemble's members may differ. The obvious rival
is the "deep ensemble" (Lakshminarayanan et al. 2017): n copies of one architecture trained from
different seeds. Its maximum member latency is the single member's, so on Figure 3 it stands
straight above that member. ``seed_ensembles`` trains, for chosen one-member samples of a search,
the same member with seeds s + 1, ..., s + N - 1 (s: the search's seed, which the sample's own
member was trained with) at the search's proxy budget, on the search's data and split, and
compares each n-copy ensemble with the best searched n-member ensemble whose max latency is no
higher. Members go through the search's evaluator and member cache (key: spec, data and split,
training config, seed; seed s + p is what a searched ensemble holding the spec at position p gets),
so a rerun trains nothing and a search's own members are reused. A copy's program comes from the
run's persistent compilation cache (one program per architecture; the seed only changes initial
values): on the 2-core CPU a copy's compile took 5-10 s, tracing included, against 40-60 s for the
search's members (experiments/results/cpu_search_2026-12-02/).
"""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from nas.config import SearchConfig
from nas.ensemble import evaluate_ensemble
from nas.evaluators import Evaluator
from nas.pareto import most_accurate_within
from nas.search import (SearchContext, enable_compilation_cache, evaluate_members, make_space, search_split,
                        train_missing)
from nas.store import RunDir
from search_space.errors import UserError
from search_space.spec import EnsembleSpec
from search_space.spec import from_dict as spec_from_dict
from trainer.data import Dataset

COLUMNS = ["sample", "n", "seeds", "accuracy", "nll", "disagreement", "member_accuracies", "latency_max_ms",
           "searched_sample", "searched_accuracy", "searched_disagreement", "searched_latency_max_ms", "gain"]


def chosen_singles(records: list[dict[str, Any]], top: int, samples: list[int] | None = None) -> list[dict[str, Any]]:
    """The successful one-member samples to build on: ``samples`` (numbers, in that order) if given,
    else the ``top`` by reward."""
    singles = {r["sample"]: r for r in records if r["size"] == 1 and r["status"] == "ok"}
    if not singles:
        raise UserError("no successful one-member sample: search size 1 first (sizes=[1, ...])")
    if samples:
        missing = [s for s in samples if s not in singles]
        if missing:
            raise UserError(f"--sample {missing[0]}: no successful one-member sample of that number "
                            f"(samples {', '.join(str(s) for s in sorted(singles))})")
        return [singles[s] for s in dict.fromkeys(samples)]
    return sorted(singles.values(), key=lambda r: -r["reward"])[:top]


def check_members(members: int) -> None:
    if members < 2:
        raise UserError(f"--members {members}: an ensemble of copies needs at least 2")


def seed_ensembles(run: RunDir, config: SearchConfig, dataset: Dataset, evaluator: Evaluator,
                   chosen: list[dict[str, Any]], members: int,
                   log: Callable[[str], None] = lambda s: None) -> pd.DataFrame:
    """One row per chosen sample and n = 1..``members``: the n-copy ensemble (seeds s..s+n-1) and
    the best searched n-member ensemble at no higher max latency (``gain``: accuracy points of the
    copies over it; None where the search has no such ensemble)."""
    check_members(members)
    enable_compilation_cache(run)  # the search's compiled programs: a copy compiles nothing new
    split = search_split(config, dataset)
    ctx = SearchContext(config, run, split, make_space(config, split.native_resolution), evaluator, log)
    ensembles = [EnsembleSpec((spec_from_dict(r["members"][0]["spec"]),) * members) for r in chosen]
    train_missing(ctx, ensembles)
    records = run.records()
    rows = []
    for rec, ens in zip(chosen, ensembles):
        results = evaluate_members(ctx, ens)
        failed = [s["reason"] for s, _ in results if s["status"] != "ok"]
        if failed:
            log(f"  sample {rec['sample']}: a copy failed ({failed[0]}); left out")
            continue
        logits = [lg for _, lg in results]
        latency = float(rec["latency_max_ms"])
        for n in range(1, members + 1):
            m = evaluate_ensemble(logits[:n], split.y_val)
            best = most_accurate_within(records, n, latency)
            rows.append({"sample": rec["sample"], "n": n,
                         "seeds": " ".join(str(config.seed + p) for p in range(n)),
                         "accuracy": m.accuracy, "nll": m.nll, "disagreement": m.disagreement,
                         "member_accuracies": " ".join(f"{a:.4f}" for a in m.member_accuracies),
                         "latency_max_ms": latency,
                         "searched_sample": None if best is None else best["sample"],
                         "searched_accuracy": None if best is None else best["accuracy"],
                         "searched_disagreement": None if best is None else best.get("disagreement"),
                         "searched_latency_max_ms": None if best is None else best["latency_max_ms"],
                         "gain": None if best is None else m.accuracy - best["accuracy"]})
    return pd.DataFrame(rows, columns=COLUMNS)

