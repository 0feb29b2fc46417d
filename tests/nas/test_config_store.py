import dataclasses
import json

import pandas as pd
import pytest

from nas.config import SearchConfig, apply_overrides, from_dict, load_config
from nas.pareto import fronts
from nas.reward import mnas_reward
from nas.store import RunDir
from search_space import UserError
from trainer.config import TrainConfig


def test_overrides_and_round_trip():
    c = apply_overrides(SearchConfig(), ["trainer.epochs=3", "sizes=[1,2]", "reward.target_ms=5",
                                        "space.width_multiplier=0.5", "controller=random", "train_examples=100"])
    assert c.trainer.epochs == 3 and c.sizes == (1, 2) and c.reward.target_ms == 5.0
    assert c.space.width_multiplier == 0.5 and c.controller == "random" and c.train_examples == 100
    assert from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert apply_overrides(SearchConfig(), ["sizes=1,3"]).sizes == (1, 3) == apply_overrides(SearchConfig(), ["sizes=[1,3]"]).sizes
    assert apply_overrides(SearchConfig(), ["sizes=2"]).sizes == (2,)
    imagenet = apply_overrides(SearchConfig(), ["dataset=tfds:imagenet2012", "manual_dir=/archives", "image_size=64"])
    assert (imagenet.manual_dir, imagenet.image_size) == ("/archives", 64)
    assert from_dict(json.loads(json.dumps(imagenet.to_dict()))) == imagenet
    stored = SearchConfig().to_dict()
    del stored["manual_dir"], stored["image_size"]  # a config.json from before the two keys
    assert from_dict(stored) == SearchConfig()


def test_a_stored_config_from_before_a_trainer_field_keeps_the_old_behaviour_and_cache_keys():
    stored = SearchConfig().to_dict()
    for field in TrainConfig.ADDED_LATER:  # a config stored before all of them (each alone: tests/trainer)
        del stored["trainer"][field]
    old = from_dict(stored)
    assert old.trainer.precise_bn_images == 0  # moving averages, as that code evaluated
    assert old.trainer.init == "he_fan_out"  # the modules' initializers, as that code drew
    assert old.trainer.compile_unit == "program"  # one program per member, as that code compiled
    assert old.trainer.crop_pad == 4  # translation by up to 4 px at 32 px, as that code cropped
    assert old.trainer.tta_flip is False  # one view scored, as that code scored
    assert from_dict(SearchConfig().to_dict()).trainer.precise_bn_images == SearchConfig().trainer.precise_bn_images > 0
    # the member-cache text of the old behaviour is the text that code wrote
    assert json.loads(old.trainer.key()) == stored["trainer"] | {"step_epochs": []}
    assert "precise_bn_images" in SearchConfig().trainer.key()


@pytest.mark.parametrize("item, msg", [
    ("trainer.epochz=3", "unknown key 'epochz'"), ("trainer.epochs=three", "expected an int"),
    ("trainer.epochs=0", "epochs"), ("sizes=[9]", "sizes"), ("space.width_multiplier=0", "width_multiplier"),
    ("controller=genetic", "controller"), ("evolution.tournament=20", "evolution.tournament"),
    ("trainer=3", "is a group"), ("epochs", "KEY=VALUE"),
    ("trainer.augment=maybe", "true or false"), ("reward.target_ms=-1", "target_ms"),
    ("sizes=[1,a]", "expected a list of ints such as"), ("sizes=[1.5]", "expected a list of ints"),
    ("sizes=[1,1]", "each size once"), ("reward.target_ms=fast", "expected a float"),
    ("image_size=4", "image_size: must be an int in 8..1024"), ("image_size=big", "image_size: must be an int"),
    # accepted until 2026-12-06, then failing inside the search (an LSTM of 0 units) or searching nonsense
    ("seed=-1", "seed: must be an int in 0..2147483647"), ("policy.hidden=0", "policy.hidden: must be a positive int"),
    ("policy.learning_rate=-1", r"policy.learning_rate: must be > 0"),
    ("policy.entropy_weight=-5", r"policy.entropy_weight: must be >= 0"),
    ("policy.baseline_decay=2", r"policy.baseline_decay: must be in \[0, 1\)"),
    ("reward.beta=5", "reward.beta: must be <= 0"), ("reward.alpha=0.1", "reward.alpha: must be <= 0"),
    ("trainer.step_epochs=[0]", "trainer.step_epochs: must be epochs >= 1"),
    ("trainer.step_factor=0", "trainer.step_factor: must be > 0"),
    ("trainer.learning_rate=1e309", "trainer.learning_rate: expected a finite float, got '1e309'"),
])
def test_bad_overrides(item, msg):
    with pytest.raises(UserError, match=msg):
        apply_overrides(SearchConfig(), [item])


def test_search_and_study_configs_load_their_data_set_at_their_image_size(tmp_path):
    import numpy as np
    from PIL import Image

    from nas.config import load_config_dataset
    from nas.study import StudyConfig

    for split in ("train", "test"):
        for c in ("cat", "dog"):
            (tmp_path / split / c).mkdir(parents=True)
            for i, shape in enumerate([(12, 18, 3), (30, 20, 3)]):
                Image.fromarray(np.full(shape, 9, np.uint8)).save(tmp_path / split / c / f"{i}.png")
    for config in (SearchConfig(dataset=f"folder:{tmp_path}", image_size=16),
                   StudyConfig(dataset=f"folder:{tmp_path}", image_size=16)):
        ds = load_config_dataset(config)
        assert ds.x_train.shape == (4, 16, 16, 3) and ds.native_resolution == 16 and (ds.x_test == 9).all()


def test_load_config_errors(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config(:\n")
    with pytest.raises(UserError, match="SyntaxError"):
        load_config(str(bad))
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(UserError, match="no get_config"):
        load_config(str(tmp_path / "none.py"))
    (tmp_path / "wrong.py").write_text("def get_config():\n    return {}\n")
    with pytest.raises(UserError, match="must return a SearchConfig"):
        load_config(str(tmp_path / "wrong.py"))
    # these two were tracebacks (exit 1): an error inside get_config(), and a config that is no .py file
    (tmp_path / "raises.py").write_text("def get_config():\n    raise RuntimeError('boom')\n")
    with pytest.raises(UserError, match=r"raises.py: get_config\(\) raised RuntimeError: boom"):
        load_config(str(tmp_path / "raises.py"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="config.json: not a Python file"):
        load_config(str(tmp_path / "config.json"))
    (tmp_path / "checked.py").write_text("from nas.config import SearchConfig\n"
                                          "def get_config():\n    return SearchConfig(sizes=(9,))\n")
    with pytest.raises(UserError, match=r"^sizes: must be ensemble sizes in 1..8"):  # the config's own check, as is
        load_config(str(tmp_path / "checked.py"))
    assert load_config("experiments/demo.py").dataset == "fashion_mnist"



def test_imagenet_search_config_is_the_gpu_searchs_shape_at_64_px_with_its_target_below_the_median_member(
        monkeypatch):
    import numpy as np

    from latency.estimator import get_estimator
    from search_space.space import MnasNetSpace

    monkeypatch.setenv("IMAGENET_MANUAL_DIR", "/archives")
    cfg = load_config("experiments/search_imagenet.py")
    gpu = load_config("experiments/search_cifar10.py")
    assert (cfg.dataset, cfg.manual_dir, cfg.image_size, cfg.val_size) == ("tfds:imagenet2012", "/archives", 64, 50000)
    assert (cfg.samples_per_size, cfg.batch, cfg.sizes, cfg.controller) == (gpu.samples_per_size, gpu.batch, gpu.sizes,
                                                                             gpu.controller)
    space = MnasNetSpace(64)
    assert space.decisions[-1].choices == (32, 48, 56, 64)  # the paper's 0.5 / 0.75 / 0.875 / 1.0
    est, rng = get_estimator("pixel1"), np.random.default_rng(0)
    ms = [est.estimate(space.decode(space.sample(rng, 1)).members[0]).total_ms for _ in range(200)]
    assert np.round(np.percentile(ms, [10, 50, 90]), 1).tolist() == [25.9, 65.1, 148.8]  # as its docstring says
    assert np.percentile(ms, 40) < cfg.reward.target_ms < np.percentile(ms, 50)


def test_cpu_search_config_is_the_demo_at_the_gpu_searchs_shape():
    demo = load_config("experiments/demo.py")
    cpu = load_config("experiments/search_cpu.py")
    gpu = load_config("experiments/search_cifar10.py")
    assert (cpu.samples_per_size, cpu.batch, cpu.sizes) == (gpu.samples_per_size, gpu.batch, gpu.sizes) == (30, 5, (1, 2, 3))
    assert cpu.controller == "evolution"
    same_shape = dict(samples_per_size=demo.samples_per_size, batch=demo.batch, controller=demo.controller)
    assert dataclasses.replace(cpu, **same_shape) == demo

def test_mnas_reward():
    assert mnas_reward(0.8, 75, 75, -0.07, -0.07) == pytest.approx(0.8)
    assert mnas_reward(0.8, 150, 75, -0.07, -0.07) == pytest.approx(0.8 * 2 ** -0.07)
    assert mnas_reward(0.8, 50, 75, 0.0, -1.0) == pytest.approx(0.8)  # hard constraint: no bonus below T
    assert mnas_reward(0.8, 150, 75, 0.0, -1.0) == pytest.approx(0.4)


def test_records_survive_a_torn_last_line_and_reject_corruption(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({"x": 1})
    run.append_record({"size": 1, "sample": 0})
    with open(run.path / "records.jsonl", "ab") as f:
        f.write(b'{"size": 1, "sam')  # a kill in the middle of a write
    assert run.records() == [{"size": 1, "sample": 0}]
    run.append_record({"size": 1, "sample": 1})
    assert [r["sample"] for r in run.records()] == [0, 1]
    text = (run.path / "records.jsonl").read_text().splitlines()
    (run.path / "records.jsonl").write_text(text[0] + "\n{garbage\n" + text[1] + "\n")
    with pytest.raises(UserError, match="records.jsonl:2: corrupt"):
        run.records()
    with pytest.raises(UserError, match="already holds a run"):
        run.create({"x": 2})
    assert json.loads(run.config_path.read_text()) == {"x": 1}


def test_member_cache_round_trip(tmp_path):
    import numpy as np

    run = RunDir(tmp_path)
    run.create({})
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    run.save_member("k", {"status": "ok", "val_accuracy": 0.5}, logits)
    summary, back = run.load_member("k")
    assert summary["val_accuracy"] == 0.5 and np.array_equal(back, logits)
    run.member_path("k").write_bytes(b"broken")
    assert run.load_member("k") is None  # retrained, never trusted


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask022", "umask077"])
def test_files_written_whole_get_the_mode_of_any_new_file(tmp_path, umask):
    """config.json, members, controllers: written through a private temporary file, they came out
    0600 whatever the umask, while records.jsonl (appended) followed it."""
    import os

    import numpy as np

    from nas.store import process_umask

    old = os.umask(umask)
    try:
        assert process_umask() == umask
        run = RunDir(tmp_path / "run")
        run.create({"dataset": "x"})
        run.save_member("k", {"status": "ok"}, np.zeros((2, 3), np.float32))
        run.append_record({"size": 1, "sample": 0})
    finally:
        os.umask(old)
    for path in (run.config_path, run.member_path("k"), run.path / "records.jsonl"):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path.name


def test_pareto_front_per_size():
    recs = [{"size": 1, "sample": i, "accuracy": a, "latency_max_ms": l, "status": "ok", "reward": 0}
            for i, (a, l) in enumerate([(0.9, 10), (0.8, 5), (0.85, 12), (0.7, 6), (0.95, 20)])]
    recs.append({"size": 2, "sample": 0, "accuracy": None, "latency_max_ms": 3, "status": "failed", "reward": 0})
    f = fronts(recs)
    assert list(f["sample"]) == [1, 0, 4]


def test_best_within_a_latency_budget_per_size():
    from nas.pareto import best_within

    recs = [{"size": 1, "sample": i, "accuracy": a, "latency_max_ms": l, "status": "ok", "reward": 0}
            for i, (a, l) in enumerate([(0.9, 10), (0.8, 5), (0.85, 12)])]
    recs += [{"size": 2, "sample": 0, "accuracy": 0.99, "latency_max_ms": 4, "status": "failed", "reward": 0},
             {"size": 2, "sample": 1, "accuracy": 0.93, "latency_max_ms": 9, "status": "ok", "reward": 0}]
    t = best_within(recs, [4.0, 9.0, 12.0])
    got = [(b, s, a, n) for b, s, a, n in zip(t["budget_ms"], t["size"], t["accuracy"], t["sample"])]
    assert got[0][:2] == (4.0, 1) and pd.isna(got[0][2])  # nothing of size 1 within 4 ms
    assert got[1][:2] == (4.0, 2) and pd.isna(got[1][2])  # the failed pair does not count
    assert got[2:] == [(9.0, 1, 0.8, 1), (9.0, 2, 0.93, 1), (12.0, 1, 0.9, 0), (12.0, 2, 0.93, 1)]


def test_a_run_is_written_by_one_command_at_a_time_and_a_killed_holder_leaves_it_free(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run = RunDir(tmp_path / "run")
    run.create(SearchConfig().to_dict())
    with run.exclusive("search"):
        with pytest.raises(UserError) as e:  # flock: a second open file conflicts, in this process too
            with run.exclusive("search"):
                pass
        assert str(e.value).startswith(f"--run-dir {run.path}: another `nas search` is writing this run "
                                       f"(pid {os.getpid()} on ")
        with run.exclusive("study"):  # another command's lock is its own
            pass
    with run.exclusive("search"):  # released
        pass
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from nas.store import RunDir\n"
                               f"with RunDir({str(run.path)!r}).exclusive('search'):\n"
                               "    print('held', flush=True); time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"pid {holder.pid} on "):
            with run.exclusive("search"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run.exclusive("search"):  # the kernel released the killed holder's lock
        pass
