"""The search loop with each controller, on members whose results are made up from their specs (no
training): fast enough to check what only a whole search shows, e.g. that regularized evolution's
children are mutations of earlier samples and that an interrupted search resumes exactly."""

import hashlib
import json
import pathlib

import numpy as np
import pytest

from controller.evolution import EvolutionConfig
from nas.cli import main
from nas.config import SearchConfig, SpaceConfig, extend_config
from nas.search import run_search
from nas.search_cli import make_plots
from nas.store import RunDir
from search_space.errors import UserError
from tests.conftest import one_network_recorded_twice
from trainer.config import TrainConfig
from trainer.data import Dataset
from trainer.train import MemberResult


class MadeUpEvaluator:
    """Each member's validation logits follow from its key: right on a spec-dependent fraction of
    the images, so ensembles differ in accuracy and the reward has something to select."""

    name = "made-up"

    def __init__(self, fail=False):
        self.trained, self.fail = 0, fail

    def evaluate_many(self, jobs, split, config):
        for job in jobs:
            self.trained += 1
            if self.fail:
                yield job, MemberResult(job.key[:12], "failed", "out of memory")
                continue
            seed = int.from_bytes(hashlib.sha256(job.key.encode()).digest()[:4], "little")
            rng = np.random.default_rng(seed)
            right = rng.random(len(split.y_val)) < rng.uniform(0.3, 0.9)
            guess = np.where(right, split.y_val, (split.y_val + 1) % split.num_classes)
            logits = np.eye(split.num_classes, dtype=np.float32)[guess] * 4.0
            yield job, MemberResult(job.key[:12], "ok", val_accuracy=float(right.mean()), val_logits=logits)

    def close(self):
        pass


def _dataset():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (400, 28, 28, 1), dtype=np.uint8)
    y = rng.integers(0, 10, 400).astype(np.int32)
    return Dataset("made-up", x[:300], y[:300], x[300:], y[300:], tuple(str(i) for i in range(10)))


def _config(controller, sizes=(1, 2), samples_per_size=8):
    return SearchConfig(dataset="made-up", val_size=100, sizes=sizes, samples_per_size=samples_per_size, batch=2,
                        controller=controller, evolution=EvolutionConfig(population=4, tournament=2),
                        space=SpaceConfig(width_multiplier=0.25, head_filters=128), trainer=TrainConfig(epochs=1))


def _search(path, controller, stop_after=None, evaluator=None, member_cache=None, config=None):
    run = RunDir(path)
    config = config or _config(controller)
    if not run.exists():
        run.create(config.to_dict())
    run_search(run, config, evaluator or MadeUpEvaluator(), log=lambda s: None, stop_after=stop_after,
               dataset=_dataset(), member_cache=member_cache)
    return [(r["size"], r["sample"], r["decisions"], r["reward"]) for r in run.records()]


@pytest.mark.parametrize("controller", ["evolution", "random", "reinforce"])
def test_an_interrupted_search_resumes_to_the_same_records(controller, tmp_path):
    whole = _search(tmp_path / "whole", controller)
    assert len(whole) == 16
    assert _search(tmp_path / "cut", controller, stop_after=5) == whole[:5]
    assert _search(tmp_path / "cut", controller) == whole


@pytest.mark.parametrize("controller", ["evolution", "random", "reinforce"])
def test_a_damaged_controller_checkpoint_is_replayed_from_the_records(controller, tmp_path):
    """A checkpoint damaged after it was written (a disk error, a partial copy) was an unpickling
    traceback on every resume. The controller now restarts from its seed and is fed the recorded
    rounds (each drawn again, the same, and updated with the recorded rewards): the resumed run
    records what the undamaged one would and ends with the same checkpoint, byte for byte."""
    whole = _search(tmp_path / "whole", controller)
    assert _search(tmp_path / "cut", controller, stop_after=9) == whole[:9]
    one = tmp_path / "cut" / "controller" / "size1.pkl"
    one.write_bytes(one.read_bytes()[: len(one.read_bytes()) // 2])  # cut short
    (tmp_path / "cut" / "controller" / "size2.pkl").write_bytes(b"")
    lines = []
    run_search(RunDir(tmp_path / "cut"), _config(controller), MadeUpEvaluator(), log=lines.append, dataset=_dataset())
    replays = [l for l in lines if "replaying" in l]
    assert len(replays) == 2 and replays[1].endswith("size2.pkl: unreadable (EOFError: Ran out of input); "
                                                     "replaying its controller from the records")
    assert replays[0].startswith(f"size 1: {one}: unreadable (")
    assert not any("drawn again differently" in l for l in lines)
    records = [(r["size"], r["sample"], r["decisions"], r["reward"]) for r in RunDir(tmp_path / "cut").records()]
    assert records == whole
    for n in (1, 2):
        assert (tmp_path / "cut" / "controller" / f"size{n}.pkl").read_bytes() == \
            (tmp_path / "whole" / "controller" / f"size{n}.pkl").read_bytes()


def test_the_controller_learns_from_the_recorded_decisions_where_a_draw_differs(tmp_path, monkeypatch):
    """Where a resumed controller draws other decisions than the record at that place holds (a
    replay that does not repeat itself), it is updated with the record's, which were evaluated."""
    from controller.random_search import RandomSearch

    updated = []  # (step, samples) of each update, as the controller was given them
    plain_update = RandomSearch.update
    monkeypatch.setattr(RandomSearch, "update",
                        lambda self, samples, rewards: updated.append((self.step, samples.copy()))
                        or plain_update(self, samples, rewards))
    whole = _search(tmp_path / "whole", "random")
    _search(tmp_path / "cut", "random", stop_after=4)
    (tmp_path / "cut" / "controller" / "size1.pkl").unlink()
    recs = RunDir(tmp_path / "cut").records()
    first = next(r for r in recs if (r["size"], r["sample"]) == (1, 0))
    first["decisions"] = [1 - d if d < 2 else d for d in first["decisions"]]  # as if drawn otherwise
    (tmp_path / "cut" / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    lines = []
    updated.clear()
    run_search(RunDir(tmp_path / "cut"), _config("random"), MadeUpEvaluator(), log=lines.append, dataset=_dataset())
    assert "  size 1 #0: drawn again differently from its record; updating with the record's" in lines
    step, samples = updated[0]  # size 1's first round, replayed: sample 0 is the record's
    assert step == 0 and samples[0].tolist() == first["decisions"]
    assert [r["decisions"] for r in RunDir(tmp_path / "cut").records()][1:] == [w[2] for w in whole][1:]


@pytest.mark.parametrize("controller", ["evolution", "random", "reinforce"])
def test_a_search_given_more_samples_and_sizes_records_what_a_larger_run_would(controller, tmp_path):
    larger = _search(tmp_path / "larger", controller, config=_config(controller, sizes=(1, 2, 3), samples_per_size=8))
    small = _config(controller, sizes=(1, 2), samples_per_size=4)
    before = _search(tmp_path / "run", controller, config=small)
    after = _search(tmp_path / "run", controller, config=extend_config(small, ["samples_per_size=8", "sizes=[1,2,3]"]))
    assert len(before) == 8 and after[:8] == before  # appended to, nothing rewritten
    assert sorted(after) == sorted(larger) and len(larger) == 24


@pytest.mark.parametrize("overrides, msg", [
    (["trainer.epochs=2"], "--set trainer.epochs: a resumed run keeps its config except for more samples_per_size "
                           "or more sizes; start a new run (--config ... --set trainer.epochs=...) to change "
                           "trainer.epochs"),
    (["samples_per_size=2"], "--set samples_per_size=2: the run already takes 4 samples per size; it can take more, "
                             "not fewer"),
    (["sizes=[2]"], "--set sizes=[2]: the run searches sizes [1, 2]; it can add sizes, not drop [1]"),
    (["sizes=[1,2,2]"], "sizes: each size once, got (1, 2, 2)"),
    (["samples_per_size=x"], "--set samples_per_size: expected an int, got 'x'"),
])
def test_only_more_samples_or_sizes_extend_a_run(overrides, msg):
    with pytest.raises(UserError) as e:
        extend_config(_config("random", samples_per_size=4), overrides)
    assert str(e.value) == msg


def test_a_run_ending_in_a_part_round_takes_no_more_samples():
    with pytest.raises(UserError, match="end in a part round .batch 2.*multiple of batch"):
        extend_config(_config("random", samples_per_size=5), ["samples_per_size=8"])
    assert extend_config(_config("random", samples_per_size=5), ["sizes=[1,2,3]"]).sizes == (1, 2, 3)


def test_search_resume_with_set_extends_the_run_and_bad_extensions_leave_it_alone(tmp_path, monkeypatch, capsys):
    import nas.cli
    import nas.search

    run = tmp_path / "run"
    _search(run, "random", config=_config("random", samples_per_size=4))
    monkeypatch.setattr(nas.search, "load_config_dataset", lambda config: _dataset())
    monkeypatch.setattr(nas.cli, "evaluator_from_args", lambda args: MadeUpEvaluator())
    before = {name: (run / name).read_bytes() for name in ("config.json", "records.jsonl")}
    for bad in (["--set", "trainer.epochs=2"], ["--set", "samples_per_size=2"], ["--config", "x.py"]):
        capsys.readouterr()
        assert main(["search", "--run-dir", str(run), "--resume", *bad]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("nas search: error: ")
        assert {name: (run / name).read_bytes() for name in before} == before
    assert main(["search", "--run-dir", str(run), "--resume", "--set", "samples_per_size=6"]) == 0
    assert RunDir(run).read_config()["samples_per_size"] == 6
    assert sorted((r["size"], r["sample"]) for r in RunDir(run).records()) == [(n, i) for n in (1, 2) for i in range(6)]
    assert (run / "records.jsonl").read_bytes().startswith(before["records.jsonl"])
    assert [l["command"] for l in RunDir(run).launches()] == [f"nas search --run-dir {run} --resume --set "
                                                               "samples_per_size=6"]  # the refused ones left none
    capsys.readouterr()
    assert main(["show", str(run)]) == 0 and "12 samples of 6 per size" in capsys.readouterr().out


def test_a_time_limited_search_stops_at_a_round_boundary_and_resumes_as_if_never_stopped(tmp_path, monkeypatch,
                                                                                        capsys):
    import nas.cli
    import nas.search

    whole = _search(tmp_path / "whole", "reinforce")  # 4 rounds of 4 samples (sizes 1 and 2, batch 2)
    monkeypatch.setattr(nas.search, "load_config_dataset", lambda config: _dataset())
    monkeypatch.setattr(nas.cli, "evaluator_from_args", lambda args: MadeUpEvaluator())
    run = RunDir(tmp_path / "run")
    run.create(_config("reinforce").to_dict())

    def records():
        return [(r["size"], r["sample"], r["decisions"], r["reward"]) for r in run.records()]

    for launch in (1, 2):  # long past the limit after the first round, yet each launch runs one
        assert main(["search", "--run-dir", str(run.path), "--resume", "--max-minutes", "1e-9"]) == 0
        out, err = capsys.readouterr()
        assert records() == whole[:4 * launch]
        assert f"time limit: stopping before round {launch + 1}/4 with {4 * launch} of 16 samples recorded" in err
        assert f"run {run.path}: {4 * launch} samples" in out and (run.path / "plots" / "figure3.png").is_file()
    assert main(["search", "--run-dir", str(run.path), "--resume"]) == 0
    assert records() == whole and "time limit" not in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["search", "--run-dir", str(run.path), "--resume", "--max-minutes", "0"])
    assert e.value.code == 2 and "--max-minutes: expected a positive number, got '0'" in capsys.readouterr().err


def test_a_search_into_a_run_another_search_is_writing_is_refused_and_changes_nothing(tmp_path, monkeypatch,
                                                                                      capsys):
    import nas.cli

    run = RunDir(tmp_path / "run")
    _search(run.path, "random", config=_config("random", samples_per_size=2))
    monkeypatch.setattr(nas.cli, "evaluator_from_args", lambda args: MadeUpEvaluator())
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with run.exclusive("search"):
        capsys.readouterr()
        assert main(["search", "--run-dir", str(run.path), "--resume", "--set", "samples_per_size=4"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another `nas search` is writing this run (pid " in err
        # not even the launch line or the extended config
        assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file() and p.name != "search.lock"} == before


def test_show_tells_of_a_running_search_and_of_its_rounds_members_trained_before_the_records(tmp_path, capsys):
    import json
    import os
    import shutil

    run = RunDir(tmp_path / "run")
    _search(run.path, "random", config=_config("random", samples_per_size=4))
    last = run.read_round()  # written as each round starts: the second of two, all recorded now
    recorded = {m["key"] for r in run.records() if r["sample"] >= 2 for m in r["members"]}
    assert (last["round"], last["rounds"]) == (2, 2) and set(last["members"]) == recorded
    capsys.readouterr()
    assert main(["show", str(run.path)]) == 0
    out = capsys.readouterr().out
    assert "search running" not in out and "round" not in out.splitlines()[1]
    # a third round that trained one of its two members before a kill, and a member outside any
    # round (as `nas seeds` trains), which no round counts
    members = run.path / "members"
    for key in ("f" * 32, "c" * 32):
        shutil.copy(next(members.glob("*.npz")), members / f"{key}.npz")
        os.utime(members / f"{key}.npz", (1e9, 1e9))
    run.write_round({"round": 3, "rounds": 3, "started": 1e9, "members": ["e" * 32, "f" * 32]})
    assert main(["show", str(run.path)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.startswith("interrupted in round 3/3, 1 of 2 members trained (the last ")
    assert line.endswith(f" min ago): `nas search --run-dir {run.path} --resume` goes on with them")
    with run.exclusive("search"):
        assert main(["show", str(run.path)]) == 0
        line = capsys.readouterr().out.splitlines()[1]
        assert line.startswith(f"search running (pid {os.getpid()} on ") and "): round 3/3, 1 of 2 members" in line
        assert main(["show", str(run.path), "--json"]) == 0
        progress = json.loads(capsys.readouterr().out)["in_progress"]
        assert progress["writer"].startswith(f"pid {os.getpid()}") and progress["last_member_time"] == 1e9
        assert (progress["round"], progress["members"], progress["trained"]) == (3, 2, 1)
    assert run.writer("search") is None


def test_evolution_children_mutate_one_decision_of_an_earlier_sample(tmp_path, capsys):
    evaluator = MadeUpEvaluator()
    records = _search(tmp_path / "run", "evolution", evaluator=evaluator)
    # A child of a two-member ensemble trains only the member its mutation changed, the other comes
    # from the member cache: size 1 trains 8 members, size 2 trains 2 x 4 for its random samples,
    # then 1 per child, 4 (random search: 8 + 16).
    assert evaluator.trained == 8 + 2 * 4 + 4
    for size in (1, 2):
        rows = sorted((r for r in records if r[0] == size), key=lambda r: r[1])
        vecs = [np.array(r[2]) for r in rows]
        for i in range(4, 8):  # population 4 = the first two rounds at batch 2, then children
            assert min(int((vecs[i] != v).sum()) for v in vecs[:i]) == 1
        assert len({tuple(v) for v in vecs}) == 8
    # and each child builds an ensemble no earlier sample built (inert mutations are redrawn)
    for size in (1, 2):
        assert len({r["ensemble_id"] for r in RunDir(tmp_path / "run").records() if r["size"] == size}) == 8
    paths = make_plots(RunDir(tmp_path / "run"))  # the curves name what evolution's "entropy" is
    assert paths["curves"].stat().st_size > 10_000
    assert main(["show", str(tmp_path / "run")]) == 0
    assert ", evolution, 16 samples of 8 per size" in capsys.readouterr().out


def test_show_lists_and_exports_the_front_ensembles(tmp_path, capsys):
    import json

    _search(tmp_path / "run", "random")
    run, out = str(tmp_path / "run"), tmp_path / "front"
    assert main(["show", run, "--json", "--front", "--export", str(out)]) == 0
    shown = json.loads(capsys.readouterr().out)
    records = {(r["size"], r["sample"]): r for r in RunDir(run).records()}
    assert {p["size"] for p in shown["front"]} == {1, 2} and len(shown["exported"]) == len(shown["front"])
    for point, path in zip(shown["front"], shown["exported"]):
        rec = records[point["size"], point["sample"]]
        assert len(point["members"]) == point["size"] and point["members"][0]["blocks"].startswith("r")
        # an exported file is the sampled ensemble: its latency and size as the search recorded them
        assert main(["latency", path, "--num-classes", "10", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["latency_ms"] == pytest.approx(rec["latency_max_ms"])
        assert main(["describe", path, "--num-classes", "10", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["params"] == rec["params"]
    assert main(["show", run, "--front"]) == 0
    text = capsys.readouterr().out
    assert "size 2 sample" in text and "  member 2: " in text
    (tmp_path / "file").write_text("")
    assert main(["show", run, "--export", str(tmp_path / "file" / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nas show: error: --export") and "cannot write: Not a directory" in err and "\n" not in err
    # exported again: the same files, rewritten as they were; a file of another run's spec stops it
    assert main(["show", run, "--export", str(out)]) == 0
    first = pathlib.Path(shown["exported"][0])
    first.write_text(first.read_text().replace('"resolution": ', '"resolution": 1'))
    kept = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["show", run, "--export", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"nas show: error: --export {out}: {first.name} there holds another "
                                               "spec (another run's front?); choose another folder")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == kept


def test_a_shared_member_cache_trains_each_member_once_across_runs(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    _search(tmp_path / "failing", "random", evaluator=MadeUpEvaluator(fail=True), member_cache=shared)
    assert not list(shared.glob("*.npz"))  # failures stay in their own run
    first, again = MadeUpEvaluator(), MadeUpEvaluator()
    records = _search(tmp_path / "random", "random", evaluator=first, member_cache=shared)
    assert first.trained == 8 + 16 == len(list(shared.glob("*.npz")))
    assert _search(tmp_path / "random_again", "random", evaluator=again, member_cache=shared) == records
    assert again.trained == 0
    # evolution with the same seed starts with random search's draws: its population's members come
    # from the cache, and only its children's changed members train
    evo = MadeUpEvaluator()
    _search(tmp_path / "evolution", "evolution", evaluator=evo, member_cache=shared)
    assert evo.trained == 4 + 4
    damaged = sorted(shared.glob("*.npz"))[0]
    damaged.write_bytes(b"damaged")
    fresh = MadeUpEvaluator()
    assert _search(tmp_path / "random_3", "random", evaluator=fresh, member_cache=shared) == records
    assert fresh.trained == 1  # a damaged shared entry is trained again, not trusted, and replaced
    assert RunDir(tmp_path / "random_3").load_member(damaged.stem) is not None
    assert damaged.read_bytes() == RunDir(tmp_path / "random_3").member_path(damaged.stem).read_bytes()


def test_output_into_a_closed_pipe_ends_quietly(tmp_path, monkeypatch):
    import os
    import sys

    _search(tmp_path / "run", "random")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone, as after `nas show RUN --front | head -1`
    out = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", out)
    assert main(["show", str(tmp_path / "run"), "--front"]) == 0
    out.write("more\n")  # stdout now leads to /dev/null: later writes and the final flush pass
    out.close()


def _perfect_retraining(monkeypatch, note) -> list:
    """`nas retrain` on ``_dataset()`` with retraining replaced by one that scores every test image
    right at once; each call appends ``note(spec, config, seed, checkpoint_dir)`` to the list returned."""
    import trainer.data
    import trainer.retrain

    calls = []

    def fake_retrain(spec, dataset, config, seed, checkpoint_dir, **kw):
        calls.append(note(spec, config, seed, checkpoint_dir))
        right = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_test]
        return trainer.retrain.RetrainResult(1.0, right, (0.5,), config.epochs, 0, 0.0, 0.0)

    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: _dataset())
    monkeypatch.setattr(trainer.retrain, "retrain", fake_retrain)
    return calls


def test_retrain_takes_a_chosen_sample(tmp_path, monkeypatch, capsys):
    _search(tmp_path / "run", "random")
    run = str(tmp_path / "run")
    calls = _perfect_retraining(monkeypatch, lambda spec, config, seed, ckpt: (spec.id, seed))
    assert main(["retrain", run, "--size", "2", "--sample", "5", "--epochs", "1"]) == 0
    chosen = next(r for r in RunDir(run).records() if (r["size"], r["sample"]) == (2, 5))
    assert calls == [(m["id"], m["seed"]) for m in chosen["members"]]
    row, = RunDir(run).retrains()
    assert (row["size"], row["sample"], row["ensemble_id"]) == (2, 5, chosen["ensemble_id"])
    capsys.readouterr()
    assert main(["retrain", run, "--size", "2", "--sample", "8"]) == 2
    assert "--sample 8: no successful sample of that number of size 2 (samples 0, 1, 2" in capsys.readouterr().err
    assert main(["retrain", run, "--sample", "1"]) == 2
    assert "--sample: give it with --size" in capsys.readouterr().err
    assert len(RunDir(run).retrains()) == 1 and row["test_accuracy"] == 1.0
    # several: in the order given, each once (5 was retrained above: reported, not retrained again)
    calls.clear()
    assert main(["retrain", run, "--size", "2", "--sample", "3", "--sample", "5", "--sample", "3", "--sample", "1",
                 "--epochs", "1"]) == 0
    assert [r["sample"] for r in RunDir(run).retrains()] == [5, 3, 1]
    assert "size 2 #5: proxy val" in capsys.readouterr().out and len(calls) <= 4  # two pairs' members, once each
    assert main(["retrain", run, "--size", "2", "--sample", "2", "--sample", "8", "--sample", "9"]) == 2
    assert "--sample 8, 9: no successful sample of that number of size 2" in capsys.readouterr().err
    assert len(RunDir(run).retrains()) == 3


def test_retrain_trains_a_member_shared_by_chosen_ensembles_once(tmp_path, monkeypatch, capsys):
    _search(tmp_path / "run", "evolution")  # evolution's pairs share members with their parents
    run = str(tmp_path / "run")
    calls = _perfect_retraining(monkeypatch, lambda spec, config, seed, ckpt: ckpt)
    assert main(["retrain", run, "--size", "2", "--top", "8", "--epochs", "1"]) == 0
    members = [(m["id"], m["seed"]) for r in RunDir(run).records() if r["size"] == 2 for m in r["members"]]
    assert len(set(members)) < len(members)  # the case this test is about: shared members
    assert len(calls) == len(set(calls)) == len(set(members))  # each distinct member once
    assert len(RunDir(run).retrains()) == 8
    assert f"[{len(set(members))}/{len(set(members))}," in capsys.readouterr().err  # progress counts distinct members


def test_retrain_trains_one_network_recorded_under_two_ids_once(tmp_path, monkeypatch):
    """A run recorded before skips were decoded canonically can hold one network and seed under two
    ids (the CPU search's #9 and #12, given here to two one-member samples): retrained once, in a
    folder named by the network; a member retrained before then keeps its own folder."""
    import json

    from nas.retrained import retrain_dir
    from search_space import from_dict as spec_from_dict, network_id

    _search(tmp_path / "run", "random")
    run = RunDir(tmp_path / "run")
    nine, twelve = (r["members"][0] for r in one_network_recorded_twice())
    records = run.records()
    for r in records:
        if r["size"] == 1 and r["sample"] in (0, 1):
            m = nine if r["sample"] == 0 else twelve
            r["members"] = [{**r["members"][0], "id": m["id"], "spec": m["spec"], "seed": 0}]
    (run.path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    calls = _perfect_retraining(monkeypatch, lambda spec, config, seed, ckpt: (spec.id, ckpt))
    args = ["retrain", str(run.path), "--size", "1", "--sample", "0", "--sample", "1", "--epochs", "1"]
    assert main(args) == 0
    network = network_id(spec_from_dict(nine["spec"]))
    assert calls == [(network, retrain_dir(run.path, network, 0, "fast1"))]  # the network's canonical spec
    assert len(run.retrains()) == 2
    # a run retrained before: the folder of the member's own id, where the network's is absent
    recorded = twelve["id"] if network == nine["id"] else nine["id"]  # the one not written canonically
    old = retrain_dir(run.path, recorded, 0, "fast2")
    old.mkdir(parents=True)
    calls.clear()
    assert main(args[:-1] + ["2"]) == 0
    assert sorted(calls) == sorted([(network, retrain_dir(run.path, network, 0, "fast2")), (recorded, old)])


def test_retrain_set_is_a_setting_of_its_own(tmp_path, monkeypatch, capsys):
    """`nas retrain --set` trains with the changed recipe into checkpoint folders and rows of their
    own; the same change however spelt is the same setting (a rerun reports it), the plain recipe
    stays another; a bad item is one line and exit 2 before any data loads."""
    import trainer.data
    import trainer.retrain

    _search(tmp_path / "run", "random")
    run = str(tmp_path / "run")
    loads = []
    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: loads.append(1) or _dataset())
    calls = []

    def fake_retrain(spec, dataset, config, seed, checkpoint_dir, **kw):
        calls.append((config, checkpoint_dir.name))
        right = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_test]
        return trainer.retrain.RetrainResult(1.0, right, (0.5,), config.epochs, 0, 0.0, 0.0)

    monkeypatch.setattr(trainer.retrain, "retrain", fake_retrain)
    base = ["retrain", run, "--size", "1", "--epochs", "2"]
    assert main([*base, "--set", "trainer.zero_init_residual=yes", "--set", "label_smoothing=0"]) == 0
    (config, folder), = calls
    assert config.label_smoothing == 0.0 and config.zero_init_residual and config.epochs == 2
    assert folder.endswith("-fast2+label_smoothing=0.0+zero_init_residual=true")
    row, = RunDir(run).retrains()
    assert row["recipe"] == "fast" and row["set"] == ["label_smoothing=0.0", "zero_init_residual=true"]
    assert "(fast (label_smoothing=0.0 zero_init_residual=true), 2 epochs on the whole training split)" in \
        capsys.readouterr().err
    # the same change spelt otherwise, and in another order: retrained earlier
    assert main([*base, "--set", "label_smoothing=0.0", "--set", "zero_init_residual=true"]) == 0
    assert "every chosen ensemble was retrained earlier" in capsys.readouterr().out and len(calls) == 1
    assert main(base) == 0  # the plain recipe is another setting, with its own folder and row
    assert main([*base, "--set", "label_smoothing=0.1"]) == 0  # the recipe's own value: the plain setting
    assert "--set: label_smoothing=0.1 changes nothing in the fast recipe" in capsys.readouterr().err
    assert len(calls) == 2 and calls[1][1].endswith("-fast2") and calls[1][0].label_smoothing == 0.1
    plain = RunDir(run).retrains()[1]
    assert "set" not in plain and plain["recipe"] == "fast"
    capsys.readouterr()
    assert main(["show", run]) == 0
    shown = capsys.readouterr().out
    assert "retrained (fast, 2 epochs on the whole training split; 1 ensemble" in shown
    assert "retrained (fast (label_smoothing=0.0 zero_init_residual=true), 2 epochs on the whole" in shown
    assert main(["show", run, "--json"]) == 0
    shown = {s["slug"]: s for s in json.loads(capsys.readouterr().out)["retrained"]}
    assert [(s["recipe"], s["set"]) for s in shown.values()] == [
        ("fast", []), ("fast", ["label_smoothing=0.0", "zero_init_residual=true"])]
    assert sorted(shown) == ["fast2", "fast2+label_smoothing=0.0+zero_init_residual=true"]
    assert main(["plot", run]) == 0
    assert (tmp_path / "run" / "plots" / "retrain-fast2+label_smoothing=0.0+zero_init_residual=true.png").exists()
    n_loads = len(loads)
    for items, message in [(["label_smoothing=abc"], "--set trainer.label_smoothing: expected a float"),
                           (["colour=red"], "unknown key 'colour'"),
                           (["learning_rate=1e20"], "a retraining setting cannot hold '+' or '/'")]:
        assert main([*base, *(a for i in items for a in ("--set", i))]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert len(loads) == n_loads and len(RunDir(run).retrains()) == 2


def test_retrain_workers_results_make_the_rows_and_a_dead_worker_is_one_line(tmp_path, monkeypatch, capsys):
    """`nas retrain --workers N` hands every distinct member to the workers up front, in the order
    the ensembles need them, and builds each row from their results as they come; a worker that
    died is one error line, exit 2, with the ensembles finished before it kept."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    import nas.retrain_workers
    import trainer.data
    import trainer.retrain

    _search(tmp_path / "run", "random")
    run = str(tmp_path / "run")
    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: _dataset())
    submitted, broken_after = [], [None]

    class FakeWorkers:
        def __init__(self, dataset, workers):
            self.dataset, self.workers = dataset, workers

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def submit(self, spec, config, seed, checkpoint_dir, every, label, deadline, must_start):
            submitted.append((spec.id, seed))
            done = Future()
            if broken_after[0] is not None and len(submitted) > broken_after[0]:
                done.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
            else:
                right = np.eye(self.dataset.num_classes, dtype=np.float32)[self.dataset.y_test]
                done.set_result(trainer.retrain.RetrainResult(1.0, right, (0.5,), config.epochs, 0, 0.0, 0.0))
            return done

    monkeypatch.setattr(nas.retrain_workers, "RetrainWorkers", FakeWorkers)
    monkeypatch.setattr(trainer.retrain, "retrain", lambda *a, **k: pytest.fail("retrained in the command's process"))
    assert main(["retrain", run, "--size", "2", "--top", "2", "--epochs", "1", "--workers", "3"]) == 0
    rows = RunDir(run).retrains()
    assert [r["size"] for r in rows] == [2, 2] and all(r["test_accuracy"] == 1.0 for r in rows)
    need = [(m["id"], m["seed"]) for r in rows for m in r["members"]]
    assert submitted == list(dict.fromkeys(need))  # each distinct member once, in the order needed
    assert "retraining in 3 worker processes" in capsys.readouterr().err
    submitted.clear()
    broken_after[0] = 2  # the third member's worker dies: the first pair's row is appended, then one line
    assert main(["retrain", run, "--size", "2", "--top", "4", "--epochs", "1", "--workers", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nas retrain: error: a retraining worker died (A process in the process pool")
    assert "rerun the command" in err[-1] and not any("Traceback" in l for l in err)
    assert len(RunDir(run).retrains()) == 3


def test_retrain_max_minutes_stops_between_members_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    """`nas retrain --max-minutes M`: each member's retraining gets the deadline (a wall-clock time,
    which stops it at an epoch's end with a checkpoint: trainer.retrain); one it stopped (None) ends
    the command with the ensembles finished kept; no member starts after the deadline but the
    call's first, so every call moves on; with --workers, each worker's first."""
    import time
    from concurrent.futures import Future

    import nas.retrain_workers
    import trainer.data
    import trainer.retrain

    _search(tmp_path / "run", "random")
    run = str(tmp_path / "run")
    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: _dataset())
    calls, stop_at = [], [2]

    def result(dataset, epochs):
        right = np.eye(dataset.num_classes, dtype=np.float32)[dataset.y_test]
        return trainer.retrain.RetrainResult(1.0, right, (0.5,), epochs, 0, 0.0, 0.0)

    def fake_retrain(spec, dataset, config, seed, checkpoint_dir, deadline=None, **kw):
        calls.append(deadline)
        return None if len(calls) == stop_at[0] else result(dataset, config.epochs)

    monkeypatch.setattr(trainer.retrain, "retrain", fake_retrain)
    base = ["retrain", run, "--size", "1", "--top", "3", "--epochs", "1"]
    before = time.time()
    assert main([*base, "--max-minutes", "5"]) == 0
    assert len(calls) == 2 and before + 300 <= calls[0] <= time.time() + 300 and calls[1] == calls[0]
    assert len(RunDir(run).retrains()) == 1
    err = capsys.readouterr().err
    assert "time limit (5 min): stopping with 2 of 3 ensembles left;" in err and "the same command resumes" in err
    # 300 images at batch 256 for an epoch: one optimizer step, and a line that says what gives more
    assert ("note: 1 optimizer step in all (300 images at batch 256, 1 epoch), where the recipe takes 195 an epoch "
            "on CIFAR-10: --set batch_size=16 --set learning_rate=0.0125 gives 18") in err
    # past the deadline already: the call's first member trains, the next does not start
    calls.clear()
    stop_at[0] = None
    assert main([*base, "--max-minutes", "1e-9"]) == 0
    assert len(calls) == 1 and len(RunDir(run).retrains()) == 2
    assert "stopping with 1 of 2 ensembles left" in capsys.readouterr().err
    assert main(base) == 0 and len(calls) == 2 and len(RunDir(run).retrains()) == 3  # no limit: the rest

    submitted = []

    class FakeWorkers:
        def __init__(self, dataset, workers):
            self.dataset = dataset

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def submit(self, spec, config, seed, checkpoint_dir, every, label, deadline=None, must_start=True):
            submitted.append((deadline, must_start))
            done = Future()
            done.set_result(None if len(submitted) == 3 else result(self.dataset, config.epochs))
            return done

    monkeypatch.setattr(nas.retrain_workers, "RetrainWorkers", FakeWorkers)
    capsys.readouterr()
    # the top 6: three retrained earlier, three to go, the last stopped
    assert main([*base[:4], "--top", "6", "--epochs", "1", "--workers", "2", "--max-minutes", "5"]) == 0
    assert [m for _, m in submitted] == [True, True, False] and submitted[0][0] > time.time() + 290
    assert len(RunDir(run).retrains()) == 5
    assert "stopping with 1 of 3 ensembles left" in capsys.readouterr().err


def test_the_log_counts_rounds_and_members_with_the_time_left(tmp_path):
    lines = []
    run = RunDir(tmp_path / "run")
    config = _config("random")
    run.create(config.to_dict())
    run_search(run, config, MadeUpEvaluator(), log=lines.append, dataset=_dataset())
    rounds = [l for l in lines if l.startswith("round ")]
    assert rounds[0] == "round 1/4: 4 new samples" and len(rounds) == 4
    first_round = [l.strip() for l in lines[lines.index(rounds[0]):lines.index(rounds[1])] if "member " in l]
    assert len(first_round) == 6  # 2 one-member and 2 two-member ensembles
    assert first_round[0].startswith("[1/6, 0m00s, about 0m00s left] member ")
    assert first_round[-1].startswith("[6/6, 0m00s] member ")


def test_progress_clock():
    from nas.search import progress_prefix as _progress

    assert _progress(3, 30, 125.0) == "[3/30, 2m05s, about 18m45s left] "
    assert _progress(1, 2, 4000.0) == "[1/2, 1h06m, about 1h06m left] "
    assert _progress(2, 2, 59.6) == "[2/2, 1m00s] "
    # from the second member on, the pace after the first: the first finished at 65 s, the second
    # 30 s later, so 28 members more take 28 x 30 s, not 28 x 47.5 s
    assert _progress(2, 30, 95.0, first_s=65.0) == "[2/30, 1m35s, about 14m00s left] "
    assert _progress(1, 30, 65.0, first_s=65.0) == "[1/30, 1m05s, about 31m25s left] "


def test_seed_ensembles_reuse_the_searched_member_and_compare_at_its_latency(tmp_path):
    from nas.seeds import seed_ensembles

    _search(tmp_path / "run", "random")
    run, config = RunDir(tmp_path / "run"), _config("random")
    records = run.records()
    singles = sorted((r for r in records if r["size"] == 1), key=lambda r: -r["reward"])[:2]
    evaluator = MadeUpEvaluator()
    rows = seed_ensembles(run, config, _dataset(), evaluator, singles, members=3)
    assert evaluator.trained == 4  # seeds 1 and 2 of each; seed 0 is the searched member, cached
    assert list(zip(rows["sample"], rows["n"])) == [(s["sample"], n) for s in singles for n in (1, 2, 3)]
    for s in singles:
        d = rows[rows["sample"] == s["sample"]].set_index("n")
        assert d.loc[1, "accuracy"] == s["accuracy"] and (d["latency_max_ms"] == s["latency_max_ms"]).all()
        pairs = [r for r in records if r["size"] == 2 and r["latency_max_ms"] <= s["latency_max_ms"]]
        if pairs:
            assert d.loc[2, "searched_accuracy"] == max(r["accuracy"] for r in pairs)
            assert d.loc[2, "gain"] == pytest.approx(d.loc[2, "accuracy"] - d.loc[2, "searched_accuracy"])
        assert d.loc[3, "searched_accuracy"] is None or np.isnan(d.loc[3, "searched_accuracy"])  # no size 3 searched
    again = MadeUpEvaluator()
    assert seed_ensembles(run, config, _dataset(), again, singles, members=3).equals(rows) and again.trained == 0


def test_show_reads_figure3_at_latency_budgets(tmp_path, capsys):
    import json
    import math

    _search(tmp_path / "run", "random")
    records = RunDir(tmp_path / "run").records()
    assert main(["show", str(tmp_path / "run"), "--budgets", "3,100"]) == 0
    out = capsys.readouterr().out
    table = out.split("best accuracy within a max member latency", 1)[1].splitlines()[2:4]
    for line, budget in zip(table, (3.0, 100.0)):
        best = [max((r for r in records if r["size"] == n and r["latency_max_ms"] <= budget),
                    key=lambda r: r["accuracy"], default=None) for n in (1, 2)]
        want = "".join("-" if b is None else f"{b['accuracy']:.4f} (#{b['sample']})" for b in best)
        assert line.split(None, 1)[0] == f"{budget:.2f}" and "".join(line.split()[1:]) == want.replace(" ", "")
    assert main(["show", str(tmp_path / "run"), "--json"]) == 0
    within = json.loads(capsys.readouterr().out)["within_budget"]
    slowest = max(r["latency_max_ms"] for r in records)
    assert len(within) == 8 and within[-1]["budget_ms"] == math.ceil(slowest * 100) / 100  # quartiles, max; 2 sizes
    best = max((r for r in records if r["size"] == within[-1]["size"]), key=lambda r: r["accuracy"])
    assert within[-1]["accuracy"] == best["accuracy"]  # the largest budget takes in every sample
    with pytest.raises(SystemExit):
        main(["show", str(tmp_path / "run"), "--budgets", "0"])
    assert "budgets must be positive" in capsys.readouterr().err


def test_chosen_singles_by_number_or_reward():
    from nas.seeds import chosen_singles
    from search_space.errors import UserError

    records = [{"size": 1, "sample": i, "status": "ok", "reward": r} for i, r in enumerate([0.5, 0.9, 0.7])]
    records += [{"size": 1, "sample": 3, "status": "failed", "reward": 0.0}, {"size": 2, "sample": 0, "status": "ok", "reward": 1.0}]
    assert [r["sample"] for r in chosen_singles(records, top=2)] == [1, 2]
    assert [r["sample"] for r in chosen_singles(records, top=2, samples=[2, 0, 2])] == [2, 0]
    with pytest.raises(UserError, match=r"--sample 3: no successful one-member sample of that number \(samples 0, 1, 2\)"):
        chosen_singles(records, top=1, samples=[0, 3])
    with pytest.raises(UserError, match="search size 1 first"):
        chosen_singles(records[-1:], top=1)


def test_report_of_a_run_whose_members_failed_lists_each_failure(tmp_path, capsys):
    _search(tmp_path / "run", "random", evaluator=MadeUpEvaluator(fail=True))
    run = tmp_path / "run"
    assert main(["report", str(run), "--no-plots"]) == 0  # RUN/report.md, the figures not drawn
    text = (run / "report.md").read_text()
    assert not list((run / "plots").glob("*.png")) and "![" not in text  # no link to a missing figure
    assert "| 1 | 8 | 8 | - | - | - |" in text  # size, samples, failed, no accuracy
    failures = [l for l in text.splitlines() if l.endswith("out of memory |")]  # by size, then sample
    assert len(failures) == 16 and failures[0] == "| 1 | #0 | out of memory |"
    assert failures[8] == "| 2 | #0 | out of memory; out of memory |"  # each failed member's reason
    assert "Launched as:" not in text  # run_search called directly: no command line recorded


def test_a_report_that_fails_after_a_search_is_one_warning_line_and_the_run_stays_whole(tmp_path, monkeypatch, capsys):
    import nas.report
    import nas.search

    _search(tmp_path / "run", "random")
    run = tmp_path / "run"
    records_before = (run / "records.jsonl").read_bytes()
    monkeypatch.setattr(nas.search, "load_config_dataset", lambda config: _dataset())

    def no_space(*a, **k):
        raise OSError("No space left on device")

    monkeypatch.setattr(nas.report, "write_report", no_space)
    capsys.readouterr()
    assert main(["search", "--run-dir", str(run), "--resume"]) == 0  # nothing left to sample: plots, then the report
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "warning" in line]  # the rest is the search's progress
    assert warnings == [f"nas search: warning: report not written (OSError: No space left on device); "
                        f"`nas report {run}` writes it"] and "Traceback" not in err
    assert out.splitlines()[-1] == (f"run {run}: 16 samples; fronts {run / 'fronts.csv'}; "
                                    f"plots {run / 'plots' / 'figure3.png'}")
    assert (run / "records.jsonl").read_bytes() == records_before and (run / "plots" / "figure3.png").exists()
    monkeypatch.undo()
    assert main(["report", str(run), "--no-plots"]) == 0 and (run / "report.md").exists()  # the retry it names


def test_a_search_given_its_split_does_not_split_the_data_again(tmp_path, monkeypatch):
    """`nas search` splits the data before the run directory exists (to refuse a split the data
    cannot give) and hands that split on; the search copies the images once, not twice."""
    import nas.search
    from nas.search import search_split

    config = _config("random", sizes=(1,), samples_per_size=2)
    split = search_split(config, _dataset())
    monkeypatch.setattr(nas.search, "validation_split", lambda *a, **k: pytest.fail("split again"))
    run = RunDir(tmp_path / "run")
    run.create(config.to_dict())
    run_search(run, config, MadeUpEvaluator(), log=lambda s: None, dataset=_dataset(), split=split)
    assert len(run.records()) == 2
    assert np.array_equal(run.validation_labels(), split.y_val)


def test_two_samples_of_one_network_in_the_cpu_search_now_decode_to_one_spec():
    """The CPU search's one-member samples #9 and #12 differ only in block 2's skip (pool against
    identity on a layer whose 8 channels in and out match, where both add the input): one network,
    recorded under two ids, trained twice and retrained to the same loss curve. The search's
    decoder now writes that skip canonically, so the two are one spec, one member-cache key, and an
    evolution child that changed only it is drawn again."""
    from nas.config import from_dict
    from nas.search import make_controller, make_space

    run = pathlib.Path(__file__).parents[2] / "experiments" / "results" / "cpu_search_2026-12-02"
    config = from_dict(json.loads((run / "config.json").read_text()))
    nine, twelve = one_network_recorded_twice()
    assert nine["members"][0]["id"] != twelve["members"][0]["id"]  # as recorded
    decode = make_space(config, 28)
    assert decode(np.array(nine["decisions"])) == decode(np.array(twelve["decisions"]))
    evolution = make_controller(config, decode.choice_counts, 1, decode)
    assert evolution.identity(np.array(nine["decisions"])) == evolution.identity(np.array(twelve["decisions"]))
