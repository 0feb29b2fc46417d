"""One network's seeds against different networks (nas/pool_seeds.py, `nas pool --retrained` with
several reseeded settings)."""

import json

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from nas.ensemble import log_softmax
from nas.pool import PoolMember
from nas.pool_seeds import SeedsPool, check_reseeded, kind_subsets, seeds_check, seeds_summary, seeds_verdicts
from nas.retrained import retrain_dir
from search_space.errors import UserError
from tests.nas.test_pool_budget import _logits, _retrained_run
from trainer.retrain import SAVED_LOGITS


def test_the_kinds_are_one_networks_seeds_and_different_networks_never_a_mix():
    networks = np.array([0, 1, 2, 0, 1, 2])  # three networks, each in two settings
    assert kind_subsets(networks, 1)["single"].ravel().tolist() == list(range(6))
    pairs = kind_subsets(networks, 2)
    assert pairs["one network"].tolist() == [[0, 3], [1, 4], [2, 5]]
    assert len(pairs["different networks"]) == 15 - 3
    assert all(len(set(networks[p])) == 2 for p in pairs["different networks"])
    triples = kind_subsets(networks, 3)
    assert len(triples["one network"]) == 0  # two seeds a network make no triple of one
    assert len(triples["different networks"]) == 2 ** 3  # a seed of each of the three
    with pytest.raises(UserError, match="size 3: 6 models make 20 candidates, more than 10"):
        kind_subsets(networks, 3, limit=10)


def test_only_settings_that_differ_in_the_seed_alone_are_compared():
    assert check_reseeded(["fast3-n100", "fast3+reseed=1-n100"]) == ["fast3-n100", "fast3+reseed=1-n100"]
    assert check_reseeded(["fast3+crop_pad=2-n100", "fast3+crop_pad=2+reseed=2-n100"])
    for slugs, message in [(["fast3-n100"], "needs two or more settings"),
                           (["fast3-n100", "fast3-n100"], "fast3-n100 given twice"),
                           (["fast3-n100", "fast4+reseed=1-n100"], "differ in more than the seed"),
                           (["fast3-n100", "fast3+crop_pad=2+reseed=1-n100"], "differ in more than the seed"),
                           (["fast3-n100", "fast3+reseed=1-n200"], "differ in more than the seed"),
                           (["fast3-n100", "fast"], "fast: not a retraining setting")]:
        with pytest.raises(UserError, match=message):
            check_reseeded(slugs)


def _complementary_pool(images: int = 200) -> tuple[SeedsPool, np.ndarray]:
    """Networks A (1 ms), B (2 ms) and C (3 ms), each with two seeds that err on the same images: A
    right on the first 70% of the images, B on the last 70%, C on the first half. Right, a model is
    sure (logit 5 on the true class); wrong, it leans a little to a wrong one (logit 1). So A with
    B is right everywhere, A with its other seed where A is."""
    labels = np.arange(images) % 5
    i = np.arange(images)
    right = {0: i < 0.7 * images, 1: i >= 0.3 * images, 2: i < images // 2}
    members = [PoolMember(f"k{n}", f"id{n}", 0, {}, 1.0 + n, 1000, 10, 0.5) for n in range(3)]
    models, settings, networks, log_probs = [], [], [], []
    for seed in range(2):
        for n in range(3):
            logits = np.zeros((images, 5), np.float32)
            idx = np.arange(images)
            logits[idx, np.where(right[n], labels, (labels + 1) % 5)] = np.where(right[n], 5.0, 1.0)
            logits += 0.01 * np.random.default_rng(10 * seed + n).normal(size=logits.shape).astype(np.float32)
            models.append(members[n])
            settings.append(f"s{seed}")
            networks.append(n)
            log_probs.append(log_softmax(logits))
    return SeedsPool(models, settings, np.array(networks), np.stack(log_probs)), labels


def test_different_networks_that_err_apart_beat_one_networks_seeds_in_every_halving():
    pool, labels = _complementary_pool()
    checks = seeds_check(pool, labels, [2], splits=4)
    assert set(checks["kind"]) == {"single", "one network", "different networks"}
    # budgets: where a kind's front has a point: A alone and A's seeds at 1 ms, A with B at 2 ms
    assert sorted(checks["budget"].unique()) == [1.0, 2.0]
    at2 = checks[(checks["budget"] == 2.0) & (checks["kind"] == "different networks")]
    assert (at2["score_accuracy"] == 1.0).all()
    assert all(sorted(pool.networks[[int(j) for j in m.split()]]) == [0, 1] for m in at2["models"])
    seeds1 = checks[(checks["budget"] == 1.0) & (checks["kind"] == "one network")]
    assert all(pool.networks[[int(j) for j in m.split()]].tolist() == [0, 0] for m in seeds1["models"])
    assert checks[(checks["budget"] == 1.0) & (checks["kind"] == "different networks")].empty  # none within 1 ms
    summary = seeds_summary(checks)
    row = summary[(summary["budget"] == 2.0) & (summary["kind"] == "different networks")].iloc[0]
    one = checks[(checks["budget"] == 2.0) & (checks["kind"] == "one network")].set_index("split")["score_accuracy"]
    assert row["over_one_network"] == pytest.approx((1.0 - one).mean()) and row["over_one_network_positive"] == 4
    single = checks[(checks["budget"] == 2.0) & (checks["kind"] == "single")].set_index("split")["score_accuracy"]
    assert row["lead"] == pytest.approx((1.0 - single).mean())
    assert seeds_verdicts(summary) == [{"size": 2, "budgets": 1, "ahead": 1, "behind": 0,
                                        "median_lead": pytest.approx(row["over_one_network"])}]


def _two_seeds_run(tmp_path):
    """test_pool_budget's run of four retrained members (one of them twice in the pool's sense: k3
    with its pair seed), retrained again with `--reseed 1` (other logits)."""
    logits, labels = _logits(5)
    run, ds, members = _retrained_run(tmp_path, logits, labels)
    moved, _ = _logits(5, seed=7)
    for i, m in enumerate(members[:-1]):
        pos = 1 if i == 3 else 0  # k3 is searched in the pair, at position 1
        folder = retrain_dir(run.path, m["id"], pos + 1000, "fast3+reseed=1-n100")
        folder.mkdir(parents=True)
        np.savez(folder / SAVED_LOGITS, logits=moved[i], curve=np.zeros(3), epochs=3, fingerprint=ds.test_fingerprint)
    return run, ds


def test_nas_pool_retrained_with_reseeded_settings_compares_seeds_and_networks(tmp_path, monkeypatch, capsys):
    import trainer.data

    run, ds = _two_seeds_run(tmp_path)
    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: ds)
    settings = ["--retrain-setting", "fast3-n100", "--retrain-setting", "fast3+reseed=1-n100"]
    assert main(["pool", str(run.path), "--retrained", *settings, "--holdout-splits", "3"]) == 0
    out = capsys.readouterr().out
    assert "4 networks retrained in each of 2 settings (fast3-n100, fast3+reseed=1-n100), 8 models" in out
    assert "2 seeds" in out and "2 nets" in out and "nets-seeds" in out
    assert "different networks ahead of one network's seeds in every halving at" in out
    checks = pd.read_csv(run.path / "pool_seeds_fast3-n100_x2_latency.csv")
    assert set(checks["split"]) == {0, 1, 2} and set(checks["size"]) == {1, 2}
    # a pick names its members as `nas export --members` takes them, with the setting it was retrained in
    assert checks["member_ids"].str.contains("@0/fast3[+]reseed=1-n100").any()
    assert (run.path / "plots" / "pool_seeds_fast3-n100_x2_latency.png").stat().st_size > 10_000
    assert main(["pool", str(run.path), "--retrained", *settings, "--cost", "flops", "--json",
                 "--holdout-splits", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["networks"] == 4 and got["models"] == 8 and got["cost"] == "flops"
    assert {b["kind"] for b in got["budgets"]} == {"single", "one network", "different networks"}
    # a member retrained in one setting only is left out, and said to be
    for folder in (run.path / "retrain").glob("*-seed1001-fast3+reseed=1-n100"):
        (folder / SAVED_LOGITS).unlink()
    assert main(["pool", str(run.path), "--retrained", *settings, "--holdout-splits", "2"]) == 0
    got = capsys.readouterr()
    assert "3 networks retrained in each of 2 settings" in got.out
    assert "note: 1 member retrained in some of these settings but not in all, left out" in got.err
    # the run's report carries the verdicts of both costs and the figures
    from nas.report import _seeds_pools

    page = "\n".join(_seeds_pools(run, run.path / "plots", run.path))
    assert "## One network's seeds against different networks, per budget" in page
    assert "| fast3-n100 | 2 | latency | 2 |" in page and "| fast3-n100 | 2 | flops | 2 |" in page
    assert "(plots/pool_seeds_fast3-n100_x2_latency.png)" in page
    # bad input: one line, exit 2, nothing written
    before = sorted(p.name for p in run.path.iterdir())
    for args, message in [(settings[:2] * 2, "fast3-n100 given twice"),
                          (settings + ["--sizes", "3"], "--sizes 3: one network's 3 seeds need as many settings"),
                          (settings[:2] + ["--retrain-setting", "fast5+reseed=1-n100"], "differ in more than the seed"),
                          (settings[:2] + ["--retrain-setting", "fast3+reseed=2-n100"],
                           "--retrain-setting fast3[+]reseed=2-n100: no member retrained to the end in it")]:
        assert main(["pool", str(run.path), "--retrained", *args]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert pd.Series([err]).str.contains(message).all(), err
    assert sorted(p.name for p in run.path.iterdir()) == before


def test_the_tables_print_budgets_with_the_decimals_that_tell_them_apart():
    from nas.pool_cli import _budget, _budget_digits

    assert _budget_digits(pd.Series([1.47, 2.0, 2.0]), "latency") == 2  # a budget repeated per size
    assert _budget_digits(pd.Series([1.47, 3.537, 3.539]), "latency") == 3  # the demo's, 3.54 twice at 2
    assert _budget_digits(pd.Series([3.5371, 3.5372]), "latency") == 4
    assert _budget_digits(pd.Series([29.38e6, 33.05e6]), "flops") == 2
    assert _budget(3.537, "latency", False, 3) == "3.537 " and _budget(29.38e6, "flops", True) == "29.38*"
