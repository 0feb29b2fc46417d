"""The controller interface: ``sample``, ``update``, ``state_dict``, ``load_state_dict``."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np


class Controller(Protocol):
    """Samples decision vectors (one int per decision, each below its choice count) and learns from rewards."""

    choice_counts: tuple[int, ...]

    def sample(self, k: int) -> np.ndarray:
        """k decision vectors, int32 (k, len(choice_counts)); deterministic given the state."""
        ...

    def update(self, samples: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        """One policy update from the rewards of ``samples``; returns statistics (entropy, baseline, ...)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...
