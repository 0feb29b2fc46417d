"""`nas retrain --workers N`: distinct members retrained side by side in N spawned processes.

A searched member is small: on a GPU it runs at about 1% of the chip's bf16 peak (PERF_NOTES.md),
so several retrainings share one GPU, as the search's members do (nas/process_backend.py, which says
why processes rather than threads: XLA serializes GPU autotuning within a process); on a CPU one
member's compile (single-threaded) overlaps another's training. Each worker maps the retraining
data once (.npy files memory-mapped, as the search's workers map their split) and retrains one
member at a time with ``trainer.retrain.retrain``, so a member's result is the one an in-process
retraining gives: a pure function of (spec, data, recipe, seed), checkpointed in its own folder.

A worker that dies ends the command with one error line; the ensembles finished before it are in
``retrain.jsonl``, and a rerun resumes the others' members from their checkpoints.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from nas.evaluators import compilation_cache_env
from nas.process_backend import write_arrays
from nas.process_worker import exit_with_parent, read_arrays, use_driver_env
from search_space.spec import ArchSpec
from trainer.config import TrainConfig
from trainer.data import Dataset
from trainer.retrain import RetrainResult

DATASET_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def read_dataset(folder: Path) -> Dataset:
    """The Dataset ``write_arrays`` wrote, its arrays memory-mapped."""
    meta, arrays = read_arrays(folder, DATASET_ARRAYS)
    return Dataset(meta["name"], class_names=tuple(meta["class_names"]), **arrays)


_DATA: Dataset | None = None  # a worker's retraining data, read once by _start_worker


def _start_worker(folder: str, env: dict[str, str], driver_pid: int, scratch: str) -> None:
    global _DATA
    exit_with_parent(driver_pid, scratch)  # a killed command leaves nothing holding the GPU
    use_driver_env(env)
    _DATA = read_dataset(Path(folder))


def _retrain_one(spec: ArchSpec, config: TrainConfig, seed: int, checkpoint_dir: str, every: int,
                 label: str, deadline: float | None, must_start: bool) -> RetrainResult | None:
    """The member's retraining; None where ``deadline`` (a ``time.time()``) stopped it, or had
    passed before it started (unless ``must_start``: the command's first members)."""
    from trainer.retrain import retrain

    assert _DATA is not None
    if deadline is not None and not must_start and time.time() > deadline:
        return None

    def progress(epoch: int, epochs: int, loss: float) -> None:
        print(f"  {label} epoch {epoch}/{epochs} loss {loss:.4f}", file=sys.stderr, flush=True)

    return retrain(spec, _DATA, config, seed, checkpoint_dir, every=every, progress=progress, deadline=deadline)


class RetrainWorkers:
    """``workers`` spawned processes that retrain members on ``dataset``; ``submit`` returns a Future
    of the member's RetrainResult. A context manager: leaving it stops the workers and removes the
    data's copy."""

    def __init__(self, dataset: Dataset, workers: int):
        # neither the driver nor any of the workers sharing one GPU may take JAX's default 75% of it
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self._tmp = tempfile.TemporaryDirectory(prefix="nas-retrain-")
        folder = Path(self._tmp.name) / "data"
        write_arrays(dataset, DATASET_ARRAYS, folder)
        env = {**compilation_cache_env(), "XLA_PYTHON_CLIENT_PREALLOCATE": os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"]}
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_start_worker,
                                         initargs=(str(folder), env, os.getpid(), self._tmp.name))

    def submit(self, spec: ArchSpec, config: TrainConfig, seed: int, checkpoint_dir: Path, every: int,
               label: str, deadline: float | None = None, must_start: bool = True) -> Future[RetrainResult | None]:
        """The member's retraining in a worker (``_retrain_one``: ``deadline`` and ``must_start``)."""
        return self._pool.submit(_retrain_one, spec, config, seed, str(checkpoint_dir), every, label, deadline,
                                 must_start)

    def __enter__(self) -> "RetrainWorkers":
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is not None:  # interrupted, or a worker died: stop the members in flight now
            for p in list(self._pool._processes.values()):  # no public way before Python 3.14
                p.kill()
        self._pool.shutdown(wait=exc_type is None, cancel_futures=True)
        self._tmp.cleanup()
