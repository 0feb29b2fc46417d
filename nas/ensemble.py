"""Ensemble evaluation from member logits: geometric and arithmetic means, and diversity measures.

The geometric mean of member softmaxes, renormalized, is the softmax of the mean member
log-probabilities (the paper's combination); the arithmetic mean of probabilities is kept for
comparison.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def geometric_mean_log_probs(member_logits: Sequence[np.ndarray]) -> np.ndarray:
    """log of the renormalized geometric mean = log_softmax(mean of member log-probabilities)."""
    return log_softmax(np.mean([log_softmax(np.asarray(l, np.float64)) for l in member_logits], axis=0))


def arithmetic_mean_log_probs(member_logits: Sequence[np.ndarray]) -> np.ndarray:
    probs = np.mean([np.exp(log_softmax(np.asarray(l, np.float64))) for l in member_logits], axis=0)
    return np.log(np.clip(probs, 1e-300, None))


def accuracy(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float((log_probs.argmax(-1) == labels).mean())


def nll(log_probs: np.ndarray, labels: np.ndarray) -> float:
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def expected_calibration_error(log_probs: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE over ``bins`` equal-width confidence bins (Guo et al. 2017)."""
    conf = np.exp(log_probs.max(-1))
    correct = log_probs.argmax(-1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def pairwise_disagreement(member_logits: Sequence[np.ndarray]) -> float:
    """Mean over member pairs of the fraction of examples whose top-1 predictions differ; 0 for one member."""
    preds = [np.asarray(l).argmax(-1) for l in member_logits]
    pairs = [(i, j) for i in range(len(preds)) for j in range(i + 1, len(preds))]
    if not pairs:
        return 0.0
    return float(np.mean([(preds[i] != preds[j]).mean() for i, j in pairs]))


def oracle_accuracy(member_logits: Sequence[np.ndarray], labels: np.ndarray) -> float:
    """Fraction of examples that at least one member classifies correctly."""
    return float(np.any([np.asarray(l).argmax(-1) == labels for l in member_logits], axis=0).mean())


@dataclasses.dataclass(frozen=True)
class EnsembleMetrics:
    accuracy: float  # geometric mean (the paper's combination)
    accuracy_arithmetic: float
    nll: float
    nll_arithmetic: float
    ece: float
    disagreement: float
    oracle_accuracy: float
    member_accuracies: tuple[float, ...]

    @property
    def best_member_accuracy(self) -> float:
        return max(self.member_accuracies)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["member_accuracies"] = list(self.member_accuracies)
        d["best_member_accuracy"] = self.best_member_accuracy
        return d


def evaluate_ensemble(member_logits: Sequence[np.ndarray], labels: np.ndarray) -> EnsembleMetrics:
    if not member_logits:
        raise ValueError("evaluate_ensemble: no members")
    labels = np.asarray(labels)
    geo = geometric_mean_log_probs(member_logits)
    ari = arithmetic_mean_log_probs(member_logits)
    return EnsembleMetrics(accuracy=accuracy(geo, labels), accuracy_arithmetic=accuracy(ari, labels),
                           nll=nll(geo, labels), nll_arithmetic=nll(ari, labels),
                           ece=expected_calibration_error(geo, labels),
                           disagreement=pairwise_disagreement(member_logits),
                           oracle_accuracy=oracle_accuracy(member_logits, labels),
                           member_accuracies=tuple(accuracy(log_softmax(np.asarray(l, np.float64)), labels)
                                                   for l in member_logits))
