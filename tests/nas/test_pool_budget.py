"""Retrained members pooled under a cost budget (nas/pool_budget.py, `nas pool --retrained`)."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from nas.cli import main
from nas.ensemble import evaluate_ensemble, log_softmax
from nas.pool import PoolMember
from nas.pool_budget import budget_check, budget_summary, retrained_pool, retrained_settings, subset_costs
from nas.retrained import retrain_dir
from nas.store import RunDir
from search_space.errors import UserError
from search_space.space import MnasNetSpace
from tests.conftest import one_network_recorded_twice
from trainer.data import Dataset
from trainer.retrain import SAVED_LOGITS

N_IMAGES, CLASSES = 400, 5


def _members(n: int) -> list[PoolMember]:
    return [PoolMember(f"k{i}", f"id{i}", 0, {}, 1.0 + i, 1000 * (i + 1), 10, 0.5) for i in range(n)]


def _logits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` members, the later ones (slower, in ``_members``) more accurate, errors partly shared."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, N_IMAGES)
    logits = rng.normal(size=(n, N_IMAGES, CLASSES)).astype(np.float32)
    logits[:, np.arange(N_IMAGES), labels] += np.linspace(0.6, 1.6, n)[:, None].astype(np.float32)
    return logits, labels


def test_each_pick_is_the_best_within_its_budget_on_one_half_and_scored_on_the_other():
    logits, labels = _logits(6)
    members = _members(6)
    checks = budget_check(members, log_softmax(logits), labels, [1, 2], cost="latency", splits=3)
    lat = np.array([m.latency_ms for m in members])
    acc = lambda s, images: evaluate_ensemble([logits[i][images] for i in s], labels[images]).accuracy  # noqa: E731
    assert set(checks["split"]) == {0, 1, 2} and set(checks["size"]) == {1, 2}
    for row in checks.itertuples():
        order = np.random.default_rng(row.split).permutation(N_IMAGES)
        choose, score = order[:N_IMAGES // 2], order[N_IMAGES // 2:]
        within = [s for s in itertools.combinations(range(6), row.size) if lat[list(s)].max() <= row.budget]
        best = min(within, key=lambda s: (-acc(s, choose), lat[list(s)].max()))
        assert tuple(int(x) for x in row.members.split()) == best
        assert row.cost == lat[list(best)].max() <= row.budget
        assert row.choose_accuracy == pytest.approx(acc(best, choose))
        assert row.score_accuracy == pytest.approx(acc(best, score))
    # budgets: where a front point of some size lies; a pair needs two members, so not below the second's
    assert min(checks[checks["size"] == 2]["budget"]) >= 2.0 and min(checks["budget"]) == 1.0
    summary = budget_summary(checks)
    pairs = summary[summary["size"] == 2].set_index("budget")
    for budget, r in pairs.iterrows():
        at = checks[checks["budget"] == budget].pivot(index="split", columns="size", values="score_accuracy")
        lead = at[2] - at[1]
        assert r["lead"] == pytest.approx(lead.mean()) and r["lead_positive"] == (lead > 0).sum()
        assert r["lead_std"] == pytest.approx(lead.std(ddof=1))
    assert summary[summary["size"] == 1]["lead"].isna().all()


def test_a_flops_budget_sums_the_members():
    members = _members(4)
    subsets = np.array([[0, 1], [2, 3]])
    assert subset_costs(members, subsets, "flops").tolist() == [2 * 3000, 2 * 7000]
    assert subset_costs(members, subsets, "latency").tolist() == [2.0, 4.0]
    logits, labels = _logits(4)
    checks = budget_check(members, log_softmax(logits), labels, [1, 2], cost="flops", splits=2)
    two = checks[checks["size"] == 2]
    sums = {(a, b): 2 * 1000 * (a + 1 + b + 1) for a, b in itertools.combinations(range(4), 2)}
    for row in two.itertuples():
        assert row.cost == sums[tuple(int(x) for x in row.members.split())] <= row.budget
    with pytest.raises(UserError, match="--cost watts: one of latency, flops"):
        subset_costs(members, subsets, "watts")


def _dataset(labels: np.ndarray) -> Dataset:
    x = np.zeros((len(labels), 28, 28, 1), np.uint8)
    x[:, 0, 0, 0] = np.arange(len(labels)) % 251  # a test set of its own content (its fingerprint)
    return Dataset("made-up", x[:10], labels[:10].astype(np.int32), x, labels.astype(np.int32),
                   tuple(str(i) for i in range(CLASSES)))


def _retrained_run(tmp_path, logits, labels, slug="fast3-n100", epochs=3, seed_moved_by=0):
    """A run of four one-member samples and one pair with real specs, each member's retraining in
    ``slug`` finished (test logits saved as trainer/retrain.py saves them), but the last sample's;
    retrained with the searched seed + ``seed_moved_by`` (`nas retrain --reseed`)."""
    space, rng = MnasNetSpace(28), np.random.default_rng(1)
    ds = _dataset(labels)
    run = RunDir(tmp_path / "run")
    run.create({"dataset": "made-up", "sizes": [1, 2], "seed": 0})
    members = []
    for i in range(len(logits)):
        spec = space.decode_member(space.sample(rng))
        members.append({"key": f"k{i}", "id": spec.id, "seed": 0, "spec": spec.to_dict(), "latency_ms": 1.0 + i,
                        "multiply_adds": 1000 * (i + 1), "params": 10, "val_accuracy": 0.5, "status": "ok"})
    groups = [[0], [1], [2], [len(logits) - 1], [0, 3]]
    for sample, idx in enumerate(groups):
        run.append_record({"size": len(idx), "sample": sample, "status": "ok", "accuracy": 0.5,
                           "latency_max_ms": max(members[i]["latency_ms"] for i in idx),
                           "members": [{**members[i], "seed": pos} for pos, i in enumerate(idx)]})
    for i, m in enumerate(members[:-1]):  # the last one's retraining is unfinished
        for pos in {pos for idx in groups for pos, j in enumerate(idx) if j == i}:
            folder = retrain_dir(run.path, m["id"], pos + seed_moved_by, slug)
            folder.mkdir(parents=True)
            np.savez(folder / SAVED_LOGITS, logits=logits[i], curve=np.zeros(epochs), epochs=epochs,
                     fingerprint=ds.test_fingerprint)
    return run, ds, members


def test_the_pool_holds_each_finished_retraining_once(tmp_path):
    logits, labels = _logits(5)
    run, ds, members = _retrained_run(tmp_path, logits, labels)
    assert retrained_settings(run) == ["fast3-n100"]
    pool, lp, folders = retrained_pool(run, "fast3-n100", ds)
    # members 0-3 with seed 0, and member 3 again with seed 1 (the pair's second); member 4 unfinished
    assert [(m.key, m.seed) for m in pool] == [("k0", 0), ("k1", 0), ("k2", 0), ("k3", 1)]
    np.testing.assert_allclose(lp[1], log_softmax(logits[1]), rtol=1e-6)
    assert len(folders) == len(set(folders)) == 4
    assert retrained_pool(run, "fast3-n100", ds)[0] == pool
    with pytest.raises(UserError, match="0 members retrained in setting fast4-n100"):
        retrained_pool(run, "fast4-n100", ds)  # no folder of that length: nothing there
    other = _dataset(labels[::-1].copy())
    with pytest.raises(UserError, match="the pool needs two or more"):
        retrained_pool(run, "fast3-n100", other)  # logits saved for another test set are not used
    with pytest.raises(UserError, match="fast: not a retraining setting"):
        retrained_pool(run, "fast", ds)


def test_a_reseeded_setting_pools_the_members_retrained_with_the_moved_seeds(tmp_path):
    logits, labels = _logits(5)
    run, ds, _ = _retrained_run(tmp_path, logits, labels, slug="fast3+reseed=2-n100", seed_moved_by=2000)
    assert retrained_settings(run) == ["fast3+reseed=2-n100"]
    pool, _, folders = retrained_pool(run, "fast3+reseed=2-n100", ds)
    # the members as searched (their searched seeds, as `nas export --members` names them), from the
    # folders of the moved seeds
    assert [(m.key, m.seed) for m in pool] == [("k0", 0), ("k1", 0), ("k2", 0), ("k3", 1)]
    assert [f.split("-")[1] for f in folders] == ["seed2000", "seed2000", "seed2000", "seed2001"]
    elsewhere, ds, _ = _retrained_run(tmp_path / "b", logits, labels, slug="fast3+reseed=2-n100")
    with pytest.raises(UserError, match="0 members retrained in setting fast3[+]reseed=2-n100"):
        retrained_pool(elsewhere, "fast3+reseed=2-n100", ds)  # folders at the searched seeds are not that setting's


def test_one_network_recorded_under_two_ids_is_pooled_once(tmp_path):
    logits, labels = _logits(5)
    run, ds, members = _retrained_run(tmp_path, logits, labels)
    nine, twelve = (r["members"][0] for r in one_network_recorded_twice())
    for sample, m in enumerate((nine, twelve), start=5):
        run.append_record({"size": 1, "sample": sample, "status": "ok", "accuracy": 0.5, "latency_max_ms": 1.0,
                           "members": [{**members[0], "key": f"n{sample}", "id": m["id"], "spec": m["spec"]}]})
        folder = retrain_dir(run.path, m["id"], 0, "fast3-n100")  # each retrained under its own id before
        folder.mkdir(parents=True)
        np.savez(folder / SAVED_LOGITS, logits=logits[sample - 5], curve=np.zeros(3), epochs=3,
                 fingerprint=ds.test_fingerprint)
    pool, _, _ = retrained_pool(run, "fast3-n100", ds)
    assert [m.key for m in pool] == ["k0", "k1", "k2", "k3", "n5"]


def test_nas_pool_retrained_writes_picks_and_figure_and_prints_leads(tmp_path, monkeypatch, capsys):
    import trainer.data

    logits, labels = _logits(5)
    run, ds, _ = _retrained_run(tmp_path, logits, labels)
    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: ds)
    assert main(["pool", str(run.path), "--retrained", "--holdout-splits", "3"]) == 0
    out = capsys.readouterr().out
    assert "4 distinct members retrained in setting fast3-n100" in out
    assert "within the pooled models' own costs: ahead of the single model in every halving at" in out
    assert "* above every pooled model's own cost" not in out  # a max latency never passes its slowest member's
    checks = pd.read_csv(run.path / "pool_retrained_fast3-n100_latency.csv")
    assert set(checks["split"]) == {0, 1, 2} and set(checks["size"]) == {1, 2}
    assert (run.path / "plots" / "pool_retrained_fast3-n100_latency.png").stat().st_size > 10_000
    assert main(["pool", str(run.path), "--retrained", "--cost", "flops", "--json", "--holdout-splits", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["cost"] == "flops" and got["members"] == 4
    costliest = 2 * 4000  # member k3's FLOPs: pairs cost more than any single model in the pool
    assert {b["budget"] > costliest for b in got["budgets"]} == {True, False}
    assert all(b["beyond_singles"] == (b["budget"] > costliest) for b in got["budgets"])
    # the run's report carries both costs' verdicts and figures
    from nas.report import _retrained_pools

    page = "\n".join(_retrained_pools(run, run.path / "plots", run.path))
    assert "## Retrained members recombined, per budget" in page
    assert "| fast3-n100 | flops | 2 |" in page and "| fast3-n100 | latency | 2 |" in page
    assert "(plots/pool_retrained_fast3-n100_latency.png)" in page
    assert _retrained_pools(RunDir(tmp_path / "elsewhere"), run.path / "plots", run.path) == []
    # bad input: one line, exit 2
    assert main(["pool", str(run.path), "--retrained", "--retrain-setting", "fast4-n100"]) == 2
    assert "--retrain-setting fast4-n100: no member retrained to the end in it (settings: fast3-n100)" in \
        capsys.readouterr().err
    for args, message in [(["--cost", "flops"], "--cost: only with --retrained"),
                          (["--retrain-setting", "fast3-n100", "--cost", "latency"],
                           "--retrain-setting and --cost: only with --retrained"),
                          (["--retrained", "--holdout"], "--holdout: --retrained is held out already")]:
        assert main(["pool", str(run.path), *args]) == 2
        assert message in capsys.readouterr().err
    _retrained_run(tmp_path / "second", logits, labels, slug="fast5-n100", epochs=5)
    for f in (tmp_path / "second" / "run" / "retrain").iterdir():
        f.rename(run.path / "retrain" / f.name)
    assert main(["pool", str(run.path), "--retrained"]) == 2
    assert "several settings; choose one with --retrain-setting (fast3-n100, fast5-n100)" in capsys.readouterr().err
    empty = RunDir(tmp_path / "empty")
    empty.create({"dataset": "made-up", "sizes": [1, 2]})
    assert main(["pool", str(empty.path), "--retrained"]) == 2
    assert "no member retrained to the end yet" in capsys.readouterr().err
