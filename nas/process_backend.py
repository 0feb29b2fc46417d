"""Members in worker processes on this machine (``--backend processes``): the fast path on one GPU.

Why processes and not threads: inside one process XLA serializes GPU autotuning behind a
per-device lock, and a running program takes the same lock for reading (XLA's ``GetGpuMutex``), so
a compile thread that autotunes a new member stalls the members training beside it, and two
compiles autotune one after the other. Autotuning is most of a new member's compile on a GPU
(45-55 s cold, 3.9 s with autotuning off: ``PERF_NOTES.md``). Separate processes hold separate
locks, so ``workers`` members compile, autotune and train at once on the one GPU, and small members
that leave the GPU mostly idle share it. The workers share the driver's persistent compilation
cache and, on GPUs, XLA's per-fusion autotuning cache, so a layer shape autotuned for one member is
not autotuned again for the next.

What it buys is bounded by autotuning itself, which times kernels on the shared GPU: on an H200,
eight workers compiling at once took 150-196 s per member against 45-55 s for one alone (H100,
``PERF_NOTES.md``), hence a default of 4 workers (``experiments/bench_compile_options.py``
measures the other lever, compiling less).

Each worker is a spawned process that maps the split once (the driver writes its arrays as .npy
files per split; workers open them memory-mapped, so N workers share one copy in host memory) and
then trains one member at a time: ``train_member(spec, split, config, seed)``, so
results are the same as in-process ones. A worker that dies (killed, out of host memory, a crash in
native code) is replaced; its member is retried ``max_retries`` times and then recorded as failed,
and the other members go on. The worker's own side (its loop, and its clean-up when the driver
dies) is nas/process_worker.py.
"""

from __future__ import annotations

import collections
import itertools
import multiprocessing
import multiprocessing.connection
import os
import json
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from nas.evaluators import MemberJob, compilation_cache_env
from nas.process_worker import SPLIT_ARRAYS, TrainFn, worker_main
from search_space.spec import spec_id
from trainer.config import TrainConfig
from trainer.data import Split
from trainer.train import MemberResult


def write_arrays(data: Any, names: tuple[str, ...], folder: Path) -> None:
    """``data``'s arrays ``names`` as .npy files plus its name and class names (a Split, a Dataset),
    written under a temporary name and renamed, so a folder that exists is complete; workers read
    them back memory-mapped (nas.process_worker.read_arrays)."""
    import numpy as np

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in names:
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(data, name)))
    (tmp / "meta.json").write_text(json.dumps({"name": data.name, "class_names": list(data.class_names)}))
    tmp.replace(folder)


def write_split(split: Split, folder: Path) -> None:
    """The split's arrays for ``nas.process_worker.read_split``."""
    write_arrays(split, SPLIT_ARRAYS, folder)


class _Worker:
    def __init__(self, ctx: Any, env: dict[str, str], train_fn: TrainFn | None, scratch: str):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child, env, train_fn, os.getpid(), scratch), daemon=True,
                                name="nas-member-worker")
        self.proc.start()
        child.close()
        self.job: MemberJob | None = None
        self.attempt = 0

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class ProcessEvaluator:
    """``workers`` spawned processes, each compiling and training one member at a time."""

    name = "processes"

    def __init__(self, workers: int = 4, max_retries: int = 1, env: dict[str, str] | None = None,
                 train_fn: TrainFn | None = None, progress_every_s: float | None = None):
        """``env`` adds to the workers' environment; ``train_fn`` (a module-level function, for tests)
        replaces ``trainer.train.train_member``; ``progress_every_s``: nas.evaluators.epoch_progress."""
        if workers < 1:
            raise ValueError("workers must be positive")
        # Spawned workers inherit the driver's environment. Neither the driver, which trains
        # nothing, nor any of the N workers sharing one GPU may take JAX's default 75% of it.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self.workers, self.max_retries, self._train_fn = workers, max_retries, train_fn
        self.progress_every_s = progress_every_s
        self._env = dict(env or {})  # on top of the inherited environment and the compilation cache's
        self._ctx = multiprocessing.get_context("spawn")  # fork would copy the driver's XLA state
        self._pool: list[_Worker] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="nas-split-")
        self._split_paths: dict[int, tuple[Split, str]] = {}

    def _worker_env(self) -> dict[str, str]:
        """A new worker's environment: the driver's persistent compilation cache as it is now (a
        search turns the run's on after its evaluator was built: read at construction, the workers
        of `nas search --backend processes` had none), then ``env``."""
        return {**compilation_cache_env(), **self._env}

    def _split_path(self, split: Split) -> str:
        hit = self._split_paths.get(id(split))
        if hit is not None and hit[0] is split:
            return hit[1]
        path = Path(self._tmp.name) / f"split-{split.fingerprint[:16]}"
        if not path.is_dir():
            write_split(split, path)
        self._split_paths = {id(split): (split, str(path))}  # holding the split keeps its id unique
        return str(path)

    def evaluate_many(self, jobs: Iterable[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        """Yield (job, result) as members finish. ``jobs`` is drawn from only as workers come free
        (workers are started as the first jobs arrive, up to ``workers``), so a generator may stop
        handing out members, e.g. at a time limit, and the ones in flight still finish."""
        fresh = iter(jobs)
        first = next(fresh, None)
        if first is None:
            return
        split_path = self._split_path(split)
        retries: collections.deque[tuple[MemberJob, int]] = collections.deque()
        busy: list[_Worker] = []
        try:
            yield from self._drive(itertools.chain([first], fresh), retries, busy, split_path, config)
        finally:
            for w in busy:  # the caller stopped early: a late result must not reach the next batch
                w.job = None
                self._replace(w)

    def _assign(self, fresh: Iterator[MemberJob], retries: collections.deque[tuple[MemberJob, int]],
                busy: list[_Worker], split_path: str, config: TrainConfig) -> None:
        """Give each idle worker, and each worker slot not yet started, a member: retries first, then
        the next job drawn from ``fresh``."""
        while True:
            w = next((w for w in self._pool if w.job is None), None)
            if w is None and len(self._pool) >= self.workers:
                return
            if retries:
                item = retries.popleft()
            else:
                job = next(fresh, None)
                if job is None:
                    return
                item = (job, 0)
            if w is None:
                w = _Worker(self._ctx, self._worker_env(), self._train_fn, self._tmp.name)
                self._pool.append(w)
            w.job, w.attempt = item
            try:
                w.conn.send((split_path, w.job.spec, config, w.job.seed, w.job.name, self.progress_every_s))
                busy.append(w)
            except (OSError, BrokenPipeError):  # died while idle: replace it, requeue
                retries.appendleft(item)
                self._replace(w)

    def _drive(self, fresh: Iterator[MemberJob], retries: collections.deque[tuple[MemberJob, int]],
               busy: list[_Worker], split_path: str, config: TrainConfig) -> Iterator[tuple[MemberJob, MemberResult]]:
        while True:
            self._assign(fresh, retries, busy, split_path, config)
            if not busy:
                return
            waitables = [w.conn for w in busy] + [w.proc.sentinel for w in busy]
            multiprocessing.connection.wait(waitables)
            for w in list(busy):
                result = self._poll(w)
                if result is None:
                    continue
                job, attempt = w.job, w.attempt
                assert job is not None
                busy.remove(w)
                w.job = None
                if isinstance(result, MemberResult):
                    yield job, result
                    continue
                # The worker died mid-member: replace it; retry the member or record it as failed.
                self._replace(w)
                if attempt < self.max_retries:
                    retries.appendleft((job, attempt + 1))
                else:
                    yield job, MemberResult(spec_id(job.spec), "failed",
                                            f"error: worker process died ({result}) on {attempt + 1} attempts")

    @staticmethod
    def _poll(w: _Worker) -> MemberResult | str | None:
        """The worker's result, a reason string if it died, or None if it is still working."""
        try:
            if w.conn.poll():
                return w.conn.recv()
        except (EOFError, OSError):
            pass
        else:
            if w.proc.is_alive():
                return None
        w.proc.join(timeout=5)
        return f"exit code {w.proc.exitcode}"

    def _replace(self, w: _Worker) -> None:
        i = self._pool.index(w)
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join()
        w.conn.close()
        self._pool[i] = _Worker(self._ctx, self._worker_env(), self._train_fn, self._tmp.name)

    def kill_workers(self) -> None:
        """Kill every worker process now (from any thread): members in flight come back as failed
        ("worker process died") once their retries are spent, and idle workers are replaced."""
        for w in list(self._pool):
            if w.proc.is_alive():
                w.proc.kill()

    def close(self) -> None:
        for w in self._pool:
            w.stop()
        self._pool = []
        self._tmp.cleanup()
