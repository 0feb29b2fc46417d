"""`nas compare`: hypervolume by hand, a dominating run ranks first, the CLI's figure, JSON and errors."""

import json

import pandas as pd
import pytest

from nas.cli import main
from nas.compare import compare, hypervolume, load_runs, members_trained, retrained_runs
from nas.store import RunDir
from search_space.errors import UserError

CONFIG = {"dataset": "fashion_mnist", "data_dir": None, "val_size": 100, "train_examples": 500, "seed": 0,
          "sizes": [1, 2], "samples_per_size": 3, "space": {"width_multiplier": 0.25, "head_filters": 256},
          "trainer": {"epochs": 1}, "reward": {"device": "pixel1", "target_ms": 3.0}}


def _run(path, points, keys=None, **config):
    """A run directory holding one record per (size, accuracy, max latency ms, status); ``keys``, one
    list of member-cache keys per record, where given."""
    run = RunDir(path)
    run.create({**CONFIG, **config})
    counts: dict[int, int] = {}
    for j, (size, acc, lat, status) in enumerate(points):
        i = counts[size] = counts.get(size, -1) + 1
        members = {"members": [{"key": k} for k in keys[j]]} if keys else {}
        run.append_record({"size": size, "sample": i, "status": status, "accuracy": acc if status == "ok" else None,
                           "latency_max_ms": lat, "latency_sum_ms": lat * size, "reward": acc, "flops": 1,
                           "params": 1, "ensemble_id": f"{size}-{i}", **members})
    return str(path)


def test_hypervolume_by_hand():
    front = pd.DataFrame({"latency_max_ms": [2.0, 1.0], "accuracy": [0.7, 0.5]})
    assert hypervolume(front, 3.0) == pytest.approx(2 * 0.5 + 1 * 0.2)
    # a dominated point adds nothing; a point beyond the reference adds nothing
    more = pd.DataFrame({"latency_max_ms": [1.0, 2.0, 2.5, 4.0], "accuracy": [0.5, 0.7, 0.6, 0.9]})
    assert hypervolume(more, 3.0) == pytest.approx(1.2)
    assert hypervolume(front.iloc[0:0], 3.0) == 0.0


def test_a_dominating_run_has_the_larger_hypervolume(tmp_path):
    worse = _run(tmp_path / "random", [(1, 0.5, 2.0, "ok"), (1, 0.6, 3.0, "ok"), (1, 0.0, 0.0, "failed"),
                                       (2, 0.7, 3.0, "ok")], controller="random")
    better = _run(tmp_path / "reinforce", [(1, 0.55, 1.5, "ok"), (1, 0.65, 2.5, "ok"), (2, 0.72, 2.0, "ok")],
                  controller="reinforce")
    rows = compare(load_runs([worse, better]))
    by = {(r["size"], r["run"].split()[0]): r for r in rows}
    assert [r["reference_latency_ms"] for r in rows if r["size"] == 1] == pytest.approx([3.3, 3.3])  # shared
    assert by[1, "random"]["samples"] == 3 and by[1, "random"]["failed"] == 1
    assert by[1, "reinforce"]["hypervolume"] > by[1, "random"]["hypervolume"] > 0
    assert by[2, "reinforce"]["best_accuracy"] == 0.72 and by[2, "random"]["front_points"] == 1
    assert by[1, "random"]["hypervolume"] == pytest.approx((3.3 - 2.0) * 0.5 + (3.3 - 3.0) * 0.1)


def test_members_trained_counts_each_cache_key_at_its_first_use():
    records = [{"size": 1, "sample": 0, "members": [{"key": "a"}]},
               {"size": 2, "sample": 0, "members": [{"key": "a"}, {"key": "b"}]},  # a: from the cache
               {"size": 2, "sample": 1, "members": [{"key": "a"}, {"key": "c"}]},
               {"size": 2, "sample": 2, "members": [{"key": "b"}, {"key": "c"}]},  # costs nothing
               {"size": 1, "sample": 1}]  # no member keys: counts 0
    assert members_trained(records) == {(1, 0): 1, (2, 0): 1, (2, 1): 1, (2, 2): 0, (1, 1): 0}


def test_rows_and_table_report_members_trained(tmp_path, capsys):
    a = _run(tmp_path / "a", [(2, 0.5, 2.0, "ok"), (2, 0.6, 2.0, "ok")], keys=[["x", "y"], ["x", "z"]],
             controller="evolution")
    b = _run(tmp_path / "b", [(2, 0.5, 2.0, "ok"), (2, 0.55, 2.0, "ok")], keys=[["p", "q"], ["r", "s"]])
    rows = compare(load_runs([a, b]))
    assert [(r["samples"], r["members_trained"]) for r in rows] == [(2, 3), (2, 4)]
    assert main(["compare", a, b, "--out", str(tmp_path / "c.png")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["size", "run", "samples", "members", "failed"]
    assert lines[1].split()[5:8] == ["2", "3", "0"]  # after size and "a (evolution, seed 0)": samples, members, failed


def test_cli_writes_the_figure_and_json(tmp_path, capsys):
    a = _run(tmp_path / "a", [(1, 0.5, 2.0, "ok"), (2, 0.6, 3.0, "ok")], controller="random")
    b = _run(tmp_path / "b", [(1, 0.55, 1.0, "ok"), (2, 0.7, 2.0, "ok")], seed=1)
    out = tmp_path / "plots" / "compare.png"
    assert main(["compare", a, b, "--out", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["runs"] == ["a (random, seed 0)", "b (?, seed 1)"] and len(got["sizes"]) == 4
    assert out.stat().st_size > 10_000
    assert main(["compare", a, b, "--out", str(out)]) == 0
    assert "hypervolume" in capsys.readouterr().out


@pytest.mark.parametrize("case, message", [
    ("one run", "at least two run directories"),
    ("missing run", "not a run directory"),
    ("no records", "no records yet"),
    ("other trainer", "differ in 'trainer.epochs' (2 vs 1)"),  # the key that differs, not the whole section
    ("other data", "differ in 'train_examples'"),
    ("other latency device", "differ in 'reward.device'"),
    ("the same run twice", "given twice; compare different runs"),
    ("the same run by another path", "given twice (as "),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    a = _run(tmp_path / "a", [(1, 0.5, 2.0, "ok")])
    other = {"one run": None, "missing run": str(tmp_path / "nowhere"),
             "no records": _run(tmp_path / "empty", []),
             "other trainer": _run(tmp_path / "t", [(1, 0.5, 2.0, "ok")], trainer={"epochs": 2}),
             "other data": _run(tmp_path / "d", [(1, 0.5, 2.0, "ok")], train_examples=1000),
             "other latency device": _run(tmp_path / "l", [(1, 0.5, 2.0, "ok")],
                                          reward={"device": "note10", "target_ms": 3.0}),
             "the same run twice": a, "the same run by another path": str(tmp_path / "a" / ".." / "a")}[case]
    assert main(["compare", a, *([other] if other else []), "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and not (tmp_path / "c.png").exists()


def test_runs_that_differ_only_in_how_members_run_compare(tmp_path):
    """Per-layer or whole-member programs and the scoring batch train and score the same members;
    a config stored before ``compile_unit`` existed equals one that writes its default out."""
    a = _run(tmp_path / "a", [(1, 0.5, 2.0, "ok")])  # trainer {"epochs": 1}: no compile_unit
    b = _run(tmp_path / "b", [(1, 0.6, 2.0, "ok")],
             trainer={"epochs": 1, "compile_unit": "layer", "eval_batch_size": 250})
    c = _run(tmp_path / "c", [(1, 0.6, 2.0, "ok")], trainer={"epochs": 1, "compile_unit": "program", "batch_size": 128})
    assert len(load_runs([a, b])) == 2
    with pytest.raises(UserError, match=r"differ in 'trainer.batch_size' \(128 vs 256\)"):  # 256: the default
        load_runs([a, c])


def test_cli_unwritable_figure_path_is_exit_2(tmp_path, capsys):
    a = _run(tmp_path / "a", [(1, 0.5, 2.0, "ok")])
    b = _run(tmp_path / "b", [(1, 0.6, 2.0, "ok")])
    assert main(["compare", a, b, "--out", str(tmp_path / "a" / "config.json" / "c.png")]) == 2
    assert "cannot write" in capsys.readouterr().err


def _retrain(path, rows):
    """``rows``: (size, sample, test accuracy, max latency ms, member ids, epochs) appended to
    ``path``'s retrain.jsonl as `nas retrain` writes them (fast recipe, 10,000 images)."""
    run = RunDir(path)
    for size, sample, test, lat, ids, epochs in rows:
        run.append_retrain({"ensemble_id": f"{size}-{sample}", "size": size, "sample": sample, "recipe": "fast",
                            "epochs": epochs, "train_examples": 10000, "proxy_val_accuracy": 0.5,
                            "test_accuracy": test, "test_member_accuracies": [test] * size, "latency_max_ms": lat,
                            "members": [{"id": i, "seed": 0, "val_accuracy": 0.5, "latency_ms": lat} for i in ids]})


def test_retrained_runs_compare_by_test_accuracy_though_their_proxies_differ(tmp_path, capsys):
    one = _run(tmp_path / "one_epoch", [(1, 0.50, 2.0, "ok"), (1, 0.60, 3.0, "ok"), (2, 0.70, 2.5, "ok")])
    two = _run(tmp_path / "two_epochs", [(1, 0.65, 2.0, "ok"), (2, 0.75, 2.5, "ok"), (2, 0.74, 2.0, "ok")],
               trainer={"epochs": 2})
    _retrain(one, [(1, 0, 0.80, 2.0, ["a"], 4), (1, 1, 0.83, 3.0, ["b"], 4), (2, 0, 0.82, 2.5, ["a", "c"], 4)])
    RunDir(one).append_retrain({"ensemble_id": "pool-x", "size": 1, "sample": "pool", "recipe": "fast", "epochs": 4,
                                "train_examples": 10000, "proxy_val_accuracy": 0.7, "test_accuracy": 0.99,
                                "test_member_accuracies": [0.99], "latency_max_ms": 1.0})  # pool: left out
    _retrain(two, [(1, 0, 0.81, 2.0, ["d"], 4), (2, 0, 0.84, 2.5, ["d", "e"], 4), (2, 1, 0.83, 2.0, ["d", "f"], 4)])
    with pytest.raises(UserError, match=r"differ in 'trainer.epochs' \(2 vs 1\)"):
        load_runs([one, two])  # their validation accuracies measure different proxies
    rows = {(r["size"], r["run"].split(" ")[0]): r for r in compare(retrained_runs([one, two])[0])}
    assert rows[(1, "one_epoch")]["best_accuracy"] == 0.83 and rows[(1, "one_epoch")]["samples"] == 2  # no pool row
    assert rows[(2, "two_epochs")]["best_accuracy"] == 0.84 and rows[(2, "two_epochs")]["members_trained"] == 2
    assert rows[(2, "two_epochs")]["front_points"] == 2 and rows[(2, "two_epochs")]["best_reward"] is None
    out = tmp_path / "c.png"
    assert main(["compare", one, two, "--retrained", "--out", str(out)]) == 0 and out.exists()
    text = capsys.readouterr().out
    assert text.startswith("searched ensembles retrained (fast, 4 epochs on 10,000 training images)")
    _retrain(two, [(1, 0, 0.85, 2.0, ["d"], 8)])  # a second setting, in one run only: still one shared
    assert main(["compare", one, two, "--retrained", "--json", "--out", str(out)]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["accuracy"] == "test" and got["retrain_setting"] == "fast, 4 epochs on 10,000 training images"


@pytest.mark.parametrize("case, message", [
    ("no shared setting", "no retraining setting of searched ensembles is shared by every run"),
    ("two shared settings", "more than one retraining setting"),
    ("unknown setting", "--retrain-setting fast9: not a setting every run retrained searched ensembles with "
                        "(shared: fast4-n10000, fast8-n10000)"),
    ("setting without --retrained", "--retrain-setting: give it with --retrained"),
])
def test_retrained_comparison_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    a = _run(tmp_path / "a", [(1, 0.5, 2.0, "ok")])
    b = _run(tmp_path / "b", [(1, 0.6, 2.0, "ok")])
    _retrain(a, [(1, 0, 0.8, 2.0, ["a"], 4)])
    if case != "no shared setting":
        _retrain(b, [(1, 0, 0.8, 2.0, ["b"], 4), (1, 0, 0.8, 2.0, ["b"], 8)])
        _retrain(a, [(1, 0, 0.8, 2.0, ["a"], 8)])
    extra = {"unknown setting": ["--retrained", "--retrain-setting", "fast9"],
             "setting without --retrained": ["--retrain-setting", "fast4-n10000"]}.get(case, ["--retrained"])
    assert main(["compare", a, b, *extra, "--out", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and not (tmp_path / "c.png").exists()
