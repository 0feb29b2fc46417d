"""The search loop, read top to bottom as DESIGN.md's data flow:

    controller.sample -> train members (cached) -> ensemble accuracy -> latency -> reward
      -> controller.update -> store.append

One controller per ensemble size; sizes take turns, one batch each per round. Resume is exact: the
controller is checkpointed after each update, a batch is re-sampled from that state, and samples
already recorded are read back instead of re-evaluated.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from controller.base import Controller
from controller.evolution import RegularizedEvolution
from controller.random_search import RandomSearch
from controller.reinforce import ReinforceController
from latency.estimator import ensemble_latency, get_estimator
from nas.compile_cache import use_compilation_cache
from nas.config import SearchConfig, load_config_dataset
from nas.evaluators import Evaluator, MemberJob, make_evaluator, member_summary, result_line, under_mps
from nas.ensemble import evaluate_ensemble
from nas.reward import mnas_reward
from nas.store import RunDir
from nas.words import counted
from search_space.blockstring import scale_width
from search_space.errors import DamagedCheckpoint
from search_space.layers import count
from search_space.space import MnasNetSpace, canonical_skips
from search_space.spec import ArchSpec, EnsembleSpec, MobileNetSpec, spec_id
from trainer.config import TrainConfig
from trainer.train import MemberResult
from trainer.data import Dataset, Split, validation_split

Log = Callable[[str], None]


def member_key(spec: ArchSpec, split: Split, config: TrainConfig, seed: int) -> str:
    """Same spec + resolution + data + training config + seed -> same key -> trained once."""
    text = "|".join([spec_id(spec), split.fingerprint, config.key(), str(seed)])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def make_space(config: SearchConfig, native: int) -> Callable[[np.ndarray], EnsembleSpec]:
    space = MnasNetSpace(native)

    def decode(vec: np.ndarray) -> EnsembleSpec:
        ens = space.decode([int(x) for x in vec], canonical=False)
        # skips written canonically once the widths are final (canonical_skips)
        return EnsembleSpec(tuple(canonical_skips(_shrink(m, config)) for m in ens.members))  # type: ignore[arg-type]

    decode.choice_counts = space.choice_counts  # type: ignore[attr-defined]
    return decode


def _shrink(m: MobileNetSpec, config: SearchConfig) -> MobileNetSpec:
    if config.space.width_multiplier == 1.0 and config.space.head_filters == 1280:
        return m
    m = scale_width(m, config.space.width_multiplier, "never")
    return m.replace(head_filters=config.space.head_filters)


def make_controller(config: SearchConfig, counts: tuple[int, ...], size: int,
                    decode: Callable[[np.ndarray], EnsembleSpec] | None = None) -> Controller:
    """The size's controller; ``decode`` (decision vector -> ensemble) lets evolution redraw a
    child whose mutation changed nothing the ensemble is built from."""
    seed = config.seed * 1000 + size
    if config.controller == "random":
        return RandomSearch(counts * size, seed)
    if config.controller == "evolution":
        identity = None if decode is None else (lambda v: decode(v).id)
        return RegularizedEvolution(counts * size, seed, config.evolution, identity)
    return ReinforceController(counts * size, seed, config.policy)


def versions() -> dict[str, Any]:
    import flax
    import jax
    import optax

    out = {"python": platform.python_version(), "jax": jax.__version__, "flax": flax.__version__,
           "optax": optax.__version__, "numpy": np.__version__, "backend": jax.default_backend(),
           "device": jax.devices()[0].device_kind, "host_cpu": host_cpu()}
    if under_mps():  # only then: records as before elsewhere
        out["mps"] = True
    return out


@functools.cache  # read once: versions() goes into every record
def host_cpu() -> str:
    """The host's CPU model and widest vector extension, e.g. "AMD EPYC (avx2)". XLA compiles CPU
    programs for the host's instruction set, and a short training run is chaotic enough for a
    different summation order to move its result: the README demo's two one-member samples gave
    53.2% / 35.1% in one session and 60.0% / 25.9% in another, with the same code and packages,
    each reproducible within its session (the machines' CPUs were not recorded then); on the second
    machine (AVX2), XLA capped at AVX gives 61.4% / 29.8% (experiments/check_isa_sensitivity.py)."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    widest = next((x for x in ("avx512f", "avx2", "avx", "sse4_2", "asimd") if x in flags), None)
    return f"{model} ({widest})" if widest else model


@dataclasses.dataclass
class SearchContext:
    config: SearchConfig
    run: RunDir
    split: Split
    decode: Callable[[np.ndarray], EnsembleSpec]
    evaluator: Evaluator
    log: Log
    fresh: set[str] = dataclasses.field(default_factory=set)  # member keys trained by this process
    shared: Path | None = None  # a member cache shared with other runs (nas search --member-cache)


def search_split(config: SearchConfig, dataset: Dataset) -> Split:
    """The validation split a search of ``config`` carves from ``dataset`` (its seed, size and
    training subset): the same images for every command that reads the run afterwards."""
    return validation_split(dataset, config.val_size, seed=config.seed, train_examples=config.train_examples)


def member_jobs(ctx: SearchContext, ens: EnsembleSpec) -> list[MemberJob]:
    """Each member trains with seed = search seed + its position (so equal specs still differ)."""
    jobs = []
    for pos, spec in enumerate(ens.members):
        seed = ctx.config.seed + pos
        jobs.append(MemberJob(member_key(spec, ctx.split, ctx.config.trainer, seed), spec, seed,
                              label=f"member {spec_id(spec)[:10]} seed {seed} {spec.resolution}px"))
    return jobs


def _save_result(ctx: SearchContext, job: MemberJob, r: MemberResult, progress: str = "") -> dict[str, Any]:
    summary = member_summary(job, r)
    ctx.run.save_member(job.key, summary, r.val_logits)
    if ctx.shared is not None and r.ok:  # a failure (out of memory, say) may be this run's circumstance
        ctx.run.export_member(job.key, ctx.shared)
    ctx.fresh.add(job.key)
    ctx.log(f"    {progress}member {spec_id(job.spec)[:10]} seed {job.seed} {job.spec.resolution}px: {result_line(r)}")
    return summary


def progress_prefix(done: int, total: int, elapsed_s: float, first_s: float | None = None) -> str:
    """'[3/30, 2m05s, about 18m left] ': members finished (of a search round, or of `nas retrain`),
    wall time so far, and the time the rest would take at the pace so far. ``first_s``: when the
    first member finished; from the second member on the pace is that of the finishes after it,
    since the first one's time includes its whole compile, which a pipelined backend overlaps with
    training for the others (on the 2-core CPU, a first member after about 65 s, the next every
    30 s; CPU search of 2026-12-02). Without it, the mean pace (members one after another)."""
    if done >= 2 and first_s is not None:
        left = (elapsed_s - first_s) / (done - 1) * (total - done)
    else:
        left = elapsed_s / done * (total - done)
    return f"[{done}/{total}, {_clock(elapsed_s)}" + (f", about {_clock(left)} left] " if done < total else "] ")


def _clock(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"


def train_missing(ctx: SearchContext, ensembles: list[EnsembleSpec]) -> None:
    """Train every member of ``ensembles`` not yet in the member cache, all handed to the evaluator
    at once (so a pipelined or Ray backend overlaps them); each is cached as soon as it finishes."""
    jobs: dict[str, MemberJob] = {}
    imported = 0
    for ens in ensembles:
        for job in member_jobs(ctx, ens):
            if job.key in jobs or ctx.run.member_path(job.key).is_file():
                continue
            if ctx.shared is not None and ctx.run.import_member(job.key, ctx.shared):
                imported += 1
            else:
                jobs[job.key] = job
    if imported:
        ctx.log(f"    {counted(imported, 'member')} from the shared member cache {ctx.shared}")
    if jobs:
        ctx.log(f"    training {counted(len(jobs), 'member')} ({ctx.evaluator.name})")
    start, first = time.perf_counter(), None
    for done, (job, r) in enumerate(ctx.evaluator.evaluate_many(list(jobs.values()), ctx.split, ctx.config.trainer), 1):
        elapsed = time.perf_counter() - start
        first = elapsed if first is None else first
        _save_result(ctx, job, r, progress_prefix(done, len(jobs), elapsed, first))


def evaluate_members(ctx: SearchContext, ens: EnsembleSpec) -> list[tuple[dict[str, Any], np.ndarray | None]]:
    """Member summaries and validation logits from the cache (training any that is missing);
    ``cached`` is False for the first record that uses a member trained in this process."""
    out = []
    for job in member_jobs(ctx, ens):
        cached = ctx.run.load_member(job.key)
        if cached is None:  # not trained ahead, or a damaged cache entry: train it now
            _, r = next(iter(ctx.evaluator.evaluate_many([job], ctx.split, ctx.config.trainer)))
            cached = (_save_result(ctx, job, r), r.val_logits)
        summary, logits = cached
        fresh = job.key in ctx.fresh
        ctx.fresh.discard(job.key)
        out.append(({**summary, "cached": not fresh}, logits))
    return out


def evaluate_sample(ctx: SearchContext, size: int, index: int, vec: np.ndarray) -> dict[str, Any]:
    ens = ctx.decode(vec)
    members = evaluate_members(ctx, ens)
    est = get_estimator(ctx.config.reward.device)
    nc = ctx.split.num_classes
    lat = [est.estimate(m, num_classes=nc) for m in ens.members]
    agg = ensemble_latency([l.total_ms for l in lat])
    counts = [count(m, nc) for m in ens.members]
    ok = all(m[0]["status"] == "ok" for m in members)
    rec: dict[str, Any] = {
        "size": size, "sample": index, "decisions": [int(x) for x in vec], "ensemble_id": ens.id,
        "status": "ok" if ok else "failed", "seed": ctx.config.seed,
        "latency_max_ms": agg.max_ms, "latency_sum_ms": agg.sum_ms,
        "latency_makespan_ms": {str(k): v for k, v in agg.makespan_ms.items()},
        "multiply_adds": sum(c.multiply_adds for c in counts), "flops": sum(c.flops for c in counts),
        "params": sum(c.params for c in counts),
        "members": [{"spec": m.to_dict(), "id": m.id, "latency_ms": l.total_ms,
                     "latency_measured_fraction": l.measured_fraction, "latency_flags": list(l.extrapolation),
                     "params": c.params, "multiply_adds": c.multiply_adds, **{k: v for k, v in s.items() if k != "spec_id"}}
                    for m, l, c, (s, _) in zip(ens.members, lat, counts, members)],
        "time": time.time(), "versions": versions(),
    }
    if ok:
        metrics = evaluate_ensemble([lg for _, lg in members], ctx.split.y_val)
        rec.update({"accuracy": metrics.accuracy, "accuracy_arithmetic": metrics.accuracy_arithmetic,
                    "nll": metrics.nll, "nll_arithmetic": metrics.nll_arithmetic, "ece": metrics.ece,
                    "disagreement": metrics.disagreement, "oracle_accuracy": metrics.oracle_accuracy,
                    "best_member_accuracy": metrics.best_member_accuracy})
        r = ctx.config.reward
        rec["reward"] = mnas_reward(metrics.accuracy, agg.max_ms, r.target_ms, r.alpha, r.beta)
    else:
        rec.update({"accuracy": None, "reward": 0.0,
                    "reason": "; ".join(s["reason"] for s, _ in members if s["status"] != "ok")})
    return rec


def enable_compilation_cache(run: RunDir) -> None:
    """XLA's persistent compilation cache in the run (unless one is configured): a member whose
    compile was interrupted by a kill, or a repeated architecture, compiles in about a second."""
    use_compilation_cache(run.path / "jax_cache", min_compile_s=1.0)


def run_search(run: RunDir, config: SearchConfig, evaluator: Evaluator | None = None, log: Log | None = None,
               stop_after: int | None = None, dataset: Dataset | None = None,
               member_cache: str | Path | None = None, max_minutes: float | None = None,
               precompile_workers: int = 0, split: Split | None = None) -> int:
    """Run (or continue) the search in ``run``; returns how many new samples were evaluated.

    ``stop_after`` ends the run after that many new samples (an interruption, for tests).
    ``max_minutes``: start no new round once this many minutes have passed since the call (the
    round in progress is finished and recorded, so the run stops where ``--resume`` continues it
    as if never stopped); each call runs at least one round that has work left.
    ``member_cache``: a folder shared by runs; a member another run trained with the same key
    (spec, data and split, training config, seed) is copied from it instead of trained, and every
    member this run trains successfully is copied to it.
    ``precompile_workers`` > 0 (``trainer.compile_unit=padded``): first compile every padded layer
    kind of the space in that many processes into the run's compilation cache (nas/precompile.py).
    ``split``: ``search_split(config, dataset)`` where the caller has it already (`nas search`
    checks the split before the run directory exists), so the images are not copied twice.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    deadline = time.monotonic() + 60 * max_minutes if max_minutes else None
    enable_compilation_cache(run)
    ds = dataset if dataset is not None else load_config_dataset(config)
    split = split if split is not None else search_split(config, ds)
    run.write_validation_labels(split.y_val)
    decode = make_space(config, split.native_resolution)
    if precompile_workers:
        from nas.precompile import precompile
        from trainer.padded import covering_vectors

        covers = [decode(np.asarray(v)).members[0] for v in covering_vectors(MnasNetSpace(split.native_resolution))]
        precompile(covers, split, config.trainer, precompile_workers, log)
    own = evaluator is None
    ctx = SearchContext(config, run, split, decode, evaluator or make_evaluator(), log,
                        shared=None if member_cache is None else Path(member_cache))
    try:
        return _search_loop(ctx, ds.name, stop_after, deadline)
    finally:
        if own:
            ctx.evaluator.close()


def _search_loop(ctx: SearchContext, dataset_name: str, stop_after: int | None, deadline: float | None) -> int:
    config, run, log, split, decode = ctx.config, ctx.run, ctx.log, ctx.split, ctx.decode
    counts = decode.choice_counts  # type: ignore[attr-defined]
    done = {(r["size"], r["sample"]): r for r in run.records()}
    controllers = {}
    for n in config.sizes:
        controllers[n] = make_controller(config, counts, n, decode)
        try:
            state = run.load_controller(n)
        except DamagedCheckpoint as e:
            # A fresh controller replays the recorded rounds below: each round it draws (the same
            # samples, from the same seed and state) and is updated with the recorded rewards.
            log(f"size {n}: {e}; replaying its controller from the records")
            state = None
        if state is not None:
            controllers[n].load_state_dict(state)
    rounds = math.ceil(config.samples_per_size / config.batch)
    log(f"search: sizes {list(config.sizes)}, {counted(config.samples_per_size, 'sample')} each, "
        f"{len(split.y_train)} train / {len(split.y_val)} val images of {dataset_name}; {len(done)} samples already "
        "recorded")
    new = rounds_run = 0
    for rnd in range(rounds):
        # Every size's samples of this round are drawn before any is trained, and their missing
        # members go to the evaluator as one batch (30 members a round for sizes 1-3 at batch 5), so
        # parallel backends drain once a round instead of once per size. Each controller still
        # samples at the same point of its own sequence (before its update for this round), so the
        # samples are those of training size after size.
        drawn: list[tuple[int, np.ndarray]] = []
        for n in config.sizes:
            if controllers[n].step > rnd:
                continue  # this round's update is already checkpointed
            drawn.append((n, controllers[n].sample(min(config.batch, config.samples_per_size - rnd * config.batch))))
        todo = [(n, vec) for n, vecs in drawn for i, vec in enumerate(vecs)
                if (n, rnd * config.batch + i) not in done]
        if todo and rounds_run and deadline is not None and time.monotonic() > deadline:
            # At a round boundary: every record and controller checkpoint so far is final, and the
            # controllers' next samples are drawn again, the same, by the resumed run.
            log(f"time limit: stopping before round {rnd + 1}/{rounds} with {len(done)} of "
                f"{len(config.sizes) * config.samples_per_size} samples recorded; `nas search --run-dir {run.path} "
                "--resume` continues")
            return new
        if todo:
            rounds_run += 1
            log(f"round {rnd + 1}/{rounds}: {len(todo)} new samples")
        if stop_after is not None:
            todo = todo[: max(0, stop_after - new)]
        ensembles = [decode(vec) for _, vec in todo]
        if ensembles:
            run.write_round({"round": rnd + 1, "rounds": rounds, "started": time.time(),
                             "members": sorted({j.key for ens in ensembles for j in member_jobs(ctx, ens)})})
        train_missing(ctx, ensembles)
        for n, vecs in drawn:
            rewards = []
            for i, vec in enumerate(vecs):
                index = rnd * config.batch + i
                rec = done.get((n, index))
                if rec is None:
                    if stop_after is not None and new >= stop_after:
                        return new
                    log(f"  size {n} sample {index + 1}/{config.samples_per_size}")
                    rec = evaluate_sample(ctx, n, index, vec)
                    run.append_record(rec)
                    done[(n, index)] = rec
                    new += 1
                    acc = f"{rec['accuracy']:.4f}" if rec["accuracy"] is not None else "failed"
                    log(f"  -> size {n} #{index}: accuracy {acc}, max latency {rec['latency_max_ms']:.2f} ms, "
                        f"reward {rec['reward']:.4f}")
                elif list(vec) != rec["decisions"]:
                    # A draw that differs from what was recorded at its place (a replay that did not
                    # repeat itself): the controller learns from what was evaluated, the record.
                    log(f"  size {n} #{index}: drawn again differently from its record; updating with the record's")
                    vecs[i] = np.asarray(rec["decisions"], dtype=vecs.dtype)
                rewards.append(rec["reward"])
            ctrl = controllers[n]
            stats = ctrl.update(vecs, rewards)
            run.append_update({"size": n, "round": rnd, "step": ctrl.step, **stats})
            run.save_controller(n, ctrl.state_dict())
    log(f"search done: {len(done)} samples in {run.path}")
    return new
