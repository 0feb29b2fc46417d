"""Random search: the baseline, under the same interface as the REINFORCE controller."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class RandomSearch:
    def __init__(self, choice_counts: Sequence[int], seed: int = 0):
        self.choice_counts = tuple(int(c) for c in choice_counts)
        self.seed = seed
        self.step = 0

    def sample(self, k: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.step])
        return np.stack([rng.integers(0, c, size=k) for c in self.choice_counts], axis=1).astype(np.int32)

    def update(self, samples: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        self.step += 1
        entropy = float(np.sum(np.log(self.choice_counts)))
        return {"entropy": entropy, "mean_reward": float(np.mean(rewards)), "baseline": float(np.mean(rewards))}

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "random", "seed": self.seed, "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.step = int(state["seed"]), int(state["step"])
