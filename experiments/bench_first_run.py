"""Where a GPU member's one-time seconds go: each kind of MobileNetV2 layer alone, compiled ahead of
time, then called three times.

    python -m experiments.bench_first_run --out first_run.json                       # GPU machine
    python -m experiments.bench_first_run --batch 8 --eval-batch 16 --width 0.25     # CPU smoke

Why: on the H100 (2026-11-26, experiments/results/study_mnv2_h100/) a MobileNetV2 member's first
epoch took 18.4 s against 1.6 s for each later one, and scoring 7,000 images 6.5 s, also for members
whose programs came from the persistent compilation cache; the variant without any XLA convolution
(``NAS_CONV=matmul NAS_DEPTHWISE=shift``) did a whole epoch and its scoring in 1.1 s. The guess to
test: cuDNN builds each convolution's execution plan on its first run, some with kernels compiled at
run time (cudnn-frontend issue 1066 reports about 1.5 s per new depthwise plan with cuDNN 9.10), and
a MobileNetV2 training step holds about 150 convolutions (forward and two backward each) and its
scoring program another 100.

For each layer kind, every such layer of the 32 px MobileNetV2 (small-input rule; 17 depthwise, 33
pointwise) goes into one program, each on its own input, and two programs are timed: a training
step (forward and both backward passes, ``--batch``) and a forward pass at the scoring batch
(``--eval-batch``), in the compute dtype members train in (bf16 on GPUs). Printed per program:
compile seconds, the first call, the steady call (fastest of the next two) and the first call's
extra milliseconds per layer. Kinds: ``pointwise`` (1x1 convolutions as XLA convolutions, cuDNN on
GPUs), ``pointwise-matmul`` (the same as matrix products, ``NAS_CONV=matmul``), ``depthwise``
(grouped convolutions) and ``depthwise-shift`` (sums of shifted copies, ``NAS_DEPTHWISE=shift``).
If a kind's first call costs far more than its steady one, its lowering is what to change.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable

KINDS = ("pointwise", "pointwise-matmul", "depthwise", "depthwise-shift")


def layer_shapes(width: float = 1.0) -> dict[str, list[tuple[int, int, int, int, int]]]:
    """(h, cin, cout, kernel, stride) of the 32 px MobileNetV2's layers, by kind: its 1x1 expand and
    project convolutions (``pointwise``) and its depthwise ones (``depthwise``, cin = cout)."""
    from experiments.bench_jax_vs_torch import member_spec
    from search_space.layers import layer_plan

    pointwise, depthwise = [], []
    for layer in layer_plan(member_spec(32, width), 10):
        if layer.op not in ("mbconv", "sepconv"):  # sepconv: MobileNetV2's first block, no expansion
            continue
        if layer.op == "mbconv":
            pointwise.append((layer.h_in, layer.cin, layer.cexp, 1, 1))
        depthwise.append((layer.h_in, layer.cexp, layer.cexp, layer.kernel, layer.stride))
        pointwise.append((layer.h_out, layer.cexp, layer.cout, 1, 1))
    return {"pointwise": pointwise, "depthwise": depthwise}


def layer_fn(kind: str) -> Callable[[Any, Any, int], Any]:
    """``(x NHWC, kernel HWIO, stride) -> y``: the model's own function for a layer of ``kind``."""
    from search_space.models import conv_as_matmul, depthwise_shift_sum, xla_conv

    return {"pointwise": xla_conv, "pointwise-matmul": conv_as_matmul, "depthwise": xla_conv,
            "depthwise-shift": depthwise_shift_sum}[kind]


def _timed_calls(compiled: Callable, args: tuple) -> tuple[float, float]:
    """(first call s, steady call s: the faster of the next two), each to the result on the host."""
    import jax

    times = []
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:])


def measure(kind: str, shapes: list[tuple[int, int, int, int, int]], batch: int, eval_batch: int,
            dtype: Any) -> list[dict[str, Any]]:
    """Compile and time ``kind``'s training-step and scoring programs over ``shapes``."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    fn = layer_fn(kind)
    rng = np.random.default_rng(0)
    kernels = [jnp.asarray(rng.normal(0, 0.1, (k, k, 1 if kind.startswith("depthwise") else cin, cout)), jnp.float32)
               for _, cin, cout, k, _ in shapes]

    def inputs(n: int) -> list[Any]:
        return [jnp.asarray(rng.normal(0, 1, (n, h, h, cin)), dtype) for h, cin, _, _, _ in shapes]

    def forward(ws, xs):
        return [fn(x, w.astype(dtype), s) for x, w, (_, _, _, _, s) in zip(xs, ws, shapes)]

    def loss(ws, xs):
        return sum(jnp.mean(jnp.square(y.astype(jnp.float32))) for y in forward(ws, xs))

    programs = {
        "train": (jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), (kernels, inputs(batch)), batch),
        "eval": (jax.jit(lambda ws, xs: [y.sum() for y in forward(ws, xs)]), (kernels, inputs(eval_batch)), eval_batch),
    }
    rows = []
    for program, (jitted, args, n) in programs.items():
        start = time.perf_counter()
        compiled = jitted.lower(*args).compile()
        compile_s = time.perf_counter() - start
        first, steady = _timed_calls(compiled, args)
        rows.append({"kind": kind, "program": program, "layers": len(shapes), "batch": n,
                     "compile_s": compile_s, "first_call_s": first, "steady_call_s": steady,
                     "first_extra_ms_per_layer": 1000 * (first - steady) / len(shapes)})
    return rows


def format_row(r: dict[str, Any]) -> str:
    return (f"{r['kind']:<17} {r['program']:<5} {r['layers']:>2} layers, batch {r['batch']:>4}: compile {r['compile_s']:6.2f} s, "
            f"first call {r['first_call_s']:7.3f} s, steady {r['steady_call_s']:7.4f} s "
            f"(+{r['first_extra_ms_per_layer']:.1f} ms a layer on the first call)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_first_run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, from {', '.join(KINDS)}")
    ap.add_argument("--batch", type=int, default=256, help="the training program's batch (the proxy recipe's)")
    ap.add_argument("--eval-batch", type=int, default=1000, help="the scoring program's batch (TrainConfig's)")
    ap.add_argument("--width", type=float, default=1.0, help="MobileNetV2 width multiplier")
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="auto: what members train in (bf16 on GPUs, float32 on CPUs)")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args(argv)
    kinds = args.kinds.split(",")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        sys.exit(f"bench_first_run: unknown kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")

    import jax

    from trainer.config import TrainConfig, compute_dtype

    dtype = compute_dtype(TrainConfig(dtype=args.dtype))
    device = jax.devices()[0].device_kind
    print(f"device: {device} ({jax.default_backend()}), jax {jax.__version__}, compute dtype {dtype.__name__}", flush=True)
    shapes = layer_shapes(args.width)
    rows = []
    for kind in kinds:
        for row in measure(kind, shapes[kind.split("-")[0]], args.batch, args.eval_batch, dtype):
            rows.append({**row, "device": device, "backend": jax.default_backend(), "jax": jax.__version__})
            print(format_row(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
