"""The GPU benchmark scripts stay runnable between GPU sessions: a miniature compile-options run on
the CPU, and their bad-input errors."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, shared_file


@pytest.fixture(scope="module")
def dataset():
    if os.path.isdir("/usr/share/datasets/fashion-mnist"):
        return "fashion_mnist"
    return f"idx:{shared_file('fashion_mnist_manual')}"


def _run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_compile_options_benchmark_runs_each_variant_in_its_own_process(tmp_path, dataset):
    out = tmp_path / "co.json"
    r = _run("experiments.bench_compile_options", "--dataset", dataset, "--members", "1", "--train-examples",
             "300", "--val-size", "100", "--width", "0.25", "--head", "64", "--variants", "autotune0-matmul,f32",
             "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [row["variant"] for row in rows] == ["autotune0-matmul", "f32"]
    assert rows[0]["xla"] == "--xla_gpu_autotune_level=0" and rows[1]["dtype"] == "float32"
    # the variant's environment reaches its process only: f32's 300-image run keeps XLA convolutions
    assert rows[0]["lowering"] == "conv=matmul,depthwise=shift" and rows[1]["lowering"] == "conv=conv,depthwise=shift"
    for row in rows:
        assert row["compile_s_mean"] > 0 and row["images_per_s_mean"] > 0 and 0 <= row["mean_val_accuracy"] <= 1
        assert row["proxy_evals_per_hour"] == pytest.approx(3600 / row["proxy_member_s"])
    lines = r.stdout.strip().splitlines()
    assert [line.split(":")[0].strip() for line in lines] == ["autotune0-matmul", "f32"]
    assert all("10-epoch proxy member" in line and "x autotune0-matmul)" in line for line in lines)


def test_benchmarks_reject_unknown_variants():
    r = _run("experiments.bench_compile_options", "--variants", "default,nope")
    assert r.returncode != 0 and "unknown variant(s) nope" in r.stderr
    r = _run("experiments.bench_throughput", "--optimized-variant", "nope")
    assert r.returncode != 0 and "unknown variant 'nope'" in r.stderr
