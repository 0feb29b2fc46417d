"""experiments/check_gpu_plan.py: a GPU's plan for the search's programs, compiled without a GPU.
The compile itself needs JAX's CUDA plugin (3 GB, not a test dependency): that test runs where the
plugin is installed and skips elsewhere; the rest runs everywhere."""

import json

import pytest

from experiments import check_gpu_plan as plan
from experiments.check_gpu_plan import cuda_plugin
from tests.conftest import run_module


def test_the_h100_target_names_its_memory():
    text = plan.target_text("h100")
    assert plan.target_memory_bytes(text) == 84_929_347_584  # 79.1 GiB: an H100 80GB
    assert 'device_description_str: "NVIDIA H100 80GB HBM3"' in text


def test_an_unknown_target_is_named_with_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match=r"no GPU target 'a100' \(known: h100"):
        plan.target_text("a100")
    bad = tmp_path / "bad.pbtxt"
    bad.write_text("gpu_device_info { core_count: 1 }\n")
    with pytest.raises(ValueError, match="names no device_memory_size"):
        plan.target_memory_bytes(plan.target_text(str(bad)))


def test_kernels_are_the_fusions_and_library_calls():
    hlo = """
ENTRY %main {
  %p = bf16[8,8]{1,0} parameter(0)
  %f = bf16[8,8]{1,0} fusion(%p), kind=kLoop, calls=%fused
  %c = (bf16[8,8]{1,0}, s8[0]{0}) custom-call(%f, %p), custom_call_target="__cublas$gemm"
  %g = bf16[8,8]{1,0} get-tuple-element(%c), index=0
  ROOT %w = bf16[8,8]{1,0} fusion(%g), kind=kInput, calls=%wrapped
}"""
    assert plan.count_kernels(hlo) == 3


@pytest.mark.parametrize("args, message", [
    (["--target", "a100"], "no GPU target 'a100'"),
    (["--slots", "0"], "expected positive integers"),
    (["--resolutions", "16,x"], "expected comma-separated integers"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    r = run_module("experiments.check_gpu_plan", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_without_the_cuda_plugin_it_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(plan, "cuda_plugin_missing", lambda: "needs JAX's CUDA plugin: pip install x")
    with pytest.raises(SystemExit) as e:
        plan.main([])
    assert e.value.code == 2
    assert capsys.readouterr().err == "check_gpu_plan: needs JAX's CUDA plugin: pip install x\n"


def test_the_plugin_check_names_the_matching_version():
    why = plan.cuda_plugin_missing()
    if why is not None:  # absent here: the remedy pins the installed jaxlib's version
        import jaxlib

        assert f"jax-cuda12-plugin[with-cuda]=={jaxlib.__version__}" in why


@pytest.mark.slow
@pytest.mark.skipif(cuda_plugin() is None,
                    reason="JAX's CUDA plugin is not installed (the deviceless compile needs it)")
def test_a_member_and_its_frame_are_planned_for_an_h100(tmp_path):
    out = tmp_path / "plan.json"
    r = run_module("experiments.check_gpu_plan", "--resolutions", "16", "--slots", "1,2", "--blocks", "2",
                   "--width", "0.25", "--head", "64", "--train-examples", "2000", "--val-size", "500",
                   "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(row["program"], row["slots"]) for row in rows] == [("member", 1), ("frame", 1), ("frame", 2)]
    member, one, two = rows
    assert all(row["fits"] and row["kernels"] > 0 and row["resolution"] == 16 for row in rows)
    # the frame (every operation at every position, envelope widths) plans more than the member,
    # and two slots more than one
    assert 0 < member["total_gib"] < one["total_gib"] < two["total_gib"]
    assert one["kernels"] > member["kernels"]
