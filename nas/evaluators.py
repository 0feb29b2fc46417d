"""Where members train: one after another, pipelined on this machine, or as Ray tasks.

An evaluator takes a batch of member jobs and yields each result as it completes. A member's
result is a pure function of (spec, split, training config, seed), so the backends differ in speed
only: the search assembles records from the member cache in a fixed order, whatever order the
members finish in.

- ``sequential``: compile, train, next member (the naive loop; on a GPU over 90% of its time is
  compilation, see PERF_NOTES.md: 45-55 s to compile a small member that trains in about 3 s).
- ``pipelined`` (the default without a GPU): ``compile_workers`` threads build and compile upcoming members while
  ``train_workers`` threads train compiled ones, so compilation leaves the critical path. XLA
  compiles release the GIL, and the training split is uploaded once and shared (device_data).
- ``processes`` (nas.process_backend; the default on a GPU): worker processes each compile and train
  one member at a time, side by side on the one GPU; within one process XLA serializes GPU
  autotuning and makes running programs wait for it, which is what stalls threads on a GPU.
- ``ray`` (nas.ray_backend): members are Ray tasks with fractional GPUs, on a local instance or a
  cluster.
- ``stacked`` (with ``trainer.compile_unit=stacked``, trainer/stacked.py): the batch's members are
  grouped by frame (input resolution) and trained ``slots`` at a time as one vmapped program, one
  compiled program per frame for the whole search; the next stacks are built and compiled on
  threads while one trains.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import queue
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Protocol

from search_space.spec import ArchSpec, spec_id
from trainer.config import TrainConfig
from trainer.data import Split
from trainer.train import OOM_REASON, MemberResult, ProgressFn, prepare_member, run_member, train_member

# A member still training after this many seconds reports its epoch, loss and time left on stderr,
# then again each time as long (in-process and worker-process backends; Ray keeps its workers'
# output to itself). Proxy members (seconds to a few minutes) say nothing; a study's or a long
# schedule's members (a 54-epoch WRN-10-2 took 19 min on the 2-core CPU) are not silent for long.
EPOCH_PROGRESS_S = 60.0


@dataclasses.dataclass(frozen=True)
class MemberJob:
    """One member to train: its cache key, architecture and seed; ``label`` names it in progress lines."""

    key: str
    spec: ArchSpec
    seed: int
    label: str = dataclasses.field(default="", compare=False)

    @property
    def name(self) -> str:
        return self.label or f"member {self.key[:10]} seed {self.seed}"


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


class EpochPace:
    """How a training run is going, said after each of its epochs: the time since ``start`` after
    the first epoch it reports (which holds compiling and warm-up, and a resumed run's restore),
    then the seconds an epoch takes since that one ended and the time left at that pace."""

    def __init__(self, start: float):
        self.start = start
        self._first: tuple[int, float] | None = None

    def text(self, epoch: int, epochs: int, now: float) -> str:
        if self._first is None:
            self._first = (epoch, now)
        if epoch == self._first[0]:
            return f"{_duration(now - self.start)} in"
        per = (now - self._first[1]) / (epoch - self._first[0])
        left = f", about {_duration(per * (epochs - epoch))} left" if epoch < epochs else ""
        return f"{per:.1f} s an epoch{left}"


def epoch_progress(name: str, every_s: float | None,
                   log: Callable[[str], None] | None = None) -> ProgressFn | None:
    """A training loop's per-epoch callback that logs one line at most every ``every_s`` seconds
    (none after the last epoch, whose result line follows): the epoch, its mean loss and its
    ``EpochPace``. None where ``every_s`` is None."""
    if every_s is None:
        return None
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    last = time.perf_counter()
    pace = EpochPace(last)

    def progress(epoch: int, epochs: int, loss: float) -> None:
        nonlocal last
        now = time.perf_counter()
        said = pace.text(epoch, epochs, now)  # every epoch: the pace counts from the first one
        if epoch >= epochs or now - last < every_s:
            return
        last = now
        log(f"    .. {name}: epoch {epoch}/{epochs}, loss {loss:.3f} ({said})")

    return progress


class Evaluator(Protocol):
    name: str

    def evaluate_many(self, jobs: Iterable[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        """Yield (job, result) for every job, in completion order. The sequential, pipelined and
        process evaluators draw each job from ``jobs`` only when they have room to start it, so a
        generator that stops handing out jobs (a time limit) lets the ones started finish; Ray
        submits them all at once."""
        ...

    def close(self) -> None:
        ...


def member_summary(job: MemberJob, r: MemberResult) -> dict[str, Any]:
    """What the member cache stores beside a member's logits: its result, seed, key and seconds."""
    return {**r.summary(), "seed": job.seed, "key": job.key, "wall_s": r.setup_s + r.compile_s + r.train_s + r.eval_s}


def result_line(r: MemberResult) -> str:
    """One log line's worth of a member's result."""
    first = f" of which the first epoch {r.epoch_s[0]:.1f}s" if len(r.epoch_s) > 1 else ""
    return (f"{r.status} {'acc %.4f' % r.val_accuracy if r.ok else r.reason} "
            f"(setup {r.setup_s:.1f}s, compile {r.compile_s:.1f}s, train {r.train_s:.1f}s{first}, "
            f"scoring {r.eval_s:.1f}s)")


def failed_result(spec: ArchSpec, e: BaseException) -> MemberResult:
    """An unexpected error in one member is that member's failure, not the search's."""
    text = str(e).splitlines()[0][:300] if str(e) else ""
    return MemberResult(spec_id(spec), "failed", f"error: {type(e).__name__}: {text}")


class SequentialEvaluator:
    """Compile, train, next member: the baseline."""

    name = "sequential"

    def __init__(self, progress_every_s: float | None = None):
        self.progress_every_s = progress_every_s

    def evaluate_many(self, jobs: Iterable[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        for job in jobs:
            try:
                r = train_member(job.spec, split, config, job.seed,
                                 progress=epoch_progress(job.name, self.progress_every_s))
            except Exception as e:  # noqa: BLE001
                r = failed_result(job.spec, e)
            yield job, r

    def close(self) -> None:
        pass


class PipelinedEvaluator:
    """Compile ahead on ``compile_workers`` threads, train on ``train_workers`` threads.

    Each job runs on one pool thread: build and compile (at most ``compile_workers`` at once), then
    train (at most ``train_workers`` at once). So at most compile_workers + train_workers compiled
    members are alive, which bounds device memory.
    """

    name = "pipelined"

    def __init__(self, compile_workers: int = 2, train_workers: int = 1, progress_every_s: float | None = None):
        if compile_workers < 1 or train_workers < 1:
            raise ValueError("compile_workers and train_workers must be positive")
        self.compile_workers, self.train_workers = compile_workers, train_workers
        self.progress_every_s = progress_every_s
        self._compile = threading.Semaphore(compile_workers)
        self._train = threading.Semaphore(train_workers)
        self._pool = ThreadPoolExecutor(compile_workers + train_workers, thread_name_prefix="member")

    def _one(self, job: MemberJob, split: Split, config: TrainConfig) -> MemberResult:
        try:
            with self._compile:
                prepared = prepare_member(job.spec, split, config, job.seed)
            if isinstance(prepared, MemberResult):
                return prepared
            with self._train:
                return run_member(prepared, epoch_progress(job.name, self.progress_every_s))
        except Exception as e:  # noqa: BLE001
            return failed_result(job.spec, e)

    def evaluate_many(self, jobs: Iterable[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        # At most one job per pool thread in flight (each holds its thread from compile to the end of
        # training), the next drawn from ``jobs`` as one finishes: the pool is as busy as with every
        # job queued at once, and a generator that stops handing out jobs stops new starts.
        done: queue.Queue[tuple[MemberJob, MemberResult]] = queue.Queue()
        fresh = iter(jobs)

        def start(job: MemberJob) -> None:
            fut = self._pool.submit(self._one, job, split, config)
            fut.add_done_callback(lambda f, job=job: done.put((job, f.result())))

        # the first ones drawn together, before any runs and holds the GIL: the draws take no time
        first = list(itertools.islice(fresh, self.compile_workers + self.train_workers))
        for job in first:
            start(job)
        in_flight = len(first)
        while in_flight:
            item = done.get()
            job = next(fresh, None)  # before yielding: the pool works while the caller handles this one
            if job is None:
                in_flight -= 1
            else:
                start(job)
            yield item

    def close(self) -> None:
        # Closed as Ctrl-C propagates (the caller's ``finally``): start nothing more and do not wait
        # for the members in flight, up to a minute of an unresponsive terminal on a CPU. What they
        # would have written is left unwritten, as after a kill, and `--resume` trains them again.
        interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        self._pool.shutdown(wait=not interrupted, cancel_futures=True)


class StackedEvaluator:
    """Members of one frame trained together (trainer/stacked.py), ``slots`` to a stack.

    Stacks form as jobs are drawn: a frame's members in the order given, a stack as soon as a frame
    has its slots' worth of them; once ``jobs`` ends, each frame's remainder in the order the frames
    came (the empty slots train copies). So a generator that stops handing out jobs (a time limit)
    starts no new full stack, and the members already drawn still train. Results come a stack at a
    time, in the order the stacks formed.

    The next ``ahead`` stacks are built and compiled on threads while one trains, so a search's
    first frames compile side by side instead of one after another (a stack of a frame being
    compiled waits for that compile and takes its programs: ``trainer.train.ProgramCache``).
    XLA's compiles release the GIL and use several cores each, tracing does not: on the 2-core CPU
    two three-block frames compiled from two threads took 88-94 s against 102-105 s one after
    the other (2026-12-07). So ``ahead`` defaults to a quarter of the machine's cores, 1 to 4 (4
    on the GPU machine's 16 cores: the CIFAR-10 space has 4 frames). Each stack built ahead holds
    its members' weights and optimizer states on the device.

    A stack that runs out of device memory is not its members' end: its frame's stacks have half as
    many slots from then on (as many as fit, where the compiled program's plan said it would not
    fit: ``trainer.stacked.prepare_stack``), and those members train again in such stacks, down to
    one slot, where running out of memory is their result. A frame's memory grows with its
    resolution, so on one device the small frames may keep every slot while the largest loses some.
    """

    name = "stacked"

    def __init__(self, slots: int = 8, progress_every_s: float | None = None, ahead: int | None = None):
        if slots < 1 or (ahead is not None and ahead < 1):
            raise ValueError("slots and ahead must be positive")
        self.slots, self.progress_every_s = slots, progress_every_s
        self.ahead = ahead or default_stack_ahead()
        self.frame_slots: dict[Any, int] = {}  # a frame's slots where fewer than ``slots`` (out of memory)
        self._pool = ThreadPoolExecutor(self.ahead, thread_name_prefix="stack")

    def slots_for(self, frame: Any) -> int:
        return self.frame_slots.get(frame, self.slots)

    def stacks(self, jobs: Iterable[MemberJob]) -> Iterator[list[MemberJob] | tuple[MemberJob, MemberResult]]:
        """The stacks ``jobs`` form (lists of jobs), and each job without a frame as (job, its
        failed result) where it is drawn."""
        from trainer.stacked import frame_specs

        pending: dict[Any, list[MemberJob]] = {}
        for job in jobs:
            try:
                frame = frame_specs(job.spec)
            except ValueError as e:
                yield job, failed_result(job.spec, e)
                continue
            group = pending.setdefault(frame, [])
            group.append(job)
            if len(group) >= self.slots_for(frame):  # more only if the frame's slots fell meanwhile:
                yield pending.pop(frame)  # evaluate_many's submit splits such a group
        for frame, group in pending.items():
            yield from _chunks(group, self.slots_for(frame))

    def evaluate_many(self, jobs: Iterable[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        from search_space.errors import UserError
        from trainer.stacked import frame_specs, prepare_stack, run_stacked

        if config.compile_unit != "stacked":
            raise UserError(f"--backend stacked: needs trainer.compile_unit=stacked, got {config.compile_unit!r}")
        formed = self.stacks(jobs)
        unframed: list[tuple[MemberJob, MemberResult]] = []

        def next_stack() -> list[MemberJob] | None:
            for item in formed:
                if isinstance(item, list):
                    return item
                unframed.append(item)
            return None

        def prepare(stack: list[MemberJob], slots: int) -> Any:
            try:
                return prepare_stack([j.spec for j in stack], split, config, [j.seed for j in stack], slots)
            except Exception as e:  # noqa: BLE001 - a failing stack's members are results, the search goes on
                return [failed_result(j.spec, e) for j in stack]

        ahead: collections.deque[tuple[list[MemberJob], int, Future]] = collections.deque()

        def submit(stack: list[MemberJob], left: bool = False) -> None:
            """Prepare ``stack`` on the pool, in stacks of its frame's slots now (fewer, where the
            frame ran out of memory after the stack formed); ``left``: before those already queued."""
            k = self.slots_for(frame_specs(stack[0].spec))
            items = [(chunk, k, self._pool.submit(prepare, chunk, k)) for chunk in _chunks(stack, k)]
            if left:
                ahead.extendleft(reversed(items))
            else:
                ahead.extend(items)

        def fill() -> None:  # drawn, built and compiled while a stack trains
            while len(ahead) < self.ahead:
                stack = next_stack()
                if stack is None:
                    return
                submit(stack)

        fill()
        while ahead:
            stack, slots, future = ahead.popleft()
            prepared = future.result()
            fill()
            yield from unframed
            unframed.clear()
            if not isinstance(prepared, list):
                name = f"stack of {len(stack)} ({stack[0].name}, ...)" if len(stack) > 1 else stack[0].name
                try:
                    prepared = run_stacked(prepared, epoch_progress(name, self.progress_every_s))
                except Exception as e:  # noqa: BLE001
                    prepared = [failed_result(j.spec, e) for j in stack]
            short = [j for j, r in zip(stack, prepared) if not r.ok and r.reason.startswith(OOM_REASON)]
            if short and slots > 1:
                # as many slots as the compiled program's plan says fit, else (out of memory while
                # training) half as many
                fewer = max(1, min(getattr(prepared, "fit", slots // 2), slots - 1))
                frame = frame_specs(stack[0].spec)
                self.frame_slots[frame] = min(fewer, self.slots_for(frame))
                why = prepared[stack.index(short[0])].reason.removeprefix(OOM_REASON)[:120]
                print(f"stacked: a stack of {slots} slots at {stack[0].spec.resolution} px ran out of memory "
                      f"({why}); this frame's stacks have {self.frame_slots[frame]} slots from now on",
                      file=sys.stderr, flush=True)
                submit(short, left=True)  # next, before the stacks already built ahead
                prepared = [r for j, r in zip(stack, prepared) if j not in short]
                stack = [j for j in stack if j not in short]
            yield from zip(stack, prepared)
        yield from unframed

    def close(self) -> None:
        interrupted = isinstance(sys.exc_info()[1], KeyboardInterrupt)
        self._pool.shutdown(wait=not interrupted, cancel_futures=True)


def _chunks(jobs: list[MemberJob], k: int) -> Iterator[list[MemberJob]]:
    """``jobs`` in order, ``k`` at a time (the last chunk the rest)."""
    return (jobs[i:i + k] for i in range(0, len(jobs), k))


def default_stack_ahead() -> int:
    """How many stacks the stacked backend builds and compiles ahead: a quarter of this machine's
    cores, 1 to 4 (``StackedEvaluator``)."""
    import os

    return max(1, min(4, (os.cpu_count() or 1) // 4))


def compilation_cache_env() -> dict[str, str]:
    """The driver's persistent compilation cache as an environment variable for worker processes:
    a cache directory set through ``jax.config`` (as the search and study do) reaches them no
    other way. Empty when there is none, or when the environment already names one."""
    import os

    import jax

    cache = jax.config.jax_compilation_cache_dir
    if not cache or "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": str(cache)}


def under_mps() -> bool:
    """Whether this process's GPU work goes through NVIDIA's Multi-Process Service, as far as it can
    tell: its pipe folder is set (experiments/gpu_session.sh MPS=1 exports it only once an MPS
    server served a client; workers inherit it). A member's seconds depend on it."""
    import os

    return bool(os.environ.get("CUDA_MPS_PIPE_DIRECTORY"))


def default_backend() -> str:
    """``processes`` where JAX sees a GPU (XLA serializes GPU autotuning within a process, see
    nas.process_backend), else ``pipelined``."""
    import os

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # before JAX first touches a GPU
    import jax

    return "processes" if jax.default_backend() == "gpu" else "pipelined"


def make_evaluator(backend: str = "auto", *, compile_workers: int = 2, train_workers: int = 1, workers: int = 4,
                   address: str | None = None, gpus_per_member: float | None = None,
                   cpus_per_member: float = 1.0, max_retries: int = 1, runtime_env: dict | None = None,
                   progress_every_s: float | None = EPOCH_PROGRESS_S, slots: int = 8,
                   stack_ahead: int | None = None) -> Evaluator:
    """The backend by name (``auto``: processes on a GPU, else pipelined); ``progress_every_s``:
    how often a member that trains long reports its epoch (None: never; Ray's members never do);
    ``slots`` and ``stack_ahead``: members per stack of the stacked backend, and stacks it
    prepares while one trains (None: ``default_stack_ahead``)."""
    if backend == "auto":
        backend = default_backend()
    if backend == "sequential":
        return SequentialEvaluator(progress_every_s)
    if backend == "processes":
        from nas.process_backend import ProcessEvaluator

        return ProcessEvaluator(workers, progress_every_s=progress_every_s)
    if backend == "pipelined":
        return PipelinedEvaluator(compile_workers, train_workers, progress_every_s)
    if backend == "stacked":
        return StackedEvaluator(slots, progress_every_s, stack_ahead)
    if backend == "ray":
        from nas.ray_backend import RayEvaluator

        return RayEvaluator(address=address, gpus_per_member=gpus_per_member, cpus_per_member=cpus_per_member,
                            max_retries=max_retries, runtime_env=runtime_env)
    from search_space.errors import UserError

    raise UserError(f"--backend: unknown backend {backend!r}; use auto, processes, pipelined, sequential, "
                    "stacked or ray")
