"""Member evaluations per device-hour: the naive loop against the optimized path, in one command.

    python -m experiments.bench_throughput --members 24 --epochs 10 --out bench.json      # GPU
    python -m experiments.bench_throughput --members 3 --epochs 1 --train-examples 1000 \\
        --width 0.25 --compile-workers 1                                                  # CPU smoke

Both modes train the same randomly sampled MnasNet-space members (same seeds) on the same split,
each in a fresh subprocess with empty caches, so neither inherits the other's compilations:

- naive: compile, train, next member; no persistent compilation cache.
- optimized: the search's default backend (``--backend auto``): on a GPU, ``--workers`` worker
  processes that each compile, autotune and train one member at a time side by side
  (nas.process_backend; within one process XLA serializes GPU autotuning and stalls running
  programs behind it); elsewhere ``--compile-workers`` threads compile upcoming members while
  ``--train-workers`` threads train compiled ones (nas.evaluators.PipelinedEvaluator). Both with
  XLA's persistent compilation cache and, on GPUs, its per-fusion autotuning cache shared by all
  members (layer shapes repeat across the space).

``--optimized-variant NAME`` gives the optimized mode (only) the compile options of one of
``experiments.bench_compile_options``'s variants (XLA flags, depthwise mode, dtype, evaluation
batch), e.g. less autotuning; its accuracies then agree with the naive ones only approximately
(printed). ``--optimized-variant A,B`` runs the optimized mode once per variant, one after the
other, against one naive run: each gets its ratio, and the fastest is the one reported as
``optimized`` (the others under ``optimized_runs``).

``--naive-members N`` runs the naive loop on the first N members only. A time limit,
``--naive-time-limit S`` or ``--optimized-time-limit S``, starts no member of that mode after S
seconds and waits for the ones started (a search drains each round's members the same way), so a
mode's rate is the members it finished over the seconds until its last one finished: the drain's
idle workers count against it, and a window no longer than one member still counts every member it
started (the rule before 2026-12-04, stop at the first member finished past S and drop those in
flight, counted 1 of 8 members in flight for an 8-worker run on the H200). The optimized mode also
has ``--optimized-hard-stop`` (default S + max(S, 180)): members still running then are dropped and
the rate is what finished by then, possibly none. Every naive member compiles and trains alone, so its
rate does not depend on how many there are, while the optimized path needs a long queue to keep its
workers busy. The naive run is the expensive one (106 s a member on the H200), so this is what makes
a device budget hold both. Members differ in cost, so the window should hold several members per
worker to be typical.

``--autotune-from DIR`` starts the optimized mode's caches with XLA's per-fusion autotuning results
of an earlier run (a search run keeps them in ``jax_cache/xla_gpu_per_fusion_autotune_cache_dir``,
and its archive carries them): the optimized path as it runs well into a search, whose members'
convolution shapes have mostly been seen before (85% from the 61st member on,
experiments/results/shape_reuse), rather than at its start. The naive mode has no caches either way.
Each optimized run reports how many fusions it autotuned (XLA writes a file per fusion) and how
many it was given.

``--optimized-warmup N`` has the optimized mode's workers evaluate N other random members before
its clock starts (not counted; ``--warmup-time-limit S`` starts none after S seconds; with a stacked
variant, the first of them one member of each input resolution, so that every frame's program is
compiled, trainer/stacked.py): the path as
it runs N members into a search, with compiled programs and autotuning results of its own making
in the workers and their shared caches. Per-layer programs pay off only once later members meet
layers earlier ones compiled, and padded ones (``--optimized-variant padded`` or
``shift-padded``, trainer/padded.py) once most of the space's 169 layer kinds have been met
(151-160 by a random CIFAR-10 search's first 30 members, experiments/results/shape_reuse), so a short window from empty caches shows their
start, and a warmed one their steady state. The summary line gives the warm-up's members, seconds
and layers compiled beside the rate.

``--optimized-precompile N`` (padded variants) compiles, before the optimized mode's clock starts
and before any warm-up, every padded layer kind of the space at once: its 12 covering members
(trainer.padded.covering_vectors), compiled and not trained, in N processes into the optimized
mode's persistent cache (nas/precompile.py), from which its workers then load each layer's
programs instead of compiling them. Its seconds are not counted in the rate; the summary also
gives the rate with them charged to a 180-member search (the CIFAR-10 search's size), which is
what a search that precompiles (``nas search --precompile N``) would see at that rate.

``--blocks K`` keeps only the first K of each sampled member's seven blocks: members that compile
several times faster, for checking the benchmark itself on a CPU (the test suite runs it so); its
figures are then no search member's.

Prints, per mode, wall seconds, member evaluations per device-hour, summed compile and train
seconds and mean validation accuracy (the two must agree: the same members are trained), then the
ratio, with the device; ``--out`` also writes it as JSON. Each member's line, and each mode's mean,
also gives how much longer its first epoch took than its later ones (members of two or more
epochs): the one-time cost of running its programs the first time, which on the GPU came with the
autotuned cuDNN build (12.9 s for a MobileNetV2 on an H200), so one call says whether a variant
is rid of it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

from nas.words import counted

if TYPE_CHECKING:
    from nas.evaluators import Evaluator, MemberJob
    from trainer.config import TrainConfig
    from trainer.data import Split


def _sample_members(native: int, count: int, width: float, head: int, seed: int, blocks: int = 7):
    """``count`` random MnasNet-space members (the same for a seed), at ``width`` with ``head``
    filters; ``blocks`` < 7 keeps only each member's first blocks (see ``BLOCKS_HELP``)."""
    import numpy as np

    from search_space.space import MnasNetSpace

    space = MnasNetSpace(native)
    rng = np.random.default_rng(seed)
    return [_shaped(space.decode(space.sample(rng, 1), canonical=False).members[0], width, head, blocks)
            for _ in range(count)]


def _shaped(m, width: float, head: int, blocks: int):
    """A space member at the benchmark's ``width``, ``head`` filters and first ``blocks`` blocks."""
    from search_space.blockstring import scale_width

    if width != 1.0 or head != 1280:
        m = scale_width(m, width, "never").replace(head_filters=head)
    return m.replace(blocks=m.blocks[:blocks])


def _covering_members(native: int, width: float, head: int, blocks: int):
    """The space's covering members (trainer.padded.covering_vectors) shaped as the sampled ones."""
    from search_space.space import MnasNetSpace
    from trainer.padded import covering_vectors

    space = MnasNetSpace(native)
    return [_shaped(space.decode_member(v, canonical=False), width, head, blocks) for v in covering_vectors(space)]


# Shallow members compile several times faster (on the 2-core CPU machine, cold, at width 0.25:
# the first 2 blocks of a member 8.8 s against 26 s for all 7), which is what a run that checks the
# benchmark itself needs; what it measures is then no search member's cost.
BLOCKS_HELP = ("keep only the first K of each sampled member's 7 blocks (default 7: whole members); fewer "
               "compile faster, for a quick run of the benchmark itself, not a measurement of search members. "
               "A cut member keeps its head (--head filters) at its last kept block's resolution, up to 8x a "
               "whole member's per side: pair it with a small --head (2 blocks on the CPU: 9 images/s "
               "with 1280 filters, 97 with 64)")


def blocks_arg(text: str) -> int:
    k = int(text)
    if not 1 <= k <= 7:
        raise argparse.ArgumentTypeError(f"must be 1..7, got {k}")
    return k


def first_epoch_extra_s(epoch_s: Sequence[float]) -> float | None:
    """How much longer a member's first epoch took than the median of its later ones: the one-time
    cost of its programs' first run (on the GPU, cuDNN's convolution plans: docs/gpu.md); None for a
    member of one epoch."""
    return epoch_s[0] - statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _first_epoch(extra: float | None, per: str = "") -> str:
    return "" if extra is None else f", first epoch {extra:+.1f} s{per}"


def _layers(compiled: int, stages: int, loaded: int = 0) -> str:
    """The text ', N of M layers compiled' for members compiled per layer (', N of M layers new, K
    of them loaded from the compilation cache' where some were), else nothing."""
    if not stages:
        return ""
    if loaded:
        return f", {compiled} of {stages} layers new, {loaded} of them loaded from the compilation cache"
    return f", {compiled} of {stages} layers compiled"


def bench_config(epochs: int, batch: int | None = None, items: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """What both modes train with: the CIFAR-10 search's proxy recipe (experiments/cifar_proxy.py)
    with ``--set`` items (``batch_size=512``, ``trainer.learning_rate=0.4``; a bad one is a
    UserError), at ``epochs`` (its warm-up kept inside them) and at ``batch`` where given. So the
    benchmark runs the search's own recipe, and a recipe changed on the GPU (say a larger batch,
    fewer steps an epoch) is measured as a search would run it."""
    from experiments.cifar_proxy import CIFAR_PROXY
    from nas.config import with_trainer_settings

    config = with_trainer_settings(CIFAR_PROXY, list(items))
    return config.replace(epochs=epochs, batch_size=config.batch_size if batch is None else batch,
                          warmup_epochs=min(config.warmup_epochs, epochs))


def run_mode(args: argparse.Namespace) -> dict:
    """One mode in this process (the parent starts one subprocess per mode)."""
    import jax

    if args.mode == "optimized":
        jax.config.update("jax_compilation_cache_dir", args.cache_dir)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax.config.update("jax_persistent_cache_enable_xla_caches", "xla_gpu_per_fusion_autotune_cache_dir")
    else:
        from trainer.train import PROGRAMS

        PROGRAMS.KEEP = 0  # naive: every member compiles its own programs, even a repeated architecture
    from nas.evaluators import MemberJob, SequentialEvaluator, default_backend, make_evaluator, under_mps
    from trainer.data import load_dataset, validation_split

    ds = load_dataset(args.dataset)
    split = validation_split(ds, args.val_size, seed=0, train_examples=args.train_examples)
    members = _sample_members(split.native_resolution, args.members, args.width, args.head, args.seed,
                              args.blocks)
    config = bench_config(args.epochs, args.batch_size, args.set)
    if args.mode == "optimized" and args.optimized_variant:
        from experiments.bench_compile_options import variant_config

        config = variant_config(args.optimized_variant, config)
    jobs = [MemberJob(str(i), m, args.seed + i) for i, m in enumerate(members)]
    if args.mode == "naive" and args.naive_members:
        jobs = jobs[: args.naive_members]  # its rate is per member: each compiles and trains alone
    auto = "stacked" if config.compile_unit == "stacked" else default_backend()
    backend = "sequential" if args.mode == "naive" else (auto if args.backend == "auto" else args.backend)
    ev = (SequentialEvaluator() if args.mode == "naive"
          else make_evaluator(backend, compile_workers=args.compile_workers, train_workers=args.train_workers,
                              workers=args.workers, slots=args.stack_slots, stack_ahead=args.stack_ahead))
    limit = args.naive_time_limit if args.mode == "naive" else args.optimized_time_limit
    variant = (args.optimized_variant or "default") if args.mode == "optimized" else "default"
    print(f"[{args.mode}] {len(jobs)} members, {backend} evaluator, {variant} compile options"
          + (f", time limit {limit:.0f} s" if limit else ""), file=sys.stderr, flush=True)
    precompiled = None
    if args.mode == "optimized" and args.optimized_precompile:
        from nas.precompile import precompile

        covers = _covering_members(split.native_resolution, args.width, args.head, args.blocks)
        precompiled = precompile(covers, split, config, args.optimized_precompile,
                                 log=lambda line: print(f"[optimized] {line}", file=sys.stderr, flush=True),
                                 time_limit_s=args.precompile_time_limit)
    warmup = _warm_up(args, ev, split, config) if args.mode == "optimized" and args.optimized_warmup else None
    start = time.perf_counter()
    results: dict = {}
    lock = threading.Lock()

    def summary(wall: float) -> dict:
        ok = [r for r in results.values() if r.ok]
        return {"mode": args.mode, "evaluator": backend, "variant": variant, "dtype": config.dtype,
                "members": len(results), "ok": len(ok), "wall_s": wall,
                "evals_per_device_hour": len(results) / wall * 3600 if wall > 0 else 0.0,
                "setup_s_sum": sum(r.setup_s for r in results.values()),
                "compile_s_sum": sum(r.compile_s for r in results.values()),
                "trace_s_sum": sum(r.trace_s for r in results.values()),
                "train_s_sum": sum(r.train_s for r in results.values()),
                # the mean one-time cost in a member's first epoch (None: members of one epoch)
                "first_epoch_extra_s_mean": _mean(first_epoch_extra_s(r.epoch_s) for r in ok),
                # per-layer compilation only (0 otherwise): layers in all, and those compiled anew
                "stages_sum": sum(r.stages for r in results.values()),
                "stages_compiled_sum": sum(r.stages_compiled for r in results.values()),
                "stages_loaded_sum": sum(r.stages_loaded for r in results.values()),
                "mean_val_accuracy": sum(r.val_accuracy for r in ok) / max(1, len(ok)),
                "warmup": warmup, "precompile": precompiled,
                # the stacked backend's members per stack and stacks prepared ahead (None: another backend)
                "stack_slots": getattr(ev, "slots", None), "stack_ahead": getattr(ev, "ahead", None),
                # frames given fewer slots for want of memory, by input resolution (px -> slots)
                "stack_slots_fitted": {str(frame[0].resolution): k for frame, k in dict(getattr(ev, "frame_slots", {})).items()},
                "accuracies": {k: results[k].val_accuracy for k in sorted(results, key=int)},
                "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
                "jax": jax.__version__,
                "mps": under_mps()}

    finished = threading.Event()
    if args.mode == "optimized" and limit:
        # A hard stop as well: members slower than the whole budget never finish (an H100 run whose
        # variant trained at 1.2k img/s, about 6 minutes a member, printed nothing in 310 s), so the
        # rate is then what finished by the hard stop, possibly none. os._exit skips the evaluator's
        # close; its worker processes end with their parent.
        hard = args.optimized_hard_stop or limit + max(limit, 180.0)

        def hard_stop() -> None:
            with lock:
                if finished.is_set():  # the loop ended first
                    return
                wall = time.perf_counter() - start
                print(f"[{args.mode}] hard stop at {wall:.0f} s after {len(results)} members; those in flight "
                      "are dropped", file=sys.stderr, flush=True)
                print(json.dumps(summary(wall)), flush=True)
                os._exit(0)

        timer = threading.Timer(hard, hard_stop)
        timer.daemon = True
        timer.start()
    wall = 0.0
    for job, r in ev.evaluate_many(_until(jobs, start, limit, args.mode), split, config):
        with lock:
            results[job.key] = r
            wall = time.perf_counter() - start
        print(f"[{args.mode}] member {int(job.key) + 1}/{len(jobs)} {job.spec.resolution}px: {r.status} "
              f"acc {r.val_accuracy:.4f} setup {r.setup_s:.1f} s compile {r.compile_s:.1f} s (tracing "
              f"{r.trace_s:.1f} s){_layers(r.stages_compiled, r.stages, r.stages_loaded)}, train {r.train_s:.1f} s"
              f"{_first_epoch(first_epoch_extra_s(r.epoch_s))} ({wall:.0f} s)",
              file=sys.stderr, flush=True)
    with lock:  # a hard stop firing now waits for this, then finds it finished
        finished.set()
        out = summary(wall)
    ev.close()
    return out


def _warm_up(args: argparse.Namespace, ev: "Evaluator", split: "Split", config: "TrainConfig") -> dict:
    """Evaluate ``--optimized-warmup`` other random members (another seed) with the optimized
    mode's evaluator before its clock starts, none started after ``--warmup-time-limit``: its
    workers and caches then hold what a search holds after that many members. Returns what the
    warm-up took (not counted in the rate)."""
    from nas.evaluators import MemberJob

    members = _sample_members(split.native_resolution, args.optimized_warmup, args.width, args.head,
                              args.seed + WARMUP_SEED_OFFSET, args.blocks)
    if config.compile_unit == "stacked":  # first a member of each frame (input resolution): every program compiled
        per_frame = {m.resolution: m for m in _covering_members(split.native_resolution, args.width, args.head,
                                                                args.blocks)}
        members = (list(per_frame.values()) + members)[: max(args.optimized_warmup, len(per_frame))]
    jobs = [MemberJob(str(i), m, args.seed + WARMUP_SEED_OFFSET + i) for i, m in enumerate(members)]
    print(f"[optimized] warm-up: {len(jobs)} other members first, not counted"
          + (f", time limit {args.warmup_time_limit:.0f} s" if args.warmup_time_limit else ""),
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = []
    for job, r in ev.evaluate_many(_until(jobs, start, args.warmup_time_limit, "optimized warm-up"), split, config):
        done.append(r)
        print(f"[optimized warm-up] member {int(job.key) + 1}/{len(jobs)} {job.spec.resolution}px: {r.status} "
              f"compile {r.compile_s:.1f} s{_layers(r.stages_compiled, r.stages, r.stages_loaded)}, train {r.train_s:.1f} s "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return {"members": len(done), "wall_s": time.perf_counter() - start,
            "compile_s_sum": sum(r.compile_s for r in done),
            "stages_sum": sum(r.stages for r in done), "stages_compiled_sum": sum(r.stages_compiled for r in done),
            "stages_loaded_sum": sum(r.stages_loaded for r in done)}


def _precompiled(r: dict) -> str:
    """', after precompiling 12 covering members (95 s in 4 processes, not counted)' where it did."""
    p = r.get("precompile")
    if not p:
        return ""
    failed = f", {p['failed']} failed" if p["failed"] else ""
    unfinished = f", {p['not_finished']} more not finished in its time" if p.get("not_finished") else ""
    return (f", after precompiling {p['members']} covering members ({p['wall_s']:.0f} s in {p['workers']} "
            f"processes{failed}{unfinished}, not counted)")


# A search's members over which a one-time precompile is charged in the amortized rate: the
# CIFAR-10 search's (experiments/search_cifar10.py: 30 samples each of sizes 1, 2 and 3).
SEARCH_MEMBERS = 180


def amortized_rate(rate_per_hour: float, one_time_s: float, members: int = SEARCH_MEMBERS) -> float:
    """Members an hour over a search of ``members`` at ``rate_per_hour`` after ``one_time_s``
    seconds of one-time work (a precompile)."""
    return members / (one_time_s / 3600 + members / rate_per_hour) if rate_per_hour > 0 else 0.0


# the warm-up's members are drawn with this seed offset, so that they are not the measured ones
WARMUP_SEED_OFFSET = 7919


def _warmed(r: dict) -> str:
    """', after 24 warm-up members (310 s, not counted)' for an optimized run that warmed up."""
    w = r.get("warmup")
    if not w:
        return ""
    return (f", after {counted(w['members'], 'warm-up member')} ({w['wall_s']:.0f} s"
            f"{_layers(w['stages_compiled_sum'], w['stages_sum'], w.get('stages_loaded_sum', 0))}, not counted)")


def _until(jobs: Sequence[MemberJob], start: float, limit: float | None, mode: str) -> Iterator[MemberJob]:
    """``jobs`` one at a time as the evaluator asks for them, none once ``limit`` seconds have passed
    since ``start`` (``time.perf_counter()``); says so once."""
    for i, job in enumerate(jobs):
        if limit and time.perf_counter() - start > limit:
            print(f"[{mode}] time limit: no member started after {limit:.0f} s ({i} of {len(jobs)} started); "
                  "waiting for those in flight", file=sys.stderr, flush=True)
            return
        yield job


AUTOTUNE_DIR = "xla_gpu_per_fusion_autotune_cache_dir"  # jax's name for it inside its cache directory


def _autotuned(r: dict) -> str:
    """An optimized run's autotuning in words ("" where it autotuned nothing and was given nothing,
    as on a CPU): ', 412 fusions autotuned (1,204 given)'."""
    added, given = r.get("autotune_entries_added") or 0, r.get("autotune_entries_given") or 0
    if not added and not given:
        return ""
    return f", {added:,} fusions autotuned" + (f" ({given:,} given)" if r.get("autotune_from") else "")


def _entries(folder: str) -> int:
    """Files under ``folder`` (0 if it does not exist): XLA's per-fusion autotuning results, one each."""
    return sum(len(files) for _, _, files in os.walk(folder))


def main() -> None:
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", type=int, default=24)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--train-examples", type=int)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, help="the proxy recipe's batch size unless given (256 today)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a trainer setting of the proxy recipe both modes train with, as `nas train --set` "
                         "(e.g. learning_rate=0.4); repeatable")
    ap.add_argument("--width", type=float, default=1.0, help="width multiplier of the sampled members")
    ap.add_argument("--head", type=int, default=1280, help="head filters of the sampled members")
    ap.add_argument("--blocks", type=blocks_arg, default=7, metavar="K", help=BLOCKS_HELP)
    ap.add_argument("--optimized-variant",
                    help="compile options for the optimized mode only, a variant of bench_compile_options "
                         "(e.g. autotune0-shift), or several, comma-separated, each an optimized run of its own; "
                         "the naive mode keeps the defaults")
    ap.add_argument("--backend", default="auto", choices=["auto", "processes", "pipelined", "sequential", "stacked"],
                    help="the optimized mode's evaluator (auto: stacked for a stacked variant, else processes "
                         "on a GPU and pipelined elsewhere)")
    ap.add_argument("--stack-slots", type=int, default=8,
                    help="stacked: members trained together as one program (trainer/stacked.py)")
    ap.add_argument("--stack-ahead", type=int,
                    help="stacked: stacks built and compiled on threads while one trains (default: a quarter of "
                         "the machine's cores, 1 to 4)")
    ap.add_argument("--workers", type=int, default=8, help="processes: members in flight at once")
    ap.add_argument("--compile-workers", type=int, default=8)
    ap.add_argument("--train-workers", type=int, default=2)
    ap.add_argument("--seed", type=seed_arg, default=0)
    ap.add_argument("--naive-members", type=int,
                    help="run the naive loop on only the first N members (its rate is per member; the optimized "
                         "path needs many members to fill its pipeline), to fit a device-time budget")
    ap.add_argument("--naive-time-limit", type=float,
                    help="seconds: the naive loop starts no member after this and finishes the one it is on")
    ap.add_argument("--optimized-time-limit", type=float,
                    help="seconds: the optimized mode starts no member after this, waits for those in flight, "
                         "and rates the finished members over the seconds until the last one finished")
    ap.add_argument("--optimized-hard-stop", type=float, metavar="S",
                    help="with --optimized-time-limit L: stop the optimized mode at S seconds whatever has "
                         "finished, dropping members still running (default L + max(L, 180))")
    ap.add_argument("--autotune-from", metavar="DIR",
                    help="start the optimized mode's caches with XLA's per-fusion autotuning results in DIR (a "
                         "search run's jax_cache/xla_gpu_per_fusion_autotune_cache_dir): the optimized path as in "
                         "a search that has autotuned those fusions already; the naive mode has no caches")
    ap.add_argument("--optimized-warmup", type=int, default=0, metavar="N",
                    help="before the optimized mode's clock starts, evaluate N other random members with its "
                         "workers (not counted): the path as it runs N members into a search, its programs and "
                         "autotuning cached (what per-layer and padded programs need to pay off)")
    ap.add_argument("--optimized-precompile", type=int, default=0, metavar="N",
                    help="with a padded variant: before the optimized mode's clock starts, compile every padded layer "
                         "kind of the space (its 12 covering members, not trained) in N processes into its cache "
                         "(nas/precompile.py; not counted in the rate; the summary also charges it to a "
                         f"{SEARCH_MEMBERS}-member search)")
    ap.add_argument("--precompile-time-limit", type=float, metavar="S",
                    help="seconds: the precompile starts no covering member after this and stops at twice this, "
                         "abandoning those still compiling (workers compile what is missing as they meet it)")
    ap.add_argument("--warmup-time-limit", type=float, metavar="S",
                    help="seconds: the warm-up starts no member after this and waits for those in flight")
    ap.add_argument("--out", help="write the results here as JSON")
    ap.add_argument("--mode", choices=["naive", "optimized"], help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mode:
        from search_space.errors import UserError

        try:
            result = run_mode(args)
        except UserError as e:  # bad input (a missing data set, ...): one line, and the parent stops on it
            print(f"bench_throughput: {e}", file=sys.stderr)
            sys.exit(2)
        print(json.dumps(result))
        return
    from search_space.errors import UserError

    try:  # a bad --set item: one line before either mode starts
        config = bench_config(args.epochs, args.batch_size, args.set)
    except UserError as e:
        print(f"bench_throughput: {e}", file=sys.stderr)
        sys.exit(2)
    out: dict = {"trainer": {"epochs": config.epochs, "batch_size": config.batch_size,
                             "learning_rate": config.learning_rate, "set": list(args.set)}}
    base = list(sys.argv[1:])  # the same options for both modes, less --out and the variants
    for flag in ("--out", "--optimized-variant", "--autotune-from"):
        if flag in base:
            i = base.index(flag)
            del base[i:i + 2]
    if args.autotune_from and not os.path.isdir(args.autotune_from):
        print(f"bench_throughput: --autotune-from {args.autotune_from}: not a directory", file=sys.stderr)
        sys.exit(2)
    variants = [v for v in (args.optimized_variant or "").split(",") if v] or [None]
    if variants != [None]:
        from experiments.bench_compile_options import require_variant, variant_env

        for v in variants:
            require_variant(v, "bench_throughput")
    runs: dict = {}
    # the naive run last: it is the one a time limit may cut short
    for mode, variant in [("optimized", v) for v in variants] + [("naive", None)]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
        extra = []
        if variant:
            env, extra = variant_env(variant, env), ["--optimized-variant", variant]
        with tempfile.TemporaryDirectory(prefix=f"bench-{mode}-") as cache:
            autotuned = os.path.join(cache, AUTOTUNE_DIR)  # where jax keeps XLA's autotuning results (optimized)
            if mode == "optimized" and args.autotune_from:
                shutil.copytree(args.autotune_from, autotuned)
            before = _entries(autotuned)
            proc = subprocess.run([sys.executable, "-m", "experiments.bench_throughput", *base, *extra,
                                   "--mode", mode, "--cache-dir", cache], env=env, stdout=subprocess.PIPE, text=True)
            after = _entries(autotuned)
        if proc.returncode == 2:  # the child said why in one line
            sys.exit(2)
        if proc.returncode != 0:
            sys.exit(f"bench_throughput: the {mode} run{f' ({variant})' if variant else ''} failed "
                     f"(exit {proc.returncode})")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if mode == "optimized":
            # fusions it found autotuned already, and those it autotuned (XLA adds a file per fusion)
            result.update(autotune_from=args.autotune_from, autotune_entries_given=before,
                          autotune_entries_added=after - before)
            runs[result["variant"]] = result
            out["optimized"] = max(runs.values(), key=lambda r: r["evals_per_device_hour"])
            if len(variants) > 1:
                out["optimized_runs"] = runs
        else:
            out["naive"] = result
        if args.out:  # each run's figures are kept as soon as they exist
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    naive_rate = out["naive"]["evals_per_device_hour"]
    ratio = out["optimized"]["evals_per_device_hour"] / naive_rate
    out["ratio"] = ratio
    if len(variants) > 1:
        out["ratios"] = {v: r["evals_per_device_hour"] / naive_rate for v, r in runs.items()}
    common = sorted(set(out["naive"]["accuracies"]) & set(out["optimized"]["accuracies"]), key=int)
    diffs = [abs(out["naive"]["accuracies"][k] - out["optimized"]["accuracies"][k]) for k in common]
    out["max_accuracy_difference"] = max(diffs) if diffs else None
    for mode, r in [("naive", out["naive"])] + [("optimized", r) for r in runs.values()]:
        print(f"{mode:>9} ({r['evaluator']}, {r['variant']} compile options): {counted(r['members'], 'member')} "
              f"in {r['wall_s']:.1f} s = {r['evals_per_device_hour']:.0f} evaluations per device-hour "
              f"(setup {r['setup_s_sum']:.0f} s, compile {r['compile_s_sum']:.0f} s of which tracing "
              f"{r['trace_s_sum']:.0f} s{_layers(r['stages_compiled_sum'], r['stages_sum'], r.get('stages_loaded_sum', 0))}, "
              f"train {r['train_s_sum']:.0f} s summed{_first_epoch(r.get('first_epoch_extra_s_mean'), ' a member')}"
              f"{_autotuned(r)}{_precompiled(r)}{_warmed(r)}; "
              f"mean val accuracy {r['mean_val_accuracy']:.4f})")
    agreement = (f"the {counted(len(common), 'member')} both trained differ in validation "
                 f"accuracy by at most {out['max_accuracy_difference']:.4f}" if common
                 else "no member was trained by both")
    if len(variants) > 1:
        print("ratios: " + ", ".join(f"{v} {x:.2f}x" for v, x in out["ratios"].items()))
    for r in runs.values():
        if r.get("precompile"):
            rate = amortized_rate(r["evals_per_device_hour"], r["precompile"]["wall_s"])
            r["amortized"] = {"members": SEARCH_MEMBERS, "evals_per_device_hour": rate, "ratio": rate / naive_rate}
            print(f"{r['variant']}: with its precompile charged to a {SEARCH_MEMBERS}-member search at this rate, "
                  f"{rate:.0f} evaluations per device-hour = {rate / naive_rate:.2f}x naive")
    t = out["trainer"]
    print(f"both modes: {counted(t['epochs'], 'epoch')} at batch {t['batch_size']}, lr {t['learning_rate']:g}"
          f"{' (' + ', '.join(t['set']) + ')' if t['set'] else ''}")
    print(f"ratio optimized / naive: {ratio:.2f}x ({out['optimized']['variant']} compile options) on "
          f"{out['naive']['device']} ({out['naive']['backend']}, jax {out['naive']['jax']}"
          f"{', under MPS' if out['naive'].get('mps') else ''}); {agreement}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
