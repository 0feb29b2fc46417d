"""A real search through the CLI on Fashion-MNIST: killed mid-way, resumed, checked against an
uninterrupted run, plotted; and the bad inputs a user can give it."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nas.cli import main
from tests.conftest import nas_here, run_module

pytestmark = pytest.mark.xdist_group("search")


def test_resumed_search_completes_with_every_record(resumed_run):
    run, n_killed, out = resumed_run
    records = [json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()]
    assert sorted((r["size"], r["sample"]) for r in records) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for r in records:
        assert r["status"] == "ok" and 0 < r["accuracy"] <= 1
        assert r["latency_max_ms"] == max(m["latency_ms"] for m in r["members"])
        assert r["latency_sum_ms"] == pytest.approx(sum(m["latency_ms"] for m in r["members"]))
        assert len(r["members"]) == r["size"] and len(r["decisions"]) == 50 * r["size"]
        assert {"jax", "flax", "optax"} <= set(r["versions"]) and r["flops"] > 0 and r["params"] > 0
        assert r["accuracy_arithmetic"] is not None and r["reward"] > 0
        assert all(m["lowering"].startswith("conv=") for m in r["members"])  # how each member ran
    assert any(m["cached"] for r in records for m in r["members"]) or n_killed >= 2


def test_ctrl_c_stops_a_search_at_once_and_it_resumes(interrupted_run, resumed_run):
    """Ctrl-C exits at once with code 130: the pipelined evaluator's threads were joined first, the
    members in flight compiled and trained to the end (12 s on the 2-core CPU, up to a minute for
    the demo's members) while the terminal waited. The run then resumed and completed
    (``resumed_run``; the records' checks are above and in the next tests)."""
    _, code, seconds, out = interrupted_run
    assert code == 130 and out.rstrip().endswith("nas search: interrupted") and "Traceback" not in out
    assert seconds < 5, f"{seconds:.1f} s from SIGINT to exit"
    launches = [json.loads(l) for l in (resumed_run[0] / "launches.jsonl").read_text().splitlines()]
    assert [x["resume"] for x in launches] == [False, True, True]


def test_this_modules_tests_share_one_worker_and_so_one_search(request):
    """Under ``-n 2 --dist loadgroup`` (pyproject.toml) every test here runs in the worker of group
    "search", so the session's small search (``resumed_run``, 2-5 min) runs once. pytest 9.2 broke
    the grouping without an error (pytest-xdist issue 1386): the search ran in both workers."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run by pytest-xdist with --dist loadgroup")
    assert request.node.nodeid.endswith("@search"), f"{request.node.nodeid}: xdist_group not applied"


def test_resume_gives_the_same_samples_as_an_uninterrupted_run(resumed_run, tmp_path, config_file):
    run, _, _ = resumed_run
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copytree(run / "members", fresh / "members")  # same members, so no retraining: only the loop runs
    shutil.copy(run / "config.json", fresh / "config.json")
    (fresh / "controller").mkdir()
    nas_here("search", "--run-dir", str(fresh), "--resume")
    key = lambda r: (r["size"], r["sample"])  # noqa: E731
    a = sorted((json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()), key=key)
    b = sorted((json.loads(l) for l in (fresh / "records.jsonl").read_text().splitlines()), key=key)
    assert [r["decisions"] for r in a] == [r["decisions"] for r in b]
    assert [r["accuracy"] for r in a] == [r["accuracy"] for r in b]


def test_fronts_plots_and_show(resumed_run, capsys):
    run, _, out = resumed_run
    fronts = pd.read_csv(run / "fronts.csv")
    assert set(fronts["size"]) == {1, 2} and (fronts["accuracy"] > 0).all()
    for name in ("figure3.png", "curves.png", "diversity.png"):
        assert (run / "plots" / name).stat().st_size > 10_000
    assert (run / "report.md").read_text().startswith(f"# Search run `{run.name}`")  # written by the search
    assert main(["show", str(run), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert [x["samples"] for x in s["sizes"]] == [2, 2] and s["controller"] == "reinforce"
    pairs = [r for r in map(json.loads, (run / "records.jsonl").read_text().splitlines()) if r["size"] == 2]
    (d,) = s["diversity"]  # the pairs against their best member; two pairs leave Spearman undefined
    assert d["size"] == 2 and d["n"] == 2 and d["spearman_gain_spread"] is None
    assert d["above_best"] == sum(r["accuracy"] > max(m["val_accuracy"] for m in r["members"]) for r in pairs)
    m = s["members"]  # each distinct member once: 2 of size 1 and 4 of size 2
    assert m["trained"] == 6 and m["failed"] == 0 and m["compile_s_mean"] > 0 and m["train_s_mean"] > 0
    assert m["setup_s_mean"] > 0 and 0 < m["trace_s_mean"] < m["compile_s_mean"]
    assert m["lowerings"] == ["conv=conv,depthwise=shift"]  # 500 images: XLA convolutions on the CPU
    assert m["first_epoch_s_mean"] is None  # one-epoch members: no first epoch to set apart
    import jax

    from nas.search import host_cpu

    device = f"cpu {host_cpu()} (jax {jax.__version__})"  # the CPU model: XLA compiles for its instruction set
    assert s["devices"] == [device] and host_cpu()
    # members trained per hour of searching: those a launch trained and recorded (a killed launch's
    # unrecorded ones come back as cached), over each launch's start to its last record
    p = s["pace"]
    assert 1 <= p["members"] <= 6 and 1 <= p["launches"] <= len(s["launches"])
    assert p["per_hour"] == pytest.approx(p["members"] / p["seconds"] * 3600)
    assert f"members trained in {p['seconds'] / 60:.1f} min of searching" in (run / "report.md").read_text()
    assert main(["show", str(run)]) == 0
    text = capsys.readouterr().out
    assert f"pace: {p['members']} members trained in " in text
    assert ", reinforce, 4 samples of 2 per size" in text
    assert "members: 6 trained (0 failed), per member mean setup" in text and f"on {device}" in text
    assert f"  2 members: {d['above_best']} of 2 above their best member" in text
    assert main(["plot", str(run)]) == 0


def test_report_page_holds_the_launches_tables_fronts_and_figures(resumed_run, tmp_path, capsys):
    run, n_killed, _ = resumed_run
    launches = [json.loads(l) for l in (run / "launches.jsonl").read_text().splitlines()]
    assert launches[0]["command"].startswith("nas search --run-dir ") and not launches[0]["resume"]
    assert "--config" in launches[0]["command"] and launches[-1]["resume"]
    assert launches[-1]["command"].endswith(" --resume") and len(launches) >= 2
    out = tmp_path / "pages" / "report.md"  # beside, not in, the shared run directory
    assert main(["report", str(run), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}"
    text = out.read_text()
    records = [json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()]
    assert text.startswith(f"# Search run `{run.name}`") and "4 samples (2 per size planned)" in text
    assert "Launched as:" in text and launches[0]["command"] in text
    # images linked relative to the page, and each one there
    images = [line[line.index("](") + 2:-1] for line in text.splitlines() if line.startswith("![")]
    assert len(images) >= 3 and all((out.parent / i).resolve().is_file() for i in images)
    assert any(i.endswith("plots/figure3.png") for i in images)
    for size in (1, 2):  # the per-size row: size, samples, failed, best accuracy
        best = max(r["accuracy"] for r in records if r["size"] == size)
        assert f"| {size} | 2 | 0 | {100 * best:.1f}% |" in text
    from nas.pareto import fronts
    from search_space.blockstring import encode_blocks
    from search_space.spec import from_dict

    front = fronts(records)
    section = text.split("## Pareto fronts\n")[1].split("\n## ")[0]
    keys = []
    for size, sample in zip(front["size"], front["sample"]):  # every front member's block string
        rec = next(r for r in records if (r["size"], r["sample"]) == (size, sample))
        assert f"| {size} | #{sample} | {100 * rec['accuracy']:.1f}% |" in section
        for m in rec["members"]:
            assert f"`{encode_blocks(from_dict(m['spec']).blocks)}`" in section
            keys.append(m["key"])
    # each distinct member listed once, however many front ensembles share it
    member_rows = [l for l in section.splitlines() if re.match(r"\| m\d+ \|", l)]
    assert len(member_rows) == len(set(keys))
    assert "No sample failed." in text and "## Ensembles against their best member" in text
    config = text[text.index("```json") + len("```json"):].split("```")[0]
    assert json.loads(config) == json.loads((run / "config.json").read_text())


RETRAIN_ARGS = ("--size", "1", "--epochs", "1", "--train-examples", "256", "--every", "1")


@pytest.fixture(scope="module")
def retrained_copy(resumed_run, tmp_path_factory):
    """A copy of the search whose best one-member ensemble `nas retrain` retrained (1 epoch, 256
    images); and what the command printed."""
    run, _, _ = resumed_run
    copy = tmp_path_factory.mktemp("retrained") / "copy"
    shutil.copytree(run, copy)
    return copy, nas_here("retrain", str(copy), *RETRAIN_ARGS).stdout


def test_retrain_reports_test_accuracy_of_the_best_ensemble_once(resumed_run, retrained_copy):
    run, _, _ = resumed_run
    copy, printed = retrained_copy
    args = ("retrain", str(copy), *RETRAIN_ARGS)
    assert "1 result appended to" in printed
    rows = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()]
    best = max((json.loads(l) for l in (run / "records.jsonl").read_text().splitlines() if '"size": 1' in l),
               key=lambda r: r["reward"])
    assert len(rows) == 1 and rows[0]["ensemble_id"] == best["ensemble_id"] and rows[0]["train_examples"] == 256
    assert 0 <= rows[0]["test_accuracy"] <= 1 and len(rows[0]["test_member_accuracies"]) == 1
    assert rows[0]["proxy_val_accuracy"] == best["accuracy"]
    # its member named with its proxy accuracy and latency: members are ranked by proxy against test
    # accuracy, and each is a retrained single model to compare ensembles with
    assert rows[0]["members"] == [{"id": m["id"], "seed": m["seed"], "val_accuracy": m["val_accuracy"],
                                   "latency_ms": m["latency_ms"]} for m in best["members"]]
    shown = nas_here("show", str(copy)).stdout
    assert "retrained (fast, 1 epoch on 256 training images; 1 ensemble, test accuracy):" in shown
    page = (copy / "report.md")
    assert "report: " in nas_here("report", str(copy)).stdout
    section = page.read_text().split("## Retrained: fast, 1 epoch on 256 training images\n")[1]
    assert f"| 1 | #{best['sample']} | {100 * best['accuracy']:.1f}% | {100 * rows[0]['test_accuracy']:.2f}% |" in section
    assert "![retrained, fast, 1 epoch on 256 training images](plots/retrain-fast1-n256.png)" in section
    again = nas_here(*args)  # a rerun reports the finished ensemble, it does not retrain or duplicate it
    assert "retrained earlier" in again.stdout and "every chosen ensemble was retrained earlier" in again.stdout
    assert len((copy / "retrain.jsonl").read_text().splitlines()) == 1


def test_export_writes_the_retrained_ensemble_that_predicts_as_it_was_scored(retrained_copy, tmp_path, capsys):
    """`nas export` puts the retrained member's weights and scoring statistics in a folder of their
    own: read back, they give the test logits retraining saved; `nas predict` classifies an image
    file with them; bad input is one line and exit 2, and an existing folder is left as it was."""
    from PIL import Image

    from nas.export import load_ensemble
    from trainer.data import load_dataset
    from trainer.retrain import SAVED_LOGITS

    copy, _ = retrained_copy
    row, = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()]
    out = tmp_path / "exported"
    printed = nas_here("export", str(copy), "--size", "1", "--out", str(out)).stdout
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["test_accuracy"] == row["test_accuracy"]
    assert manifest["test_accuracy_exported"] == pytest.approx(row["test_accuracy"], abs=1e-3)
    assert f"give test accuracy {manifest['test_accuracy_exported']:.4f} (retraining measured {row['test_accuracy']:.4f})" in printed
    assert sorted(p.name for p in out.iterdir()) == ["ensemble.json", "member0.npz"]
    assert not list(tmp_path.glob(".exported.*"))  # no temporary folder left beside it
    member, = manifest["members"]
    record = next(json.loads(l) for l in (copy / "records.jsonl").read_text().splitlines()
                  if json.loads(l)["ensemble_id"] == row["ensemble_id"])
    assert member["spec"] == record["members"][0]["spec"] and member["seed"] == row["members"][0]["seed"]

    # the folder alone (no run, no training images) gives the logits retraining scored, to float rounding
    ens = load_ensemble(out)
    ds = load_dataset(json.loads((copy / "config.json").read_text())["dataset"])
    ckpt = copy / "retrain" / f"{member['id'][:16]}-seed{member['seed']}-fast1-n256"
    saved = np.load(ckpt / SAVED_LOGITS)["logits"]
    logits, = ens.member_logits(ds.x_test[:500])
    np.testing.assert_allclose(logits, saved[:500], atol=1e-4)

    image = tmp_path / "test0.png"
    Image.fromarray(ds.x_test[0, :, :, 0]).save(image)
    top = json.loads(nas_here("predict", str(out), str(image), "--json", "--top", "2").stdout)["top"]
    assert top[0]["class"] == ds.class_names[int(saved[0].argmax())] and len(top) == 2
    assert top[0]["probability"] >= top[1]["probability"]

    # the same member named by hand (`nas export --members`, as `nas pool --retrained` names its picks)
    by_hand = tmp_path / "by_hand"
    nas_here("export", str(copy), "--members", f"{record['members'][0]['id'][:8]}@{member['seed']}", "--out",
             str(by_hand))
    again = json.loads((by_hand / "ensemble.json").read_text())
    assert again["sample"] == "members" and again["members"][0]["spec"] == member["spec"]
    assert again["test_accuracy"] == pytest.approx(row["test_accuracy"])  # from the saved test logits
    assert again["test_accuracy_exported"] == pytest.approx(manifest["test_accuracy_exported"])
    assert again["retrain"] == manifest["retrain"]

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for args, message in [
        (("export", str(copy), "--members", "0", "--size", "1", "--out", str(tmp_path / "x")),
         "--members: names the ensemble by itself"),
        (("export", str(copy), "--members", "zz", "--out", str(tmp_path / "x")), "--members zz: no member"),
        (("export", str(copy), "--members", "ab@x", "--out", str(tmp_path / "x")), "not ID or ID@SEED"),
        (("export", str(copy), "--members", record["members"][0]["id"][:8] + ",", "--setting", "fast2-n256", "--out",
          str(tmp_path / "x")), "--setting fast2-n256: no member retrained to the end in it (settings: fast1-n256)"),
        (("export", str(copy), "--out", str(out)), "exists and is not an empty folder"),
        (("export", str(copy), "--size", "2", "--out", str(tmp_path / "x")), "no retrained ensemble of size 2"),
        (("export", str(copy), "--setting", "wrn9", "--out", str(tmp_path / "x")), "--setting wrn9"),
        (("predict", str(tmp_path), str(image)), "not an exported ensemble"),
        (("predict", str(out), str(tmp_path / "missing.png")), "no such file"),
    ]:
        assert main(list(args)) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not (tmp_path / "x").exists()


def test_a_retraining_with_set_items_exports_with_them(retrained_copy, tmp_path, capsys):
    """`nas retrain --set` beside the plain recipe: its member trains anew into a folder of its own
    with the changed recipe, and `nas export` then needs --setting and restores it with the same
    changes (a folder keeps one run's recipe and refuses any other)."""
    from trainer.retrain import SAVED_LOGITS

    copy = tmp_path / "copy"
    shutil.copytree(retrained_copy[0], copy)
    # a schedule setting: the plain retraining's programs serve it (label smoothing's took a 25 s compile)
    printed = nas_here("retrain", str(copy), *RETRAIN_ARGS, "--set", "learning_rate=0.05").stdout
    assert "1 result appended to" in printed
    plain, changed = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()]
    assert changed["ensemble_id"] == plain["ensemble_id"] and changed["set"] == ["learning_rate=0.05"]
    member = changed["members"][0]
    folder = copy / "retrain" / f"{member['id'][:16]}-seed{member['seed']}-fast1+learning_rate=0.05-n256"
    assert (folder / SAVED_LOGITS).exists()
    assert main(["export", str(copy), "--members", member["id"][:8], "--out", str(tmp_path / "x")]) == 2
    assert "several settings; choose one with --setting (fast1+learning_rate=0.05-n256, fast1-n256)" in \
        capsys.readouterr().err
    assert main(["export", str(copy), "--size", "1", "--out", str(tmp_path / "x")]) == 2
    assert "several settings; choose one with --setting (fast1+learning_rate=0.05-n256, fast1-n256)" in \
        capsys.readouterr().err
    out = tmp_path / "exported"
    nas_here("export", str(copy), "--size", "1", "--setting", "fast1+learning_rate=0.05-n256", "--out", str(out))
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["retrain"]["set"] == ["learning_rate=0.05"]
    assert manifest["test_accuracy"] == changed["test_accuracy"]
    assert manifest["test_accuracy_exported"] == pytest.approx(changed["test_accuracy"], abs=1e-3)


def test_a_reseeded_retraining_is_a_setting_of_its_own(retrained_copy, tmp_path, capsys):
    """`nas retrain --reseed 1`: the member trains again with its searched seed + 1000, into a folder
    and a setting of their own (its row keeps the searched seed and says reseed 1), and `nas export`
    restores it with that seed; the plain setting is left as it was."""
    from trainer.retrain import SAVED_LOGITS

    copy = tmp_path / "copy"
    shutil.copytree(retrained_copy[0], copy)
    printed = nas_here("retrain", str(copy), *RETRAIN_ARGS, "--reseed", "1").stdout
    assert "1 result appended to" in printed
    plain, reseeded = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()]
    assert reseeded["ensemble_id"] == plain["ensemble_id"] and reseeded["reseed"] == 1 and "set" not in reseeded
    member = reseeded["members"][0]
    assert member["seed"] == plain["members"][0]["seed"]  # the searched seed, as the records have it
    folders = {f.name.split("-", 1)[1]: f for f in (copy / "retrain").iterdir()}
    seed = member["seed"]
    assert set(folders) == {f"seed{seed}-fast1-n256", f"seed{seed + 1000}-fast1+reseed=1-n256"}
    logits = {k: np.load(f / SAVED_LOGITS)["logits"] for k, f in folders.items()}
    first, second = logits.values()
    assert not np.array_equal(first, second)  # another seed, another training
    assert main(["show", str(copy), "--json"]) == 0
    shown = {x["slug"]: x for x in json.loads(capsys.readouterr().out)["retrained"]}
    assert shown["fast1+reseed=1-n256"]["set"] == [] and shown["fast1+reseed=1-n256"]["reseed"] == 1
    assert shown["fast1+reseed=1-n256"]["label"] == "fast, 1 epoch on 256 training images, seeds + 1000"
    assert shown["fast1-n256"]["reseed"] == 0
    # rerunning reports the row; it neither retrains nor duplicates it
    assert "retrained earlier" in nas_here("retrain", str(copy), *RETRAIN_ARGS, "--reseed", "1").stdout
    assert len((copy / "retrain.jsonl").read_text().splitlines()) == 2
    out = tmp_path / "exported"
    nas_here("export", str(copy), "--size", "1", "--setting", "fast1+reseed=1-n256", "--out", str(out))
    manifest = json.loads((out / "ensemble.json").read_text())
    assert manifest["members"][0]["seed"] == seed + 1000
    assert manifest["retrain"] == {"recipe": "fast", "set": [], "epochs": 1, "train_examples": 256, "reseed": 1,
                                   "setting": "fast1+reseed=1-n256"}
    assert manifest["test_accuracy"] == reseeded["test_accuracy"]
    assert manifest["test_accuracy_exported"] == pytest.approx(reseeded["test_accuracy"], abs=1e-3)
    assert main(["retrain", str(copy), *RETRAIN_ARGS, "--set", "reseed=2"]) == 2  # not a trainer setting
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_retraining_in_worker_processes_gives_what_retraining_here_gives(resumed_run, tmp_path):
    """`nas retrain --workers 2`: the pair's two members retrain side by side in two processes, and
    its row (test accuracies, ensemble and members) is the in-process retraining's, value for value."""
    run, _, _ = resumed_run
    rows = {}
    for mode, extra in (("here", ()), ("workers", ("--workers", "2"))):
        copy = tmp_path / mode
        shutil.copytree(run, copy)
        done = nas_here("retrain", str(copy), "--size", "2", "--epochs", "1", "--train-examples", "256", *extra)
        assert ("retraining in 2 worker processes" in done.stderr) == bool(extra)
        rows[mode], = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()]
    assert rows["workers"] == rows["here"] and len(rows["here"]["test_member_accuracies"]) == 2


def test_pool_recombines_the_trained_members_and_retrains_its_best(resumed_run, tmp_path, capsys, monkeypatch):
    run, _, _ = resumed_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    # The search stored its validation labels: recombining needs no data set (here: none loads)
    from nas.pool_cli import validation_labels
    from nas.store import RunDir

    from trainer.data import load_dataset

    carved = validation_labels(RunDir(copy), load_dataset(RunDir(copy).read_config()["dataset"]))
    assert np.array_equal(RunDir(copy).validation_labels(), carved) and len(carved) > 0
    import trainer.data

    def no_data(*a, **kw):
        raise AssertionError("nas pool loaded the data set")

    with monkeypatch.context() as m:
        m.setattr(trainer.data, "load_dataset", no_data)
        assert main(["pool", str(copy), "--json"]) == 0
    text = capsys.readouterr().out
    assert "NaN" not in text  # strict JSON: an unsampled front point's searched_sample is null
    out = json.loads(text)
    records = [json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()]
    sizes = {s["size"]: s for s in out["sizes"]}
    assert [(k, s["candidates"], s["method"]) for k, s in sorted(sizes.items())] == [(1, 6, "exhaustive"), (2, 15, "exhaustive")]
    for r in records:  # the pool's front matches or beats every searched ensemble of its size
        assert any(f["size"] == r["size"] and f["accuracy"] >= r["accuracy"] and f["latency_max_ms"] <= r["latency_max_ms"]
                   for f in out["front"])
        assert sizes[r["size"]]["pool_best"] >= r["accuracy"]
    assert len(pd.read_csv(copy / "pool_fronts.csv")) == len(out["front"])
    assert (copy / "plots" / "pool.png").stat().st_size > 10_000
    assert main(["pool", str(copy), "--holdout", "--holdout-splits", "2"]) == 0
    text = capsys.readouterr().out
    assert "6 trained members recombined" in text and "held out (2 random halvings" in text
    held = pd.read_csv(copy / "pool_holdout.csv")  # per halving and size; the searched pick always there
    assert len(held) == 4 and held["searched_score_accuracy"].notna().all()
    assert main(["report", str(copy), "--no-plots"]) == 0  # the page lists the pool's fronts, row by row
    page = (copy / "report.md").read_text().split("## The member pool's fronts\n")[1].split("\n## ")[0]
    front_rows = page.split("Held out")[0]  # then the --holdout means, one row per size
    assert front_rows.count("\n| 1 | ") + front_rows.count("\n| 2 | ") == len(out["front"]) and "(plots/pool.png)" in page
    assert "Held out (`nas pool --holdout`, 2 random halvings" in page
    # `nas retrain --pool` hands the pool's most accurate single member to the retrainer with the seed
    # it was searched with (the retrainer itself, a real one, is what the test above runs)
    import trainer.retrain

    calls = []

    def fake_retrain(spec, dataset, config, seed, checkpoint_dir, **kw):
        calls.append((spec, seed, Path(checkpoint_dir).name))
        right = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_test]
        return trainer.retrain.RetrainResult(1.0, right, (0.5,), config.epochs, 0, 0.0, 0.0)

    monkeypatch.setattr(trainer.retrain, "retrain", fake_retrain)
    by_key = {m["key"]: m for r in records for m in r["members"]}
    best = max((f for f in out["front"] if f["size"] == 1), key=lambda f: f["reward"])  # as for searched samples
    member = by_key[best["member_keys"]]
    assert main(["retrain", str(copy), "--pool", "--size", "1", "--epochs", "1"]) == 0
    assert [(c[0].id, c[1], c[2]) for c in calls] == [(member["id"], member["seed"],
                                                        f"{member['id'][:16]}-seed{member['seed']}-fast1")]
    row, = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()]
    assert row["sample"] == "pool" and row["ensemble_id"] == best["ensemble_id"] and row["test_accuracy"] == 1.0
    assert row["proxy_val_accuracy"] == best["accuracy"]
    # every size-1 front point. The run's fastest member, always on that front, sits second in a
    # pair, so has seed 1 (the architectures and latencies are the controller's and the latency
    # model's; which slower members join it depends on accuracies, which move with jax's version):
    # a seed other than 0 is handed on, by the call above if that member is the best, else by this
    # one
    calls.clear()
    front1 = [by_key[f["member_keys"]] for f in out["front"] if f["size"] == 1]
    fastest = min(by_key.values(), key=lambda m: m["latency_ms"])
    assert fastest in front1 and fastest["seed"] == 1
    assert main(["retrain", str(copy), "--pool", "--pareto", "--size", "1", "--epochs", "1"]) == 0
    assert sorted((c[0].id, c[1]) for c in calls) == sorted((m["id"], m["seed"]) for m in front1 if m is not member)
    # without --size, the sizes `nas pool` last wrote fronts for (here 2 alone), not the run's (1 and 2)
    assert main(["pool", str(copy), "--sizes", "2"]) == 0
    done = len((copy / "retrain.jsonl").read_text().splitlines())
    assert main(["retrain", str(copy), "--pool", "--pareto", "--epochs", "1"]) == 0
    new = [json.loads(l) for l in (copy / "retrain.jsonl").read_text().splitlines()][done:]
    assert sorted(r["ensemble_id"] for r in new) == sorted(f["ensemble_id"] for f in out["front"] if f["size"] == 2)
    (copy / "pool_fronts.csv").write_text("accuracy\n0.5\n")  # damaged: one error line, nothing retrained
    capsys.readouterr()
    assert main(["retrain", str(copy), "--pool", "--pareto", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pool_fronts.csv: unreadable" in err and "nas pool" in err
    assert len((copy / "retrain.jsonl").read_text().splitlines()) == done + len(new)
    # a run from before the labels were stored: the pool carves them again from the data set
    (copy / "val_labels.npy").unlink()
    capsys.readouterr()
    assert main(["pool", str(copy), "--json"]) == 0 and json.loads(capsys.readouterr().out)["front"] == out["front"]


def test_seeds_trains_copies_of_the_best_member_once_and_compares_them(resumed_run, tmp_path):
    run, _, _ = resumed_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    args = ("seeds", str(copy), "--top", "1", "--members", "2", "--backend", "sequential", "--json")
    first = nas_here(*args)
    assert "training 1 member" in first.stderr  # copy 1 is the searched member itself: only seed 1 trains
    out = json.loads(first.stdout)
    records = [json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()]
    best = max((r for r in records if r["size"] == 1), key=lambda r: r["reward"])
    one, two = out["rows"]
    assert (one["n"], two["n"]) == (1, 2) and one["sample"] == two["sample"] == best["sample"]
    assert one["accuracy"] == best["accuracy"] and one["latency_max_ms"] == two["latency_max_ms"] == best["latency_max_ms"]
    assert two["seeds"] == "0 1" and 0.0 < two["accuracy"] <= 1.0 and 0.0 <= two["disagreement"] <= 1.0
    pairs = [r for r in records if r["size"] == 2 and r["latency_max_ms"] <= best["latency_max_ms"]]
    if pairs:
        top = max(pairs, key=lambda r: r["accuracy"])
        assert two["searched_accuracy"] == top["accuracy"] and two["gain"] == pytest.approx(two["accuracy"] - top["accuracy"])
    else:
        assert two["searched_accuracy"] is None and two["gain"] is None
    assert (copy / "plots" / "seeds.png").stat().st_size > 10_000
    table = (copy / "seeds.csv").read_text()
    again = nas_here(*args[:-1])  # a rerun trains nothing and gives the same table
    assert "training" not in again.stderr and "table " in again.stdout
    assert (copy / "seeds.csv").read_text() == table
    assert "report: " in nas_here("report", str(copy), "--no-plots").stdout
    page = (copy / "report.md").read_text().split("## Copies of one member against the searched ensembles\n")[1]
    assert f"| #{best['sample']} | 2 | {100 * two['accuracy']:.1f}% |" in page and "(plots/seeds.png)" in page


@pytest.mark.slow
def test_a_member_retrained_as_the_search_trained_it_reproduces_its_recorded_accuracy(resumed_run):
    """experiments/check_isa_sensitivity.py with no instruction-set cap: same host, same numbers."""
    run, _, _ = resumed_run
    r = run_module("experiments.check_isa_sensitivity", str(run), "--size", "2", "--sample", "1", "--position", "1",
                    "--isa", "native")
    assert r.returncode == 0, r.stderr[-2000:]
    row = r.stdout.strip().splitlines()[-1].split()
    record = next(json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()
                  if json.loads(l)["size"] == 2 and json.loads(l)["sample"] == 1)
    assert row[0] == "NATIVE" and float(row[1]) == float(row[2]) == round(record["members"][1]["val_accuracy"], 4)
    bad = run_module("experiments.check_isa_sensitivity", str(run), "--size", "2", "--sample", "1", "--isa", "AVX9")
    assert bad.returncode == 2 and "choose among" in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.slow
def test_proxy_fidelity_retrains_the_searchs_members_and_ranks_them(resumed_run, tmp_path):
    """experiments/check_proxy_fidelity.py: seed+0 reproduces the search's own proxy, seed+1 is
    another draw; both ranked against a retraining setting's test accuracies."""
    run, _, _ = resumed_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    pairs = [r for r in map(json.loads, (run / "records.jsonl").read_text().splitlines()) if r["size"] == 2]
    members = [m for r in pairs for m in r["members"]]  # four members, their seeds 0 and 1
    rows = [{"ensemble_id": r["ensemble_id"], "size": 2, "sample": r["sample"], "recipe": "fast", "epochs": 1,
             "train_examples": 256, "proxy_val_accuracy": r["accuracy"], "test_accuracy": 0.5,
             "test_member_accuracies": [0.4 + 0.1 * i + 0.01 * r["sample"] for i in range(2)],
             "latency_max_ms": r["latency_max_ms"]} for r in pairs]
    (copy / "retrain.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "fidelity"
    zero = "seed+0,trainer.zero_init_residual=true"
    r = run_module("experiments.check_proxy_fidelity", str(copy), "--setting", "fast1-n256", "--variant", "seed+0",
                   "--variant", "seed+1", "--variant", zero, "--limit", "3", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    by_id = {m["id"]: m for m in members}
    same = pd.read_csv(out / "seed+0.csv")
    assert len(same) == 3 and (same["status"] == "ok").all()
    for row in same.itertuples():
        assert row.variant_seed == row.seed == by_id[row.member]["seed"]
        assert row.val_accuracy == by_id[row.member]["val_accuracy"]  # the search's proxy, reproduced
    other = pd.read_csv(out / "seed+1.csv")
    assert list(other["variant_seed"]) == [s + 1 for s in other["seed"]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["members"] == 3 and summary["variants"]["seed+0"]["vs_proxy"] == pytest.approx(1.0)
    # a variant with a setting: the same seeds, another recipe, compared member by member with its base
    zeroed = pd.read_csv(out / f"{zero}.csv")
    assert list(zeroed["variant_seed"]) == list(zeroed["seed"]) and (zeroed["status"] == "ok").all()
    paired = same.merge(zeroed, on=["member", "seed"], suffixes=("", "_zero"))
    assert (paired["val_accuracy"] != paired["val_accuracy_zero"]).any()  # the setting reached the trainer
    vs_base = summary["variants"][zero]["vs_base"]
    assert vs_base["base"] == "seed+0" and vs_base["rose"] + vs_base["fell"] <= 3
    ranks = [summary["variants"][v]["vs_test"] for v in (zero, "seed+0")]  # each against test accuracy
    assert vs_base["vs_test_gain"] == (None if None in ranks else pytest.approx(ranks[0] - ranks[1]))
    assert vs_base["mean_change"] == pytest.approx((paired["val_accuracy_zero"] - paired["val_accuracy"]).mean())
    assert "vs_base" not in summary["variants"]["seed+1"]
    again = run_module("experiments.check_proxy_fidelity", str(copy), "--setting", "fast1-n256", "--variant",
                       "seed+0", "--limit", "3", "--out", str(out))  # finished rows are kept, not retrained
    assert again.returncode == 0 and "training" not in again.stderr
    bad = run_module("experiments.check_proxy_fidelity", str(copy), "--setting", "fast9", "--variant", "seed+0",
                     "--out", str(out))
    assert bad.returncode == 2 and "not a retraining setting" in bad.stderr and "fast1-n256" in bad.stderr
    for variant, msg in [("seed+0,trainer.nope=1", "unknown key 'nope'"), ("seed+0,nope", "KEY=VALUE"),
                         ("epochs0", "expected seed+K or epochsE")]:
        bad = run_module("experiments.check_proxy_fidelity", str(copy), "--setting", "fast1-n256", "--variant",
                         variant, "--out", str(tmp_path / "bad"))
        assert bad.returncode == 2 and msg in bad.stderr and bad.stderr.count("\n") == 1, bad.stderr
        assert not (tmp_path / "bad").exists()  # refused before anything was written


def _snapshot(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


@pytest.mark.parametrize("argv, msg", [
    (["search", "--config", "nope.py", "--run-dir", "{tmp}/a"], "no such file"),
    (["search", "--run-dir", "{tmp}/a"], "--config: required"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "trainer.epochz=1"], "unknown key"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "sizes=[0]"], "sizes"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "trainer.lr"], "KEY=VALUE"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "dataset=imagenet"], "unknown name"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "dataset=idx:/nowhere"], "does not exist"),
    (["search", "--config", "{cfg}", "--run-dir", "/proc/forbidden/run"], "cannot write"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--member-cache", "/proc/forbidden"],
     "--member-cache /proc/forbidden: cannot write"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "controller=genetic"], "controller: must be"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "image_size=4"], "image_size: must be an int"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "dataset=folder:{tmp}/photos"],
     "images differ in size ((12, 12, 3) and (12, 20, 3)); set an image size"),
    # a split the data cannot give: refused before the run directory is made, or the corrected
    # command would find it holding a run
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "val_size=100000"],
     "val_size: 100000 gives 100000 of 60000 training examples"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "train_examples=70000"],
     "train_examples: 70000 not in 1..59800"),
    (["search", "--config", "{cfg}", "--run-dir", "{run}"], "already holds a run"),
    (["search", "--config", "{cfg}", "--run-dir", "{run}", "--dry-run"], "already holds a run"),
    (["search", "--config", "{cfg}", "--run-dir", "{run}", "--resume"], "drop --config"),
    (["search", "--run-dir", "{tmp}/empty", "--resume"], "not a run directory"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--precompile", "2"],
     "--precompile: only with trainer.compile_unit=padded"),
    (["search", "--run-dir", "{run}", "--resume", "--precompile", "2"],
     "--precompile: only with trainer.compile_unit=padded"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--backend", "stacked"],
     "--backend stacked: needs trainer.compile_unit=stacked"),
    (["search", "--run-dir", "{run}", "--resume", "--backend", "stacked"],
     "--backend stacked: needs trainer.compile_unit=stacked"),
    (["show", "{tmp}/nothing"], "not a run directory"),
    (["report", "{tmp}/nothing"], "not a run directory"),
    (["report", "{run}", "--out", "/proc/forbidden/report.md"], "--out /proc/forbidden: cannot write"),
    (["plot", "{tmp}/nothing"], "no records"),
    (["plot", "{tmp}/empty"], "not a run directory"),
    (["search", "--config", "{cfg}", "--run-dir", "{tmp}/a", "--set", "seed=-1"],
     "seed: must be an int in 0..2147483647, got -1"),
    (["retrain", "{tmp}/nothing"], "not a run directory"),
    (["pool", "{tmp}/nothing"], "not a run directory"),
    (["pool", "{run}", "--sizes", "7"], "6 trained members make no ensemble of size 7"),
    (["retrain", "{run}", "--pool", "--size", "9"], "make no ensemble of size 9"),
    (["retrain", "{run}", "--size", "1", "--sample", "0", "--top", "2"], "--top: not with --sample"),
    (["retrain", "{run}", "--pareto", "--top", "2"], "--top: not with --pareto"),
    (["seeds", "{run}", "--members", "1"], "needs at least 2"),
    (["seeds", "{run}", "--sample", "9"], "no successful one-member sample of that number"),
    (["seeds", "{tmp}/nothing"], "not a run directory"),
    *[(argv, "a scaling study's run (nas study), not a search; `nas report ")
      for argv in (["show", "{tmp}/study"], ["plot", "{tmp}/study"], ["pool", "{tmp}/study"],
                   ["compare", "{run}", "{tmp}/study"], ["seeds", "{tmp}/study"], ["retrain", "{tmp}/study"],
                   ["export", "{tmp}/study", "--out", "{tmp}/x"], ["search", "--run-dir", "{tmp}/study", "--resume"])],
    (["describe", "mnasnet-z9"], "not a file, a known architecture"),
    (["latency", "r1_k3_s33_e1_i32_o16"], "strides"),
    (["train", "mnasnet-a1", "--dataset", "cifar100"], "unknown name"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_the_run_alone(argv, msg, resumed_run, config_file, tmp_path, capsys):
    run, _, _ = resumed_run
    before = _snapshot(run)
    (tmp_path / "empty").mkdir()
    (tmp_path / "nothing").mkdir()
    if argv[0] == "plot":
        (tmp_path / "nothing" / "config.json").write_text(json.dumps({"dataset": "x", "sizes": [1]}))
    (tmp_path / "study").mkdir()  # a scaling study's directory, which the search-run commands refuse
    (tmp_path / "study" / "config.json").write_text(json.dumps({"dataset": "cifar10", "architectures": ["wrn-10-1"]}))
    (tmp_path / "study" / "records.jsonl").write_text(json.dumps({"architecture": "wrn-10-1", "n": 1}) + "\n")
    for split in ("train", "test"):  # photos of two sizes, which a search needs an image_size for
        (tmp_path / "photos" / split / "cat").mkdir(parents=True)
        for i, shape in enumerate([(12, 12, 3), (12, 20, 3)]):
            Image.fromarray(np.zeros(shape, np.uint8)).save(tmp_path / "photos" / split / "cat" / f"{i}.png")
    args = [a.format(tmp=tmp_path, cfg=config_file, run=run) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err
    assert _snapshot(run) == before
    assert not (tmp_path / "a").exists()  # a refused new search leaves no run directory behind


@pytest.mark.parametrize("argv", [["pool"], ["seeds", "--members", "2"], ["plot"],
                                  ["retrain", "--size", "1", "--epochs", "1"]])
def test_a_run_that_cannot_be_written_is_one_line_before_any_work(argv, resumed_run, monkeypatch, capsys):
    """A run on a read-only mount (or another user's): these commands write into it, and each was a
    traceback at its first write (`nas seeds` after training a member; checked by hand on a
    read-only bind mount). Here the write check's file fails as that mount's did."""
    import errno
    import tempfile

    run, _, _ = resumed_run
    before = _snapshot(run)

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    assert main([argv[0], str(run), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert err == (f"nas {argv[0]}: error: {run}: cannot write there (Read-only file system); `nas {argv[0]}` "
                   "writes its results into the run: copy the run somewhere writable first\n")
    assert _snapshot(run) == before


def test_a_corrupt_record_line_is_named_and_nothing_is_written(resumed_run, tmp_path, capsys):
    run, _, _ = resumed_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    lines = (copy / "records.jsonl").read_text().splitlines()
    (copy / "records.jsonl").write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    before = _snapshot(copy)
    for argv in (["show", str(copy)], ["search", "--run-dir", str(copy), "--resume"]):
        assert main(argv) == 2
        assert "records.jsonl:2: corrupt" in capsys.readouterr().err
    assert _snapshot(copy) == before
