"""What a new member costs under different compile options: compile seconds against training speed.

    python -m experiments.bench_compile_options --out compile_options.json                  # GPU
    python -m experiments.bench_compile_options --members 1 --train-examples 1000 --width 0.25 \\
        --variants default,shift                                                           # CPU smoke
    python -m experiments.bench_compile_options --pick compile_options.json   # prints the best variant

On a GPU, compiling a new small MnasNet-style member takes 45-55 s in bf16, almost all of it XLA's
autotuning (3.9 s with autotuning off, but that build trained at 1.0k img/s: PERF_NOTES.md), and
autotuning runs on the GPU itself, so several compiles at once, or a compile beside training, slow
each other down (on an H200, eight members compiled in eight worker processes took 150-200 s each).
So the cheapest evaluation may come from compiling less rather than compiling in parallel. Each
variant below runs in a fresh process (no compilation cache) on the same sampled members:

- default: bf16, XLA's default autotuning.
- no-triton-gemm: matrix products through cuBLAS instead of autotuned Triton fusions.
- autotune0: ``--xla_gpu_autotune_level=0`` (no autotuning).
- shift / autotune0-shift: depthwise convolutions as sums of shifted copies (``NAS_DEPTHWISE=shift``,
  plain fused arithmetic with nothing to autotune) instead of grouped convolutions.
- matmul / autotune0-matmul / autotune0-matmul-cublas: no convolution left at all: dense
  convolutions as matrix products over stacked shifted inputs (``NAS_CONV=matmul``, im2col) and
  depthwise ones as shifted sums; with autotuning off, cuBLAS still picks matrix-product kernels by
  heuristics (``-cublas`` also routes fused products away from Triton's untuned tilings).
- matmul-grouped: dense convolutions as matrix products, depthwise ones kept as grouped
  convolutions (cuDNN on GPUs): 17 of MobileNetV2's 52 convolutions left to cuDNN, for when only
  the 1x1 convolutions' first runs are slow (experiments/bench_first_run.py tells).
- f32 / f32-autotune0: float32 compute (TF32 matrix units on GPUs).
- eval-at-train-batch: the validation program at the training batch size (256) instead of 1000, so
  that its forward convolutions have the training program's shapes and may reuse their autotuning
  (the evaluation program is a second compile with its own autotuning).
- moving-average-bn: evaluation with the batch-norm moving averages (``trainer.precise_bn_images=0``)
  instead of statistics recomputed before scoring: what precise BN adds to the evaluation
  program's compile (8-15% of a member's compile on the 2-core CPU; trainer/precise_bn.py).
- layer / autotune0-layer / shift-layer: per-layer programs (``trainer.compile_unit=layer``,
  trainer/layerwise.py) that a worker process keeps and later members with the same layer reuse,
  so a layer's compile and its programs' first-run costs (cuDNN plans) are paid once per worker
  for every member that has it; ``shift-layer`` with depthwise convolutions as shifted sums. This
  benchmark measures each variant on fresh processes, so it sees the first member's cost only;
  experiments/bench_throughput.py --optimized-variant measures the reuse.
- padded / shift-padded / autotune0-padded / autotune0-matmul-padded: per-layer programs of the search space's envelope
  (``trainer.compile_unit=padded``, trainer/padded.py): every member's layer at a position runs
  the program of that position's widest layer with the member's weights in a corner of its arrays,
  so members share programs whatever their widths, kernels, squeeze-excite and shortcuts (169
  layer kinds for the CIFAR-10 space, against 1,741-1,786 distinct exact layers in a random
  search's 180 members: experiments/results/shape_reuse), at the price of the envelope's arithmetic.
- stacked / shift-stacked / autotune0-matmul-stacked (not run unless named;
  experiments/bench_throughput.py runs them on its stacked backend): one program per input
  resolution that trains any member of the space, several at once (``trainer.compile_unit=stacked``,
  trainer/stacked.py). Under vmap a convolution with per-member kernels becomes a grouped one;
  autotune0-matmul-stacked has none left (batched matrix products), at the memory price of its
  im2col copies. Dense convolutions as one matrix product per kernel tap, summed, were tried
  instead and planned more memory, not less, on the CPU (30.3 GiB a slot of the 32 px frame
  against 24.5; XLA keeps each tap's shifted input for the kernel's gradient; 2026-12-07).
- nocmdbuf / autotune0-nocmdbuf / autotune0-matmul-nocmdbuf: without XLA's command buffers (CUDA
  graphs, ``--xla_gpu_enable_command_buffer=``), a control for the one-time costs. On the H100
  (2026-11-26) MobileNetV2's first epoch took 18.4 s against 1.6 s for each later one and its
  scoring 6.5 s, also with programs loaded from the persistent cache (so not compiling), while
  autotune0-matmul, with no XLA convolution left, did a whole epoch and its scoring in 1.1 s: that
  points at cuDNN's convolutions (experiments/bench_first_run.py: plans built, some kernels
  compiled, on first use). XLA records the fusions between library calls into CUDA graphs, built
  and instantiated when a program first runs, and every cuDNN convolution splits them, so a
  MobileNetV2 step with ~150 convolutions holds that many graphs: if autotune0-nocmdbuf's first
  epoch is as slow as autotune0's, the cost is cuDNN's own, not the graphs around its calls.
- cpu-o1 / cpu-o0 / cpu-cheap-llvm (XLA's CPU backend only; not run unless named): LLVM
  optimization level 1 or 0 (``--xla_backend_optimization_level``) or LLVM's expensive passes off
  (``--xla_llvm_disable_expensive_passes``). On the 2-core CPU (2026-12-02, two quarter-width
  Fashion-MNIST members, batch 32) none pays: compile 22.3-22.8 s by default, 20.2-22.2 s at o1 and
  21.9 s without the expensive passes (run-to-run noise is as large), 13.8 s at o0, which trained
  3.3x slower (178 against 543-582 img/s).

For each variant: setup, compile (with its tracing part) seconds and training images/s per member,
validation accuracy after ``--epochs``, and the implied cost of one 10-epoch proxy evaluation on 45,000 images
(setup + compile + 450,000 / images-per-second) with its evaluations per device-hour.
``--blocks K`` keeps only the first K of each sampled member's seven blocks (faster compiles, for
checking the benchmark itself on a CPU; its figures are then no search member's).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from typing import Any, Iterator

VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "no-triton-gemm": {"xla": "--xla_gpu_enable_triton_gemm=false"},
    "autotune0": {"xla": "--xla_gpu_autotune_level=0"},
    "shift": {"depthwise": "shift"},
    "autotune0-shift": {"xla": "--xla_gpu_autotune_level=0", "depthwise": "shift"},
    "matmul": {"conv": "matmul", "depthwise": "shift"},
    "matmul-grouped": {"conv": "matmul", "depthwise": "grouped"},
    "autotune0-matmul": {"xla": "--xla_gpu_autotune_level=0", "conv": "matmul", "depthwise": "shift"},
    "autotune0-matmul-cublas": {"xla": "--xla_gpu_autotune_level=0 --xla_gpu_enable_triton_gemm=false",
                                "conv": "matmul", "depthwise": "shift"},
    "f32": {"dtype": "float32"},
    "f32-autotune0": {"dtype": "float32", "xla": "--xla_gpu_autotune_level=0"},
    "eval-at-train-batch": {"eval_batch": "train"},
    "moving-average-bn": {"bn_stats": "moving-average"},
    # trainer.compile_unit=layer (trainer/layerwise.py): per-layer programs shared across members
    "layer": {"compile_unit": "layer"},
    "autotune0-layer": {"xla": "--xla_gpu_autotune_level=0", "compile_unit": "layer"},
    # autotuned layers with depthwise convolutions as shifted sums, kept by long-lived workers: a
    # layer's compile and its programs' first-run costs paid once for every member that has it
    "shift-layer": {"depthwise": "shift", "compile_unit": "layer"},
    # trainer.compile_unit=padded (trainer/padded.py): per-layer programs at the space's widest layer
    # of each position, one set for the whole space (about 170 layer kinds at CIFAR sizes)
    "padded": {"compile_unit": "padded"},
    "shift-padded": {"depthwise": "shift", "compile_unit": "padded"},
    "autotune0-padded": {"xla": "--xla_gpu_autotune_level=0", "compile_unit": "padded"},
    "autotune0-matmul-padded": {"xla": "--xla_gpu_autotune_level=0", "conv": "matmul", "depthwise": "shift",
                                "compile_unit": "padded"},
    # trainer.compile_unit=stacked (trainer/stacked.py): one program per input resolution that
    # trains any member of the space, several at once (the throughput benchmark's stacked backend);
    # not among the defaults here, where one member at a time would pay a whole frame's arithmetic
    "stacked": {"compile_unit": "stacked"},
    "shift-stacked": {"depthwise": "shift", "compile_unit": "stacked"},
    "autotune0-matmul-stacked": {"xla": "--xla_gpu_autotune_level=0", "conv": "matmul", "depthwise": "shift",
                                 "compile_unit": "stacked"},
    # no command buffers (CUDA graphs): an empty list of command types
    "nocmdbuf": {"xla": "--xla_gpu_enable_command_buffer="},
    "autotune0-nocmdbuf": {"xla": "--xla_gpu_autotune_level=0 --xla_gpu_enable_command_buffer="},
    "autotune0-matmul-nocmdbuf": {"xla": "--xla_gpu_autotune_level=0 --xla_gpu_enable_command_buffer=",
                                  "conv": "matmul", "depthwise": "shift"},
    "cpu-o1": {"xla": "--xla_backend_optimization_level=1"},
    "cpu-o0": {"xla": "--xla_backend_optimization_level=0"},
    "cpu-cheap-llvm": {"xla": "--xla_llvm_disable_expensive_passes=true"},
}
# the cpu-* and stacked ones on request
DEFAULT_VARIANTS = [n for n in VARIANTS if not n.startswith("cpu-") and not n.endswith("stacked")]
TRAINER_KEYS = ("dtype", "eval_batch", "bn_stats", "compile_unit")  # variant settings that are TrainConfig fields
PROXY_IMAGES = 10 * 45_000  # one 10-epoch proxy evaluation on CIFAR-10's 45k training side


def variant_env(name: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` with variant ``name``'s XLA flags appended and its convolution lowering set (its dtype
    is a TrainConfig field, which the caller sets); no persistent compilation cache."""
    v = VARIANTS[name]
    out = {k: val for k, val in env.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    out["XLA_FLAGS"] = " ".join(x for x in (env.get("XLA_FLAGS", ""), v.get("xla", "")) if x)
    for key, var in (("depthwise", "NAS_DEPTHWISE"), ("conv", "NAS_CONV")):
        if key in v:
            out[var] = v[key]
    return out


def variant_config(name: str, config: Any) -> Any:
    """``config`` (a TrainConfig) with variant ``name``'s trainer settings (``TRAINER_KEYS``)."""
    v = VARIANTS[name]
    changes: dict[str, Any] = {"dtype": v.get("dtype", "auto")}
    if v.get("eval_batch") == "train":
        changes["eval_batch_size"] = config.batch_size
    if v.get("bn_stats") == "moving-average":
        changes["precise_bn_images"] = 0
    if "compile_unit" in v:
        changes["compile_unit"] = v["compile_unit"]
    return config.replace(**changes)


def require_variant(name: str, prog: str) -> dict[str, str]:
    """Variant ``name``'s settings, or exit with one error line naming the known ones."""
    if name not in VARIANTS:
        sys.exit(f"{prog}: unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def shell_exports(name: str) -> str:
    """Shell ``export`` lines that give a search or study process variant ``name``'s XLA flags and
    convolution lowering; its trainer settings (dtype, evaluation batch, batch-norm statistics,
    compile unit) are ``--set`` arguments instead (:func:`search_sets`)."""
    import shlex

    require_variant(name, "bench_compile_options")
    env = variant_env(name, {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")})
    return "\n".join(f"export {k}={shlex.quote(val)}" for k, val in sorted(env.items()) if val)


def search_sets(name: str) -> list[str]:
    """Variant ``name``'s trainer settings as ``nas search --set`` items (``trainer.FIELD=VALUE``),
    those that differ from the default config; the batch-size-dependent evaluation batch is left
    out (it follows the search's own batch size only in this benchmark)."""
    import dataclasses

    from trainer.config import TrainConfig

    require_variant(name, "bench_compile_options")
    base = TrainConfig()
    changed = variant_config(name, base)
    return [f"trainer.{f.name}={getattr(changed, f.name)}" for f in dataclasses.fields(TrainConfig)
            if f.name != "eval_batch_size" and getattr(changed, f.name) != getattr(base, f.name)]


def member_cost_s(row: dict, workers: int = 1) -> float:
    """Seconds per 10-epoch proxy evaluation of a measured variant (a row of ``--out``) when
    ``workers`` processes each compile and train members, sharing one GPU: the host part (setup and
    compile) of one member overlaps the others' training, so a member costs the longer of its GPU
    part (the first epoch's one-time cost, 10 epochs at the steady speed, scoring) and its whole
    evaluation over ``workers``. One worker: the whole evaluation, one after another (what the
    ``proxy_evals_per_hour`` column says). A model, not a measurement: it ignores what workers'
    autotuning takes of the GPU and what sharing the GPU gains (1.26x for seven MobileNetV2
    trainings on the H200, 2026-12-04), which bench_throughput measures."""
    whole = 3600 / row["proxy_evals_per_hour"]
    if workers <= 1:
        return whole
    gpu = row["first_epoch_extra_s_mean"] + PROXY_IMAGES / row["images_per_s_mean"] + row["eval_s_mean"]
    return max(gpu, whole / workers)


def pick_best(rows: list[dict], accuracy_tolerance: float = 0.15, workers: int = 1) -> str:
    """The measured variant with the lowest cost per 10-epoch evaluation with ``workers`` worker
    processes (:func:`member_cost_s`; one: the most evaluations per hour one after another) among
    those that learn: a finite final loss and an accuracy within ``accuracy_tolerance`` of the most
    accurate variant's (a lowering that trains fast but badly is no saving). Raises ValueError when
    no variant was measured. Workers favour variants that compile long but train fast: the H200's
    autotune0-matmul (32 s compile, 25 s of GPU a member) costs 60 s alone and 25 s with 4 workers.

    The tolerance is wide because the benchmark's accuracy is one member after one short epoch,
    which is noisy: on an H100 (2026-11-26) the same member reached 0.29 with depthwise convolutions
    as shifted sums and 0.22 with the same depthwise lowering plus dense convolutions as matrix
    products (the same function, a different bf16 rounding), and 0.13 with cuBLAS products; a
    tolerance of 0.05 then picked the shift variant, which trained 7.6x slower than the matrix one."""
    done = [r for r in rows if "skipped" not in r
            and all(math.isfinite(m.get("final_loss", 0.0)) for m in r.get("members", []))]
    if not done:
        raise ValueError("no variant was measured")
    top = max(r["mean_val_accuracy"] for r in done)
    fair = [r for r in done if r["mean_val_accuracy"] >= top - accuracy_tolerance]
    return min(fair, key=lambda r: member_cost_s(r, workers))["variant"]


@contextlib.contextmanager
def timing_lock() -> Iterator[None]:
    """Exclusive use of the device while a variant times its training, when variants run side by
    side (``--parallel``): the parent names a lock file in ``NAS_BENCH_TIMING_LOCK``; without it,
    nothing to wait for."""
    path = os.environ.get("NAS_BENCH_TIMING_LOCK")
    if not path:
        yield
        return
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def run_variants(names: list[str], base: list[str], timeout: float, parallel: int,
                 out_path: str | None) -> list[dict]:
    """Each variant in a fresh process, ``parallel`` at a time, in ``names``' order in the result.

    Side by side, the processes compile at once (on a GPU, variants without autotuning compile on
    the host CPU only) but take turns for the timed training and evaluation (``timing_lock``), so
    images/s is measured alone on the device; compile seconds then include sharing the host's
    cores. A variant over ``timeout`` seconds (from its start) is killed and recorded as skipped."""
    import tempfile

    results: dict[str, dict] = {}
    pending = list(names)
    running: dict[str, tuple[subprocess.Popen, float, Any]] = {}
    lock = tempfile.NamedTemporaryFile(prefix="nas-bench-timing-", suffix=".lock", delete=False)
    lock.close()

    def record(name: str, row: dict) -> None:
        results[name] = row
        if out_path:
            with open(out_path, "w") as f:
                json.dump([results[n] for n in names if n in results], f, indent=1)

    try:
        while pending or running:
            while pending and len(running) < parallel:
                name = pending.pop(0)
                env = variant_env(name, dict(os.environ))
                if parallel > 1:
                    env["NAS_BENCH_TIMING_LOCK"] = lock.name
                stdout = tempfile.TemporaryFile(mode="w+")
                proc = subprocess.Popen([sys.executable, "-m", "experiments.bench_compile_options", *base,
                                         "--variant", name], env=env, stdout=stdout, text=True)
                running[name] = (proc, time.monotonic(), stdout)
            time.sleep(0.2)
            for name, (proc, started, stdout) in list(running.items()):
                if proc.poll() is None and time.monotonic() - started <= timeout:
                    continue
                del running[name]
                if proc.returncode is None:
                    proc.kill()
                    proc.wait()
                    print(f"[{name}] skipped: over {timeout:.0f} s", file=sys.stderr, flush=True)
                    record(name, {"variant": name, "skipped": f"over {timeout:.0f} s"})
                elif proc.returncode != 0:
                    record(name, {"variant": name, "skipped": f"exit {proc.returncode}"})
                else:
                    stdout.seek(0)
                    record(name, json.loads(stdout.read().strip().splitlines()[-1]))
                stdout.close()
    finally:
        for proc, _, stdout in running.values():
            proc.kill()
            stdout.close()
        os.unlink(lock.name)
    return [results[n] for n in names]


def run_variant(args: argparse.Namespace) -> dict:
    """One variant in this process (the parent set its environment)."""
    import jax
    import numpy as np

    from experiments.bench_throughput import _sample_members
    from trainer.config import TrainConfig
    from trainer.data import load_dataset, validation_split
    from trainer.train import PROGRAMS, make_trainer

    PROGRAMS.KEEP = 0  # each member's compile is measured, even a repeated architecture's
    v = VARIANTS[args.variant]
    ds = load_dataset(args.dataset)
    split = validation_split(ds, args.val_size, seed=0, train_examples=args.train_examples)
    members = _sample_members(split.native_resolution, args.members, args.width, args.head, args.seed,
                              args.blocks)
    config = variant_config(args.variant, TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                                                      warmup_epochs=min(1.0, args.epochs / 2)))
    rows = []
    for i, m in enumerate(members):
        t = make_trainer(m, split, config, seed=args.seed + i)
        compile_s = t.compile()
        with timing_lock():
            window = [time.time()]  # wall clock, comparable across the variants' processes
            epoch_s = []
            for e in range(args.epochs):
                start = time.perf_counter()
                losses = t.run_epoch(e)  # returns after its one host sync
                epoch_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            acc = float((t.logits(split.x_val).argmax(-1) == split.y_val).mean())
            eval_s = time.perf_counter() - start
            window.append(time.time())
        epoch_images = t.steps_per_epoch * t.batch_size
        # Steady-state speed from the epochs after the first: on the H100 the first epoch of a
        # MobileNetV2 took 18.4 s against 1.6 s for each later one, a one-time cost that a one-epoch
        # rate would spread over every epoch of the projection. With one epoch, that rate is all there is.
        ips = epoch_images * (len(epoch_s) - 1) / sum(epoch_s[1:]) if len(epoch_s) > 1 else epoch_images / epoch_s[0]
        first_extra = max(0.0, epoch_s[0] - epoch_images / ips)
        rows.append({"member": i, "resolution": m.resolution, "lowering": t.lowering, "setup_s": t.setup_s,
                     "compile_s": compile_s, "trace_s": t.trace_s, "images_per_s": ips, "epoch_s": epoch_s,
                     "first_epoch_extra_s": first_extra, "eval_s": eval_s,
                     "val_accuracy": acc, "final_loss": float(np.mean(losses)), "timed_window": window})
        print(f"[{args.variant}] member {i + 1}/{len(members)} {m.resolution}px: setup {t.setup_s:.1f} s, "
              f"compile {compile_s:.1f} s (tracing {t.trace_s:.1f} s), first epoch +{first_extra:.1f} s, "
              f"{ips:.0f} img/s, scoring {eval_s:.1f} s, acc {acc:.4f}", file=sys.stderr, flush=True)
    for r in rows:  # one 10-epoch proxy evaluation of this member: every one-time cost once
        r["proxy_s"] = (r["setup_s"] + r["compile_s"] + r["first_epoch_extra_s"] + PROXY_IMAGES / r["images_per_s"]
                        + r["eval_s"])
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    proxy_s = mean("proxy_s")
    return {"variant": args.variant, **v, "lowering": rows[0]["lowering"], "members": rows,
            "setup_s_mean": mean("setup_s"), "compile_s_mean": mean("compile_s"), "trace_s_mean": mean("trace_s"),
            "images_per_s_mean": mean("images_per_s"), "first_epoch_extra_s_mean": mean("first_epoch_extra_s"),
            "eval_s_mean": mean("eval_s"), "proxy_member_s": proxy_s,
            "proxy_evals_per_hour": 3600 / proxy_s, "mean_val_accuracy": mean("val_accuracy"),
            "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(), "jax": jax.__version__}


def main() -> None:
    from experiments.bench_throughput import BLOCKS_HELP, blocks_arg
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated, from {', '.join(VARIANTS)} (default: all but the cpu-* ones)")
    ap.add_argument("--members", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2,
                    help="timed epochs; from 2 on, the first one's extra cost is measured apart from the steady speed")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--train-examples", type=int, default=10_000)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--head", type=int, default=1280)
    ap.add_argument("--blocks", type=blocks_arg, default=7, metavar="K", help=BLOCKS_HELP)
    ap.add_argument("--seed", type=seed_arg, default=0)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per variant before it is skipped")
    ap.add_argument("--parallel", type=int, default=1,
                    help="variants run side by side: they compile at once and take turns to time their training "
                         "(for variants whose compile does not use the GPU, i.e. without autotuning)")
    ap.add_argument("--out", help="write the results here as JSON (after every variant)")
    ap.add_argument("--pick", metavar="JSON",
                    help="print the best variant of an earlier --out file (the lowest cost per evaluation with "
                         "--pick-workers workers among those within 0.15 of the best accuracy, finite loss) and exit")
    ap.add_argument("--pick-workers", type=int, default=1, metavar="N",
                    help="worker processes the picked variant will run in (a search's or bench_throughput's "
                         "--workers): with more than one, compiles overlap training, and a member costs the "
                         "longer of its GPU part and its whole evaluation over N")
    ap.add_argument("--exports", metavar="VARIANT",
                    help="print a variant's environment as shell exports (for a search or study to use it) and exit")
    ap.add_argument("--sets", metavar="VARIANT",
                    help="print a variant's trainer settings as nas search --set items, one a line, and exit")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.exports:
        print(shell_exports(args.exports))
        return
    if args.sets:
        print("\n".join(search_sets(args.sets)))
        return
    if args.pick:
        try:
            with open(args.pick) as f:
                print(pick_best(json.load(f), workers=args.pick_workers))
        except (OSError, ValueError) as e:  # JSONDecodeError is a ValueError
            sys.exit(f"bench_compile_options: cannot pick from {args.pick}: {e}")
        return
    if args.parallel < 1:
        sys.exit(f"bench_compile_options: --parallel must be at least 1, got {args.parallel}")
    if args.variant:
        print(json.dumps(run_variant(args)))
        return
    names = [n for n in args.variants.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"bench_compile_options: unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    base = list(sys.argv[1:])
    for flag in ("--out", "--variants", "--parallel"):
        if flag in base:
            i = base.index(flag)
            del base[i:i + 2]
    out = run_variants(names, base, args.timeout, args.parallel, args.out)
    done = [r for r in out if "skipped" not in r]
    base_row = next((r for r in done if r["variant"] == "default"), done[0] if done else None)
    for r in out:
        if "skipped" in r:
            print(f"{r['variant']:>16}: skipped ({r['skipped']})")
            continue
        print(f"{r['variant']:>16}: setup {r['setup_s_mean']:4.1f} s  compile {r['compile_s_mean']:6.1f} s "
              f"(tracing {r['trace_s_mean']:4.1f} s)  first epoch +{r['first_epoch_extra_s_mean']:4.1f} s  "
              f"{r['images_per_s_mean']:8.0f} img/s  scoring {r['eval_s_mean']:4.1f} s  "
              f"acc {r['mean_val_accuracy']:.4f}  10-epoch proxy member {r['proxy_member_s']:6.1f} s = "
              f"{r['proxy_evals_per_hour']:5.0f}/h ({r['proxy_evals_per_hour'] / base_row['proxy_evals_per_hour']:.2f}x "
              f"{base_row['variant']})  [{r['device']}]")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
