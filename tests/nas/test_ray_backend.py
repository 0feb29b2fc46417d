"""The Ray backend on a local Ray instance (CPU): the same members and records as the in-process
backends, a dead worker's member retried or recorded as failed, and a killed search resumed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nas.evaluators import MemberJob, SequentialEvaluator
from tests.nas.test_evaluators import CONFIG
from tests.trainer.test_train import _small_split, fashion, tiny_member  # noqa: F401 - fixture
from tests.conftest import ROOT

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_evaluator():
    from nas.ray_backend import RayEvaluator

    ev = RayEvaluator(num_cpus=2)
    yield ev
    ev.close()


def test_ray_members_equal_the_in_process_ones(ray_evaluator, fashion):  # noqa: F811
    split = _small_split(fashion)
    jobs = [MemberJob("a", tiny_member(res_index=0), 0), MemberJob("b", tiny_member(res_index=1), 1)]
    remote = {job.key: r for job, r in ray_evaluator.evaluate_many(jobs, split, CONFIG)}
    local = {job.key: r for job, r in SequentialEvaluator().evaluate_many(jobs, split, CONFIG)}
    for k in ("a", "b"):
        assert remote[k].ok
        np.testing.assert_array_equal(remote[k].val_logits, local[k].val_logits)


def _dies_once(spec, split, config, seed):
    """Kills its worker process on the first attempt of each seed, then trains normally."""
    marker = os.path.join(os.environ["NAS_TEST_MARKERS"], f"seed{seed}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    from trainer.train import train_member

    return train_member(spec, split, config, seed)


def _always_dies(spec, split, config, seed):
    os._exit(1)


def test_a_dead_worker_is_retried_then_recorded_as_failed(fashion, tmp_path):  # noqa: F811
    from nas.ray_backend import RayEvaluator

    split = _small_split(fashion)
    job = [MemberJob("a", tiny_member(), 0)]
    ev = RayEvaluator(num_cpus=2, train_fn=_dies_once, max_retries=1,
                      runtime_env={"env_vars": {"NAS_TEST_MARKERS": str(tmp_path)}})
    (_, r), = list(ev.evaluate_many(job, split, CONFIG))
    assert r.ok and (tmp_path / "seed0").exists()  # the first worker died; the retry trained it
    ev2 = RayEvaluator(train_fn=_always_dies, max_retries=1)
    (_, r), = list(ev2.evaluate_many(job, split, CONFIG))
    assert r.status == "failed" and r.reason.startswith("error: ") and "Worker" in r.reason, r.reason
    ev.close()


def _records(run):
    key = lambda r: (r["size"], r["sample"])  # noqa: E731
    return sorted((json.loads(l) for l in (run / "records.jsonl").read_text().splitlines()), key=key)


def test_a_search_killed_under_ray_resumes_with_the_in_process_records(config_file, resumed_run, tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    run = tmp_path / "ray_run"
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", "--config", str(config_file), "--run-dir",
                             str(run), "--backend", "ray"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    records = run / "records.jsonl"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if records.is_file() and records.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_killed = records.read_text().count("\n")
    assert 1 <= n_killed < 4, proc.stdout.read().decode()[-3000:]
    out = subprocess.run([sys.executable, "-m", "nas", "search", "--run-dir", str(run), "--resume", "--backend", "ray"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    local, _, _ = resumed_run  # the same search run in process (itself killed and resumed)
    a, b = _records(run), _records(local)
    assert [(r["size"], r["sample"]) for r in a] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    for field in ("decisions", "ensemble_id", "accuracy", "nll", "reward", "latency_max_ms"):
        assert [r[field] for r in a] == [r[field] for r in b], field
    assert [[m["val_accuracy"] for m in r["members"]] for r in a] == \
        [[m["val_accuracy"] for m in r["members"]] for r in b]
