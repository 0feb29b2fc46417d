"""The MnasNet reward on the maximum member latency."""

from __future__ import annotations


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, alpha: float, beta: float) -> float:
    """ACC x (LAT / T)^w with w = alpha if LAT <= T else beta (Tan et al. 2019, Eq. 2)."""
    w = alpha if latency_ms <= target_ms else beta
    return float(accuracy * (latency_ms / target_ms) ** w)
