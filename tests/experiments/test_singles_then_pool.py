"""experiments/check_singles_then_pool.py on the two committed CPU searches of 120 members: the one
that searched sizes 1-3 and the one that searched single models only."""

import json
import shutil

import pandas as pd

from experiments.check_singles_then_pool import held_out, main, retrained, retrained_table
from tests.conftest import ROOT

RESULTS = ROOT / "experiments" / "results"
JOINT, SINGLES = RESULTS / "cpu_search_2026-12-02", RESULTS / "cpu_search_singles_2026-12-03"


def test_held_out_picks_are_the_runs_own_halvings_paired():
    held = held_out(JOINT, SINGLES).set_index("size")
    a, b = pd.read_csv(JOINT / "pool_holdout.csv"), pd.read_csv(SINGLES / "pool_holdout.csv")
    for size in (1, 2, 3):
        ja, sb = a[a["size"] == size].set_index("split"), b[b["size"] == size].set_index("split")
        assert abs(held.loc[size, "sizes searched"] - ja["searched_score_accuracy"].mean()) < 1e-12
        assert abs(held.loc[size, "singles + pool"] - sb["pool_score_accuracy"].mean()) < 1e-12
        paired = 100 * (sb["pool_score_accuracy"] - ja["pool_score_accuracy"])  # the same halving on both sides
        assert abs(held.loc[size, "vs its pool"] - paired.mean()) < 1e-9
    assert pd.isna(held.loc[2, "singles searched"])  # the singles run searched no pairs


def test_retrained_strategies_and_their_lead_over_every_single_model():
    ensembles, versus = retrained(JOINT, SINGLES, "fast4-n10000")
    table = retrained_table(ensembles, versus).set_index(["size", "strategy"])
    rows = {name: [json.loads(l) for l in (run / "retrain.jsonl").read_text().splitlines()]
            for name, run in (("joint", JOINT), ("singles", SINGLES))}
    pool_pairs = [r for r in rows["singles"] if r["sample"] == "pool" and r["size"] == 2]
    assert table.loc[(2, "singles + pool"), "best test"] == max(r["test_accuracy"] for r in pool_pairs)
    assert table.loc[(2, "singles + pool"), "retrained"] == len({r["ensemble_id"] for r in pool_pairs})
    assert (1, "singles searched") in table.index and (2, "singles searched") not in table.index
    # every retrained single model of either run, the members of larger ensembles included, by latency
    singles = []
    for name, run in (("joint", JOINT), ("singles", SINGLES)):
        named = {r["ensemble_id"]: r["members"] for r in map(json.loads, (run / "records.jsonl").read_text().splitlines())}
        for r in rows[name]:
            if (r["recipe"], r["epochs"], r["train_examples"]) != ("fast", 4, 10000):
                continue
            if r["size"] == 1:
                singles.append((r["latency_max_ms"], r["test_accuracy"]))
            else:
                members = r.get("members") or named[r["ensemble_id"]]
                singles += [(m["latency_ms"], t) for m, t in zip(members, r["test_member_accuracies"])]
    above = 0
    for r in pool_pairs:
        fit = [t for ms, t in singles if ms <= r["latency_max_ms"]]
        above += bool(fit) and r["test_accuracy"] > max(fit)
    assert table.loc[(2, "singles + pool"), "beat every single"] == f"{above} of {len(pool_pairs)}"


def test_writes_the_table_and_figure_and_needs_both_holdouts(tmp_path, capsys):
    assert main([str(JOINT), str(SINGLES), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "singles_then_pool.png").stat().st_size > 20_000
    text = (tmp_path / "out" / "singles_then_pool.txt").read_text()
    assert "held out on the proxy" in text and "singles + pool" in text
    assert main([str(JOINT), str(SINGLES), "--held-out-only", "--out", str(tmp_path / "held")]) == 0
    held = (tmp_path / "held" / "singles_then_pool.txt").read_text()
    assert held.strip() == text.split("\n\nretrained")[0].strip()  # the same table, nothing retrained read
    assert not (tmp_path / "held" / "singles_then_pool.png").exists()
    copy = tmp_path / "singles"
    shutil.copytree(SINGLES, copy, ignore=shutil.ignore_patterns("pool_holdout.csv", "plots"))
    capsys.readouterr()
    assert main([str(JOINT), str(copy), "--out", str(tmp_path / "out2")]) == 2
    assert "no pool_holdout.csv; run `nas pool" in capsys.readouterr().err
