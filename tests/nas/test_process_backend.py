"""The worker-process backend: the same members as in-process training, and a worker that dies has
its member retried, then recorded as failed, while the other members go on."""

import os
from pathlib import Path

import numpy as np
import pytest

from nas.evaluators import MemberJob, SequentialEvaluator
from nas.process_backend import ProcessEvaluator
from tests.nas.conftest import cache_dir_workers_see
from tests.trainer.test_train import _small_split, tiny_member
from trainer.config import TrainConfig
from trainer.train import MemberResult

CONFIG = TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1)


def _quick(spec, split, config, seed):
    """A stand-in member: its 'accuracy' is the seed, so results can be told apart."""
    if seed == 13:
        raise ValueError("injected error")
    return MemberResult("x", "ok", val_accuracy=float(seed), val_logits=np.full((len(split.y_val), 2), seed, np.float32))


def _dies_once(spec, split, config, seed):
    """Seed 1's worker dies the first time (a marker file remembers), then the member trains."""
    marker = Path(os.environ["NAS_TEST_MARKER_DIR"]) / f"died-{seed}"
    if seed == 1 and not marker.exists():
        marker.touch()
        os._exit(3)
    return _quick(spec, split, config, seed)


def _seed_2_always_dies(spec, split, config, seed):
    if seed == 2:
        os._exit(4)
    return _quick(spec, split, config, seed)


@pytest.mark.xdist_group("process_backend")
def test_workers_train_the_same_members_as_in_process(fashion, capfd):  # noqa: F811
    split = _small_split(fashion, 128)
    config = CONFIG.replace(epochs=2)
    jobs = [MemberJob("a", tiny_member(), 0, label="tiny seed 0"), MemberJob("b", tiny_member(), 1)]
    seq = {job.key: r for job, r in SequentialEvaluator().evaluate_many(jobs, split, config)}
    ev = ProcessEvaluator(workers=2, progress_every_s=0.0)
    try:
        out = {job.key: r for job, r in ev.evaluate_many(jobs, split, config)}
    finally:
        ev.close()
    err = capfd.readouterr().err  # the workers' progress lines reach the driver's stderr
    assert ".. tiny seed 0: epoch 1/2, loss " in err and ".. member b seed 1: epoch 1/2, loss " in err
    assert sorted(out) == ["a", "b"]
    for k in seq:
        assert seq[k].ok and out[k].ok
        np.testing.assert_array_equal(seq[k].val_logits, out[k].val_logits)
        assert seq[k].loss_curve == out[k].loss_curve


@pytest.mark.xdist_group("process_backend")
def test_a_dead_worker_is_replaced_and_its_member_retried_or_failed(fashion, tmp_path):  # noqa: F811
    split = _small_split(fashion, 64)
    jobs = [MemberJob(str(s), tiny_member(), s) for s in (0, 1, 2, 13, 4)]
    ev = ProcessEvaluator(workers=2, max_retries=1, env={"NAS_TEST_MARKER_DIR": str(tmp_path)}, train_fn=_dies_once)
    try:
        out = {job.key: r for job, r in ev.evaluate_many(jobs, split, CONFIG)}
        assert (tmp_path / "died-1").exists()  # seed 1's first worker did die
        assert [out[k].val_accuracy for k in ("0", "1", "2", "4")] == [0.0, 1.0, 2.0, 4.0]
        assert out["13"].status == "failed" and out["13"].reason == "error: ValueError: injected error"
        # the same evaluator (its replaced workers) serves the next batch
        again = dict(ev.evaluate_many([MemberJob("5", tiny_member(), 5)], split, CONFIG))
        assert list(again.values())[0].val_accuracy == 5.0
    finally:
        ev.close()
    ev = ProcessEvaluator(workers=2, max_retries=1, train_fn=_seed_2_always_dies)
    try:
        out = {job.key: r for job, r in ev.evaluate_many(jobs[:3], split, CONFIG)}
    finally:
        ev.close()
    assert out["0"].ok and out["1"].ok
    assert out["2"].status == "failed" and "worker process died (exit code 4) on 2 attempts" in out["2"].reason


@pytest.mark.xdist_group("process_backend")
def test_jobs_are_drawn_as_workers_come_free_so_a_generator_stops_new_starts(fashion):  # noqa: F811
    split = _small_split(fashion, 64)
    out: dict = {}
    finished_when_drawn: list[int] = []

    def jobs():  # four members, then none: a time limit's gate
        for s in range(4):
            finished_when_drawn.append(len(out))
            yield MemberJob(str(s), tiny_member(), s)

    ev = ProcessEvaluator(workers=2, train_fn=_quick)
    try:
        for job, r in ev.evaluate_many(jobs(), split, CONFIG):
            out[job.key] = r
    finally:
        ev.close()
    assert sorted(out) == ["0", "1", "2", "3"]
    # two start at once; each later one only once a worker is free, so members 0..i-2 had finished
    assert finished_when_drawn[:2] == [0, 0]
    assert all(n >= i - 1 for i, n in enumerate(finished_when_drawn)), finished_when_drawn


def _sleeps(spec, split, config, seed):
    import time

    time.sleep(600)


DRIVER = """
import os, sys
from nas.evaluators import MemberJob
from nas.process_backend import ProcessEvaluator
from tests.nas.conftest import cache_dir_workers_see
from tests.nas.test_process_backend import _sleeps
from tests.trainer.test_train import tiny_member
from trainer.data import Split
import numpy as np

if __name__ == "__main__":
    split = Split("t", np.zeros((4, 8, 8, 1), np.uint8), np.zeros(4, np.int64), np.zeros((2, 8, 8, 1), np.uint8),
                  np.zeros(2, np.int64), ("a", "b"))
    ev = ProcessEvaluator(workers=1, train_fn=_sleeps)
    it = ev.evaluate_many([MemberJob("a", tiny_member(), 0)], split, None)
    import threading
    import time

    def report():  # the worker's pid and the split copies' folder, once the worker exists, after the delay
        while not ev._pool:
            time.sleep(0.01)
        time.sleep(float(sys.argv[1]))
        print(ev._pool[0].proc.pid, ev._tmp.name, flush=True)

    threading.Thread(target=report, daemon=True).start()
    next(it)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and has not exited: an orphan that exited stays a zombie until whoever
    adopted it reaps it, and a container's init may never do so."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: signal 0 tells existence only
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_for_sigterm_handler(pid: int, timeout_s: float = 120.0) -> None:
    """Wait until process ``pid`` catches SIGTERM (bit 15 of its /proc SigCgt mask)."""
    import time

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            pytest.skip("no /proc to tell when the worker's handler is installed")
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught >> (15 - 1) & 1:
            return
        time.sleep(0.2)
    pytest.fail(f"the worker installed no SIGTERM handler in {timeout_s:.0f} s")


@pytest.mark.xdist_group("process_backend")
@pytest.mark.parametrize("delay,group", [(0.0, False), (3.0, False), (3.0, True)],
                         ids=["while-starting", "while-training", "group-sigterm"])
def test_workers_exit_when_their_driver_is_killed(tmp_path, delay, group):
    """The driver killed alone (SIGKILL), or with its workers by a SIGTERM to the process group, as
    `timeout` sends it: the workers end, and the driver's split copies do not stay behind."""
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    driver = subprocess.Popen([sys.executable, str(script), str(delay)], cwd=root, env=env, stdout=subprocess.PIPE,
                              text=True, start_new_session=group)
    try:
        # 0 s: the worker is still importing JAX (a killed driver leaves it to another parent before
        # its own code runs); 3 s: usually up and training (sleeping)
        import select

        assert select.select([driver.stdout], [], [], 120)[0], "the driver printed no worker pid in 120 s"
        pid, scratch = driver.stdout.readline().split()
        worker = int(pid)
        assert any(Path(scratch).glob("split-*/x_train.npy"))
        os.kill(worker, 0)
        if group:  # once the worker runs its own code (until then it is importing, and dies as any process)
            _wait_for_sigterm_handler(worker)
            os.killpg(driver.pid, signal.SIGTERM)
        else:
            driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.time() + 30
        while time.time() < deadline:
            if not _running(worker):
                break
            time.sleep(0.2)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail("the worker outlived its killed driver by 30 s")
        assert not Path(scratch).exists(), "the killed driver's split copies were left behind"
    finally:
        driver.kill()


@pytest.mark.xdist_group("process_backend")
def test_a_worker_catches_sigterm_before_it_imports_jax(tmp_path):
    """A spawned worker imports its target's module first; that module (nas/process_worker.py) holds
    only the standard library, so the SIGTERM handler is in place before JAX loads (3.3 s on the
    2-core CPU, during which a group SIGTERM used to leave the split copy behind)."""
    import multiprocessing
    import subprocess
    import sys
    import time

    from nas import process_backend

    assert process_backend.worker_main.__module__ == "nas.process_worker"
    probe = "import sys, nas.process_worker; print(sorted({'jax', 'numpy', 'trainer.train'} & set(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr
    start = time.perf_counter()
    worker = process_backend._Worker(multiprocessing.get_context("spawn"), {}, None, str(tmp_path))
    try:
        _wait_for_sigterm_handler(worker.proc.pid, timeout_s=20)
        assert time.perf_counter() - start < 2.0  # 0.1 s on the 2-core CPU; 3.3 s when it came after JAX
    finally:
        worker.stop()


def test_workers_use_the_compilation_cache_the_driver_turns_on_after_building_the_evaluator(
        fashion, tmp_path, monkeypatch):  # noqa: F811
    seen = cache_dir_workers_see(lambda fn: ProcessEvaluator(workers=1, train_fn=fn), _small_split(fashion, 64),
                                 tmp_path / "run_cache", monkeypatch)
    assert seen == str(tmp_path / "run_cache")
