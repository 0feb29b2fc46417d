"""The same MobileNetV2-style CIFAR network trained by this project's JAX trainer and by an
equivalent PyTorch loop, in one run: images/s, compile (first-epoch) time, accuracy, and the ratio.

    python -m experiments.bench_jax_vs_torch --out bench_torch.json                     # GPU machine
    python -m experiments.bench_jax_vs_torch --epochs 2 --train-examples 1024 --width 0.25 \\
        --dataset fashion_mnist --torch-modes eager                                      # CPU smoke
    python -m experiments.bench_jax_vs_torch --no-jax --torch-modes eager --torch-dtype float32 \\
        --torch-init jax --epochs 8 --train-examples 8192 ...    # PyTorch alone, from the JAX init

The network is ``mobilenetv2`` from the zoo at the data set's native size with the small-input rule
(stem and first stride-2 block at stride 1), 10 classes. The PyTorch model is built from the same
layer plan (``search_space.layers.layer_plan``), so the two have the same layers, shapes and
parameter count (checked before timing). Both follow the MobileNetV2 study's recipe, the search's
proxy (``proxy_config``), by default its full 10 epochs at batch 256: SGD-Nesterov 0.9 with the
same learning rate at every step, weight decay 5e-4 on kernels only, label smoothing 0.1, batch norm with the same momentum and
epsilon, per-image random translation (zero-padded) and flip on the device, the training split
resident on the device, batch-norm statistics recomputed over the same 2,000 training images
before evaluation (precise BN). PyTorch runs bf16 autocast, channels_last and ``torch.compile``
(``--torch-modes`` picks eager/compile; ``--torch-dtype float32`` drops autocast, for CPUs where
the JAX trainer computes in float32); JAX runs its trainer's dtype (bf16 on a GPU). PyTorch's
layers start from its default initialization, or with ``--torch-init jax`` from the JAX model's
distributions, which differ most for depthwise kernels (``jax_style_init``). Timing excludes data loading:
JAX steady-state images/s is measured over epochs 2..N (epoch 1 includes compilation, reported as
compile_s); PyTorch likewise over all but the first epoch.

Measured: on the H100 (10 epochs, batch 256, bf16; experiments/results/gpu_logs_2026-11-26_h100)
JAX 28,139 images/s against torch.compile 8,760 (PyTorch's accuracy not yet: the call's time ran
out in its epoch 9). On the 2-core CPU (PyTorch 2.13 from its CPU wheel index, in a separate
virtual environment; the project does not depend on PyTorch), float32, 8,192 CIFAR-10 images, 8
epochs, batch 128, lr 0.1: JAX 56.4%, PyTorch 53.5% from the JAX model's initial distributions and
59.1% from its own (docs/training.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def member_spec(native: int, width: float):
    from search_space import zoo
    from search_space.blockstring import scale_width
    from search_space.space import SMALL_INPUT_MAX, adapt_for_small_input

    spec = zoo.get("mobilenetv2", resolution=native)
    if width != 1.0:
        spec = scale_width(spec, width, "above_one")
    return adapt_for_small_input(spec) if native <= SMALL_INPUT_MAX else spec


def proxy_config(epochs: int | None = None, batch: int | None = None, dtype: str = "auto",
                 overrides: list[str] | tuple[str, ...] = ()):
    """The MobileNetV2 study's recipe (experiments/study_mobilenetv2_cifar.py, the search's proxy)
    after the study's ``--set`` ``overrides`` (e.g. ``trainer.learning_rate=0.4``), at ``epochs``
    and ``batch`` where given: at the study's own it is exactly the study's config, so with a shared
    persistent compilation cache the JAX half reuses the study's compiled programs, and a change to
    the study's recipe reaches both frameworks."""
    from experiments.study_mobilenetv2_cifar import get_config
    from nas.config import apply_overrides

    base = apply_overrides(get_config(), list(overrides)).trainer
    epochs = base.epochs if epochs is None else epochs
    return base.replace(epochs=epochs, batch_size=base.batch_size if batch is None else batch, dtype=dtype,
                        warmup_epochs=min(base.warmup_epochs, epochs))


def run_jax(spec, split, config, seed: int = 0) -> dict:
    """Train with the JAX trainer on ``config`` (a TrainConfig from ``proxy_config``)."""
    import jax
    import numpy as np

    from trainer.train import MemberTrainer

    epochs = config.epochs
    t = MemberTrainer(spec, split, config, seed=seed)
    start = time.perf_counter()
    t.compile()
    curve = [float(t.run_epoch(0).mean())]  # mean training loss per epoch, as the PyTorch loop's
    first = time.perf_counter() - start
    images = t.steps_per_epoch * t.batch_size
    start = time.perf_counter()
    for e in range(1, epochs):
        curve.append(float(t.run_epoch(e).mean()))
    steady = time.perf_counter() - start
    acc = float((t.logits(split.x_val).argmax(-1) == split.y_val).mean())
    print(f"[jax] loss per epoch: {' '.join(f'{v:.3f}' for v in curve)}", file=sys.stderr, flush=True)
    return {"framework": "jax", "compile_and_first_epoch_s": first, "compile_s": t.compile_s,
            "images_per_s": images * (epochs - 1) / steady if epochs > 1 else images / (first - t.compile_s),
            "val_accuracy": acc, "loss_curve": curve, "device": str(jax.devices()[0].device_kind),
            "dtype": str(np.dtype(t.dtype))}


def torch_model(spec, num_classes: int):
    """A torch.nn.Module with exactly the layers of ``layer_plan(spec)`` (MobileNetV2: no SE, identity
    shortcuts)."""
    import torch
    from torch import nn

    from search_space.layers import layer_plan

    from search_space.models import BN_EPSILON, BN_MOMENTUM

    def bn(c: int) -> nn.Module:  # PyTorch's momentum weighs the new batch: 1 - Flax's
        return nn.BatchNorm2d(c, eps=BN_EPSILON, momentum=1 - BN_MOMENTUM)

    class Block(nn.Module):
        def __init__(self, layer):
            super().__init__()
            k, s, pad = layer.kernel, layer.stride, layer.kernel // 2
            parts: list[nn.Module] = []
            if layer.op == "mbconv":
                parts += [nn.Conv2d(layer.cin, layer.cexp, 1, bias=False), bn(layer.cexp), nn.ReLU6()]
            c = layer.cexp if layer.op == "mbconv" else layer.cin
            if layer.op in ("mbconv", "sepconv"):
                parts += [nn.Conv2d(c, c, k, s, pad, groups=c, bias=False), bn(c), nn.ReLU6(),
                          nn.Conv2d(c, layer.cout, 1, bias=False), bn(layer.cout)]
            else:  # regular conv
                parts += [nn.Conv2d(layer.cin, layer.cout, k, s, pad, bias=False), bn(layer.cout), nn.ReLU6()]
            self.body = nn.Sequential(*parts)
            self.identity = layer.shortcut == "identity"
            if layer.shortcut not in ("none", "identity") or layer.se_channels:
                raise ValueError(f"{layer.name}: only plain MobileNetV2 blocks are mirrored in PyTorch")

        def forward(self, x):
            y = self.body(x)
            return x + y if self.identity else y

    plan = layer_plan(spec, num_classes)
    stem, head, cls = plan[0], plan[-2], plan[-1]
    layers: list[nn.Module] = [nn.Conv2d(3, stem.cout, stem.kernel, stem.stride, stem.kernel // 2, bias=False),
                               bn(stem.cout), nn.ReLU6()]
    layers += [Block(l) for l in plan[1:-2]]
    layers += [nn.Conv2d(head.cin, head.cout, 1, bias=False), bn(head.cout), nn.ReLU6(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cls.cin, cls.cout)]
    return nn.Sequential(*layers), torch


def jax_style_init(model) -> None:
    """Re-draw ``model``'s weights from the JAX model's distributions (search_space.models
    ``init_model``): convolutions He truncated-normal on fan_out (k*k*out channels, also for
    depthwise ones), the classifier LeCun truncated-normal on fan_in, biases 0; batch norm keeps
    PyTorch's (scale 1, offset 0, as the JAX model's). PyTorch's own default draws a depthwise 3x3
    kernel of 576 channels about 10x wider: uniform within 1/3 (standard deviation 0.19; fan_in 9),
    against the JAX model's 0.020 (fan_out 9 x 576)."""
    import math

    import torch

    def trunc_normal(w, std: float) -> None:  # +-2 sigma, std corrected as jax's variance scaling
        s = std / 0.87962566103423978
        torch.nn.init.trunc_normal_(w, std=s, a=-2 * s, b=2 * s)

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                out, _, kh, kw = m.weight.shape
                trunc_normal(m.weight, math.sqrt(2.0 / (kh * kw * out)))
            elif isinstance(m, torch.nn.Linear):
                trunc_normal(m.weight, math.sqrt(1.0 / m.weight.shape[1]))
                torch.nn.init.zeros_(m.bias)


def zero_init_residual(model) -> int:
    """``trainer.zero_init_residual`` in the PyTorch mirror, as ``residual_zero_paths`` does it in
    the JAX model: the last batch-norm scale of each identity block's branch at zero; returns how
    many blocks."""
    import torch

    zeroed = 0
    with torch.no_grad():
        for block in model.modules():
            if getattr(block, "identity", False) and isinstance(block.body[-1], torch.nn.BatchNorm2d):
                torch.nn.init.zeros_(block.body[-1].weight)
                zeroed += 1
    return zeroed


def run_torch(spec, split, config, mode: str, dtype: str = "bfloat16", init: str = "default",
              seed: int = 0) -> dict:
    """Train the PyTorch mirror of ``spec`` with ``config``'s recipe (SGD only) in ``mode``
    (eager or compile), under bf16 autocast or in float32 (``dtype``), from PyTorch's default
    initialization or the JAX model's distributions (``init="jax"``, :func:`jax_style_init`)."""
    import numpy as np

    from trainer.augment import crop_padding
    from trainer.config import learning_rate_schedule

    model, torch = torch_model(spec, split.num_classes)
    torch.manual_seed(seed)
    if init == "jax":
        jax_style_init(model)
    if config.zero_init_residual:
        zero_init_residual(model)
    autocast = {"dtype": torch.bfloat16, "enabled": dtype == "bfloat16"}
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(dev).to(memory_format=torch.channels_last)

    def on_device(images):  # uint8 NHWC, grey images as RGB (the model's stem takes 3 channels)
        t = torch.from_numpy(images).to(dev)
        return t.expand(-1, -1, -1, 3).contiguous() if t.shape[-1] == 1 else t

    # Training split resident on the device as uint8 NHWC, normalized per batch (as the JAX trainer).
    x = on_device(split.x_train)
    y = torch.from_numpy(split.y_train.astype(np.int64)).to(dev)
    xf = x.float() / 255
    mean, std = xf.mean((0, 1, 2)), xf.std((0, 1, 2)) + 1e-6
    del xf
    epochs, batch = config.epochs, config.batch_size
    steps = len(y) // batch
    # The JAX trainer's recipe (trainer.config): its learning-rate schedule, step by step; weight
    # decay on kernels only, added to the gradient before Nesterov momentum (optax.chain(decay, sgd)
    # = torch's SGD weight_decay); label smoothing.
    if config.optimizer != "sgd":
        raise SystemExit(f"bench_jax_vs_torch: the PyTorch loop mirrors SGD only, not {config.optimizer}")
    lrs = [float(v) for v in np.asarray(learning_rate_schedule(config, steps)(np.arange(steps * epochs)))]
    # A tensor learning rate: with a float, the scheduler's every change is a new constant to
    # torch.compile, which recompiles the step (PyTorch's "compiled optimizer with an LR scheduler").
    lr0 = torch.tensor(lrs[0]) if mode == "compile" else lrs[0]
    kernels = [p for p in model.parameters() if p.ndim > 1]
    others = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": kernels, "weight_decay": config.weight_decay},
                           {"params": others, "weight_decay": 0.0}], lr=lr0, momentum=config.momentum,
                          nesterov=config.nesterov)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    res, native, pad = spec.resolution, split.native_resolution, crop_padding(split.native_resolution, config.crop_pad)

    def set_lr(value: float) -> None:
        for group in opt.param_groups:
            if mode == "compile":
                group["lr"].fill_(value)
            else:
                group["lr"] = value

    def step(xb, yb):
        with torch.autocast(dev, **autocast):
            loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if mode == "compile":
        step = torch.compile(step)

    def model_input(xb):
        """As trainer.augment.to_model_input: uint8 NHWC -> normalized, at the member's resolution,
        NCHW in channels_last memory."""
        xb = (xb.permute(0, 3, 1, 2).float() / 255 - mean[None, :, None, None]) / std[None, :, None, None]
        if res != native:
            xb = torch.nn.functional.interpolate(xb, size=(res, res), mode="bilinear", antialias=True)
        return xb.contiguous(memory_format=torch.channels_last)

    offsets = torch.arange(native, device=dev)  # pixel offsets within a crop

    def batch_at(idx):
        """As trainer.augment: per-image random translation by up to ``pad`` px (zero padding of the
        uint8 image) and horizontal flip, then normalization and the member's resolution."""
        xb = x[idx]  # N, H, W, C uint8
        n = len(idx)
        xp = torch.nn.functional.pad(xb, (0, 0, pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=dev)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=dev)
        xb = xp[torch.arange(n, device=dev)[:, None, None], (dy[:, None] + offsets)[:, :, None],
                (dx[:, None] + offsets)[:, None, :]]
        flip = torch.rand(n, device=dev) < 0.5
        return model_input(torch.where(flip[:, None, None, None], xb.flip(2), xb)), y[idx]

    torch.manual_seed(seed)
    model.train()
    times, curve = [], []  # seconds and mean training loss per epoch (the loss summed on the device)
    for e in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(y), device=dev)
        total = torch.zeros((), device=dev)
        for s in range(steps):
            set_lr(lrs[e * steps + s])
            total += step(*batch_at(perm[s * batch:(s + 1) * batch])).detach().float()
        if dev == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        curve.append(float(total) / steps)
        print(f"[torch-{mode}] epoch {e + 1}/{epochs}: {times[-1]:.1f} s, mean loss {curve[-1]:.3f}",
              file=sys.stderr, flush=True)
    # Precise BN, as the JAX trainer before evaluation (trainer/precise_bn.py): the statistics
    # recomputed over the same training images with the final weights; momentum None is PyTorch's
    # cumulative average over the batches.
    from trainer.train import precise_bn_indices

    calibration = precise_bn_indices(len(y), config, seed=seed)
    with torch.no_grad(), torch.autocast(dev, **autocast):
        if calibration is not None:
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None
            for idx in np.asarray(calibration):
                model(model_input(x[torch.from_numpy(idx.astype(np.int64)).to(dev)]))
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(dev, **autocast):
        xv = on_device(split.x_val)
        for i in range(0, len(xv), 1000):
            inp = model_input(xv[i:i + 1000])
            logits = model(inp).float()
            if config.tta_flip:  # as trainer.train.scoring_views: the mirror image's logits averaged in
                logits = (logits + model(torch.flip(inp, dims=[3])).float()) / 2
            pred = logits.argmax(1).cpu().numpy()
            correct += int((pred == split.y_val[i:i + 1000]).sum())
    images = steps * batch
    return {"framework": f"torch-{mode}", "dtype": dtype, "init": init, "compile_and_first_epoch_s": times[0],
            "images_per_s": images * (epochs - 1) / sum(times[1:]) if epochs > 1 else images / times[0],
            "val_accuracy": correct / len(split.y_val), "loss_curve": curve,
            "params": sum(p.numel() for p in model.parameters()),
            "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__}


def main() -> None:
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--epochs", type=int, help="the study's (10) by default; at least 2: the first epoch "
                                               "includes compilation")
    ap.add_argument("--batch-size", type=int, help="the study's (256) by default")
    ap.add_argument("--train-examples", type=int)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--jax-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--jax", default=True, action=argparse.BooleanOptionalAction,
                    help="train the JAX half (--no-jax: PyTorch alone, e.g. to compare its options)")
    ap.add_argument("--torch-modes", default="eager,compile", help="PyTorch loops to time, in this order")
    ap.add_argument("--torch-dtype", default="bfloat16", choices=["bfloat16", "float32"],
                    help="bf16 autocast (as on the GPU) or float32 (the JAX trainer's dtype on a CPU)")
    ap.add_argument("--torch-init", default="default", choices=["default", "jax"],
                    help="PyTorch's default initialization, or the JAX model's distributions")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override of the MobileNetV2 study's config, as `nas study --set` takes it "
                         "(e.g. trainer.learning_rate=0.4); repeatable")
    ap.add_argument("--seed", type=seed_arg, default=0,
                    help="initialization, data order and augmentation (the 45k/5k split stays seed 0's)")
    ap.add_argument("--out")
    args = ap.parse_args()
    from search_space.errors import UserError
    from search_space.layers import count
    from trainer.data import load_dataset, validation_split

    try:  # the recipe first: a mistyped --set fails before minutes of data loading
        recipe = proxy_config(args.epochs, args.batch_size, overrides=args.set)
        ds = load_dataset(args.dataset)
        split = validation_split(ds, args.val_size, seed=0, train_examples=args.train_examples)
    except UserError as e:
        sys.exit(f"bench_jax_vs_torch: {e}")
    if split.x_train.shape[-1] == 1:  # grey images: both frameworks see three equal channels
        import dataclasses

        import numpy as np

        split = dataclasses.replace(split, x_train=np.repeat(split.x_train, 3, -1), x_val=np.repeat(split.x_val, 3, -1))
    spec = member_spec(split.native_resolution, args.width)
    c = count(spec, split.num_classes)
    print(f"mobilenetv2-style at {spec.resolution}px: {c.params / 1e6:.2f}M params (+{c.bn_params} BN), "
          f"{c.multiply_adds / 1e6:.1f}M multiply-adds; {len(split.y_train)} training images", file=sys.stderr)
    print(f"recipe: {recipe.key()}", file=sys.stderr)
    results = []
    if args.jax:
        results.append(run_jax(spec, split, recipe.replace(dtype=args.jax_dtype), seed=args.seed))
        print(json.dumps(results[-1]), file=sys.stderr)
        _save(args.out, results)
    for mode in [m for m in args.torch_modes.split(",") if m]:
        r = run_torch(spec, split, recipe, mode, dtype=args.torch_dtype, init=args.torch_init, seed=args.seed)
        if r["params"] != c.params + c.bn_params:
            sys.exit(f"bench_jax_vs_torch: the PyTorch model has {r['params']} parameters, the spec "
                     f"{c.params + c.bn_params}: the two networks differ")
        results.append(r)
        print(json.dumps(r), file=sys.stderr)
        _save(args.out, results)  # each framework's figures are kept as soon as they exist
    base = results[0]["images_per_s"] if args.jax else None
    for r in results:
        ratio = f"  jax/this {base / r['images_per_s']:.2f}x" if base else ""
        print(f"{r['framework']:>14}: {r['images_per_s']:9.0f} img/s  first epoch incl. compile "
              f"{r['compile_and_first_epoch_s']:6.1f} s  val acc {r['val_accuracy']:.4f}{ratio}  ({r['device']})")


def _save(path: str | None, results: list[dict]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
