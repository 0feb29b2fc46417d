"""The member pool (nas/pool.py): ensembles recombined from a run's trained members."""

import itertools

import numpy as np
import pandas as pd
import pytest

from nas.ensemble import evaluate_ensemble, log_softmax
from nas.pool import member_pool, pool_fronts, search_sizes, subset_accuracies
from nas.store import RunDir
from search_space.errors import UserError
from search_space.space import MnasNetSpace
from tests.conftest import one_network_recorded_twice

N_IMAGES, CLASSES = 400, 5


def _pool_logits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` members of 55-85% accuracy whose errors partly overlap (a shared hard subset)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, N_IMAGES)
    logits = rng.normal(size=(n, N_IMAGES, CLASSES)).astype(np.float32)
    easy = rng.random(N_IMAGES) < 0.5
    logits[:, np.arange(N_IMAGES), labels] += rng.uniform(0.8, 2.2, (n, 1)).astype(np.float32)
    logits[:, easy, labels[easy]] += 6.0  # every member right: decided without summing
    return logits, labels


def test_subset_accuracies_equal_the_geometric_mean_ensembles():
    logits, labels = _pool_logits(6)
    lp = log_softmax(logits)
    subsets = np.array(list(itertools.combinations(range(6), 3)))
    got = subset_accuracies(lp, labels, subsets, chunk=7)  # several chunks, a ragged last one
    want = [evaluate_ensemble([logits[j] for j in s], labels).accuracy for s in subsets]
    np.testing.assert_allclose(got, want)
    assert len(set(np.round(want, 4))) > 5  # the subsets really differ


def _dominated(acc, lat, i):
    return any((acc[j] >= acc[i] and lat[j] <= lat[i]) and (acc[j] > acc[i] or lat[j] < lat[i])
               for j in range(len(acc)))


def test_exhaustive_sizes_score_every_subset_and_beam_extends_the_size_below():
    logits, labels = _pool_logits(7)
    lp = log_softmax(logits)
    latency = np.linspace(1.0, 7.0, 7)
    full = search_sizes(lp, labels, latency, [1, 2, 3], limit=1_000)
    assert [(k, len(full[k].subsets), full[k].method) for k in (1, 2, 3)] == [
        (1, 7, "exhaustive"), (2, 21, "exhaustive"), (3, 35, "exhaustive")]
    # a beam as wide as the size below extends every pair by every member: every triple again
    wide = search_sizes(lp, labels, latency, [3], limit=25, beam=21)[3]
    assert wide.method == "beam"
    assert sorted(map(tuple, wide.subsets)) == sorted(map(tuple, full[3].subsets))
    # a narrow beam: distinct ascending triples, each scored as exhaustively, the best pair extended
    narrow = search_sizes(lp, labels, latency, [3], limit=25, beam=1)[3]
    rows = [tuple(r) for r in narrow.subsets]
    assert len(rows) == len(set(rows)) < 35 and all(list(r) == sorted(set(r)) for r in rows)
    exhaustive = {tuple(r): a for r, a in zip(full[3].subsets, full[3].accuracy)}
    assert all(exhaustive[r] == a for r, a in zip(rows, narrow.accuracy))
    best_pair = set(full[2].subsets[np.argmax(full[2].accuracy)])
    assert sum(best_pair <= set(r) for r in rows) == 5  # the best pair with each of the 5 others


def test_only_the_sizes_asked_for_and_those_a_beam_extends_are_scored():
    logits, labels = _pool_logits(7)
    lp, latency = log_softmax(logits), np.linspace(1.0, 7.0, 7)
    said = []
    assert list(search_sizes(lp, labels, latency, [3], limit=1_000, progress=said.append)) == [3]
    assert said == ["size 3: scoring 35 candidates (exhaustive)"]  # the triples alone: no size below needed
    said.clear()
    beam = search_sizes(lp, labels, latency, [1, 4], limit=30, beam=2, progress=said.append)
    assert list(beam) == [1, 4] and [line.split(":")[0] for line in said] == ["size 1", "size 2", "size 3", "size 4"]
    # sizes 3 and 4 by a beam (C(7, 3) = C(7, 4) = 35 > 30), which extends the pairs (21, all scored)
    assert beam[4].method == "beam" and said[1].endswith("(exhaustive)") and said[2].endswith("(beam)")


def _fake_run(tmp_path, n_members=6):
    """A run whose records use members 0-1 (size 1) and 2-5 (size 2), with cached logits."""
    logits, labels = _pool_logits(n_members, seed=3)
    run = RunDir(tmp_path / "run")
    run.create({"dataset": "synthetic", "sizes": [1, 2]})
    space, rng = MnasNetSpace(28), np.random.default_rng(4)
    specs = [space.decode_member(space.sample(rng)).to_dict() for _ in range(n_members)]
    members = [{"key": f"k{i}", "id": f"id{i}", "seed": i % 2, "spec": specs[i], "latency_ms": 1.0 + i,
                "multiply_adds": 1000 * (i + 1), "params": 10 * (i + 1), "status": "ok",
                "val_accuracy": float((logits[i].argmax(-1) == labels).mean())} for i in range(n_members)]
    for i in range(n_members):
        run.save_member(f"k{i}", {"status": "ok"}, logits[i])
    samples = [(1, 0, [0]), (1, 1, [1]), (2, 0, [2, 3]), (2, 1, [4, 5])]
    for size, sample, idx in samples:
        m = evaluate_ensemble([logits[i] for i in idx], labels)
        run.append_record({"size": size, "sample": sample, "status": "ok", "accuracy": m.accuracy,
                           "latency_max_ms": max(members[i]["latency_ms"] for i in idx),
                           "members": [members[i] for i in idx]})
    return run, logits, labels


def test_pool_fronts_dominate_the_searched_fronts_and_name_searched_samples(tmp_path):
    run, logits, labels = _fake_run(tmp_path)
    front, summary = pool_fronts(run, labels, [1, 2])
    assert summary["candidates"].tolist() == [6, 15] and set(summary["method"]) == {"exhaustive"}
    for r in run.records():  # every searched ensemble is matched or beaten by a pool front point
        same = front[front["size"] == r["size"]]
        assert ((same["accuracy"] >= r["accuracy"]) & (same["latency_max_ms"] <= r["latency_max_ms"])).any()
    assert (summary["pool_best"] >= summary["searched_best"]).all()
    # the front is the exhaustive one: no pair beats a front pair
    lat = np.arange(1.0, 7.0)
    pairs = list(itertools.combinations(range(6), 2))
    acc = [evaluate_ensemble([logits[i] for i in p], labels).accuracy for p in pairs]
    plat = [lat[list(p)].max() for p in pairs]
    on_front = {frozenset(int(k[1:]) for k in row.member_keys.split()) for row in front[front["size"] == 2].itertuples()}
    assert on_front == {frozenset(p) for i, p in enumerate(pairs) if not _dominated(acc, plat, i)}
    for row in front.itertuples():
        keys = row.member_keys.split()
        assert row.reward == pytest.approx(row.accuracy * (row.latency_max_ms / 75.0) ** -0.07)  # the default reward
        assert row.flops == 2 * sum(1000 * (int(k[1:]) + 1) for k in keys)
        assert row.latency_max_ms == max(1.0 + int(k[1:]) for k in keys)
        searched = {frozenset(m["key"] for m in r["members"]): r for r in run.records()}.get(frozenset(keys))
        if searched is None:
            assert pd.isna(row.searched_sample)
        else:
            assert row.searched_sample == searched["sample"] and row.accuracy == searched["accuracy"]
    assert [m["seed"] for m in front.iloc[0]["members"]] == [int(k[1:]) % 2 for k in front.iloc[0]["member_keys"].split()]


def test_members_without_logits_are_left_out_and_an_empty_pool_is_one_error(tmp_path):
    run, _, labels = _fake_run(tmp_path)
    run.member_path("k5").unlink()
    members, lp = member_pool(run)
    assert [m.key for m in members] == ["k0", "k1", "k2", "k3", "k4"] and lp.shape == (5, N_IMAGES, CLASSES)
    with pytest.raises(UserError, match="cached logits cover 400 images, the validation split 399"):
        pool_fronts(run, labels[:-1], [1])
    for i in range(5):
        run.member_path(f"k{i}").unlink()
    with pytest.raises(UserError, match="no trained member with cached validation logits"):
        member_pool(run)


def test_one_network_and_seed_recorded_under_two_ids_is_one_pool_member(tmp_path):
    """Records from before skips were decoded canonically can hold one network twice (the CPU
    search's #9 and #12): the pool keeps it once, so no pool pair is a network with itself; the
    same network with another seed is another member."""
    run, logits, labels = _fake_run(tmp_path)
    nine, twelve = (r["members"][0]["spec"] for r in one_network_recorded_twice())
    base = run.records()[0]["members"][0]
    for sample, (key, spec, seed) in enumerate((("k6", nine, 0), ("k7", twelve, 0), ("k8", twelve, 1)), start=2):
        run.save_member(key, {"status": "ok"}, logits[0])
        run.append_record({"size": 1, "sample": sample, "status": "ok", "accuracy": 0.5, "latency_max_ms": 1.0,
                           "members": [{**base, "key": key, "id": f"id-{key}", "spec": spec, "seed": seed}]})
    members, lp = member_pool(run)
    assert [m.key for m in members] == ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k8"] and len(lp) == 8


def test_holdout_check_scores_each_pick_on_the_half_it_was_not_chosen_on(tmp_path):
    from nas.pool import holdout_check, holdout_summary

    run, logits, labels = _fake_run(tmp_path)
    checks = holdout_check(run, labels, [1, 2], splits=3)
    assert checks[["split", "size"]].values.tolist() == [[s, k] for s in range(3) for k in (1, 2)]
    lat = np.arange(1.0, 7.0)
    searched = {1: [(0,), (1,)], 2: [(2, 3), (4, 5)]}
    for row in checks.itertuples():
        order = np.random.default_rng(row.split).permutation(N_IMAGES)
        choose, score = order[:N_IMAGES // 2], order[N_IMAGES // 2:]
        assert row.choose_images + row.score_images == N_IMAGES
        acc = lambda s, images: evaluate_ensemble([logits[i][images] for i in s], labels[images]).accuracy  # noqa: E731
        # brute force: the most accurate subset on the chosen-on half (the faster among equals)
        subsets = list(itertools.combinations(range(6), row.size))
        best = min(subsets, key=lambda s: (-acc(s, choose), lat[list(s)].max()))
        assert row.pool_choose_accuracy == pytest.approx(acc(best, choose))
        assert row.pool_score_accuracy == pytest.approx(acc(best, score))
        assert row.optimism == pytest.approx(row.pool_choose_accuracy - row.pool_score_accuracy)
        pick = min(searched[row.size], key=lambda s: (-acc(s, choose), lat[list(s)].max()))
        assert row.searched_score_accuracy == pytest.approx(acc(pick, score))
        assert row.searched_latency_max_ms == lat[list(pick)].max()
        assert row.pool_within_latency_max_ms <= row.searched_latency_max_ms
        assert row.pool_choose_accuracy >= row.searched_choose_accuracy  # the pool holds the searched ensembles
    summary = holdout_summary(checks)
    assert summary["splits"].tolist() == [3, 3]
    two = checks[checks["size"] == 2]
    assert summary.iloc[1]["pool_lead"] == pytest.approx((two["pool_score_accuracy"] - two["searched_score_accuracy"]).mean())
    # a beam that left no candidate as fast as the searched pick: no comparison at its latency, not an error
    beamed = holdout_summary(checks.drop(columns=["pool_within_score_accuracy", "pool_within_latency_max_ms"]))
    assert beamed["pool_within_lead"].isna().all() and beamed["pool_lead"].notna().all()
