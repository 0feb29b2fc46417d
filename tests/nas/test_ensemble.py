import numpy as np
import pytest

from nas.ensemble import (evaluate_ensemble, expected_calibration_error, geometric_mean_log_probs, log_softmax,
                          oracle_accuracy, pairwise_disagreement)


def test_geometric_mean_is_the_renormalized_product_of_softmaxes():
    rng = np.random.default_rng(0)
    logits = [rng.normal(size=(5, 4)) for _ in range(3)]
    probs = [np.exp(log_softmax(l)) for l in logits]
    geo = np.prod(probs, axis=0) ** (1 / 3)
    geo /= geo.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.exp(geometric_mean_log_probs(logits)), geo, rtol=1e-10)


def test_one_member_ensemble_is_the_member():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(100, 10))
    labels = rng.integers(0, 10, 100)
    m = evaluate_ensemble([logits], labels)
    assert m.accuracy == m.accuracy_arithmetic == m.member_accuracies[0] == m.oracle_accuracy
    assert m.disagreement == 0.0


def test_diversity_measures():
    labels = np.array([0, 1, 2, 0])
    a = np.eye(3)[[0, 1, 1, 0]] * 5  # right, right, wrong, right
    b = np.eye(3)[[1, 1, 2, 0]] * 5  # wrong, right, right, right
    assert pairwise_disagreement([a, b]) == pytest.approx(0.5)
    assert oracle_accuracy([a, b], labels) == 1.0


def test_ensemble_of_noisy_members_beats_them():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 10, 2000)
    clean = np.eye(10)[labels] * 2.0
    members = [clean + rng.normal(scale=2.0, size=clean.shape) for _ in range(3)]
    m = evaluate_ensemble(members, labels)
    assert m.accuracy > m.best_member_accuracy + 0.05
    assert m.nll < 2.5 and 0 <= m.ece <= 1


def test_calibration_error_of_a_perfectly_calibrated_predictor_is_small():
    rng = np.random.default_rng(3)
    conf = 0.7
    labels = np.zeros(20000, int)
    correct = rng.random(20000) < conf
    preds = np.where(correct, 0, 1)
    probs = np.full((20000, 2), 1 - conf)
    probs[np.arange(20000), preds] = conf
    assert expected_calibration_error(np.log(probs), labels) < 0.02
