"""The GPU benchmark scripts stay runnable between GPU sessions: a miniature compile-options run on
the CPU, and their bad-input errors."""

import json
import math
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.conftest import run_module as _run
from tests.conftest import script_here


@pytest.mark.slow
def test_compile_options_benchmark_runs_each_variant_in_its_own_process(tmp_path, dataset):
    out = tmp_path / "co.json"
    r = _run("experiments.bench_compile_options", "--dataset", dataset, "--members", "1", "--train-examples",
             "300", "--val-size", "100", "--width", "0.25", "--head", "64", "--blocks", "2", "--variants",
             "autotune0-matmul,f32", "--parallel", "2", "--out", str(out))  # three variants took 180 s in the suite
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [row["variant"] for row in rows] == ["autotune0-matmul", "f32"]  # the order asked for
    assert rows[0]["xla"] == "--xla_gpu_autotune_level=0" and rows[1]["dtype"] == "float32"
    # the variant's environment reaches its process only: f32's 300-image run keeps XLA convolutions
    assert rows[0]["lowering"] == "conv=matmul,depthwise=shift" and rows[1]["lowering"] == "conv=conv,depthwise=shift"
    for row in rows:
        assert row["compile_s_mean"] > 0 and row["images_per_s_mean"] > 0 and 0 <= row["mean_val_accuracy"] <= 1
        assert row["proxy_evals_per_hour"] == pytest.approx(3600 / row["proxy_member_s"])
        m = row["members"][0]  # two timed epochs: the first one's extra cost apart from the steady speed
        assert len(m["epoch_s"]) == 2 and m["first_epoch_extra_s"] >= 0 and m["eval_s"] > 0
        assert m["images_per_s"] == pytest.approx(300 // 256 * 256 / m["epoch_s"][1])
        assert m["proxy_s"] == pytest.approx(m["setup_s"] + m["compile_s"] + m["first_epoch_extra_s"]
                                             + 450_000 / m["images_per_s"] + m["eval_s"])
    # Side by side, the timed parts take turns: without the lock two variants compiling the same
    # program (the XLA flag is a GPU one) overlap their timed parts (checked by hand: by about 6 s).
    windows = sorted(row["members"][0]["timed_window"] for row in rows)
    assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:])), f"timed parts overlapped: {windows}"
    lines = r.stdout.strip().splitlines()
    assert [line.split(":")[0].strip() for line in lines] == ["autotune0-matmul", "f32"]
    assert all("10-epoch proxy member" in line and "x autotune0-matmul)" in line for line in lines)
    r = _run("experiments.bench_compile_options", "--parallel", "0")
    assert r.returncode != 0 and "--parallel must be at least 1" in r.stderr


def _tiny_throughput_run(tmp_path, dataset, hard_stop: str, *more: str):
    """Three tiny members, one naive; the optimized mode (two in flight at once) starts none after
    0.1 s and stops hard at ``hard_stop`` s. ``more``: further options. Returns the process and its JSON."""
    out = tmp_path / "bt.json"
    r = _run("experiments.bench_throughput", "--dataset", dataset, "--members", "3", "--epochs", "1",
             "--train-examples", "300", "--val-size", "100", "--width", "0.25", "--head", "64", "--blocks", "2",
             "--naive-members", "1",
             "--optimized-time-limit", "0.1", "--optimized-hard-stop", hard_stop, "--compile-workers", "1",
             "--train-workers", "1", "--out", str(out), *more)
    assert r.returncode == 0, r.stderr[-3000:]
    return r, json.loads(out.read_text())


@pytest.mark.slow
def test_throughput_benchmark_rates_both_modes_within_their_time_limits(tmp_path, dataset):
    r, d = _tiny_throughput_run(tmp_path, dataset, "900", "--set", "label_smoothing=0.0")
    assert d["trainer"] == {"epochs": 1, "batch_size": 256, "learning_rate": 0.2, "set": ["label_smoothing=0.0"]}
    assert "both modes: 1 epoch at batch 256, lr 0.2 (label_smoothing=0.0)" in r.stdout
    # the two members started at once both count; the third, due once one of them had finished, past
    # the time limit, is not started (a member may take over a minute on a busy CPU: the late hard stop)
    assert d["optimized"]["members"] == 2
    assert d["naive"]["members"] == 1 and d["naive"]["evaluator"] == "sequential"
    for mode in ("optimized", "naive"):
        assert d[mode]["evals_per_device_hour"] == pytest.approx(3600 * d[mode]["members"] / d[mode]["wall_s"])
    assert d["ratio"] == pytest.approx(d["optimized"]["evals_per_device_hour"] / d["naive"]["evals_per_device_hour"])
    assert d["max_accuracy_difference"] == 0.0  # the same member, the same compile options
    assert "ratio optimized / naive" in r.stdout
    assert d["naive"]["mps"] is d["optimized"]["mps"] is False and "under MPS" not in r.stdout  # no MPS here
    assert "[optimized] time limit: no member started after 0 s (2 of 3 started); waiting for those in flight" in r.stderr
    # one program per member: no layer counts (per layer they are printed: checked by hand)
    assert d["naive"]["stages_sum"] == d["optimized"]["stages_compiled_sum"] == 0 and "layers" not in r.stderr
    # no stacked backend in either mode
    assert d["optimized"]["stack_slots"] is d["naive"]["stack_ahead"] is None
    assert d["optimized"]["stack_slots_fitted"] == d["naive"]["stack_slots_fitted"] == {}


@pytest.mark.slow
def test_throughput_benchmark_precompiles_and_warms_the_optimized_mode_up_first(tmp_path, dataset):
    # Padded layers (trainer/padded.py): the space's 12 covering members precompiled in two
    # processes, then the warm-up's two members (both 14 px), which share layer programs and load
    # every one they need from the precompile's cache; neither's time or members is in the rate.
    r, d = _tiny_throughput_run(tmp_path, dataset, "900", "--optimized-variant", "padded", "--optimized-warmup", "2",
                                "--optimized-precompile", "2")
    opt = d["optimized"]
    p = opt["precompile"]
    assert (p["members"], p["failed"], p["workers"]) == (12, 0, 2) and p["stages_compiled_sum"] > 0
    w = opt["warmup"]
    assert w["members"] == 2 and 0 < w["stages_compiled_sum"] < w["stages_sum"] and w["wall_s"] > 0
    assert w["stages_loaded_sum"] == w["stages_compiled_sum"]  # new to the process, all from the cache
    assert opt["stages_loaded_sum"] == opt["stages_compiled_sum"]
    assert opt["members"] == 2 and d["naive"]["warmup"] is None and d["naive"]["precompile"] is None
    assert opt["evals_per_device_hour"] == pytest.approx(3600 * 2 / opt["wall_s"])
    assert opt["amortized"]["evals_per_device_hour"] == pytest.approx(
        180 / (p["wall_s"] / 3600 + 180 / opt["evals_per_device_hour"]))
    assert "[optimized] warm-up: 2 other members first, not counted" in r.stderr
    assert r.stderr.count("[optimized warm-up] member ") == 2
    assert r.stderr.count("[optimized] precompile: cover") == 12
    assert f", after precompiling 12 covering members ({p['wall_s']:.0f} s in 2 processes, not counted)" in r.stdout
    assert f", after 2 warm-up members ({w['wall_s']:.0f} s, " in r.stdout
    assert "padded: with its precompile charged to a 180-member search at this rate, " in r.stdout


@pytest.mark.slow
def test_throughput_benchmark_stops_an_optimized_mode_that_finishes_nothing(tmp_path, dataset):
    # A variant too slow for the budget: the hard stop still reports (no member), then the naive mode
    # runs; two variants (each stopped so), each an optimized run of its own against one naive run
    given = tmp_path / "autotuned"  # an earlier run's autotuning results (files of XLA's; none on a CPU)
    given.mkdir()
    for name in ("a", "b"):
        (given / name).write_text("result")
    r, d = _tiny_throughput_run(tmp_path, dataset, "0.2", "--optimized-variant", "autotune0-matmul,shift",
                                "--autotune-from", str(given))
    for run in d["optimized_runs"].values():  # each optimized run starts with them; the CPU adds none
        assert (run["autotune_entries_given"], run["autotune_entries_added"]) == (2, 0)
    assert r.stdout.count(", 0 fusions autotuned (2 given); ") == 2 and "naive" in r.stdout
    assert d["optimized"]["members"] == 0 and d["optimized"]["evals_per_device_hour"] == 0
    assert d["naive"]["members"] == 1 and d["ratio"] == 0 and d["max_accuracy_difference"] is None
    assert r.stderr.count("hard stop at 0 s after 0 members") == 2 and "no member was trained by both" in r.stdout
    assert sorted(d["optimized_runs"]) == ["autotune0-matmul", "shift"] == sorted(d["ratios"])
    assert [line.split("(")[0].strip() for line in r.stdout.splitlines()[:3]] == ["naive", "optimized", "optimized"]
    assert "ratios: autotune0-matmul 0.00x, shift 0.00x" in r.stdout


def test_a_members_one_time_cost_is_its_first_epoch_over_its_later_epochs_median():
    from experiments.bench_throughput import _first_epoch, _mean, first_epoch_extra_s

    assert first_epoch_extra_s((3.0, 1.0, 1.2, 5.0)) == pytest.approx(1.8)  # a slow later epoch moves it not
    assert first_epoch_extra_s((2.0,)) is None and _first_epoch(None) == ""  # one epoch: nothing to tell
    assert _mean([1.0, None, 2.0]) == 1.5 and _mean([None]) is None
    assert _first_epoch(12.94) == ", first epoch +12.9 s" and _first_epoch(-0.3) == ", first epoch -0.3 s"
    assert _first_epoch(1.25, " a member") == ", first epoch +1.2 s a member" and _first_epoch(None, " a member") == ""


def test_blocks_keeps_the_first_blocks_of_the_same_sampled_members():
    from experiments.bench_throughput import _sample_members

    whole = _sample_members(28, 3, 0.25, 64, seed=5)
    cut = _sample_members(28, 3, 0.25, 64, seed=5, blocks=2)
    assert [m.blocks[:2] for m in whole] == [m.blocks for m in cut]
    assert [m.replace(blocks=m.blocks[:2]) for m in whole] == cut  # the same width, head and resolution
    for module in ("experiments.bench_throughput", "experiments.bench_compile_options"):
        r = _run(module, "--blocks", "8")
        assert r.returncode == 2 and "argument --blocks: must be 1..7, got 8" in r.stderr


def test_both_throughput_modes_train_the_searchs_proxy_recipe_as_changed():
    from experiments.bench_throughput import bench_config
    from experiments.cifar_proxy import CIFAR_PROXY

    assert bench_config(CIFAR_PROXY.epochs) == CIFAR_PROXY
    larger = bench_config(10, None, ["batch_size=512", "trainer.learning_rate=0.4"])
    assert larger == CIFAR_PROXY.replace(batch_size=512, learning_rate=0.4)
    assert bench_config(10, 128, ["batch_size=512"]).batch_size == 128  # --batch-size wins
    assert bench_config(1, None, ["warmup_epochs=3"]).warmup_epochs == 1  # kept inside the epochs


def test_benchmarks_reject_unknown_variants():
    # in this process: each check stops before any work (28 s as six processes)
    r = script_here("experiments.bench_compile_options", "--variants", "default,nope")
    assert r.returncode != 0 and "unknown variant(s) nope" in r.stderr
    for variants in ("nope", "shift,nope"):
        r = script_here("experiments.bench_throughput", "--optimized-variant", variants)
        assert r.returncode != 0 and "unknown variant 'nope'" in r.stderr
    r = script_here("experiments.bench_throughput", "--autotune-from", "/nowhere")
    assert r.returncode == 2 and r.stderr.strip() == "bench_throughput: --autotune-from /nowhere: not a directory"
    r = script_here("experiments.bench_throughput", "--set", "lr=0.4")
    assert r.returncode == 2 and "unknown key 'lr'" in r.stderr and "Traceback" not in r.stderr
    r = script_here("experiments.bench_first_run", "--kinds", "depthwise,nope")
    assert r.returncode != 0 and "unknown kind(s) nope" in r.stderr


@pytest.mark.parametrize("script", ["bench_compile_options", "bench_jax_vs_torch", "bench_throughput",
                                    "check_bf16_gradients", "check_layer_reuse", "check_search_space"])
def test_the_scripts_take_seeds_in_the_searchs_range_only(script, monkeypatch, capsys):
    # -1 was a numpy traceback where a script first drew from its seed (check_search_space: at once)
    import importlib

    monkeypatch.setattr(sys, "argv", [f"{script}.py", "--seed", "-1"])
    with pytest.raises(SystemExit) as stopped:
        importlib.import_module(f"experiments.{script}").main()
    assert stopped.value.code == 2
    assert "argument --seed: expected an integer in 0..2147483647, got '-1'" in capsys.readouterr().err


def test_the_throughput_benchmark_stops_on_a_missing_data_set_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    r = _run("experiments.bench_throughput", "--members", "1", "--epochs", "1")
    lines = [line for line in r.stderr.splitlines() if "Warning" not in line and "warner(" not in line]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("bench_throughput: cifar10: not found")


def test_first_run_benchmark_times_each_layer_kind_of_mobilenetv2(tmp_path):
    from experiments.bench_first_run import layer_shapes, main

    shapes = layer_shapes()  # MobileNetV2: 17 blocks, the first without an expansion
    assert (len(shapes["pointwise"]), len(shapes["depthwise"])) == (33, 17)
    assert shapes["depthwise"][0] == (32, 32, 32, 3, 1)  # small-input rule: stem at stride 1
    out = tmp_path / "fr.json"
    assert main(["--kinds", "pointwise-matmul,depthwise", "--batch", "2", "--eval-batch", "3", "--width", "0.25",
                 "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["kind"], r["program"], r["layers"], r["batch"]) for r in rows] == [
        ("pointwise-matmul", "train", 33, 2), ("pointwise-matmul", "eval", 33, 3),
        ("depthwise", "train", 17, 2), ("depthwise", "eval", 17, 3)]
    for r in rows:
        assert r["compile_s"] > 0 and r["first_call_s"] > 0 and 0 < r["steady_call_s"] and r["backend"] == "cpu"


def test_pick_takes_the_fastest_variant_that_still_learns(tmp_path):
    from experiments.bench_compile_options import member_cost_s, pick_best

    rows = [{"variant": "default", "mean_val_accuracy": 0.50, "proxy_evals_per_hour": 60},
            {"variant": "autotune0", "mean_val_accuracy": 0.20, "proxy_evals_per_hour": 900},  # fast, learns little
            {"variant": "autotune0-matmul", "mean_val_accuracy": 0.47, "proxy_evals_per_hour": 500},
            {"variant": "shift", "skipped": "over 70 s"}]
    assert pick_best(rows) == "autotune0-matmul"
    assert pick_best(rows, accuracy_tolerance=0.5) == "autotune0"
    # The H100's one-epoch figures (2026-11-26): one-epoch noise must not pick a 7.6x slower trainer
    h100 = [{"variant": "autotune0-matmul", "mean_val_accuracy": 0.221, "proxy_evals_per_hour": 40.3},
            {"variant": "autotune0-matmul-cublas", "mean_val_accuracy": 0.134, "proxy_evals_per_hour": 39.5},
            {"variant": "autotune0-shift", "mean_val_accuracy": 0.291, "proxy_evals_per_hour": 9.0}]
    assert pick_best(h100) == "autotune0-matmul"
    diverged = {"variant": "f32", "mean_val_accuracy": 0.3, "proxy_evals_per_hour": 99,
                "members": [{"final_loss": float("nan")}]}
    assert pick_best(h100 + [diverged]) == "autotune0-matmul"
    with pytest.raises(ValueError, match="no variant"):
        pick_best([{"variant": "shift", "skipped": "exit 1"}])
    # With worker processes a compile overlaps other members' training: a variant that compiles
    # long but trains fast wins once its GPU part is the shorter (450,000 images a proxy member)
    timed = lambda name, compile_s, ips: {  # noqa: E731
        "variant": name, "mean_val_accuracy": 0.3, "setup_s_mean": 2.0, "compile_s_mean": compile_s,
        "first_epoch_extra_s_mean": 0.5, "images_per_s_mean": ips, "eval_s_mean": 0.5,
        "proxy_evals_per_hour": 3600 / (2.0 + compile_s + 0.5 + 450_000 / ips + 0.5)}
    quick, tuned = timed("autotune0-matmul", 30.0, 18_000), timed("shift", 90.0, 90_000)
    assert pick_best([quick, tuned]) == "autotune0-matmul"  # one after another: 58 s against 98 s
    assert pick_best([quick, tuned], workers=8) == "shift"  # 26 s of GPU against max(6 s, 98 s / 8)
    assert member_cost_s(tuned, 8) == pytest.approx(98 / 8) and member_cost_s(quick, 8) == pytest.approx(26)
    out = tmp_path / "rows.json"
    out.write_text(json.dumps(rows))
    r = _run("experiments.bench_compile_options", "--pick", str(out))
    assert r.returncode == 0 and r.stdout.strip() == "autotune0-matmul"
    out.write_text(json.dumps([quick, tuned]))
    r = _run("experiments.bench_compile_options", "--pick", str(out), "--pick-workers", "8")
    assert r.returncode == 0 and r.stdout.strip() == "shift"
    r = _run("experiments.bench_compile_options", "--pick", str(tmp_path / "missing.json"))
    assert r.returncode != 0 and "cannot pick from" in r.stderr


def test_exports_give_a_search_the_variants_environment():
    r = _run("experiments.bench_compile_options", "--exports", "autotune0-matmul-cublas")
    assert r.returncode == 0
    env = dict(line.removeprefix("export ").split("=", 1) for line in r.stdout.strip().splitlines())
    assert env["NAS_CONV"] == "matmul" and env["NAS_DEPTHWISE"] == "shift"
    given = os.environ.get("XLA_FLAGS", "").split()  # the caller's own flags, kept first
    assert env["XLA_FLAGS"].strip("'").split() == [*given, "--xla_gpu_autotune_level=0",
                                                   "--xla_gpu_enable_triton_gemm=false"]
    # trainer settings are --set items for the search, not the environment
    from experiments.bench_compile_options import search_sets, shell_exports

    assert "NAS_" not in shell_exports("f32") and search_sets("f32") == ["trainer.dtype=float32"]
    assert search_sets("moving-average-bn") == ["trainer.precise_bn_images=0"]
    assert search_sets("autotune0-layer") == ["trainer.compile_unit=layer"] and search_sets("matmul") == []
    assert "--xla_gpu_autotune_level=0" in shell_exports("autotune0-layer")
    # autotuned layers, depthwise convolutions as shifted sums: the lowering in the environment,
    # the compile unit as a --set item
    assert search_sets("shift-layer") == ["trainer.compile_unit=layer"]
    assert shell_exports("shift-layer") == "export NAS_DEPTHWISE=shift"
    r = _run("experiments.bench_compile_options", "--sets", "layer")
    assert r.returncode == 0 and r.stdout.split() == ["trainer.compile_unit=layer"]


def test_every_variants_xla_flags_are_known_to_this_xla():
    """XLA aborts a process on a flag it does not know (one misspelt flag would end a GPU session's
    variant, or the search it was picked for); it parses GPU flags on the CPU too."""
    from experiments.bench_compile_options import VARIANTS

    flags = sorted({f for v in VARIANTS.values() for f in v.get("xla", "").split()})
    assert "--xla_gpu_enable_command_buffer=" in flags
    code = "import jax, jax.numpy as jnp; print(jax.jit(lambda x: x + 1)(jnp.ones(2)).sum())"
    for flag_set in (flags, ["--xla_gpu_enable_command_bufer="]):  # the second: a typo, which must fail
        r = subprocess.run([sys.executable, "-c", code], env={**os.environ, "XLA_FLAGS": " ".join(flag_set)},
                           capture_output=True, text=True, timeout=120)
        assert (r.returncode == 0 and r.stdout.strip() == "4.0") == (flag_set is flags), r.stderr[-2000:]


def test_cpu_compile_variants_run_only_when_named():
    from experiments.bench_compile_options import DEFAULT_VARIANTS, VARIANTS, variant_env

    cpu = [n for n in VARIANTS if n.startswith("cpu-")]
    assert cpu and not set(cpu) & set(DEFAULT_VARIANTS) and "default" in DEFAULT_VARIANTS
    assert variant_env("cpu-o0", {"XLA_FLAGS": "--xla_cpu_max_isa=AVX"})["XLA_FLAGS"] == (
        "--xla_cpu_max_isa=AVX --xla_backend_optimization_level=0")  # added to what the caller set


def test_jax_vs_torch_benchmark_trains_what_the_mobilenetv2_study_trains():
    """The GPU session shares one compilation cache between the study and the benchmark's JAX half;
    that reuse needs the same network and the same training config."""
    from experiments.bench_jax_vs_torch import member_spec, proxy_config
    from experiments.study_mobilenetv2_cifar import get_config
    from nas.study import architecture_spec

    study = get_config()
    assert proxy_config() == proxy_config(10, 256) == study.trainer
    from experiments.cifar_proxy import CIFAR_PROXY
    from nas.config import load_config

    assert load_config(str(ROOT / "experiments" / "search_cifar10.py")).trainer == study.trainer == CIFAR_PROXY
    assert member_spec(32, 1.0) == architecture_spec("mobilenetv2", study, 32)
    assert proxy_config(3, 512).warmup_epochs == 1.0 and proxy_config(1, 64).warmup_epochs == 1.0
    # a recipe chosen on the GPU reaches the benchmark as the study's --set takes it
    tuned = proxy_config(overrides=["trainer.learning_rate=0.4", "trainer.batch_size=128"])
    assert tuned == study.trainer.replace(learning_rate=0.4, batch_size=128)
    r = _run("experiments.bench_jax_vs_torch", "--set", "trainer.lr=0.4")
    assert r.returncode != 0 and "unknown key 'lr'" in r.stderr and "Traceback" not in r.stderr


def test_torch_mirror_can_start_from_the_jax_models_initial_distributions():
    """``--torch-init jax``: each PyTorch kernel drawn with the spread of the JAX model's (runs where
    PyTorch is installed; the project does not depend on it)."""
    pytest.importorskip("torch")
    import numpy as np
    from flax import nnx

    from experiments.bench_jax_vs_torch import jax_style_init, member_spec, torch_model
    from search_space.models import init_model

    spec = member_spec(32, 1.0)
    model, torch = torch_model(spec, 10)
    torch.manual_seed(0)
    default_dw = [m.weight.std().item() for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.groups > 1]
    jax_style_init(model)
    ours = {"conv": [], "depthwise": [], "dense": []}
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            ours["depthwise" if m.groups > 1 else "conv"].append(m.weight.std().item())
        elif isinstance(m, torch.nn.Linear):
            ours["dense"].append(m.weight.std().item())
    theirs = {"conv": [], "depthwise": [], "dense": []}
    for path, p in nnx.to_flat_state(nnx.state(init_model(spec, 10, seed=0), nnx.Param)):
        w = np.asarray(p.get_value())
        if path[-1] == "kernel":
            kind = "dense" if w.ndim == 2 else "depthwise" if w.shape[2] == 1 and w.shape[3] > 1 else "conv"
            theirs[kind].append(float(w.std()))
    for kind in ours:  # as many layers, the same spreads (sorted: flax orders its state by name)
        assert len(ours[kind]) == len(theirs[kind]) > 0
        np.testing.assert_allclose(sorted(ours[kind]), sorted(theirs[kind]), rtol=0.25)
    assert np.median(default_dw) > 5 * np.median(ours["depthwise"])  # PyTorch's default: far wider


@pytest.mark.slow
def test_bf16_gradient_check_compares_three_gradients_with_float32(tmp_path, dataset):
    out = tmp_path / "g.json"
    r = _run("experiments.check_bf16_gradients", "--dataset", dataset, "--width", "0.25", "--blocks", "3",
             "--steps", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    head, *rows = json.loads(out.read_text())
    assert head["steps"] == 1 and head["blocks"] == 3 and head["init"] == "he_fan_out" and math.isfinite(head["loss"])
    assert [row["against_float32"] for row in rows] == ["bf16", "float32_input_noise", "float32_next_batch"]
    for row in rows:
        cos = row["cosine"]
        assert {"all", "stem.conv.kernel", "classifier.dense.kernel", "median_tensor"} <= cos.keys()
        assert all(-1.0001 <= v <= 1.0001 for v in cos.values())
    # the same batch in another dtype is closer to float32 than another batch (at 1 step too)
    assert rows[0]["cosine"]["all"] > rows[2]["cosine"]["all"]
    r = _run("experiments.check_bf16_gradients", "--init", "xavier")
    assert r.returncode != 0 and "--init must be one of" in r.stderr


def test_shape_reuse_check_counts_convolutions_and_follows_the_search_order(tmp_path, capsys):
    from experiments.check_shape_reuse import conv_shapes, main
    from search_space import zoo

    # MobileNetV2: stem, 2 convolutions in the unexpanded first block, 3 in each of the other 16, head
    assert len(conv_shapes(zoo.get("mobilenetv2", resolution=32))) == 1 + 2 + 3 * 16 + 1
    assert main(["--samples-per-size", "15", "--seeds", "1", "--out", str(tmp_path)]) == 0
    got = json.loads((tmp_path / "shape_reuse.json").read_text())["results"]
    rand, evo = got["random"][0], got["evolution"][0]
    # three rounds of batch 5: evolution's population of 10 is full after two, so its third round's
    # 15 children train one member each
    assert rand["members"] == 15 * (1 + 2 + 3) and evo["members"] == 10 * (1 + 2 + 3) + 15
    assert rand["distinct_shapes"][:30] == evo["distinct_shapes"][:30]  # the same random first round
    assert all(0 <= s <= 1 for s in rand["share_seen"]) and rand["share_seen"][0] == 0
    assert (tmp_path / "shape_reuse.png").stat().st_size > 10_000


@pytest.mark.slow
def test_layer_reuse_check_compiles_a_searchs_members_in_one_process_and_draws_them(tmp_path):
    # Two padded members of the random CIFAR-10 search's order (both 28 px): the second compiles
    # only the layers the first lacked.
    out = tmp_path / "padded.json"
    r = _run("experiments.check_layer_reuse", "--unit", "padded", "--members", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["member"] for row in rows] == [1, 2] and all(row["compile_s"] > 0 for row in rows)
    assert rows[0]["layers_compiled"] <= rows[0]["layers"] and 0 < rows[1]["layers_compiled"] < rows[1]["layers"]
    assert "members 1-2: compile " in r.stdout and r.stderr.count("[padded] member ") == 2
    png = tmp_path / "reuse.png"
    r = _run("experiments.check_layer_reuse", "--plot", str(out), str(out), "--out", str(png))
    assert r.returncode == 0 and png.stat().st_size > 10_000


def test_torch_mirror_zero_initializes_the_residual_blocks_the_jax_model_does():
    pytest.importorskip("torch")
    from experiments.bench_jax_vs_torch import member_spec, torch_model, zero_init_residual
    from search_space.models import init_model, residual_zero_paths

    spec = member_spec(32, 1.0)
    model, torch = torch_model(spec, 10)
    assert zero_init_residual(model) == len(residual_zero_paths(init_model(spec, 10))) == 10
    zeroed = [m.weight for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) and not m.weight.any()]
    assert len(zeroed) == 10
