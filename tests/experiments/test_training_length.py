"""experiments/check_training_length.py on made-up study runs whose margins are known."""

import json

import pandas as pd
import pytest

from experiments.check_training_length import compare, main


def study(path, epochs, rows, small_flops=10, train_examples=None, steps_per_epoch=None):
    """A study run directory with a summary.csv: rows are (architecture, n, accuracy, nll); with
    steps_per_epoch, a records.jsonl of one finished member and one failed one (no steps)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"trainer": {"epochs": epochs}, "train_examples": train_examples}))
    if steps_per_epoch:  # and points.csv: two draws per ensemble, members disagreeing on 20% and 30%
        pd.DataFrame([{"architecture": a, "n": n, "disagreement": d, "mean_member_accuracy": 0.6}
                      for a, n, _, _ in rows if n > 1 for d in (0.2, 0.3)]).to_csv(path / "points.csv", index=False)
        (path / "records.jsonl").write_text(json.dumps({"status": "ok", "steps": epochs * steps_per_epoch}) + "\n"
                                            + json.dumps({"status": "failed", "reason": "diverged"}) + "\n")
    flops = {"tiny": 5, "small": small_flops, "large": 35}
    pd.DataFrame([{"architecture": a, "n": n, "draws": 3 if n == 1 else 1, "flops": n * flops[a], "params": n,
                   "accuracy_mean": acc, "accuracy_std": 0.01 if n == 1 else float("nan"),
                   "nll_mean": nll, "nll_std": float("nan")} for a, n, acc, nll in rows]
                 ).to_csv(path / "summary.csv", index=False)
    return path


SHORT = [("small", 1, 0.50, 1.5), ("small", 2, 0.54, 1.4), ("small", 3, 0.56, 1.3), ("large", 1, 0.60, 1.2),
         ("large", 2, 0.63, 1.1)]
LONG = [("small", 1, 0.60, 1.2), ("small", 2, 0.65, 1.0), ("small", 3, 0.67, 0.9), ("large", 1, 0.66, 1.0),
        ("large", 2, 0.70, 0.8)]


def test_margin_is_the_best_smaller_ensemble_under_the_single_models_flops(tmp_path):
    runs = [study(tmp_path / "e8", 8, LONG), study(tmp_path / "e2", 2, SHORT)]
    m, g, allsum = compare(runs)
    assert list(m["epochs"]) == [2, 8]  # ordered by training length, whatever the argument order
    assert list(m["single"]) == ["large", "large"]  # "small" has no smaller architecture beside it
    assert list(m["ensemble"]) == ["3 x small", "3 x small"]
    assert m["margin"].round(6).tolist() == [-4.0, 1.0]
    assert m["nll_margin"].round(6).tolist() == [-0.1, 0.1]
    assert m["flops_ratio"].tolist() == pytest.approx([30 / 35] * 2)
    gains = g.set_index(["epochs", "architecture"])["gain"].round(6)
    assert gains[(2, "small")] == 6.0 and gains[(8, "large")] == 4.0
    assert sorted(allsum["epochs"].unique()) == [2, 8]


def test_an_ensemble_over_the_single_models_flops_is_left_out(tmp_path):
    # three small members at 12 FLOPs each cost 36 > 35: only the pair may stand against "large"
    runs = [study(tmp_path / "e2", 2, SHORT, small_flops=12), study(tmp_path / "e8", 8, LONG, small_flops=12)]
    m, _, _ = compare(runs)
    assert list(m["ensemble"]) == ["2 x small", "2 x small"]
    assert m["margin"].round(6).tolist() == [-6.0, -1.0]


def test_writes_the_table_and_figure_and_refuses_mismatched_runs(tmp_path, capsys):
    a, b = study(tmp_path / "a", 2, SHORT), study(tmp_path / "b", 8, LONG)
    assert main([str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    text = (tmp_path / "out" / "training_length.txt").read_text()
    assert "| all | 2 | - | large | 60.00% (1.00, 3) | 3 x small | 56.00% | 0.86x | -4.00 | -0.100 |" in text
    assert "| all | 2 | small | 50.00% | n = 3 | 56.00% | +6.00 | - | - |" in text  # no records, no points
    assert (tmp_path / "out" / "training_length.png").stat().st_size > 10_000
    with pytest.raises(SystemExit, match="same number of epochs on training sets of the same size"):
        compare([a, study(tmp_path / "c", 2, LONG)])
    with pytest.raises(SystemExit, match="different architectures"):
        compare([a, study(tmp_path / "d", 4, [("tiny", 1, 0.5, 1.0), ("large", 1, 0.6, 1.0)])])
    with pytest.raises(SystemExit, match="not a finished study run"):
        compare([a, tmp_path / "missing"])
    broken = study(tmp_path / "broken", 3, LONG)
    (broken / "config.json").write_text(json.dumps({"trainer": {}}))  # no epochs
    with pytest.raises(SystemExit, match="broken: not a finished study run .KeyError"):
        compare([a, broken])


def test_runs_on_two_training_set_sizes_are_told_apart_and_plotted_against_steps(tmp_path):
    """Twice the images for half the epochs: the same steps per member, another row; the figure's
    x axis is then steps, which every run must have."""
    small = [study(tmp_path / f"s{e}", e, SHORT if e == 2 else LONG, train_examples=5000, steps_per_epoch=19)
             for e in (8, 2)]
    large = study(tmp_path / "l4", 4, LONG, train_examples=10_000, steps_per_epoch=39)
    m, g, allsum = compare([large, *small])
    assert list(zip(m["train_images"], m["epochs"], m["steps"])) == [("5,000", 2, 38), ("5,000", 8, 152),
                                                                     ("10,000", 4, 156)]
    assert m["margin"].round(6).tolist() == [-4.0, 1.0, 1.0]
    assert len(g) == 6 and set(allsum["train_images"]) == {"5,000", "10,000"}
    assert g["disagreement"].round(6).tolist() == [0.25] * 6  # the largest ensemble's draws' mean
    assert g["disagreement_per_error"].round(6).tolist() == [0.625] * 6  # over 1 - 60%
    out = tmp_path / "out"
    assert main([str(large), *map(str, small), "--out", str(out)]) == 0
    assert "| 10,000 | 4 | 156 | large | 66.00% (1.00, 3) | 3 x small | 67.00% | 0.86x | +1.00 | +0.100 |" in (
        out / "training_length.txt").read_text()
    assert "| 10,000 | 4 | small | 60.00% | n = 3 | 67.00% | +7.00 | 25.0% | 0.62 |" in (
        out / "training_length.txt").read_text()
    assert (out / "training_length.png").stat().st_size > 10_000
    compare([large, study(tmp_path / "s4", 4, LONG, train_examples=5000, steps_per_epoch=19)])  # same epochs, other set
    no_records = study(tmp_path / "l8", 8, LONG, train_examples=10_000)
    with pytest.raises(SystemExit, match="no finished member, so no steps"):
        main([str(small[0]), str(no_records), "--out", str(tmp_path / "out2")])
    assert not (tmp_path / "out2").exists()  # refused before anything is written


def test_the_committed_cpu_comparison_is_its_studies_own():
    """experiments/results/cpu_training_length_2026-12-03: the table recomputed from the five committed
    study summaries is the committed one, and each margin is 3 x WRN-10-1 against WRN-10-2."""
    from experiments.check_training_length import format_table
    from tests.conftest import ROOT

    folder = ROOT / "experiments" / "results" / "cpu_training_length_2026-12-03"
    in_order = [folder / name for name in ("e2", "e6", "e18", "e54", "n10k_e27")]
    m, g, _ = compare([in_order[i] for i in (3, 0, 4, 2, 1)])
    assert format_table(m, g) == (folder / "training_length.txt").read_text()
    assert list(zip(m["train_images"], m["epochs"])) == [("5,000", 2), ("5,000", 6), ("5,000", 18), ("5,000", 54),
                                                         ("10,000", 27)]
    assert set(m["ensemble"]) == {"3 x wrn-10-1"} and list(m["steps"]) == [38, 114, 342, 1026, 1053]
    for run, (_, row) in zip(in_order, m.iterrows()):
        records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
        large = [r["val_accuracy"] for r in records if r["architecture"] == "wrn-10-2" and r["status"] == "ok"]
        assert len(large) == 3 and abs(row["single_accuracy"] - sum(large) / 3) < 1e-9
