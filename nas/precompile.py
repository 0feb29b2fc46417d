"""Compiling a search space's padded layer programs before any member trains (``--precompile N``).

With ``trainer.compile_unit=padded`` (trainer/padded.py) a layer's programs depend only on its
block, its operation, whether it is its block's first layer and its input size, so a whole search
needs a fixed set of them: 169 layer kinds for the CIFAR-10 space, every one held by 12 covering
members (``trainer.padded.covering_vectors``: one per operation and resolution, every block at its
most layers). Left to the search, members meet those kinds one by one (151-160 by a random search's
first 30 members, experiments/results/shape_reuse) and each worker compiles, or loads, each kind
itself the first time it meets it. Precompiling compiles the covering members, without training
them, in ``workers`` processes at once into the persistent compilation cache, which the search's
own workers (or the search's process) then load from instead of compiling: the search's start
pays the compile once, spread over the machine's cores, and no member waits on it later.

A covering member that fails to compile is reported and the rest go on: its kinds are then
compiled by whichever member first needs them, as without precompiling.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Sequence

from nas.evaluators import MemberJob
from search_space.spec import ArchSpec, spec_id
from trainer.config import TrainConfig
from trainer.data import Split
from trainer.train import MemberResult


def compile_only(spec: ArchSpec, split: Split, config: TrainConfig, seed: int) -> MemberResult:
    """A worker's member, compiled (its per-layer programs found or built) and not trained: a
    result with its compile seconds and how many of its layers compiled anew in the process."""
    from trainer.layerwise import LayerwiseTrainer

    trainer = LayerwiseTrainer(spec, split, config, seed)
    seconds = trainer.compile()
    return MemberResult(spec_id(spec), "ok", compile_s=seconds, trace_s=trainer.trace_s, setup_s=trainer.setup_s,
                        stages=trainer.stages, stages_compiled=trainer.stages_compiled,
                        stages_loaded=trainer.stages_loaded, lowering=trainer.lowering)


def precompile(specs: Sequence[ArchSpec], split: Split, config: TrainConfig, workers: int,
               log: Callable[[str], None] | None = None, time_limit_s: float | None = None) -> dict[str, Any]:
    """Compile ``specs`` (per-layer or padded programs, ``config.compile_unit``) in ``workers``
    spawned processes into the persistent compilation cache this process has configured; returns
    what it took: members compiled, failed ones, those not started or not finished, wall seconds,
    summed compile seconds, layers compiled (by XLA) and loaded (found in the cache already).

    ``time_limit_s``: start no member after that many seconds, and stop at twice that, abandoning
    members still compiling (the programs they finished stay in the cache; the rest are compiled
    by the first member that needs them, as without a precompile)."""
    import jax

    from nas.process_backend import ProcessEvaluator
    from search_space.errors import UserError

    if config.compile_unit not in ("layer", "padded"):
        raise UserError(f"precompile: needs trainer.compile_unit=padded (or layer), got {config.compile_unit!r}")
    if not jax.config.jax_compilation_cache_dir:
        raise UserError("precompile: no persistent compilation cache is configured, so nothing would be kept")
    log = log or (lambda s: None)
    jobs = [MemberJob(f"cover{i + 1}", s, 0) for i, s in enumerate(specs)]
    log(f"precompile: {len(jobs)} covering members, compiled and not trained, in {workers} processes "
        f"(compile_unit={config.compile_unit})")
    start = time.perf_counter()
    done: list[MemberResult] = []
    started = 0

    def until_limit() -> Iterator[MemberJob]:
        nonlocal started
        for job in jobs:
            if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
                log(f"precompile: time limit: no member started after {time_limit_s:.0f} s ({started} of "
                    f"{len(jobs)} started)")
                return
            started += 1
            yield job

    ev = ProcessEvaluator(workers, max_retries=0, train_fn=compile_only)
    stopped, finished = threading.Event(), threading.Event()

    def hard_stop() -> None:
        stopped.set()
        log(f"precompile: stopping at {2 * time_limit_s:.0f} s: members still compiling are abandoned")
        # Again every 0.2 s until the loop below is done: a worker whose process was still starting at
        # the stop joins the pool after the first kill and would compile its member to the end (seen
        # once with a 0.1 s stop on a loaded 2-core machine, where starting a process took longer).
        while True:
            ev.kill_workers()
            if finished.wait(0.2):
                return

    timer = threading.Timer(2 * time_limit_s, hard_stop) if time_limit_s is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    abandoned = 0
    try:
        for job, r in ev.evaluate_many(until_limit(), split, config):
            if stopped.is_set() and not r.ok:
                abandoned += 1
                continue
            done.append(r)
            what = (f"compile {r.compile_s:.1f} s, {r.stages_compiled - r.stages_loaded} of {r.stages} layers compiled"
                    + (f", {r.stages_loaded} loaded from the cache" if r.stages_loaded else "")
                    if r.ok else f"failed: {r.reason}")
            log(f"precompile: {job.key} ({job.spec.resolution} px) {what} ({time.perf_counter() - start:.0f} s)")
    finally:
        finished.set()
        if timer is not None:
            timer.cancel()
        ev.close()
    wall = time.perf_counter() - start
    ok = [r for r in done if r.ok]
    summary = {"members": len(done), "failed": len(done) - len(ok), "not_finished": len(jobs) - len(done),
               "abandoned": abandoned, "workers": workers, "wall_s": wall,
               "compile_s_sum": sum(r.compile_s for r in ok), "stages_sum": sum(r.stages for r in ok),
               "stages_compiled_sum": sum(r.stages_compiled - r.stages_loaded for r in ok),
               "stages_loaded_sum": sum(r.stages_loaded for r in ok)}
    log(f"precompile: {len(ok)} of {len(jobs)} members in {wall:.0f} s ({summary['compile_s_sum']:.0f} s of "
        f"compiling summed, {summary['stages_compiled_sum']} of {summary['stages_sum']} layers compiled, "
        f"{summary['stages_loaded_sum']} loaded from the cache)")
    return summary
