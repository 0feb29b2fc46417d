"""The small real search that several test modules check: run through the CLI on Fashion-MNIST,
killed with SIGKILL half-way through training its members, and resumed (computed once per session)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, nas_here

CONFIG = """
from nas.config import RewardConfig, SearchConfig, SpaceConfig
from trainer.config import TrainConfig


def get_config():
    return SearchConfig(dataset={dataset!r}, val_size=200, train_examples=500, sizes=(1, 2), samples_per_size=2,
                        batch=2, seed=0, space=SpaceConfig(width_multiplier=0.25, head_filters=128),
                        reward=RewardConfig(target_ms=3.0),
                        trainer=TrainConfig(epochs=1, batch_size=50, learning_rate=0.1, warmup_epochs=0.1))
"""


@pytest.fixture(scope="session")
def config_file(tmp_path_factory, dataset):
    path = tmp_path_factory.mktemp("cfg") / "tiny.py"
    path.write_text(CONFIG.format(dataset=dataset))
    return path


def search_stopped_after(run, records_wanted, *extra, members_wanted=0, sig=signal.SIGKILL):
    """Start ``nas search ... --run-dir run *extra``, send it ``sig`` once ``records_wanted`` records
    are written and ``members_wanted`` members cached, and wait for it to exit: (records written,
    exit code, seconds from the signal to the exit, its output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # SIGINT as a terminal's Ctrl-C sends it: Python turns it into KeyboardInterrupt unless the
    # process started with it ignored, as a shell's background jobs do
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", "--run-dir", str(run), *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    records = run / "records.jsonl"

    def n_records():
        return records.read_text().count("\n") if records.is_file() else 0

    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        if n_records() >= records_wanted and len(list((run / "members").glob("*.npz"))) >= members_wanted:
            break
        time.sleep(0.2)
    proc.send_signal(sig)
    sent = time.time()
    out = proc.communicate(timeout=300)[0].decode()
    n_stopped = n_records()
    assert n_stopped >= records_wanted, out[-3000:]
    return n_stopped, proc.returncode, time.time() - sent, out


def search_killed_after(run, records_wanted, *extra, members_wanted=0):
    """``search_stopped_after`` with SIGKILL: how many records were written."""
    return search_stopped_after(run, records_wanted, *extra, members_wanted=members_wanted)[0]


@pytest.fixture(scope="session")
def interrupted_run(tmp_path_factory, config_file):
    """A search stopped with Ctrl-C (SIGINT) once one of its members is trained: (run, exit code,
    seconds from the signal to the exit, output)."""
    run = tmp_path_factory.mktemp("runs") / "run"
    _, code, seconds, out = search_stopped_after(run, 0, "--config", str(config_file), members_wanted=1,
                                                 sig=signal.SIGINT)
    return run, code, seconds, out


@pytest.fixture(scope="session")
def resumed_run(interrupted_run):
    """The search ``interrupted_run`` stopped, resumed and killed with kill -9 once three of its
    round's six members are trained (the round's records are written only after all six), resumed
    to the end."""
    run = interrupted_run[0]
    n_killed = search_killed_after(run, 0, "--resume", members_wanted=3)
    assert n_killed < 4
    out = nas_here("search", "--run-dir", str(run), "--resume")
    return run, n_killed, out


def _cache_dir_seen(spec, split, config, seed):
    """A stand-in member whose result reports (as its reason) its worker's persistent compilation cache."""
    from trainer.train import MemberResult

    return MemberResult("x", "ok", reason=os.environ.get("JAX_COMPILATION_CACHE_DIR", "none"))


def cache_dir_workers_see(build, split, folder, monkeypatch) -> str:
    """What a worker of the evaluator ``build(train_fn)`` makes sees as its compilation cache when the
    driver turns ``folder`` on only after building the evaluator, as `nas search` does
    (nas.search.enable_compilation_cache)."""
    import jax

    from nas.evaluators import MemberJob
    from tests.nas.test_evaluators import CONFIG as TRAIN
    from tests.trainer.test_train import tiny_member

    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR")  # the test session's, which workers would inherit
    before = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        ev = build(_cache_dir_seen)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        try:
            (_, r), = list(ev.evaluate_many([MemberJob("0", tiny_member(), 0)], split, TRAIN))
        finally:
            ev.close()
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
    return r.reason
