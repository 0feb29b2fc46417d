"""Ensembles against their best member (nas/diversity.py): gain, disagreement, accuracy spread."""

import numpy as np
import pytest

from nas.diversity import diversity_frame, diversity_summary, rho_text, summary_lines
from nas.ensemble import evaluate_ensemble
from nas.plots import diversity_figure

N_IMAGES, CLASSES = 2000, 10


def _member(labels: np.ndarray, signal: float, rng: np.random.Generator) -> np.ndarray:
    """Logits: ``signal`` on the true class plus unit Gaussian noise drawn independently of other
    members (10 classes: signal 2 gives about 70% accuracy, 0 chance). The geometric mean's
    prediction is the argmax of the members' mean logits, so equal members average their noise
    away, while a weak member halves the strong one's signal for less than that in noise."""
    logits = rng.normal(0.0, 1.0, (len(labels), CLASSES))
    logits[np.arange(len(labels)), labels] += signal
    return logits


def _record(sample: int, signals: list[float], labels: np.ndarray, rng: np.random.Generator,
            status: str = "ok") -> dict:
    logits = [_member(labels, s, rng) for s in signals]
    m = evaluate_ensemble(logits, labels)
    return {"size": len(logits), "sample": sample, "status": status, "accuracy": m.accuracy,
            "accuracy_arithmetic": m.accuracy_arithmetic, "best_member_accuracy": m.best_member_accuracy,
            "disagreement": m.disagreement, "oracle_accuracy": m.oracle_accuracy, "latency_max_ms": 1.0 + sample,
            "members": [{"val_accuracy": a} for a in m.member_accuracies]}


@pytest.fixture(scope="module")
def records():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, CLASSES, N_IMAGES)
    # pairs from two equal members to a strong one with a much weaker partner
    pairs = [_record(i, [2.0, 2.0 - gap], labels, rng) for i, gap in enumerate((0.0, 0.3, 0.6, 1.0, 1.5, 2.0))]
    triples = [_record(10 + i, [2.0, 2.0, 2.0 - gap], labels, rng) for i, gap in enumerate((0.0, 1.0, 2.0))]
    single = _record(20, [2.0], labels, rng)
    failed = {"size": 2, "sample": 21, "status": "failed", "accuracy": None, "members": []}
    return pairs + triples + [single, failed]


def test_the_frame_has_every_successful_ensemble_of_two_or_more_with_its_gain_and_spread(records):
    df = diversity_frame(records)
    assert list(df["sample"]) == [0, 1, 2, 3, 4, 5, 10, 11, 12]  # no single member, no failed sample
    for r, row in zip(records, df.to_dict("records")):
        accs = [m["val_accuracy"] for m in r["members"]]
        assert row["gain"] == pytest.approx(r["accuracy"] - max(accs))
        assert row["spread"] == pytest.approx(max(accs) - min(accs))
        assert row["best_member_accuracy"] == pytest.approx(r["best_member_accuracy"])


def test_independent_equal_members_gain_and_a_weak_member_costs(records):
    df = diversity_frame(records).set_index("sample")
    # two equal members with independent noise: the geometric mean beats both
    assert df.loc[0, "gain"] > 0.05 and df.loc[0, "disagreement"] > 0.2 and df.loc[0, "spread"] < 0.03
    # a partner at chance pulls the product below the strong member alone
    assert df.loc[5, "gain"] < -0.05 and df.loc[5, "spread"] > 0.5
    s = diversity_summary(diversity_frame(records)).set_index("size")
    assert list(s.index) == [2, 3] and s.loc[2, "n"] == 6 and s.loc[3, "n"] == 3
    assert 1 <= s.loc[2, "above_best"] < 6
    assert s.loc[2, "spearman_gain_spread"] < -0.8  # the gain falls as the partner weakens
    assert s.loc[2, "median_gain"] == pytest.approx(float(df[df["size"] == 2]["gain"].median()))
    # the pairs above their best member have the closer members
    assert s.loc[2, "median_spread_above"] < s.loc[2, "median_spread_rest"]


def test_show_lines_and_the_figure(records, tmp_path):
    df = diversity_frame(records)
    lines = summary_lines(diversity_summary(df))
    assert len(lines) == 4 and lines[0].startswith("  2 members: ") and " of 6 above their best member" in lines[0]
    assert lines[1].startswith("    spread median ") and lines[2].startswith("  3 members: ")
    # two ensembles leave Spearman undefined: written "-"
    few = summary_lines(diversity_summary(df[df["sample"].isin([0, 1])]))
    assert few[0].endswith("accuracy spread -") and few[1].endswith("Spearman with the gain -")
    # a size with too few ensembles beside one with a correlation: pandas holds its None as NaN
    mixed = diversity_summary(df[df["sample"].isin([0, 1, 2, 10, 11])]).to_dict("records")
    assert rho_text(mixed[1]["spearman_gain_spread"]) == "-" and rho_text(mixed[0]["spearman_gain_spread"]) != "-"
    assert rho_text(0.14) == "+0.14" and rho_text(None) == "-"
    path = diversity_figure(df, diversity_summary(df), tmp_path / "diversity.png")
    assert path.stat().st_size > 10_000


def test_no_ensembles_gives_empty_frames():
    single = {"size": 1, "sample": 0, "status": "ok", "accuracy": 0.5, "disagreement": 0.0,
              "members": [{"val_accuracy": 0.5}]}
    assert diversity_frame([single]).empty and diversity_summary(diversity_frame([single])).empty
