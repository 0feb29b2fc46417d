"""experiments/ship_programs.py: stacked frames compiled ahead into a program store, loaded by a run
built the same way. Shipping for a described GPU needs JAX's CUDA plugin (not a test dependency):
that test runs where it is installed; the CPU's own store (``--target local``) is tested everywhere."""

import json

import numpy as np
import pytest

from experiments.check_gpu_plan import cuda_plugin
from tests.conftest import run_module, script_here

TINY = ["--resolutions", "16", "--slots", "2", "--blocks", "2", "--width", "0.25", "--head", "64",
        "--train-examples", "512", "--val-size", "256", "--epochs", "1"]


@pytest.mark.parametrize("args, message", [
    (["--variant", "nope"], "unknown variant 'nope'"),
    (["--variant", "autotune0-matmul"], "does not train stacked members"),
    (["--slots", "0"], "--slots must be at least 1"),
    (["--target", "a100"], "no GPU target 'a100'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    r = script_here("experiments.ship_programs", "--out", str(tmp_path / "store"), *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
def test_frames_shipped_for_this_machine_load_in_a_run_built_the_same_way(tmp_path, monkeypatch):
    from experiments import ship_programs
    from experiments.bench_compile_options import variant_env

    store = tmp_path / "store"
    r = run_module("experiments.ship_programs", "--out", str(store), "--target", "local", *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((store / "ship.json").read_text())["rows"]
    assert [(row["resolution"], row["slots"]) for row in rows] == [(16, 2)]
    assert rows[0]["epoch_compile_s"] > 0 and rows[0]["epoch_bytes"] > 0 and rows[0]["eval_bytes"] > 0
    assert len(list(store.glob("*.xla"))) == 2
    # the run: the variant's lowering, the store named, the frame built as the benchmark builds it
    env = variant_env("autotune0-matmul-stacked", {})
    for var in ("NAS_CONV", "NAS_DEPTHWISE"):
        monkeypatch.setenv(var, env[var])
    monkeypatch.setenv("NAS_PROGRAM_STORE", str(store))
    [(res, trainer, keys)] = ship_programs.frame_trainers(ship_programs.parser().parse_args(["--out", "x", *TINY]))
    trainer.compile()
    assert trainer.programs_loaded and trainer.trace_s == 0
    losses = trainer.run_epoch(0)
    assert losses.shape == (2, trainer.steps_per_epoch) and np.isfinite(losses).all()
    assert trainer.view_logits(trainer.split.x_val).shape[:1] == (1,)  # one member in the stack's 2 slots


@pytest.mark.slow
@pytest.mark.skipif(cuda_plugin() is None,
                    reason="JAX's CUDA plugin is not installed (the deviceless compile needs it)")
def test_a_frame_is_shipped_for_an_h100(tmp_path):
    store = tmp_path / "store"
    r = run_module("experiments.ship_programs", "--out", str(store), *TINY)
    assert r.returncode == 0, r.stderr[-3000:]
    [row] = json.loads((store / "ship.json").read_text())["rows"]
    assert row["epoch_bytes"] > 0 and row["eval_bytes"] > 0
    notes = [json.loads(p.read_text()) for p in store.glob("*.json") if p.name != "ship.json"]
    assert sorted(n["name"] for n in notes) == ["epoch", "eval"]
    assert all(n["device_kind"] == "NVIDIA H100 80GB HBM3" and n["program_key"].endswith("'gpu')") for n in notes)
