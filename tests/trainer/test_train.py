import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from search_space import MnasNetSpace, scale_width, to_json
from search_space.spec import spec_id
from tests.conftest import ROOT, logits_of, nas_here, run_module
from trainer.config import TrainConfig
from trainer.data import Dataset, validation_split
from trainer.train import MemberTrainer, train_member


def tiny_member(native=28, res_index=0):
    """The first three blocks of a searched member at a quarter of MobileNetV2's widths (7 layers):
    what the tests of training mechanics train. Compiled as one program it took 5.1 s from an
    empty cache against 9.8 s for all seven blocks (15 layers; 2-core CPU, 2026-12-07), and the
    training tests compile a dozen such programs."""
    spec = scale_width(MnasNetSpace(native).decode_member([0, 0, 0, 0, 1, 0, 0] * 7 + [res_index]), 0.25, "always")
    return spec.replace(blocks=spec.blocks[:3])


def test_one_epoch_on_2000_real_images_learns_far_above_chance_within_a_minute(fashion):
    split = validation_split(fashion, 1000, seed=0, train_examples=2000)
    start = time.perf_counter()
    r = train_member(tiny_member(), split, TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1))
    wall = time.perf_counter() - start
    assert r.ok and r.val_logits.shape == (1000, 10)
    assert r.val_accuracy > 0.35  # chance is 0.10
    assert wall < 60, f"{wall:.0f} s (compile {r.compile_s:.0f} s, train {r.train_s:.0f} s)"
    assert r.compile_s > 0 and r.train_s > 0 and r.steps == 62 and len(r.loss_curve) == 1
    assert r.setup_s > 0 and 0 < r.trace_s < r.compile_s  # tracing is the host part of the compile
    assert r.lowering == "conv=conv,depthwise=shift"  # a short run on the CPU: XLA convolutions


def test_long_cpu_runs_lower_convolutions_to_matrix_products(fashion, monkeypatch):
    """From the break-even of training images x the member's multiply-adds on, so a bigger member
    takes matrix products after fewer epochs."""
    from search_space import zoo
    from search_space.layers import count
    from search_space.models import MATMUL_MIN_TRAIN_MULTIPLY_ADDS

    monkeypatch.delenv("NAS_CONV", raising=False)
    split = _small_split(fashion)
    break_even = []
    for spec in (tiny_member(), zoo.get("efficientnet-b0", resolution=28)):  # 0.5M, 8.1M multiply-adds
        per_epoch = len(split.y_train) * count(spec, 10).multiply_adds
        epochs = -(-MATMUL_MIN_TRAIN_MULTIPLY_ADDS // per_epoch)
        t = MemberTrainer(spec, split, TrainConfig(epochs=epochs), seed=0)
        assert t.lowering == "conv=matmul,depthwise=shift"
        assert MemberTrainer(spec, split, TrainConfig(epochs=epochs - 1), seed=0).conv_lowering == "conv"
        monkeypatch.setenv("NAS_CONV", "conv")
        assert MemberTrainer(spec, split, TrainConfig(epochs=epochs), seed=0).conv_lowering == "conv"
        monkeypatch.delenv("NAS_CONV")
        break_even.append(epochs)
    assert break_even[1] * 10 < break_even[0]
    # per-layer programs serve a run's later members in one lowering: there the run's images decide
    from trainer.layerwise import LayerwiseTrainer

    for unit in ("layer", "padded"):
        t = LayerwiseTrainer(spec, split, TrainConfig(epochs=break_even[1], compile_unit=unit), seed=0)
        assert t.conv_lowering == "conv"


def _small_split(fashion, n=256):
    return validation_split(fashion, 128, seed=0, train_examples=n)


def _counting_traces(monkeypatch) -> list:
    """A list that grows by one each time MemberTrainer traces its epoch program. The wrapper keeps
    the method's name, which names the program: so the program is the one the other tests compile,
    and the compilation cache serves it to them (a lambda's took its own 10 s compile)."""
    import functools

    traces = []
    original = MemberTrainer._epoch_fn

    @functools.wraps(original)
    def counted(self, *a):
        traces.append(1)
        return original(self, *a)

    monkeypatch.setattr(MemberTrainer, "_epoch_fn", counted)
    return traces


def test_compiled_once_per_architecture_and_divergence_is_a_failed_result(fashion, monkeypatch):
    traces = _counting_traces(monkeypatch)
    config = TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.5)
    r = train_member(tiny_member(), _small_split(fashion), config)
    assert r.ok and len(r.loss_curve) == 2 and len(traces) == 1
    assert r.view_accuracies == () and r.summary()["view_accuracies"] == []  # one view scored: nothing extra
    assert len(r.epoch_s) == 2 and min(r.epoch_s) > 0 and sum(r.epoch_s) == pytest.approx(r.train_s, rel=0.05)
    assert r.summary()["epoch_s"] == list(r.epoch_s)
    # Same program, poisoned weights: the loss goes non-finite and the member is a failed result.
    import trainer.train as tt

    original_init = tt.init_model

    def poisoned(*a, **k):
        m = original_init(*a, **k)
        m.classifier.dense.kernel[...] = m.classifier.dense.kernel[...] * float("nan")  # after every ReLU
        return m

    monkeypatch.setattr(tt, "init_model", poisoned)
    r = train_member(tiny_member(), _small_split(fashion), config)
    assert r.status == "failed" and "diverged" in r.reason and r.epochs == 1


def test_a_member_of_an_earlier_members_architecture_takes_its_programs(fashion, monkeypatch):
    """Another seed of the same architecture, data and config skips tracing and compiling and
    trains exactly as if it had compiled its own programs; any other member compiles its own."""
    from trainer.train import PROGRAMS

    traces = _counting_traces(monkeypatch)
    split, config = _small_split(fashion), TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.5)
    first = train_member(tiny_member(), split, config, seed=0)
    second = train_member(tiny_member(), split, config, seed=1)
    assert len(traces) == 1 and not first.programs_reused and second.programs_reused
    assert second.trace_s == 0 and second.compile_s < 0.1 * first.compile_s
    assert second.summary()["programs_reused"] is True
    PROGRAMS.clear()
    alone = train_member(tiny_member(), split, config, seed=1)
    assert len(traces) == 2 and not alone.programs_reused
    assert alone.loss_curve == second.loss_curve and np.array_equal(alone.val_logits, second.val_logits)
    assert first.loss_curve != second.loss_curve  # the seed still reaches the member
    # another resolution, training config or data size: programs of their own; neither the seed
    # nor the learning-rate schedule is part of them (each step's rate is an argument)
    key = MemberTrainer(tiny_member(), split, config, 0).program_key()
    assert MemberTrainer(tiny_member(), split, config, 7).program_key() == key
    for spec, cfg, data in ((tiny_member(res_index=1), config, split), (tiny_member(), config.replace(momentum=0.8), split),
                            (tiny_member(), config.replace(precise_bn_images=0), split),
                            (tiny_member(), config, _small_split(fashion, 192))):
        assert MemberTrainer(spec, data, cfg, 0).program_key() != key
    monkeypatch.setenv("NAS_PROGRAM_BACKEND", "gpu")  # built as a GPU builds them: their own programs
    assert MemberTrainer(tiny_member(), split, config, 0).program_key() != key
    monkeypatch.delenv("NAS_PROGRAM_BACKEND")
    other = config.replace(epochs=3, learning_rate=0.05, warmup_epochs=0.0, schedule="step", step_epochs=(2,))
    taken = train_member(tiny_member(), split, other, seed=1)
    assert taken.programs_reused and len(traces) == 2 and len(taken.loss_curve) == 3
    PROGRAMS.clear()
    own = train_member(tiny_member(), split, other, seed=1)
    assert not own.programs_reused and len(traces) == 3
    assert own.loss_curve == taken.loss_curve and np.array_equal(own.val_logits, taken.val_logits)
    assert taken.loss_curve[:2] != alone.loss_curve  # the same seed: its own schedule made the difference


def test_test_time_flips_score_each_image_with_its_mirror_image(fashion):
    """With trainer.tta_flip a member's logits are the mean of its logits for the images and for
    their mirror images, each view's accuracy alone is kept, and the programs are the config's own."""
    split, config = _small_split(fashion), TrainConfig(epochs=1, batch_size=64, warmup_epochs=0.5)
    r = train_member(tiny_member(), split, config.replace(tta_flip=True))
    assert r.ok and len(r.view_accuracies) == 2 and r.summary()["view_accuracies"] == list(r.view_accuracies)
    t = MemberTrainer(tiny_member(), split, config.replace(tta_flip=True), seed=0)
    assert t.program_key() != MemberTrainer(tiny_member(), split, config, seed=0).program_key()
    t.compile()
    assert t.programs_reused  # train_member's programs, from PROGRAMS
    t.run_epoch(0)
    x = split.x_val
    views, of_mirrored = t.view_logits(x), t.view_logits(x[:, :, ::-1, :])
    assert views.shape == (2, len(x), 10) and np.abs(views[0] - views[1]).max() > 1e-3
    np.testing.assert_allclose(views[1], of_mirrored[0], atol=1e-4)  # the second view is the mirror image's
    np.testing.assert_allclose(views[0], of_mirrored[1], atol=1e-4)
    np.testing.assert_allclose(t.logits(x), views.mean(0), atol=1e-6)
    accs = [float((v.argmax(-1) == split.y_val).mean()) for v in views]
    assert accs == [pytest.approx(a) for a in r.view_accuracies]  # same seed: the same member as train_member's


def test_a_member_with_a_moving_average_trains_as_without_and_is_scored_with_the_average(fashion):
    """trainer.ema_decay leaves training alone (the same losses, step for step) and scores the member
    with its weights' moving average, batch-norm statistics recomputed for those weights."""
    import jax

    from trainer.config import averaged_params

    split, config = _small_split(fashion), TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.5, precise_bn_images=128)
    plain, averaged = (MemberTrainer(tiny_member(), split, c, seed=0) for c in (config, config.replace(ema_decay=0.9)))
    for t in (plain, averaged):
        t.compile()
    for epoch in range(2):
        np.testing.assert_array_equal(averaged.run_epoch(epoch), plain.run_epoch(epoch))
    for a, b in zip(jax.tree_util.tree_leaves(averaged.state.params), jax.tree_util.tree_leaves(plain.state.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    average = averaged_params(averaged.state.opt_state)
    assert averaged.scoring_params() is average and plain.scoring_params() is plain.state.params
    gap = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
              for a, b in zip(jax.tree_util.tree_leaves(average), jax.tree_util.tree_leaves(plain.state.params)))
    assert gap > 1e-3  # 8 steps at decay 0.9: the average lags the weights
    x = split.x_val
    assert np.abs(averaged.logits(x) - plain.logits(x)).max() > 1e-3
    # the last weights put in place of the average: scored exactly as the plain member
    opt_state = averaged.state.opt_state
    averaged.state = averaged.state._replace(opt_state=(*opt_state[:-1], opt_state[-1]._replace(
        average=plain.state.params)))
    np.testing.assert_allclose(averaged.logits(x), plain.logits(x), atol=1e-5)


def test_the_program_cache_keeps_the_most_recently_used():
    from trainer.train import ProgramCache

    cache = ProgramCache()
    cache.KEEP = 2
    cache.put("a", (1, 1))
    cache.put("b", (2, 2))
    assert cache.get("a") == (1, 1)  # a is now the most recent: c pushes b out
    cache.put("c", (3, 3))
    assert cache.get("b") is None and cache.get("a") == (1, 1) and cache.get("c") == (3, 3)
    cache.KEEP = 0  # the benchmarks' setting: nothing kept, every member compiles
    cache.put("d", (4, 4))
    assert cache.get("d") is None


def test_threads_after_the_same_programs_compile_them_once_and_others_side_by_side():
    # Stand-ins for trainers: "lowering" gives an object whose compile() logs and waits. Two
    # trainers of key A from two threads: one compiles, the other waits and takes its programs;
    # a trainer of key B compiles while A's compile is still running (A's waits for B's to start).
    import threading
    from types import SimpleNamespace

    from trainer.train import ProgramCache, compile_programs

    compiled, options, b_started = [], {}, threading.Event()

    class Lowered:
        def __init__(self, key):
            self.key = key

        def compile(self, compiler_options=None):
            compiled.append(self.key)
            options.setdefault(self.key, []).append(compiler_options)
            if self.key == "B":
                b_started.set()
            else:
                assert b_started.wait(10), "B's compile waited for A's"
            return f"program {self.key}"

    def trainer(key):
        lower = SimpleNamespace(lower=lambda *args: Lowered(key))
        return SimpleNamespace(program_key=lambda: key, steps_per_epoch=1, state=SimpleNamespace(params=0, rest=0),
                               data=0, precise_bn_idx=None, split=SimpleNamespace(x_val=0),
                               _eval_batches=lambda x: x, _epoch=lower, _eval=lower, programs_reused=False)

    cache = ProgramCache()
    trainers = [trainer("A"), trainer("A"), trainer("B")]
    slop = {"xla_gpu_memory_limit_slop_factor": 80}  # B's XLA options reach both its programs' compiles
    threads = [threading.Thread(target=compile_programs, args=(t, 0, cache, slop if k == "B" else None))
               for t, k in zip(trainers, "AAB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(compiled) == ["A", "A", "B", "B"]  # epoch and scoring programs, each key once
    assert options == {"A": [None, None], "B": [slop, slop]}
    assert sorted(t.programs_reused for t in trainers) == [False, False, True]
    assert all(t._epoch == f"program {k}" for t, k in zip(trainers, "AAB"))
    assert not cache._compiling  # nothing left behind


def test_out_of_memory_is_a_failed_result(fashion, monkeypatch):
    def oom(self, epoch):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 81.2GiB")

    monkeypatch.setattr(MemberTrainer, "compile", lambda self: 0.0)
    monkeypatch.setattr(MemberTrainer, "run_epoch", oom)
    r = train_member(tiny_member(), _small_split(fashion), TrainConfig(epochs=1, batch_size=64))
    assert r.status == "failed" and r.reason.startswith("out of memory")


def test_other_errors_are_not_swallowed(fashion, monkeypatch):
    monkeypatch.setattr(MemberTrainer, "compile", lambda self: 0.0)
    monkeypatch.setattr(MemberTrainer, "run_epoch", lambda self, e: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        train_member(tiny_member(), _small_split(fashion), TrainConfig(epochs=1, batch_size=64))


def test_nas_train_cli_json(dataset, capsys, tmp_path):
    from nas.cli import main

    spec_path = tmp_path / "tiny_member.json"  # not in the checkout, where a commit could pick it up
    spec_path.write_text(to_json(tiny_member(res_index=3)))  # 28 px: a JSON spec trains at its own resolution
    code = main(["train", str(spec_path), "--dataset", dataset, "--epochs", "1", "--train-examples", "2000",
                 "--val-size", "1000", "--batch-size", "32", "--lr", "0.1", "--init", "pytorch_default", "--json",
                 "--set", "trainer.crop_pad=2", "--set", "zero_init_residual=true"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["val_accuracy"] > 0.35 and out["train_examples"] == 2000
    assert out["trainer"]["init"] == "pytorch_default" and out["trainer"]["learning_rate"] == 0.1
    assert out["trainer"]["crop_pad"] == 2 and out["trainer"]["zero_init_residual"] is True
    assert out["spec"]["resolution"] == 28


@pytest.mark.parametrize("setting, message", [("trainer.nope=1", "unknown key 'nope'"),
                                              ("zero_init_residual=maybe", "expected true or false"),
                                              ("crop_pad", "expected KEY=VALUE")])
def test_nas_train_refuses_a_bad_setting_before_loading_any_data(setting, message, capsys):
    from nas.cli import main

    # the data set does not exist: the setting's error comes first
    assert main(["train", "mobilenetv2", "--dataset", "no-such-set", "--set", setting]) == 2
    err = capsys.readouterr().err
    assert message in err and "no-such-set" not in err and len(err.strip().splitlines()) == 1


def test_retrain_spec_refuses_an_unwritable_checkpoint_folder_before_building_the_member(dataset, capsys):
    """It was a FileNotFoundError traceback once the member was built, at the first checkpoint."""
    from nas.cli import main

    assert main(["retrain-spec", "mobilenetv2", "--dataset", dataset, "--checkpoint-dir", "/proc/forbidden/ck"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint-dir /proc/forbidden/ck: cannot write" in err and len(err.strip().splitlines()) == 1


def test_the_member_to_train_keeps_a_spec_files_resolution_and_unwraps_a_one_member_ensemble_or_picks_one():
    from nas.train_cli import _member_for_data, _one_member
    from search_space import zoo
    from search_space.errors import UserError
    from search_space.spec import EnsembleSpec

    member = tiny_member()  # 14 px: half of Fashion-MNIST's 28
    assert _member_for_data(member, 28, keep_resolution=True) == member  # a JSON file's, or --resolution
    assert _one_member(member) == member and _one_member(EnsembleSpec((member,))) == member  # nas show --front --export
    with pytest.raises(UserError, match=r"an ensemble of 2 members; give --member 0..1 for one of them"):
        _one_member(EnsembleSpec((member, member)))
    # --member: one member of an ensemble (a front point's pair, an exported pair), counted from 0
    other = member.replace(resolution=21)
    assert _one_member(EnsembleSpec((member, other)), 1) == other and _one_member(EnsembleSpec((member, other)), 0) == member
    with pytest.raises(UserError, match=r"^--member 2: SPEC is an ensemble of 2 members \(--member 0..1\)$"):
        _one_member(EnsembleSpec((member, other)), 2)
    with pytest.raises(UserError, match=r"^--member 0: SPEC is one architecture, not an ensemble$"):
        _one_member(member, 0)
    named = _member_for_data(zoo.get("mnasnet-a1"), 32, keep_resolution=False)  # at 224 by name: the data's size
    assert named.resolution == 32 and named.stem_stride == 1  # and the small-input rule


def test_a_bad_member_is_refused_before_the_data_loads(monkeypatch, capsys):
    import nas.train_cli
    from nas.cli import main

    def no_data(args):
        raise AssertionError("the data set was loaded")

    monkeypatch.setattr(nas.train_cli, "load_data", no_data)
    pair = "r1_k3_s11_e1_i16_o16 r1_k3_s22_e6_i16_o24"  # block strings: one architecture
    assert main(["train", pair, "--dataset", "fashion_mnist", "--member", "1"]) == 2
    assert capsys.readouterr().err.strip() == "nas train: error: --member 1: SPEC is one architecture, not an ensemble"
    assert main(["retrain-spec", pair, "--dataset", "fashion_mnist", "--member", "0", "--checkpoint-dir", "x"]) == 2
    assert "--member 0: SPEC is one architecture" in capsys.readouterr().err


def test_retraining_killed_mid_run_resumes_exactly(fashion, tmp_path):
    small = Dataset("fm", fashion.x_train[:384], fashion.y_train[:384], fashion.x_test[:128], fashion.y_test[:128],
                    fashion.class_names)
    np.savez(tmp_path / "fm.npz", x_train=small.x_train, y_train=small.y_train, x_test=small.x_test,
             y_test=small.y_test)
    spec = tmp_path / "m.json"
    spec.write_text(to_json(tiny_member()))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def args(ckpt):  # of `nas`
        return ["retrain-spec", str(spec), "--dataset", f"npz:{tmp_path / 'fm.npz'}",
                "--epochs", "3", "--every", "1", "--checkpoint-dir", str(ckpt), "--json"]

    def cmd(ckpt):  # in a process of its own: to be killed, or to give an exit code
        return [sys.executable, "-m", "nas", *args(ckpt)]

    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 240
    while time.time() < deadline and not (killed / "1").is_dir():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (killed / "2").is_dir() or (killed / "1").is_dir(), proc.stderr.read().decode()[-2000:]
    resumed = json.loads(nas_here(*args(killed)).stdout)  # the rest in this process: no kill to survive
    fresh_run = nas_here(*args(tmp_path / "fresh"))
    fresh = json.loads(fresh_run.stdout)
    assert resumed["resumed_from_epoch"] >= 1 and fresh["resumed_from_epoch"] == 0
    assert ("note: 3 optimizer steps in all (384 images at batch 256, 3 epochs), where the recipe takes 195 an epoch "
            "on CIFAR-10: --set batch_size=16 --set learning_rate=0.0125 gives 72") in fresh_run.stderr
    assert resumed["loss_curve"] == fresh["loss_curve"]
    assert resumed["test_accuracy"] == fresh["test_accuracy"]
    # a finished run only scores again: the same accuracy, no training program compiled
    again = json.loads(nas_here(*args(tmp_path / "fresh")).stdout)
    assert again["resumed_from_epoch"] == 3 and again["compile_s"] == 0.0 and again["from_saved_logits"]
    assert not fresh["from_saved_logits"] and not resumed["from_saved_logits"]
    assert again["test_accuracy"] == fresh["test_accuracy"] and again["loss_curve"] == fresh["loss_curve"]
    # --export: the finished member as a one-member folder that `nas predict` reads, scoring as retraining did
    from nas.export import load_ensemble

    exp = tmp_path / "exported"
    done = json.loads(nas_here(*args(tmp_path / "fresh"), "--export", str(exp)).stdout)
    ens = load_ensemble(exp)
    acc = float((ens.log_probabilities(small.x_test).argmax(-1) == small.y_test).mean())
    assert done["export"] == {"folder": str(exp), "test_accuracy_exported": acc}
    assert abs(acc - fresh["test_accuracy"]) <= 1 / 128 + 1e-9  # float32 both ways: at most one image apart
    assert ens.manifest["size"] == 1 and ens.manifest["members"][0]["spec"] == tiny_member().to_dict()  # 14 px
    # the folder as SPEC, without --dataset: its member on the data set it was exported from (the same
    # checkpoint folder takes it as the same run, by content)
    from_folder = json.loads(nas_here("retrain-spec", str(exp), "--epochs", "3", "--every", "1", "--checkpoint-dir",
                                      str(tmp_path / "fresh"), "--json").stdout)
    assert from_folder["dataset"] == f"npz:{tmp_path / 'fm.npz'}" and from_folder["from_saved_logits"]
    assert from_folder["test_accuracy"] == fresh["test_accuracy"]
    # an --export folder with files in it is refused before anything trains, and left as it was
    before = {f.name: f.read_bytes() for f in exp.iterdir()}
    refused = subprocess.run(cmd(tmp_path / "never") + ["--export", str(exp)], env=env, capture_output=True, cwd=ROOT)
    assert refused.returncode == 2 and not (tmp_path / "never").exists()
    assert refused.stderr.decode().strip().splitlines() == [f"nas retrain-spec: error: {exp}: exists and is not an "
                                                            "empty folder (choose another --export)"]
    assert {f.name: f.read_bytes() for f in exp.iterdir()} == before


def test_retrain_spec_takes_recipe_settings_and_its_folder_keeps_them(fashion, tmp_path, capsys):
    from nas.cli import main

    np.savez(tmp_path / "fm.npz", x_train=fashion.x_train[:128], y_train=fashion.y_train[:128],
             x_test=fashion.x_test[:64], y_test=fashion.y_test[:64])
    spec = tmp_path / "m.json"
    spec.write_text(to_json(tiny_member()))

    def args(*sets):
        return ["retrain-spec", str(spec), "--dataset", f"npz:{tmp_path / 'fm.npz'}", "--epochs", "1",
                "--checkpoint-dir", str(tmp_path / "ckpt"), "--json", *sets]

    first = nas_here(*args("--set", "ema_decay=0.9", "--set", "trainer.batch_size=64"))
    out = json.loads(first.stdout)
    assert first.stderr.startswith(  # the first line says what trains, and how
        f"retraining {spec_id(tiny_member())[:12]} on npz:{tmp_path / 'fm.npz'}: 128 train / 64 test, 14px, 1 epoch, "
        f"batch 64, lr {out['trainer']['learning_rate']:g} (fast recipe with --set), checkpoints in {tmp_path / 'ckpt'}\n"
        # then that the batch kept the recipe's rate
        "note: --set batch_size=64 keeps the learning rate 0.2 set for batch 256; --set learning_rate=0.05 keeps its "
        "rate per image\n")
    assert out["trainer"]["ema_decay"] == 0.9 and out["trainer"]["batch_size"] == 64 and out["trainer"]["epochs"] == 1
    assert out["set"] == ["ema_decay=0.9", "trainer.batch_size=64"] and out["recipe"] == "fast"
    # --max-minutes: stopped at the end of the first epoch past it, with a checkpoint there; resumed
    settings = ("--set", "ema_decay=0.9", "--set", "trainer.batch_size=64", "--epochs", "2",
                "--checkpoint-dir", str(tmp_path / "slot"))
    stopped = nas_here(*args(*settings, "--max-minutes", "1e-9"))
    assert json.loads(stopped.stdout) == {"stopped_after_epoch": 1, "epochs": 2, "checkpoint_dir": str(tmp_path / "slot")}
    assert f"time limit (1e-09 min): stopped after epoch 1 of 2, with a checkpoint in {tmp_path / 'slot'}" in stopped.stderr
    again = nas_here(*args(*settings))
    resumed = json.loads(again.stdout)
    assert resumed["resumed_from_epoch"] == 1 and resumed["epochs"] == 2
    assert f"checkpoints in {tmp_path / 'slot'}, resumed after epoch 1\n" in again.stderr.splitlines(keepends=True)[0]
    # the folder's run with other settings: one line, exit 2, nothing trained; a bad setting fails before any data
    capsys.readouterr()
    assert main(args("--set", "ema_decay=0.5", "--set", "batch_size=64")) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"nas retrain-spec: error: {tmp_path / 'ckpt'}: holds the retraining of another member or setting "
        "(trainer.ema_decay differ); choose another --checkpoint-dir, or the same member and settings to resume it"]
    assert main(args("--set", "batch_size=64")) == 2  # without it: ema_decay at its default, left out of the file's
    assert "(trainer.ema_decay differ)" in capsys.readouterr().err
    assert main(["retrain-spec", str(spec), "--dataset", "npz:/nonexistent.npz", "--checkpoint-dir",
                 str(tmp_path / "never"), "--set", "nope=1"]) == 2
    assert "trainer.nope" in capsys.readouterr().err and not (tmp_path / "never").exists()
    # its checkpoint damaged after it was written: one line, without the 1,000-character spec
    # TensorStore appends to its error or the tracebacks of its reads still in flight, which
    # printed at exit (so a process of its own)
    from trainer.retrain import SAVED_LOGITS

    ckpt = tmp_path / "ckpt"
    (ckpt / SAVED_LOGITS).unlink()
    for data in (ckpt / "1").rglob("d/*"):
        data.write_bytes(data.read_bytes()[:50])
    failed = run_module("nas", *args("--set", "ema_decay=0.9", "--set", "trainer.batch_size=64"))
    assert failed.returncode == 2 and failed.stdout == ""
    [line] = failed.stderr.splitlines()
    assert line.startswith(f"nas retrain-spec: error: {ckpt}: the checkpoint after epoch 1 is unreadable (")
    assert line.endswith(f"); remove {ckpt}/1 to resume from the start") and "tensorstore_spec" not in line


def test_saved_test_logits_serve_the_same_test_set_and_schedule_only(fashion, tmp_path):
    from trainer.retrain import SAVED_LOGITS, retrain

    small = Dataset("fm", fashion.x_train[:256], fashion.y_train[:256], fashion.x_test[:96], fashion.y_test[:96],
                    fashion.class_names)
    config = TrainConfig(epochs=1, batch_size=64, warmup_epochs=0.0)
    first = retrain(tiny_member(), small, config, 0, tmp_path / "m", every=1)
    assert (tmp_path / "m" / SAVED_LOGITS).is_file() and not first.from_saved_logits
    again = retrain(tiny_member(), small, config, 0, tmp_path / "m", every=1)
    assert again.from_saved_logits and again.compile_s == 0.0
    np.testing.assert_array_equal(again.test_logits, first.test_logits)
    assert again.test_accuracy == first.test_accuracy and again.loss_curve == first.loss_curve
    # another test set is scored, not read back
    other = Dataset("fm", small.x_train, small.y_train, fashion.x_test[96:160], fashion.y_test[96:160],
                    fashion.class_names)
    rescored = retrain(tiny_member(), other, config, 0, tmp_path / "m", every=1)
    assert not rescored.from_saved_logits and rescored.test_logits.shape[0] == 64
    # a longer schedule in the same folder resumes from the checkpoint beside the saved logits
    longer = retrain(tiny_member(), small, config.replace(epochs=2), 0, tmp_path / "m", every=1)
    assert not longer.from_saved_logits and longer.resumed_from_epoch == 1 and len(longer.loss_curve) == 2
    # damaged saved logits (a kill mid-write) are scored again
    (tmp_path / "m" / SAVED_LOGITS).write_bytes(b"not an npz")
    assert not retrain(tiny_member(), small, config.replace(epochs=2), 0, tmp_path / "m", every=1).from_saved_logits


def test_a_retraining_with_a_moving_average_resumes_it_from_its_checkpoint(fashion, tmp_path):
    # the average lives in the optimizer state, which the checkpoints hold: stopped after epoch 1 and
    # resumed, the run scores as an uninterrupted one, with the average, not the last weights
    from trainer.retrain import retrain

    small = Dataset("fm", fashion.x_train[:256], fashion.y_train[:256], fashion.x_test[:96], fashion.y_test[:96],
                    fashion.class_names)
    config = TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.0, ema_decay=0.9, precise_bn_images=128)
    assert retrain(tiny_member(), small, config, 0, tmp_path / "stopped", every=1, stop_after=1) is None
    resumed = retrain(tiny_member(), small, config, 0, tmp_path / "stopped", every=1)
    fresh = retrain(tiny_member(), small, config, 0, tmp_path / "fresh", every=1)
    assert resumed.resumed_from_epoch == 1 and resumed.loss_curve == fresh.loss_curve
    np.testing.assert_allclose(resumed.test_logits, fresh.test_logits, atol=1e-6)
    # stopped by a deadline (`nas retrain --max-minutes`): at the end of the epoch it passed in, with a
    # checkpoint there though --every would not have written one, and resumed the same
    late = tmp_path / "late"
    assert retrain(tiny_member(), small, config, 0, late, every=5, deadline=time.time()) is None
    assert sorted(p.name for p in late.iterdir() if p.name.isdigit()) == ["1"]
    resumed = retrain(tiny_member(), small, config, 0, late, every=5, deadline=time.time() + 3600)
    assert resumed.resumed_from_epoch == 1 and resumed.loss_curve == fresh.loss_curve
    np.testing.assert_allclose(resumed.test_logits, fresh.test_logits, atol=1e-6)
    last = retrain(tiny_member(), small, config.replace(ema_decay=0.0), 0, tmp_path / "last", every=1)
    assert last.loss_curve == fresh.loss_curve and np.abs(last.test_logits - fresh.test_logits).max() > 1e-3


# the damaged checkpoint's failed read leaves TensorStore callbacks on a closed event loop (orbax's
# own: "Event loop is closed", unraisable); trainer.retrain drops them, but pytest puts its own hook
# back after each test, and a late one may reach that
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_checkpoint_folder_of_another_member_or_setting_is_refused_and_left_alone(fashion, tmp_path):
    from search_space.errors import UserError
    from trainer.checkpoint_folder import RUN_FILE
    from trainer.retrain import restore_retrained, retrain

    small = Dataset("fm", fashion.x_train[:256], fashion.y_train[:256], fashion.x_test[:96], fashion.y_test[:96],
                    fashion.class_names)  # the images, batch and config of the tests above: their programs
    config, folder = TrainConfig(epochs=1, batch_size=64, warmup_epochs=0.0), tmp_path / "m"
    done = retrain(tiny_member(), small, config, 0, folder, every=1)
    assert json.loads((folder / RUN_FILE).read_text())["seed"] == 0
    renamed = Dataset("fm at another path", *dataclasses.astuple(small)[1:])  # the same images

    def contents():
        return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    before = contents()
    # neither resumed from another member's weights nor answered with its saved test logits
    for spec, cfg, seed, differs in ((tiny_member(res_index=1), config, 0, "spec"), (tiny_member(), config, 1, "seed"),
                                     (tiny_member(), config.replace(learning_rate=0.05), 0, "trainer.learning_rate")):
        with pytest.raises(UserError, match=rf"holds the retraining of another member or setting \({differs} differ\)"):
            retrain(spec, small, cfg, seed, folder, every=1)
        with pytest.raises(UserError, match="holds the retraining of another"):
            restore_retrained(spec, small, cfg, seed, folder)
    assert contents() == before
    other_images = Dataset("fm", fashion.x_train[256:512], fashion.y_train[256:512], small.x_test, small.y_test,
                           fashion.class_names)
    with pytest.raises(UserError, match=r"\(training_data differ\)"):
        retrain(tiny_member(), other_images, config, 0, folder, every=1)
    assert contents() == before
    # the same run answers as before (its data by content, whatever it is called), and a longer
    # schedule still resumes it
    assert retrain(tiny_member(), renamed, config, 0, folder, every=1).test_accuracy == done.test_accuracy
    assert retrain(tiny_member(), small, config.replace(epochs=2), 0, folder, every=1).resumed_from_epoch == 1
    # a checkpoint of this very run damaged after it was written: said so, with what to remove to go
    # on (it was "does not fit this member ... choose another --checkpoint-dir")
    from trainer.retrain import SAVED_LOGITS

    (folder / SAVED_LOGITS).unlink()
    for data in (folder / "2").rglob("d/*"):
        data.write_bytes(data.read_bytes()[:50])
    damaged = rf"{folder}: the checkpoint after epoch 2 is unreadable \(.*\)"
    with pytest.raises(UserError, match=damaged + rf"; remove {folder}/2 to resume from the checkpoint after epoch 1$"):
        retrain(tiny_member(), small, config.replace(epochs=2), 0, folder, every=1)
    with pytest.raises(UserError, match=damaged):
        restore_retrained(tiny_member(), small, config.replace(epochs=2), 0, folder)
    shutil.rmtree(folder / "2")
    assert retrain(tiny_member(), small, config.replace(epochs=2), 0, folder, every=1).resumed_from_epoch == 1
    # a folder from before the run file: a checkpoint of another network is one error, not a
    # traceback (another resolution of the same network would fit: its weights are the same shapes)
    from search_space import zoo

    (folder / RUN_FILE).unlink()
    with pytest.raises(UserError, match="its checkpoint does not fit this member"):
        retrain(zoo.get("wrn-10-1", resolution=28), small, config.replace(epochs=2), 0, folder, every=1)
    assert not (folder / RUN_FILE).exists()


def test_a_restored_retrained_member_scores_as_retraining_did(fashion, tmp_path):
    """restore_retrained (what `nas export` writes out): the last checkpoint's weights with the
    scoring batch-norm statistics give the test logits retraining saved; an unfinished or absent
    retraining is one error."""
    import jax.numpy as jnp

    from search_space.errors import UserError
    from trainer.augment import to_model_input
    from trainer.retrain import restore_retrained, retrain
    from trainer.train import normalization

    small = Dataset("fm", fashion.x_train[:256], fashion.y_train[:256], fashion.x_test[:96], fashion.y_test[:96],
                    fashion.class_names)
    config, spec = TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.0), tiny_member(res_index=1)
    with pytest.raises(UserError, match="no retraining checkpoint"):
        restore_retrained(spec, small, config, 0, tmp_path / "m")
    assert retrain(spec, small, config, 0, tmp_path / "m", every=1, stop_after=1) is None
    with pytest.raises(UserError, match="unfinished.*after epoch 1 of 2"):
        restore_retrained(spec, small, config, 0, tmp_path / "m")
    done = retrain(spec, small, config, 0, tmp_path / "m", every=1)
    model = restore_retrained(spec, small, config, 0, tmp_path / "m")
    mean, std = normalization(small.x_train)
    logits = logits_of(model, to_model_input(jnp.asarray(small.x_test), jnp.asarray(mean), jnp.asarray(std),
                                            spec.resolution))
    np.testing.assert_allclose(logits, done.test_logits, atol=1e-4)


def test_the_configs_init_scheme_draws_the_members_weights(fashion):
    import jax
    from flax import nnx

    from search_space.models import init_model

    split, spec = _small_split(fashion), tiny_member()
    for scheme in ("he_fan_out", "tf_reference", "pytorch_default"):
        t = MemberTrainer(spec, split, TrainConfig(epochs=1, batch_size=64, init=scheme), seed=5)
        expected = nnx.state(init_model(spec, split.num_classes, seed=5, dtype=t.dtype, scheme=scheme), nnx.Param)
        for a, b in zip(jax.tree_util.tree_leaves(t.state.params), jax.tree_util.tree_leaves(expected)):
            assert np.array_equal(np.asarray(a), np.asarray(b))
