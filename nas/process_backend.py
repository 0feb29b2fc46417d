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
and the other members go on.
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.connection
import os
import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from nas.evaluators import MemberJob, compilation_cache_env
from search_space.spec import ArchSpec, spec_id
from trainer.config import TrainConfig
from trainer.data import Split
from trainer.train import MemberResult

TrainFn = Callable[[ArchSpec, Split, TrainConfig, int], MemberResult]

def _worker_main(conn: multiprocessing.connection.Connection, env: dict[str, str], train_fn: TrainFn | None,
                 driver_pid: int, scratch: str) -> None:
    """A worker's loop: receive (split_path, spec, config, seed), send back the MemberResult.
    ``scratch`` is the driver's folder of split copies, removed here if the driver dies first."""
    _exit_with_parent(driver_pid, scratch)
    os.environ.update(env)
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from nas.evaluators import epoch_progress
    from nas.evaluators import failed_result as _failed
    from trainer.train import train_member

    splits: dict[str, Split] = {}
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the driver went away without stopping its workers (killed)
            _remove_scratch(scratch)
            return
        if msg is None:
            return
        split_path, spec, config, seed, name, every_s = msg
        try:
            if split_path not in splits:
                splits.clear()
                splits[split_path] = _read_split(split_path)
            if train_fn is None:  # progress lines go to this worker's stderr, the driver's
                result = train_member(spec, splits[split_path], config, seed, progress=epoch_progress(name, every_s))
            else:
                result = train_fn(spec, splits[split_path], config, seed)
        except Exception as e:  # noqa: BLE001 - a failing member is a result
            result = _failed(spec, e)
        conn.send(result)


_SPLIT_ARRAYS = ("x_train", "y_train", "x_val", "y_val")


def _write_split(split: Split, folder: Path) -> None:
    """The split's arrays as .npy files plus its name and class names, written under a temporary
    name and renamed, so a folder that exists is complete."""
    import numpy as np

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in _SPLIT_ARRAYS:
        np.save(tmp / f"{name}.npy", np.ascontiguousarray(getattr(split, name)))
    (tmp / "meta.json").write_text(json.dumps({"name": split.name, "class_names": list(split.class_names)}))
    tmp.replace(folder)


def _read_split(folder: str) -> Split:
    import numpy as np

    meta = json.loads((Path(folder) / "meta.json").read_text())
    arrays = {name: np.load(Path(folder) / f"{name}.npy", mmap_mode="r") for name in _SPLIT_ARRAYS}
    return Split(meta["name"], class_names=tuple(meta["class_names"]), **arrays)


def _remove_scratch(scratch: str) -> None:
    """Remove a dead driver's split copies (CIFAR-10's 45k/5k split is 154 MB of .npy files): a
    driver killed by SIGKILL or SIGTERM runs no cleanup of its own. Each of its workers tries; the
    files stay readable to a worker that still has them mapped. Not when the workers die with it:
    ``timeout`` sends its SIGTERM to the whole process group, and a benchmark stopped that way left
    its copy in the temporary folder (2026-12-03): hence ``_exit_with_parent``'s SIGTERM handler."""
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


def _exit_with_parent(driver_pid: int, scratch: str, poll_s: float = 1.0) -> None:
    """End this worker soon after its driver dies (a driver killed with SIGKILL cannot stop it), so a
    killed search leaves nothing holding the GPU before it is resumed, and no split copies in the
    temporary folder.

    The driver's pid comes from the driver: a spawned worker imports JAX and the trainer before this
    runs (seconds, more under load), and a driver killed meanwhile has already left the worker to
    another parent, which this worker would otherwise take for its own."""
    import signal
    import threading
    import time

    if os.getppid() != driver_pid:
        _remove_scratch(scratch)
        os._exit(0)

    def on_sigterm(signum: int, frame: Any) -> None:
        # SIGTERM to the whole process group (`timeout`, `kill -TERM -PGID`) ends the driver too,
        # which removes nothing: wait a moment for it to go, then remove its split copies. A worker
        # terminated alone, its driver alive, just ends. While the main thread is inside XLA this
        # runs only afterwards, but the watch thread below cleans up within poll_s of the driver's end.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if os.getppid() != driver_pid:
                _remove_scratch(scratch)
                break
            time.sleep(0.05)
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != driver_pid:
                _remove_scratch(scratch)
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class _Worker:
    def __init__(self, ctx: Any, env: dict[str, str], train_fn: TrainFn | None, scratch: str):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, env, train_fn, os.getpid(), scratch), daemon=True,
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
        self._env = {**compilation_cache_env(), **(env or {})}  # on top of the inherited environment
        self._ctx = multiprocessing.get_context("spawn")  # fork would copy the driver's XLA state
        self._pool: list[_Worker] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="nas-split-")
        self._split_paths: dict[int, tuple[Split, str]] = {}

    def _split_path(self, split: Split) -> str:
        hit = self._split_paths.get(id(split))
        if hit is not None and hit[0] is split:
            return hit[1]
        path = Path(self._tmp.name) / f"split-{split.fingerprint[:16]}"
        if not path.is_dir():
            _write_split(split, path)
        self._split_paths = {id(split): (split, str(path))}  # holding the split keeps its id unique
        return str(path)

    def evaluate_many(self, jobs: Sequence[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        if not jobs:
            return
        split_path = self._split_path(split)
        queue: collections.deque[tuple[MemberJob, int]] = collections.deque((j, 0) for j in jobs)
        while len(self._pool) < min(self.workers, len(jobs)):
            self._pool.append(_Worker(self._ctx, self._env, self._train_fn, self._tmp.name))
        busy: list[_Worker] = []
        try:
            yield from self._drive(queue, busy, split_path, config)
        finally:
            for w in busy:  # the caller stopped early: a late result must not reach the next batch
                w.job = None
                self._replace(w)

    def _drive(self, queue: collections.deque[tuple[MemberJob, int]], busy: list[_Worker], split_path: str,
               config: TrainConfig) -> Iterator[tuple[MemberJob, MemberResult]]:
        while queue or busy:
            for w in self._pool:
                if w.job is None and queue:
                    w.job, w.attempt = queue.popleft()
                    try:
                        w.conn.send((split_path, w.job.spec, config, w.job.seed, w.job.name,
                                     self.progress_every_s))
                        busy.append(w)
                    except (OSError, BrokenPipeError):  # died while idle: replace it, requeue
                        queue.appendleft((w.job, w.attempt))
                        self._replace(w)
            if not busy:
                continue
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
                    queue.appendleft((job, attempt + 1))
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
        self._pool[i] = _Worker(self._ctx, self._env, self._train_fn, self._tmp.name)

    def close(self) -> None:
        for w in self._pool:
            w.stop()
        self._pool = []
        self._tmp.cleanup()
