"""The Ray backend on a local Ray instance (CPU): a dead worker's member retried or recorded as
failed, and a search killed under Ray resumed to the same records as the in-process backend."""

import json
import os
import subprocess
import sys

import pytest

from nas.evaluators import MemberJob
from search_space.errors import UserError
from tests.nas.test_evaluators import CONFIG
from tests.trainer.test_train import _small_split, tiny_member
from tests.conftest import ROOT
from tests.nas.conftest import cache_dir_workers_see, search_killed_after

ray = pytest.importorskip("ray")
# One worker runs these one after another: two local Ray instances starting side by side on the 2-core
# machine, beside the rest of the suite, made the dead-worker test take 374 s instead of 23 s.
# Slow tier (python -m pytest -m slow): Ray is an optional backend, and starting it costs the most.
pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]


def _dies_once(spec, split, config, seed):
    """Kills its worker process on the first attempt of each seed, then trains normally."""
    marker = os.path.join(os.environ["NAS_TEST_MARKERS"], f"seed{seed}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    from trainer.train import MemberResult

    return MemberResult("retried", "ok", val_accuracy=0.5)


def _always_dies(spec, split, config, seed):
    os._exit(1)


def test_a_dead_worker_is_retried_then_recorded_as_failed(fashion, tmp_path):  # noqa: F811
    from nas.ray_backend import RayEvaluator

    split = _small_split(fashion, 64)
    job = [MemberJob("a", tiny_member(), 0)]
    ev = RayEvaluator(num_cpus=2, train_fn=_dies_once, max_retries=1,
                      runtime_env={"env_vars": {"NAS_TEST_MARKERS": str(tmp_path)}})
    (_, r), = list(ev.evaluate_many(job, split, CONFIG))
    assert r.ok and r.spec_id == "retried" and (tmp_path / "seed0").exists()  # the first worker died
    ev2 = RayEvaluator(train_fn=_always_dies, max_retries=1)
    (_, r), = list(ev2.evaluate_many(job, split, CONFIG))
    assert r.status == "failed" and r.reason.startswith("error: ") and "Worker" in r.reason, r.reason
    with pytest.raises(UserError, match="the Ray cluster has no GPUs"):
        RayEvaluator(gpus_per_member=0.5)  # would otherwise wait forever for a GPU
    ev.close()


def test_tasks_use_the_compilation_cache_the_driver_turns_on_after_building_the_evaluator(
        fashion, tmp_path, monkeypatch):  # noqa: F811
    from nas.ray_backend import RayEvaluator

    seen = cache_dir_workers_see(lambda fn: RayEvaluator(num_cpus=2, train_fn=fn), _small_split(fashion, 64),
                                 tmp_path / "run_cache", monkeypatch)
    assert seen == str(tmp_path / "run_cache")


RAY_SEARCH = """
from nas.config import RewardConfig, SearchConfig, SpaceConfig
from trainer.config import TrainConfig


def get_config():
    return SearchConfig(dataset={dataset!r}, val_size=200, train_examples=300, sizes=(1,), samples_per_size=2,
                        batch=1, seed=3, space=SpaceConfig(width_multiplier=0.25, head_filters=128),
                        reward=RewardConfig(target_ms=3.0),
                        trainer=TrainConfig(epochs=1, batch_size=50, learning_rate=0.1, warmup_epochs=0.1))
"""


def _records(run):
    return [json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()]


def test_a_search_killed_under_ray_resumes_with_the_in_process_records(dataset, tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    config = tmp_path / "ray_search.py"
    config.write_text(RAY_SEARCH.format(dataset=dataset))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = tmp_path / "ray_run"
    assert search_killed_after(run, 1, "--config", str(config), "--backend", "ray") == 1
    out = subprocess.run([sys.executable, "-m", "nas", "search", "--run-dir", str(run), "--resume", "--backend", "ray"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    local = tmp_path / "local_run"  # the same search in process, uninterrupted
    out = subprocess.run([sys.executable, "-m", "nas", "search", "--config", str(config), "--run-dir", str(local),
                          "--backend", "sequential"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    a, b = _records(run), _records(local)
    assert [(r["size"], r["sample"]) for r in a] == [(1, 0), (1, 1)]
    assert all(r["status"] == "ok" for r in a)
    for field in ("decisions", "ensemble_id", "accuracy", "nll", "reward", "latency_max_ms"):
        assert [r[field] for r in a] == [r[field] for r in b], field
    assert [[m["val_accuracy"] for m in r["members"]] for r in a] == \
        [[m["val_accuracy"] for m in r["members"]] for r in b]
