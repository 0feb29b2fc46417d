"""Compile the stacked frames' programs ahead, for a GPU described rather than attached, into a program store.

    # with the GPU machine's versions (.ci/gpu-versions makes their venv) and its CUDA plugin, kept
    # apart from the venv (3.7 GB; no GPU needed):
    /tmp/nas-gpu-versions/bin/python -m pip install --target /tmp/plug13 "jax-cuda13-plugin[with-cuda]==0.11.2"
    PYTHONPATH=/tmp/plug13 /tmp/nas-gpu-versions/bin/python -m experiments.ship_programs --out .programs
    # then on the GPU machine, carrying .programs: NAS_PROGRAM_STORE=.programs ... (docs/gpu.md)

A stacked frame (trainer/stacked.py) serves every member of its input resolution, so the whole
CIFAR-10 search trains through four of them; each compiles in minutes (the 32 px one in 213-241 s
on one CPU core). This script compiles each frame's epoch and scoring programs on the machine it
runs on, for the GPU a target description names (XLA's deviceless compilation, as
experiments/check_gpu_plan.py does), exactly as the stacked benchmark and search build them (the
CIFAR-10 proxy recipe, a variant's lowering and trainer settings, ``--slots`` members a stack, the
45k/5k split's shapes), and writes them to a program store (trainer/program_store.py). A process on
the GPU machine with ``NAS_PROGRAM_STORE`` naming it loads them instead of compiling them; a
program it cannot load (other jax versions, another GPU) it compiles as before.

What differs from programs compiled on the GPU machine: nothing is autotuned (the
``autotune0-*`` variants do not autotune either), matrix products go to cuBLAS rather than Triton
(the deviceless Triton tiling fails, see check_gpu_plan; on an H100 a member built with cuBLAS's
products trained at 6,540 images/s against 9,068 with Triton's, 2026-11-26), XLA fits the frame
to the memory of the target description rather than the allocator's limit, and the sort behind
each epoch's permutation is XLA's own rather than CUB's. ``--target local`` compiles for this
machine's own device instead (a store for this machine, as the tests use it).

Writes DIR/*.xla (xz-compressed executables, 6-8 MB for a frame's epoch program for an H100) with a JSON note
beside each (the target, variant, XLA flags, compile seconds) and DIR/ship.json (one row a program).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def frame_trainers(args: argparse.Namespace) -> list[tuple[int, Any, Any]]:
    """(resolution, trainer, its epoch keys) for each frame ``args`` asks for, built as the stacked
    benchmark and search build them on the GPU (``experiments.bench_throughput``'s recipe and a
    variant's settings; zeros in the data set's shapes): the trainers whose programs are shipped,
    and those a run builds that loads them."""
    import jax
    import numpy as np

    from experiments.bench_compile_options import variant_config
    from experiments.bench_throughput import bench_config
    from experiments.check_gpu_plan import _members
    from trainer.data import Split
    from trainer.stacked import StackedTrainer

    n, v = args.train_examples, args.val_size
    split = Split("cifar10-shaped", np.zeros((n, 32, 32, 3), np.uint8), np.zeros(n, np.int64),
                  np.zeros((v, 32, 32, 3), np.uint8), np.zeros(v, np.int64), tuple(f"c{i}" for i in range(10)))
    config = variant_config(args.variant, bench_config(args.epochs, args.batch_size, args.set))
    keys = jax.numpy.stack([jax.random.key(0)] * args.slots)
    return [(res, StackedTrainer([member], split, config, [0], slots=args.slots), keys)
            for res, member in _members(args.resolutions, args).items()]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Compile every frame into ``args.out``; a line per program as it is written."""
    import jax

    from experiments.check_gpu_plan import cuda_plugin, target_text
    from trainer.program_store import compile_into_store
    from trainer.stacked import STACK_COMPILER_OPTIONS

    device = None
    if args.target != "local":
        from jax.experimental import topologies

        device = topologies.get_topology_desc("target", "cuda", target_config=target_text(args.target),
                                              topology="1x1x1").devices[0]
    kind = device.device_kind if device is not None else jax.devices()[0].device_kind
    about = {"target": args.target, "device_kind": kind, "cuda_plugin": cuda_plugin() if device else None,
             "variant": args.variant,
             "xla_flags": os.environ.get("XLA_FLAGS", ""), "host": platform.node(),
             "compiled_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    print(f"ship_programs: {len(args.resolutions)} frames x {args.slots} slots for {kind}, variant "
          f"{args.variant}, into {args.out}", flush=True)
    rows = []
    for res, trainer, keys in frame_trainers(args):
        start = time.perf_counter()
        times = compile_into_store(trainer, keys, Path(args.out), device, STACK_COMPILER_OPTIONS,
                                   about={**about, "resolution": res, "slots": args.slots})
        row = {"resolution": res, "slots": args.slots, "wall_s": time.perf_counter() - start, **times}
        rows.append(row)
        print(f"  frame {res:3d} px x{args.slots}: epoch compiled in {times['epoch_compile_s']:.0f} s "
              f"({times['epoch_bytes'] / 2**20:.1f} MB), scoring in {times['eval_compile_s']:.0f} s "
              f"({times['eval_bytes'] / 2**20:.1f} MB)", flush=True)
    return rows


def parser() -> argparse.ArgumentParser:
    from experiments.bench_throughput import BLOCKS_HELP, blocks_arg
    from experiments.check_gpu_plan import _int_list
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the program store to write (a folder; created)")
    ap.add_argument("--target", default="h100",
                    help="a GPU in experiments/gpu_targets, a .pbtxt path, or 'local' (this machine's device)")
    ap.add_argument("--variant", default="autotune0-matmul-stacked",
                    help="a stacked bench_compile_options variant: the lowering and trainer settings of the run "
                         "that will load the programs")
    ap.add_argument("--resolutions", type=_int_list, default=[16, 24, 28, 32])
    ap.add_argument("--slots", type=int, default=8, help="members a stack (the run's --stack-slots)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, help="the proxy recipe's unless given")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a trainer setting of the proxy recipe, as the run's (bench_throughput --set)")
    ap.add_argument("--train-examples", type=int, default=45_000)
    ap.add_argument("--val-size", type=int, default=5_000)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--head", type=int, default=1280)
    ap.add_argument("--blocks", type=blocks_arg, default=7, metavar="K", help=BLOCKS_HELP)
    ap.add_argument("--seed", type=seed_arg, default=0, help="of the members that pick each frame")
    return ap


def main(argv: list[str] | None = None) -> None:
    from experiments.bench_compile_options import VARIANTS
    from experiments.check_gpu_plan import _fail, prepare_deviceless, target_text

    ap = parser()
    args = ap.parse_args(argv)
    prog = "ship_programs"
    if args.variant not in VARIANTS:
        _fail(f"{prog}: unknown variant {args.variant!r}; known: {', '.join(VARIANTS)}")
    if VARIANTS[args.variant].get("compile_unit") != "stacked":
        _fail(f"{prog}: variant {args.variant!r} does not train stacked members (a *-stacked variant does)")
    if args.slots < 1:
        _fail(f"{prog}: --slots must be at least 1")
    if args.target != "local":
        try:
            target_text(args.target)
        except ValueError as e:
            _fail(f"{prog}: {e}")
    prepare_deviceless(prog, args.variant, gpu=args.target != "local")
    try:
        rows = run(args)
    except ValueError as e:
        _fail(f"{prog}: {e}")
    Path(args.out, "ship.json").write_text(json.dumps({"target": args.target, "variant": args.variant,
                                                       "slots": args.slots, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
