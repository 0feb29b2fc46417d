"""Retraining results: rank agreement, retrained fronts, ensembles against singles, `nas show` / `nas plot`."""

import json

import numpy as np
import pytest

from nas.retrained import (against_singles, kendall_tau_b, member_frame, proxy_picks, rank_agreement, retrain_frame,
                           retrained_fronts, spearman)
from search_space.errors import UserError


def _row(size, sample, proxy, test, ms, members=None, recipe="fast", epochs=4, train_examples=10000, eid=None):
    return {"ensemble_id": eid or f"e{size}-{sample}", "size": size, "sample": sample, "recipe": recipe,
            "epochs": epochs, "train_examples": train_examples, "proxy_val_accuracy": proxy, "test_accuracy": test,
            "test_member_accuracies": members or [test], "latency_max_ms": ms}


ROWS = [_row(1, 3, 0.60, 0.80, 1.0), _row(1, 7, 0.65, 0.82, 2.0), _row(1, 9, 0.70, 0.81, 4.0),
        _row(2, 4, 0.68, 0.84, 2.5, [0.80, 0.81]), _row(2, 8, 0.66, 0.80, 1.5, [0.78, 0.79]),
        _row(3, 2, 0.71, 0.85, 0.9, [0.80, 0.79, 0.78])]


def test_rank_correlations_match_their_definitions():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one discordant pair of six: (5 - 1) / 6
    assert kendall_tau_b([1, 2, 3, 4], [1, 2, 4, 3]) == pytest.approx(4 / 6)
    # with ties: scipy's tau-b and Spearman (average ranks) on the same data
    a, b = [1, 1, 2, 3, 5, 5], [2, 1, 1, 4, 3, 3]
    assert kendall_tau_b(a, b) == pytest.approx(0.46153846153846156)
    assert spearman(a, b) == pytest.approx(0.6818181818181817)
    # undefined: fewer than three pairs, or one side constant
    assert spearman([1, 2], [1, 2]) is None and kendall_tau_b([1, 2, 3], [5, 5, 5]) is None


def test_the_frame_keeps_one_row_per_setting_and_ensemble_and_marks_the_pool():
    rows = ROWS + [_row(1, 3, 0.60, 0.83, 1.0),  # the same ensemble retrained again: the last row counts
                   _row(1, "pool", 0.61, 0.79, 0.8),
                   _row(1, 3, 0.60, 0.70, 1.0, epochs=1, train_examples=None)]  # another setting, whole split
    df = retrain_frame(rows)
    assert len(df) == 8
    again = df[(df["sample"] == 3) & (df["epochs"] == 4)]
    assert again["test_accuracy"].tolist() == [0.83]
    assert df[df["sample"] == "pool"]["source"].tolist() == ["pool"]
    assert df[df["epochs"] == 1]["train_examples"].tolist() == [0]
    assert df[df["sample"] == 4]["best_member_test_accuracy"].tolist() == [0.81]
    assert df[df["sample"] == 4]["weakest_member_test_accuracy"].tolist() == [0.80]


def test_agreement_per_size_over_all_sizes_and_over_members():
    records = [{"ensemble_id": "e2-4", "members": [{"id": "a", "seed": 0, "val_accuracy": 0.5},
                                                   {"id": "b", "seed": 1, "val_accuracy": 0.6}]}]
    rows = ROWS + [{**_row(2, "pool", 0.7, 0.9, 3.0, [0.7, 0.75]),
                    "members": [{"id": "c", "seed": 0, "val_accuracy": 0.55}, {"id": "a", "seed": 0,
                                                                               "val_accuracy": 0.5}]}]
    members = member_frame(rows, records)
    # a and b from the records (their retrain row has no members), c from its row; a counted once
    assert sorted(members["member"]) == ["a", "b", "c"]
    ag = rank_agreement(retrain_frame(rows), members)
    whole = ag[(ag["over"] == "ensembles") & (ag["size"] == 0)].iloc[0]
    df = retrain_frame(rows)
    assert whole["n"] == 7 and whole["spearman"] == pytest.approx(spearman(df["proxy_val_accuracy"],
                                                                           df["test_accuracy"]))
    one = ag[(ag["over"] == "ensembles") & (ag["size"] == 1)].iloc[0]
    assert one["n"] == 3 and one["kendall"] == pytest.approx(1 / 3)  # 0.60<0.65<0.70 vs 0.80<0.82>0.81
    assert ag[ag["size"] == 3]["spearman"].isna().all()  # one triple: undefined, not a number
    m = ag[ag["over"] == "members"].iloc[0]
    assert m["n"] == 3


def test_fronts_and_the_comparison_with_singles_use_test_accuracy():
    df = retrain_frame(ROWS)
    f = retrained_fronts(df)
    assert f[f["size"] == 1]["sample"].tolist() == [3, 7]  # #9 is slower and less accurate than #7
    v = against_singles(df).set_index("sample")
    # pair #8 (1.5 ms): single #3 (1.0 ms, 0.80) is the best within it: margin 0
    assert v.loc[8, "single"] == "#3" and v.loc[8, "margin"] == pytest.approx(0.0)
    # pair #4 (2.5 ms): single #7 (0.82) -> +2 points
    assert v.loc[4, "single"] == "#7" and v.loc[4, "margin"] == pytest.approx(0.02)
    # triple #2 is faster than every retrained one-member sample
    assert v.loc[2, "single"] is None and np.isnan(v.loc[2, "margin"])

    # retrained members are single models too: pair #4's faster member (0.81 at 1.2 ms) beats pair #8
    # (0.80 at 1.5 ms), and triple #2 is compared with its own best member
    def member(i, acc, ms):
        return {"id": i, "seed": 0, "val_accuracy": acc, "latency_ms": ms}

    records = [{"ensemble_id": "e2-4", "members": [member("a", 0.6, 2.5), member("b", 0.6, 1.2)]},
               {"ensemble_id": "e3-2", "members": [member("c", 0.6, 0.9), member("d", 0.6, 0.5),
                                                   member("e", 0.6, 0.3)]}]
    v = against_singles(df, member_frame(ROWS, records)).set_index("sample")
    assert v.loc[8, "single"] == "in 2-member #4" and v.loc[8, "margin"] == pytest.approx(-0.01)
    assert v.loc[2, "single"] == "in 3-member #2" and v.loc[2, "margin"] == pytest.approx(0.05)
    assert v.loc[4, "single"] == "#7"
    # with no single retrained at all, a pair has nothing to be compared with
    alone = against_singles(retrain_frame(ROWS[3:4]), member_frame(ROWS[3:4], []))
    assert alone["single"].tolist() == [None] and alone["margin"].isna().all()


def test_a_setting_with_set_items_names_keys_and_rebuilds_its_recipe():
    from nas.config import with_trainer_settings
    from nas.retrained import changed_settings, recipe_label, retrain_recipe, row_setting, setting_label, setting_slug
    from trainer.retrain import RECIPES, with_epochs

    recipe = with_trainer_settings(with_epochs(RECIPES["wrn"], 30), ["crop_pad=2", "trainer.ema_decay=0.999"])
    items = changed_settings(with_epochs(RECIPES["wrn"], 30), recipe)
    assert items == ["crop_pad=2", "ema_decay=0.999"]  # sorted by key, whatever the order given
    row = _row(1, 3, 0.6, 0.8, 1.0, recipe="wrn", epochs=30, train_examples=None) | {"set": items}
    setting = row_setting(row)
    assert setting == ("wrn+crop_pad=2+ema_decay=0.999", 30, 0)
    assert setting_slug(*setting) == "wrn30+crop_pad=2+ema_decay=0.999"
    assert setting_label(*setting) == "wrn (crop_pad=2 ema_decay=0.999), 30 epochs on the whole training split"
    assert retrain_recipe(setting[0], 30) == recipe  # what `nas export` restores with
    assert retrain_recipe("wrn", 30) == with_epochs(RECIPES["wrn"], 30) and recipe_label("wrn", []) == "wrn"
    # a row without items (every row before --set) keeps its old setting, slug and label
    assert row_setting(ROWS[0]) == ("fast", 4, 10000) and setting_slug(*row_setting(ROWS[0])) == "fast4-n10000"
    # rows of the two settings are two groups
    df = retrain_frame([ROWS[0], ROWS[0] | {"set": ["label_smoothing=0.0"]}])
    assert sorted(df["recipe"]) == ["fast", "fast+label_smoothing=0.0"]
    # the step boundaries with_epochs fits to a schedule are no item; ones given are
    step = with_trainer_settings(with_epochs(RECIPES["wrn"], 100), ["step_epochs=30,60"])
    assert changed_settings(with_epochs(RECIPES["wrn"], 100), step) == ["step_epochs=[30,60]"]
    assert retrain_recipe("wrn+step_epochs=[30,60]", 100) == step


def test_the_proxys_first_choice_against_the_best_after_retraining():
    picks = proxy_picks(retrain_frame(ROWS)).set_index("size")
    # singles: the proxy picks #9 (0.70), which retrains to 0.81; #7 reaches 0.82
    assert picks.loc[1, "pick_sample"] == 9 and picks.loc[1, "best_sample"] == 7
    assert picks.loc[1, "regret"] == pytest.approx(0.01) and picks.loc[1, "n"] == 3
    # pairs: #4 is first on both
    assert picks.loc[2, "pick_sample"] == picks.loc[2, "best_sample"] == 4 and picks.loc[2, "regret"] == 0


def test_show_and_plot_report_the_retrains(tmp_path, capsys):
    from nas.cli import main

    run = tmp_path / "run"
    (run / "members").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "fashion_mnist", "sizes": [1, 2, 3],
                                                 "samples_per_size": 3, "controller": "random",
                                                 "reward": {"target_ms": 3.0}}))
    records = [{"size": r["size"], "sample": r["sample"], "status": "ok", "accuracy": r["proxy_val_accuracy"],
                "latency_max_ms": r["latency_max_ms"], "latency_sum_ms": r["latency_max_ms"] * r["size"],
                "flops": 1, "params": 1, "reward": r["proxy_val_accuracy"], "ensemble_id": r["ensemble_id"],
                "members": []} for r in ROWS]
    (run / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "retrain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "retrained (fast, 4 epochs on 10,000 training images; 6 ensembles, test accuracy):" in out
    assert "rank agreement (Spearman, Kendall tau-b): ensembles " in out and "; size 1 " in out
    assert "2 members: 1 of 2" in out and "3 members: 0 of 0 (1 faster than every retrained single)" in out
    assert "size 1 #9 81.00% (best #7 82.00%, 1.00 pts lost); size 2 #4 84.00% (the best)" in out
    assert "+2.00 pts (#7, 2.00 ms)" in out and "(none as fast)" in out  # records name no members here
    # the pairs and the triple gain 3, 1 and 5 points over their best member, their members 1-2 points apart
    assert ("ensembles of two or more, test accuracy: 3 of 3 above their best member, median gain +3.0 points; "
            "Spearman of the gain with the members' accuracy spread") in out
    assert "\n    spread median 1.0 points, 1.0 for those above, - for the rest\n" in out
    # pool ensembles share the sample "pool": each row still gets its own comparison
    pool = [_row(2, "pool", 0.60, 0.83, 1.2, [0.8, 0.8], eid="p1"),
            _row(2, "pool", 0.65, 0.86, 2.5, [0.8, 0.8], eid="p2")]
    (run / "retrain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS + pool))
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "+3.00 pts (#3, 1.00 ms)" in out and "+4.00 pts (#7, 2.00 ms)" in out
    # the proxy's first pair is #4 (0.68); the best after retraining is the pool's p2 (0.86)
    assert "size 2 #4 84.00% (best #pool 86.00%, 2.00 pts lost)" in out
    (run / "retrain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    assert main(["show", str(run), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    setting, = shown["retrained"]
    assert setting["slug"] == "fast4-n10000" and len(setting["ensembles"]) == 6
    assert [p["size"] for p in setting["proxy_picks"]] == [1, 2, 3] and len(setting["against_singles"]) == 3
    gain = setting["gain_over_best_member"]
    assert gain["n"] == 3 and gain["above_best"] == 3 and gain["median_spread_rest"] is None
    assert all(a["spearman"] is None or np.isfinite(a["spearman"]) for a in setting["agreement"])
    assert main(["plot", str(run)]) == 0
    png = run / "plots" / "retrain-fast4-n10000.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    # three panels, the third the ensembles' gain over their best member: 16.5 inches at 130 dpi
    assert int.from_bytes(png.read_bytes()[16:20], "big") == 2145
    assert "retraining unfinished" not in capsys.readouterr().out


def test_a_reseeded_setting_moves_the_seed_and_no_trainer_setting():
    from nas.retrained import (retrain_recipe, retrain_seed, row_setting, setting_label, setting_reseed, setting_slug,
                               slug_options, slug_setting)
    from trainer.retrain import RECIPES, with_epochs

    row = ROWS[0] | {"set": ["label_smoothing=0.0"], "reseed": 2}
    setting = row_setting(row)  # the reseed after the --set items, so one change has one name
    assert setting == ("fast+label_smoothing=0.0+reseed=2", 4, 10000)
    slug = setting_slug(*setting)
    assert slug == "fast4+label_smoothing=0.0+reseed=2-n10000" and slug_setting(slug) == setting
    assert slug_options(slug) == ["--recipe", "fast", "--epochs", "4", "--set", "label_smoothing=0.0", "--reseed", "2",
                                  "--train-examples", "10000"]
    assert setting_label(*setting) == "fast (label_smoothing=0.0), 4 epochs on 10,000 training images, seeds + 2000"
    assert setting_reseed(setting[0]) == 2 and setting_reseed("fast+label_smoothing=0.0") == 0
    assert retrain_seed(1, setting[0]) == 2001 and retrain_seed(1, "fast") == 1
    # the seed is no trainer setting: the recipe restored is the --set items' alone
    assert retrain_recipe(setting[0], 4) == retrain_recipe("fast+label_smoothing=0.0", 4)
    assert retrain_recipe("fast+reseed=1", 4) == with_epochs(RECIPES["fast"], 4)
    assert row_setting(ROWS[0] | {"reseed": 0}) == row_setting(ROWS[0])  # 0: the searched seed, the plain setting
    with pytest.raises(UserError, match="reseed=x is not a positive whole number"):
        retrain_seed(0, "fast+reseed=x")


def test_show_names_the_members_checkpointed_mid_way_and_the_options_that_resume_them(tmp_path, capsys):
    # after `nas retrain --max-minutes` (or a kill): member folders with a checkpoint short of the
    # setting's epochs; a finished one, one with no checkpoint yet and a stray folder are not named
    from nas.cli import main
    from nas.retrained import recipe_label, setting_slug, slug_options

    run = tmp_path / "run"
    (run / "members").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "fashion_mnist", "sizes": [1], "samples_per_size": 1}))
    with_items = setting_slug(recipe_label("fast", ["label_smoothing=0.0", "learning_rate=1e-05"]), 3, 500)
    for folder, steps in [(f"aaaaaaaaaaaaaaaa-seed0-{with_items}", [1]), (f"bbbbbbbbbbbbbbbb-seed1-{with_items}", [1, 2]),
                          ("cccccccccccccccc-seed0-wrn200", [195, 200]), ("dddddddddddddddd-seed0-wrn200", []),
                          ("notes", [3])]:
        for step in steps or [None]:
            (run / "retrain" / folder / ("" if step is None else str(step))).mkdir(parents=True, exist_ok=True)
    assert slug_options(with_items) == ["--recipe", "fast", "--epochs", "3", "--set", "label_smoothing=0.0", "--set",
                                        "learning_rate=1e-05", "--train-examples", "500"]
    assert main(["show", str(run)]) == 0
    line, = [l for l in capsys.readouterr().out.splitlines() if "unfinished" in l]
    assert line == (f"retraining unfinished ({with_items}): 2 members checkpointed mid-way, after epochs 1, 2 of 3 "
                    f"(a `nas retrain` stopped, or still running); `nas retrain {run} --recipe fast --epochs 3 --set "
                    "label_smoothing=0.0 --set learning_rate=1e-05 --train-examples 500` with the same choice of "
                    "ensembles resumes them")
    assert main(["show", str(run), "--json"]) == 0
    unfinished, = json.loads(capsys.readouterr().out)["retraining_unfinished"]
    assert unfinished["epochs"] == 3 and [m["epoch"] for m in unfinished["members"]] == [1, 2]


def test_one_network_recorded_under_two_ids_is_one_retrained_member():
    """The CPU search's #9 and #12 (one network and seed, two ids in records from before skips were
    decoded canonically), retrained as two one-member samples: one member of the rank agreement."""
    from tests.conftest import one_network_recorded_twice

    records = list(one_network_recorded_twice())
    rows = [{**_row(1, r["sample"], r["accuracy"], 0.85, r["latency_max_ms"], eid=r["ensemble_id"]),
             "members": [{"id": r["members"][0]["id"], "seed": 0, "val_accuracy": r["accuracy"]}]} for r in records]
    assert len(retrain_frame(rows)) == 2
    members = member_frame(rows, records)
    assert len(members) == 1 and members.iloc[0]["sample"] == 9
    other = [{**records[1], "members": [{**records[1]["members"][0], "spec": records[0]["members"][0]["spec"]
                                         | {"resolution": 21}}]}]  # another network under #12's id
    assert len(member_frame(rows, records[:1] + other)) == 2
