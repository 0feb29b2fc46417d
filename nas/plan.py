"""`nas search --dry-run`: what a search would do, before it costs anything.

The resolved config (after ``--set``), its data and split, the space, how many members each size
trains at most (for a resumed run, how many are left, and what its members cost so far on
average), and where the latency target falls among random ensembles of the space: the
figures a config's author otherwise works out by hand (experiments/search_cifar10.py's target sits
a little below the median random member, 18.1 ms at CIFAR sizes). Nothing is trained, compiled or
written.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from nas.config import SearchConfig
from nas.words import counted
from trainer.data import Dataset

LATENCY_SAMPLES = 200  # random ensembles per size, seed 0: the same draws every time


def members_at_most(config: SearchConfig, size: int, samples: int) -> int:
    """Members ``samples`` ensembles of ``size`` train at most (before the member cache: a member
    another sample or run already trained is reused). Regularized evolution samples at random until
    its population is full (whole rounds of ``batch``); after that a child changes ``mutations``
    decisions, so it brings at most that many new members, the rest being its parent's."""
    if config.controller != "evolution":
        return size * samples
    rounds_random = math.ceil(config.evolution.population / config.batch)
    random_samples = min(samples, rounds_random * config.batch)
    return size * random_samples + min(size, config.evolution.mutations) * (samples - random_samples)


def random_max_latencies(config: SearchConfig, native: int, size: int, n: int = LATENCY_SAMPLES) -> np.ndarray:
    """The reward's latency (the slowest member's, ms) of ``n`` random ensembles of ``size``."""
    from latency.estimator import get_estimator
    from nas.search import make_space
    from search_space.space import MnasNetSpace

    decode, space = make_space(config, native), MnasNetSpace(native)
    est, rng = get_estimator(config.reward.device), np.random.default_rng(0)
    return np.array([max(est.estimate(m).total_ms for m in decode(np.array(space.sample(rng, size))).members)
                     for _ in range(n)])


def plan_lines(config: SearchConfig, dataset: Dataset, records: list[dict[str, Any]] | None = None) -> list[str]:
    """The dry run's report, one line each; ``records``: a resumed run's, whose samples are done."""
    from nas.search import search_split
    from search_space.space import MnasNetSpace

    split = search_split(config, dataset)
    native = split.native_resolution
    space, trainer = MnasNetSpace(native), config.trainer
    done: dict[int, int] = {}
    for r in records or []:
        done[r["size"]] = done.get(r["size"], 0) + 1
    resolutions = "/".join(str(c) for c in space.decisions[-1].choices)
    lines = [f"data: {dataset.name} at {native} px, {len(split.y_train):,} training / {len(split.y_val):,} "
             f"validation images (seed {config.seed}; the test split is not used), {split.num_classes} classes",
             f"space: {space.num_decisions} decisions per member, members at {resolutions} px"
             + (" with the small-input rule (stride 8)" if space.small_input else "")
             + (f", widths x{config.space.width_multiplier:g}, head {config.space.head_filters}"
                if (config.space.width_multiplier, config.space.head_filters) != (1.0, 1280) else ""),
             f"controller: {config.controller}, {counted(config.samples_per_size, 'sample')} per size in rounds of "
             f"{config.batch}; trainer: {counted(trainer.epochs, 'epoch')}, batch "
             f"{trainer.batch_size}, lr {trainer.learning_rate:g}, {trainer.compile_unit} compile unit"]
    total = 0
    target = config.reward.target_ms
    for n in config.sizes:
        left = max(0, config.samples_per_size - done.get(n, 0))
        members = members_at_most(config, n, config.samples_per_size) - members_at_most(
            config, n, config.samples_per_size - left)
        total += members
        lat = random_max_latencies(config, native, n)
        p10, p50, p90 = np.percentile(lat, [10, 50, 90])
        lines.append(f"size {n}: {left} of {config.samples_per_size} samples to go, at most "
                     f"{counted(members, 'member')} to train; space 10^{space.log10_size(n):.0f}; random "
                     f"ensembles' max member latency "
                     f"{p10:.1f} / {p50:.1f} / {p90:.1f} ms (10th / 50th / 90th percentile of {len(lat)}), "
                     f"{np.mean(lat <= target):.0%} within the {target:g} ms target")
    if records:  # measured on this run so far: what the members left will cost, at the same rate
        from nas.run_summary import member_costs, members_line

        lines.append(f"so far, {members_line(member_costs(records))}")
    lines.append(f"in all: at most {counted(total, 'member')} to train ({config.reward.device} latency model; "
                 "members a run or --member-cache already has are reused); nothing was trained or written")
    return lines

