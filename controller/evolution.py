"""Regularized (aging) evolution: the NAS baseline of Real et al., AAAI 2019, under the controller
interface.

A population of the ``population`` most recent samples with their rewards. Until it is full, samples
are uniform random (the same draws as ``RandomSearch`` would make for that step); after that each
child copies the best of ``tournament`` population members picked uniformly at random and changes
``mutations`` of its decisions (positions picked uniformly among those with more than one choice,
each set to a different choice). Some decisions are inert in some contexts (the expansion ratio of
a block whose op has none; -1 layer of a one-layer block, which keeps one; a skip op that builds
the same shortcuts as another, ``search_space.space.canonical_skips``), so with an
``identity`` function (decision vector -> architecture id, the search's decoder) a child that
builds the same ensemble as a population member or an earlier sibling is drawn again (up to
``MAX_REDRAWS`` times): in a CPU search without it, 2 of 6 children repeated their parent.
``update`` adds the rewarded samples and drops the oldest beyond ``population``: every member dies
of age, however good, which is what regularizes the search (a lucky early reward, e.g. a member
whose proxy training happened to go well, cannot dominate for ever).

For an ensemble of n members the decision vector is the n x m concatenation, so a mutation changes
one decision of one member. Draws come from ``default_rng([seed, step])``, so the sequence of
samples is a function of the seed and the rewards seen, as for the other controllers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Hashable, Sequence

import numpy as np

MAX_REDRAWS = 50  # per child; after that a repeated architecture is sampled (a tiny, exhausted space)


@dataclasses.dataclass(frozen=True)
class EvolutionConfig:
    # Real et al. used population 100 and tournament 25 for 20,000 samples; a search here draws
    # tens of samples per size (30 per size in experiments/search_cifar10.py), so both are scaled
    # down: with batch 5, the first two rounds fill the population at random and the last four evolve.
    population: int = 10
    tournament: int = 3
    mutations: int = 1  # decisions changed per child

    def __post_init__(self) -> None:
        from search_space.errors import UserError

        if not (isinstance(self.population, int) and self.population >= 1):
            raise UserError(f"evolution.population: must be a positive int, got {self.population!r}")
        if not (isinstance(self.tournament, int) and 1 <= self.tournament <= self.population):
            raise UserError(f"evolution.tournament: must be an int in [1, population], got {self.tournament!r}")
        if not (isinstance(self.mutations, int) and self.mutations >= 1):
            raise UserError(f"evolution.mutations: must be a positive int, got {self.mutations!r}")


class RegularizedEvolution:
    """Aging evolution; ``sample``/``update``/``state_dict``/``load_state_dict``."""

    def __init__(self, choice_counts: Sequence[int], seed: int = 0, config: EvolutionConfig = EvolutionConfig(),
                 identity: Callable[[np.ndarray], Hashable] | None = None):
        self.choice_counts = tuple(int(c) for c in choice_counts)
        self.seed, self.config, self.identity = seed, config, identity
        self.step = 0
        self.vectors = np.zeros((0, len(self.choice_counts)), np.int32)  # oldest first
        self.rewards = np.zeros((0,), np.float64)
        self._mutable = np.flatnonzero(np.asarray(self.choice_counts) > 1)

    def sample(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.step])
        if len(self.rewards) < self.config.population:
            return np.stack([rng.integers(0, c, size=k) for c in self.choice_counts], axis=1).astype(np.int32)
        known = set() if self.identity is None else {self.identity(v) for v in self.vectors}
        children = []
        for _ in range(k):
            picked = rng.choice(len(self.rewards), size=self.config.tournament, replace=False)
            parent = self.vectors[picked[np.argmax(self.rewards[picked])]]  # ties: the first picked
            for _ in range(MAX_REDRAWS if self.identity is not None else 1):
                child = self._mutate(parent, rng)
                key = None if self.identity is None else self.identity(child)
                if key is None or key not in known:
                    break
            if key is not None:
                known.add(key)
            children.append(child)
        return np.stack(children).astype(np.int32)

    def _mutate(self, parent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        child = parent.copy()
        n = min(self.config.mutations, len(self._mutable))
        for pos in rng.choice(self._mutable, size=n, replace=False):
            # a different choice, uniformly among the others
            child[pos] = (child[pos] + rng.integers(1, self.choice_counts[pos])) % self.choice_counts[pos]
        return child

    def update(self, samples: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        r = np.asarray(rewards, np.float64)
        self.vectors = np.concatenate([self.vectors, np.asarray(samples, np.int32)])[-self.config.population:]
        self.rewards = np.concatenate([self.rewards, r])[-self.config.population:]
        self.step += 1
        return {"entropy": self.population_entropy(), "mean_reward": float(r.mean()),
                "baseline": float(self.rewards.mean())}

    def population_entropy(self) -> float:
        """Sum over decisions of the entropy (nats) of the population's choices: how diverse the
        population still is (the sum of log choice counts for a population spread evenly; 0 when
        every member is the same). Reported as the other controllers report their policy's entropy."""
        total = 0.0
        for j, c in enumerate(self.choice_counts):
            p = np.bincount(self.vectors[:, j], minlength=c) / len(self.vectors)
            p = p[p > 0]
            total -= float((p * np.log(p)).sum())
        return total

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "evolution", "seed": self.seed, "step": self.step,
                "vectors": self.vectors.copy(), "rewards": self.rewards.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        vectors = np.asarray(state["vectors"], np.int32)
        if vectors.ndim != 2 or vectors.shape[1] != len(self.choice_counts):
            raise ValueError("controller state: does not match this controller's shape")
        self.vectors, self.rewards = vectors, np.asarray(state["rewards"], np.float64)
        self.seed, self.step = int(state["seed"]), int(state["step"])
