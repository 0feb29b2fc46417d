"""Does bfloat16 garble the gradients? The GPU trains in bf16, the CPU checks ran in float32.

    python -m experiments.check_bf16_gradients --steps 100 --out bf16_gradients.json

One MobileNetV2 (by default the 10-epoch proxy's network: 1.0 at CIFAR-10's 32 px, small-input
rule; the trainer's MemberTrainer supplies model, loss and input normalization) is trained in
float32 for ``--steps`` SGD steps (batch 64, Nesterov, learning rate ramped to 0.05, crop and
flip), so that weights and batch statistics have left their initial state; then the gradient of
the training loss on one fixed batch of 256 real images is taken four ways, from the same weights:

- float32 (the reference);
- bfloat16 compute (this trainer's GPU mode: float32 parameters, bf16 activations);
- float32 with the input multiplied by (1 + 2^-9 noise), bf16's rounding applied to the input only:
  how chaotic the network is, whatever the dtype;
- float32 on the next 256 images: SGD's own noise, the yardstick.

It prints, for each, the cosine between its gradient and the reference (all parameters as one
vector, and per tensor for a few) as JSON lines. A bf16 cosine near 1 and far above the
next-batch one means that bf16's rounding adds nothing that matters next to minibatch noise.

Measured on the 2-core CPU machine (2026-12-02, he_fan_out, seed 0;
experiments/results/cpu_init_2026-12-02/bf16_gradients_*.json), cosines to the float32 gradient:

    steps   bf16    float32, input noise   float32, next batch
    0       0.363   0.605                  -0.088
    100     0.996   0.9997                  0.626

At initialization a batch-normalized network is chaotic, its early layers' gradients swinging with
any rounding, bf16's or the input's; 100 steps later bf16 changes the gradient far less than
drawing another batch does. So bfloat16 is not what holds the GPU's 10-epoch MobileNetV2 at 81%.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def _cosines(reference: Any, other: Any, names: tuple[str, ...]) -> dict[str, float]:
    import jax
    import numpy as np

    ref = jax.tree_util.tree_leaves_with_path(reference)
    oth = jax.tree_util.tree_leaves(other)
    dot = n_ref = n_oth = 0.0
    per: dict[str, float] = {}
    for (path, a), b in zip(ref, oth):
        a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
        dot, n_ref, n_oth = dot + a @ b, n_ref + a @ a, n_oth + b @ b
        name = ".".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)
        name = name.removesuffix(".value")  # nnx Variables' array attribute
        per[name] = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
    out = {"all": float(dot / np.sqrt(n_ref * n_oth))}
    out.update({n: per[n] for n in names if n in per})
    out["min_tensor"] = min(per.values())
    out["median_tensor"] = float(np.median(list(per.values())))
    return out


def main(argv: list[str] | None = None) -> int:
    from experiments.bench_throughput import blocks_arg
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100, help="float32 SGD steps before the comparison")
    ap.add_argument("--init", default="he_fan_out", help="trainer.init scheme")
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--width", type=float, default=1.0, help="width multiplier")
    ap.add_argument("--blocks", type=blocks_arg, default=7, metavar="K",
                    help="keep only MobileNetV2's first K of 7 blocks (default 7); fewer compile faster, for a quick "
                         "run of the check itself")
    ap.add_argument("--seed", type=seed_arg, default=0)
    ap.add_argument("--out", help="write the results as a JSON list here too")
    args = ap.parse_args(argv)
    if args.steps < 0:
        sys.exit("check_bf16_gradients: --steps must be >= 0")

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    from experiments.bench_jax_vs_torch import member_spec
    from search_space.models import INIT_SCHEMES
    from trainer.augment import random_crop_flip, to_model_input
    from trainer.config import TrainConfig
    from trainer.data import load_dataset, validation_split
    from trainer.train import MemberTrainer

    if args.init not in INIT_SCHEMES:
        sys.exit(f"check_bf16_gradients: --init must be one of {', '.join(INIT_SCHEMES)}")
    split = validation_split(load_dataset(args.dataset), 5000, seed=0)
    spec = member_spec(split.native_resolution, args.width)
    spec = spec.replace(blocks=spec.blocks[:args.blocks])
    # The trainer's own model, loss (label smoothing 0.1) and device data with its normalization,
    # in each compute dtype; nothing is compiled until the gradients below.
    t32, t16 = (MemberTrainer(spec, split, TrainConfig(dtype=d, init=args.init), args.seed)
                for d in ("float32", "bfloat16"))
    params, rest = t32.state.params, t32.state.rest
    x_all, y_all, mean, std = t32.data

    def model_input(x: jax.Array) -> jax.Array:
        return to_model_input(x, mean, std, spec.resolution)

    def grad_fn(graphdef: Any) -> Any:
        @jax.jit
        def f(params: Any, rest: Any, x: jax.Array, y: jax.Array) -> tuple[Any, Any, Any]:
            model = nnx.merge(graphdef, params, rest)
            loss, grads = nnx.value_and_grad(t32._loss)(model, x, y)
            return loss, grads, nnx.state(model, nnx.Not(nnx.Param))
        return f

    grad32, grad16 = grad_fn(t32.graphdef_train), grad_fn(t16.graphdef_train)
    tx = optax.sgd(optax.linear_schedule(0.0, 0.05, max(args.steps, 1)), momentum=0.9, nesterov=True)
    opt_state = tx.init(params)

    @jax.jit
    def step(params: Any, rest: Any, opt_state: Any, idx: jax.Array, key: jax.Array) -> tuple[Any, ...]:
        x = model_input(random_crop_flip(key, x_all[idx], t32.pad, True))
        loss, grads, rest = grad32(params, rest, x, y_all[idx])
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for s in range(args.steps):
        idx = jnp.asarray(rng.choice(len(split.y_train), 64, replace=False))
        params, rest, opt_state, loss = step(params, rest, opt_state, idx, jax.random.key(s))
        if (s + 1) % 20 == 0 or s + 1 == args.steps:
            print(f"step {s + 1}/{args.steps}: loss {float(loss):.3f} ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)

    probe = model_input(x_all[:256])
    noisy = probe * (1 + jax.random.normal(jax.random.key(1), probe.shape) * 2.0 ** -9)
    reference = grad32(params, rest, probe, y_all[:256])
    names = ("stem.conv.kernel", "layers.0.main.conv.kernel", "layers.8.main.conv.kernel",
             "classifier.dense.kernel")
    results = [{"arch": "mobilenetv2", "width": args.width, "blocks": args.blocks, "init": args.init,
                "steps": args.steps, "seed": args.seed,
                "device": str(jax.devices()[0]), "loss": float(reference[0])}]
    for label, (loss, grads, _) in (("bf16", grad16(params, rest, probe, y_all[:256])),
                                    ("float32_input_noise", grad32(params, rest, noisy, y_all[:256])),
                                    ("float32_next_batch", grad32(params, rest, model_input(x_all[256:512]),
                                                                  y_all[256:512]))):
        results.append({"against_float32": label, "loss": float(loss), "cosine": _cosines(reference[1], grads, names)})
    for row in results:
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
