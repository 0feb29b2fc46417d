"""What XLA plans on a GPU for a member's and a stacked frame's epoch program, without a GPU.

    pip install "jax-cuda12-plugin[with-cuda]==$(python -c 'import jaxlib; print(jaxlib.__version__)')"
    python -m experiments.check_gpu_plan --resolutions 16,32 --slots 1,8 --out gpu_plan.json

JAX's CUDA plugin can compile for a GPU that is described rather than attached (XLA's deviceless
compilation: ``jax.experimental.topologies.get_topology_desc`` with a target description,
experiments/gpu_targets/h100.pbtxt). This script builds, on the machine it runs on, the epoch
program of a sampled search member and of trainer/stacked.py's frame at each ``--slots`` for each
input resolution, exactly as the search trains them on a GPU (the CIFAR-10 proxy recipe, batch 256,
bf16, a variant's lowering, the GPU's defaults elsewhere: ``NAS_PROGRAM_BACKEND=gpu``; frames with
the stacked backend's XLA options, ``--xla-slop``), compiles each for that GPU, and prints what the
compiled program says:

- the memory XLA plans for it (temporaries, arguments and outputs less what they share:
  trainer/stacked.py's ``planned_bytes``, what ``program_memory`` reads on the device) against what
  a stacked run lets a stack plan on that GPU (``MEMORY_SHARE`` of ``--mem-fraction`` of its
  memory), so the slots a frame can take are known before a GPU session spends minutes compiling
  stacks that do not fit;
- its kernels (fusions and library calls in the optimized program), a count of the launches a
  training step makes;
- its tracing and compiling seconds here: a frame's compile is the stacked path's up-front cost.

What it cannot say: the plan is XLA's without a device to ask, so nothing is autotuned (as with
``--xla_gpu_autotune_level=0``) and matrix products go to cuBLAS rather than Triton (the deviceless
Triton tiling of the resize's float32 product fails: "Couldn't find output tile sizes"); the plan
is this machine's jax version's, and a GPU machine with another may plan otherwise. No speeds: the
compiled program's cost analysis is empty without a device. And XLA fits a program to a share of
the device memory it is told of: a GPU process tells it the allocator's limit (90% of the memory for
a stacked run), a deviceless compile nothing, where XLA assumes 80%, so plans that XLA had to fit
by recomputing come out smaller here than they would on the device.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

TARGETS = Path(__file__).resolve().parent / "gpu_targets"
GIB = 2**30
DEVICELESS_XLA_FLAGS = "--xla_gpu_enable_triton_gemm=false"  # see the module docstring


def target_memory_bytes(text: str) -> int:
    """The device memory (bytes) a GPU target description names."""
    m = re.search(r"device_memory_size:\s*(\d+)", text)
    if not m:
        raise ValueError("the target description names no device_memory_size")
    return int(m.group(1))


def target_text(name: str) -> str:
    """A target description by name (a file in experiments/gpu_targets) or path; ValueError when missing."""
    path = Path(name) if name.endswith(".pbtxt") else TARGETS / f"{name}.pbtxt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TARGETS.glob("*.pbtxt")))
        raise ValueError(f"no GPU target {name!r} (known: {known}; or a .pbtxt path)")
    return path.read_text()


def cuda_plugin() -> str | None:
    """The installed CUDA plugin of JAX and its version ("jax-cuda13-plugin 0.11.2"), or None."""
    if importlib.util.find_spec("jax_plugins") is None:
        return None
    for cuda in ("13", "12"):
        if importlib.util.find_spec(f"jax_plugins.xla_cuda{cuda}") is not None:
            name = f"jax-cuda{cuda}-plugin"
            try:
                return f"{name} {importlib.metadata.version(name)}"
            except importlib.metadata.PackageNotFoundError:
                return name
    return None


def cuda_plugin_missing() -> str | None:
    """Why a deviceless GPU compile cannot run here, or None when JAX's CUDA plugin is installed."""
    if cuda_plugin() is not None:
        return None
    import jaxlib

    return ("needs JAX's CUDA plugin to compile for a GPU (no GPU needed): pip install "
            f"'jax-cuda12-plugin[with-cuda]=={jaxlib.__version__}' (about 3 GB)")


def count_kernels(hlo_text: str) -> int:
    """Kernels in an optimized GPU program's text: its fusions and library (custom) calls."""
    return sum(1 for line in hlo_text.splitlines() if re.search(r"\s(fusion|custom-call)\(", line))


def plan_row(kind: str, trainer: Any, epoch_key: Any, device: Any, budget: int, slots: int,
             compiler_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compile ``trainer``'s epoch program for ``device`` (a described GPU) with the XLA options the
    search compiles it with, and read its plan."""
    from trainer.program_store import shapes_on
    from trainer.stacked import planned_bytes
    from trainer.train import program_arguments

    arguments = shapes_on(program_arguments(trainer, epoch_key)["epoch"], device)
    start = time.perf_counter()
    lowered = trainer._epoch.lower(*arguments)
    traced = time.perf_counter()
    compiled = lowered.compile(compiler_options)
    done = time.perf_counter()
    m = compiled.memory_analysis()
    total = planned_bytes(m)
    return {"program": kind, "resolution": trainer.resolution, "slots": slots,
            "temp_gib": m.temp_size_in_bytes / GIB, "arguments_gib": m.argument_size_in_bytes / GIB,
            "outputs_gib": m.output_size_in_bytes / GIB, "total_gib": total / GIB,
            "per_slot_gib": total / GIB / slots, "fits": total <= budget,
            "kernels": count_kernels(compiled.as_text()),
            "trace_s": traced - start, "compile_s": done - traced}


def _members(resolutions: list[int], args: argparse.Namespace) -> dict[int, Any]:
    """One sampled member per resolution (the benchmark's sampling, drawn until each is met)."""
    from experiments.bench_throughput import _sample_members

    found: dict[int, Any] = {}
    for m in _sample_members(32, 200, args.width, args.head, args.seed, args.blocks):
        found.setdefault(m.resolution, m)
    missing = [r for r in resolutions if r not in found]
    if missing:
        raise ValueError(f"no sampled member has input resolution {missing} (the space's: {sorted(found)})")
    return {r: found[r] for r in resolutions}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Plan every requested program; prints a line per program as it compiles."""
    import jax
    import numpy as np
    from jax.experimental import topologies

    from experiments.bench_compile_options import variant_config
    from experiments.bench_throughput import bench_config
    from trainer.data import Split
    from trainer.stacked import MEMORY_SHARE, STACK_COMPILER_OPTIONS, StackedTrainer
    from trainer.train import make_trainer

    if args.xla_slop is None:
        args.xla_slop = STACK_COMPILER_OPTIONS["xla_gpu_memory_limit_slop_factor"]
    text = target_text(args.target)
    budget = int(MEMORY_SHARE * args.mem_fraction * target_memory_bytes(text))
    device = topologies.get_topology_desc("target", "cuda", target_config=text, topology="1x1x1").devices[0]
    n, v = args.train_examples, args.val_size
    split = Split("cifar10-shaped", np.zeros((n, 32, 32, 3), np.uint8), np.zeros(n, np.int64),
                  np.zeros((v, 32, 32, 3), np.uint8), np.zeros(v, np.int64), tuple(f"c{i}" for i in range(10)))
    config = variant_config(args.variant, bench_config(10)).replace(dtype="bfloat16", compile_unit="program")
    print(f"check_gpu_plan: {device.device_kind}, variant {args.variant}, frames fitted by XLA to {args.xla_slop}% "
          f"of its limit, a stack may plan "
          f"{budget / GIB:.1f} GiB ({MEMORY_SHARE:.0%} of {args.mem_fraction:.0%} of the device)", flush=True)
    rows = []
    for res, member in _members(args.resolutions, args).items():
        jobs = [("member", 1)] if args.member else []
        jobs += [("frame", s) for s in args.slots]
        for kind, slots in jobs:
            if kind == "member":
                trainer, key, options = make_trainer(member, split, config, 0), jax.random.key(0), None
            else:
                trainer = StackedTrainer([member], split, config, [0], slots=slots)
                key = jax.numpy.stack([jax.random.key(0)] * slots)
                options = {**STACK_COMPILER_OPTIONS, "xla_gpu_memory_limit_slop_factor": args.xla_slop}
            row = plan_row(kind, trainer, key, device, budget, slots, options)
            rows.append(row)
            print(f"  {kind:6} {res:3d} px x{slots}: {row['total_gib']:6.2f} GiB "
                  f"({row['per_slot_gib']:.2f} a slot; {'fits' if row['fits'] else 'over'}), "
                  f"{row['kernels']} kernels, traced {row['trace_s']:.0f} s, compiled {row['compile_s']:.0f} s",
                  flush=True)
    return rows


def prepare_deviceless(prog: str, variant: str, gpu: bool) -> None:
    """Before jax loads, set this process up to build a variant's programs (its XLA flags and
    lowering, no persistent compilation cache) and, with ``gpu``, to compile them for a described
    GPU: JAX's CUDA plugin required, Triton's GEMM off (the module docstring), the CPU platform (the
    programs run nowhere; the CUDA backend is not started) and the GPU's program backend (its
    lowering defaults, dtype and backward passes). A missing requirement: one line, exit status 2."""
    from experiments.bench_compile_options import variant_env

    why = cuda_plugin_missing() if gpu else None
    if why:
        _fail(f"{prog}: {why}")
    if "jax" in sys.modules:
        _fail(f"{prog}: run it as its own process (the variant's XLA flags must be set before jax loads)")
    env = variant_env(variant, dict(os.environ))
    if gpu:
        env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {DEVICELESS_XLA_FLAGS}".strip()
        env["JAX_PLATFORMS"] = "cpu"
        env["NAS_PROGRAM_BACKEND"] = "gpu"
    for var in [k for k in os.environ if k.startswith("JAX_COMPILATION_CACHE")]:
        del os.environ[var]  # variant_env leaves it out; an executable it served would not serialize
    os.environ.update(env)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _fail(line: str) -> None:
    """Bad input or a missing requirement: one line on stderr, exit status 2."""
    print(line, file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    from experiments.bench_compile_options import require_variant
    from experiments.bench_throughput import BLOCKS_HELP, blocks_arg
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="h100", help="a GPU in experiments/gpu_targets, or a .pbtxt path")
    ap.add_argument("--variant", default="autotune0-matmul-stacked",
                    help="a bench_compile_options variant: its convolution lowering (its autotuning does not apply)")
    ap.add_argument("--resolutions", type=_int_list, default=[16, 24, 28, 32])
    ap.add_argument("--slots", type=_int_list, default=[8], help="frames at these slot counts (comma-separated)")
    ap.add_argument("--no-member", dest="member", action="store_false", help="plan only the frames")
    ap.add_argument("--xla-slop", type=int,
                    help="the percentage of its memory limit XLA fits a frame's plan to by recomputing "
                         "(xla_gpu_memory_limit_slop_factor; default: the stacked backend's, "
                         "trainer.stacked.STACK_COMPILER_OPTIONS; XLA's own is 95)")
    ap.add_argument("--mem-fraction", type=float, default=0.9,
                    help="of the device's memory that JAX's allocator takes (gpu_session.sh gives a stacked "
                         "variant 0.9; JAX's default is 0.75)")
    ap.add_argument("--train-examples", type=int, default=45_000)
    ap.add_argument("--val-size", type=int, default=5_000)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--head", type=int, default=1280)
    ap.add_argument("--blocks", type=blocks_arg, default=7, metavar="K", help=BLOCKS_HELP)
    ap.add_argument("--seed", type=seed_arg, default=0, help="of the sampled members")
    ap.add_argument("--out", help="write the rows here as JSON")
    args = ap.parse_args(argv)
    prog = "check_gpu_plan"
    require_variant(args.variant, prog)
    try:
        target_text(args.target)
    except ValueError as e:
        _fail(f"{prog}: {e}")
    prepare_deviceless(prog, args.variant, gpu=True)
    try:
        rows = run(args)
    except ValueError as e:
        _fail(f"{prog}: {e}")
    if args.out:
        Path(args.out).write_text(json.dumps({"target": args.target, "variant": args.variant,
                                              "mem_fraction": args.mem_fraction, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
