"""Which searched samples `nas retrain` chooses (nas/retrain_cli.py)."""

from pathlib import Path

from nas.retrain_cli import searched_choices


def _records() -> list[dict]:
    rewards = {(1, 0): 0.50, (1, 1): 0.62, (1, 2): 0.58, (2, 0): 0.61, (2, 1): 0.55, (3, 0): 0.70}
    return [{"size": k, "sample": s, "status": "ok", "reward": r, "ensemble_id": f"{k}-{s}"}
            for (k, s), r in rewards.items()] + [{"size": 3, "sample": 1, "status": "failed", "reward": 0.9,
                                                  "ensemble_id": "3-1"}]


def test_top_k_is_the_k_of_highest_reward_of_each_size():
    # as the help and docs/search.md say: the best of each size, not the best few of the run (which
    # took sizes 3 and 1 here, and never a pair)
    pick = lambda **kw: [r["ensemble_id"] for r in searched_choices(_records(), Path("run"), **kw)]  # noqa: E731
    assert pick(size=None, samples=None, pareto=False, top=1) == ["1-1", "2-0", "3-0"]
    assert pick(size=None, samples=None, pareto=False, top=2) == ["1-1", "1-2", "2-0", "2-1", "3-0"]
    assert pick(size=1, samples=None, pareto=False, top=2) == ["1-1", "1-2"]
