"""The same MobileNetV2-style CIFAR network trained by this project's JAX trainer and by an
equivalent PyTorch loop, in one run: images/s, compile (first-epoch) time, and their ratio.

    python -m experiments.bench_jax_vs_torch --epochs 3 --out bench_torch.json          # GPU machine
    python -m experiments.bench_jax_vs_torch --epochs 1 --train-examples 2048 --width 0.25 \\
        --dataset fashion_mnist                                                          # CPU smoke

The network is ``mobilenetv2`` from the zoo at the data set's native size with the small-input rule
(stem and first stride-2 block at stride 1), 10 classes. The PyTorch model is built from the same
layer plan (``search_space.layers.layer_plan``), so the two have the same layers, shapes and
parameter count (checked before timing). Both train with SGD-Nesterov, the same batch size, random
crop + flip augmentation on the device and the training split resident on the device; PyTorch runs
bf16 autocast, channels_last and ``torch.compile`` (``--torch-modes`` picks eager/compile). Timing
excludes data loading: JAX steady-state images/s is measured over epochs 2..N (epoch 1 includes
compilation, reported as compile_s); PyTorch likewise over all but the first epoch.

Status: the JAX half has run on the CPU machine; the PyTorch half has not run yet (the CPU machines
have no PyTorch: PyPI's wheel needs the CUDA libraries), so its first run is on the GPU machine.
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


def run_jax(spec, split, epochs: int, batch: int, dtype: str) -> dict:
    import jax
    import numpy as np

    from trainer.config import TrainConfig
    from trainer.train import MemberTrainer

    config = TrainConfig(epochs=epochs, batch_size=batch, dtype=dtype, warmup_epochs=min(1.0, epochs))
    t = MemberTrainer(spec, split, config, seed=0)
    start = time.perf_counter()
    t.compile()
    t.run_epoch(0)
    first = time.perf_counter() - start
    images = t.steps_per_epoch * t.batch_size
    start = time.perf_counter()
    for e in range(1, epochs):
        t.run_epoch(e)
    steady = time.perf_counter() - start
    acc = float((t.logits(split.x_val).argmax(-1) == split.y_val).mean())
    return {"framework": "jax", "compile_and_first_epoch_s": first, "compile_s": t.compile_s,
            "images_per_s": images * (epochs - 1) / steady if epochs > 1 else images / (first - t.compile_s),
            "val_accuracy": acc, "device": str(jax.devices()[0].device_kind), "dtype": str(np.dtype(t.dtype))}


def torch_model(spec, num_classes: int):
    """A torch.nn.Module with exactly the layers of ``layer_plan(spec)`` (MobileNetV2: no SE, identity
    shortcuts)."""
    import torch
    from torch import nn

    from search_space.layers import layer_plan

    def bn(c: int) -> nn.Module:
        return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)

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


def run_torch(spec, split, epochs: int, batch: int, mode: str) -> dict:
    import numpy as np

    model, torch = torch_model(spec, split.num_classes)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = model.to(dev).to(memory_format=torch.channels_last)
    # Training split resident on the device as uint8 NHWC, normalized per batch (as the JAX trainer).
    x = torch.from_numpy(split.x_train).to(dev)
    if x.shape[-1] == 1:
        x = x.expand(-1, -1, -1, 3).contiguous()
    y = torch.from_numpy(split.y_train.astype(np.int64)).to(dev)
    xf = x.float() / 255
    mean, std = xf.mean((0, 1, 2)), xf.std((0, 1, 2)) + 1e-6
    del xf
    steps = len(y) // batch
    # A tensor learning rate: with a float, the scheduler's every change is a new constant to
    # torch.compile, which recompiles the step (PyTorch's "compiled optimizer with an LR scheduler").
    lr = torch.tensor(0.2) if mode == "compile" else 0.2
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.2, total_steps=steps * epochs, pct_start=min(1.0, 1 / epochs))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    res, pad = spec.resolution, 4 * split.native_resolution // 32

    def step(xb, yb):
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    if mode == "compile":
        step = torch.compile(step)

    def batch_at(idx, g):
        xb = x[idx].permute(0, 3, 1, 2).float() / 255
        xb = (xb - mean[None, :, None, None]) / std[None, :, None, None]
        if pad:  # random crop with zero padding, then horizontal flip
            xb = torch.nn.functional.pad(xb, (pad, pad, pad, pad))
            i, j = torch.randint(0, 2 * pad + 1, (2,), generator=g, device="cpu").tolist()
            xb = xb[:, :, i:i + split.native_resolution, j:j + split.native_resolution]
        flip = torch.rand(len(idx), device=dev) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if res != split.native_resolution:
            xb = torch.nn.functional.interpolate(xb, size=(res, res), mode="bilinear", antialias=False)
        return xb.contiguous(memory_format=torch.channels_last), y[idx]

    g = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for e in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(y), device=dev)
        for s in range(steps):
            step(*batch_at(perm[s * batch:(s + 1) * batch], g))
            sched.step()
        if dev == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        print(f"[torch-{mode}] epoch {e + 1}/{epochs}: {times[-1]:.1f} s", file=sys.stderr, flush=True)
    model.eval()
    correct = 0
    with torch.no_grad(), torch.autocast(dev, dtype=torch.bfloat16):
        xv = torch.from_numpy(split.x_val).to(dev)
        if xv.shape[-1] == 1:
            xv = xv.expand(-1, -1, -1, 3)
        for i in range(0, len(xv), 1000):
            xb = (xv[i:i + 1000].permute(0, 3, 1, 2).float() / 255 - mean[None, :, None, None]) / std[None, :, None, None]
            if res != split.native_resolution:
                xb = torch.nn.functional.interpolate(xb, size=(res, res), mode="bilinear")
            pred = model(xb.contiguous(memory_format=torch.channels_last)).argmax(1).cpu().numpy()
            correct += int((pred == split.y_val[i:i + 1000]).sum())
    images = steps * batch
    return {"framework": f"torch-{mode}", "compile_and_first_epoch_s": times[0],
            "images_per_s": images * (epochs - 1) / sum(times[1:]) if epochs > 1 else images / times[0],
            "val_accuracy": correct / len(split.y_val), "params": sum(p.numel() for p in model.parameters()),
            "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--epochs", type=int, default=3, help="at least 2: the first epoch includes compilation")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--train-examples", type=int)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--jax-dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--torch-modes", default="eager,compile", help="PyTorch loops to time, in this order")
    ap.add_argument("--out")
    args = ap.parse_args()
    from search_space.layers import count
    from trainer.data import load_dataset, validation_split

    ds = load_dataset(args.dataset)
    split = validation_split(ds, args.val_size, seed=0, train_examples=args.train_examples)
    if split.x_train.shape[-1] == 1:  # grey images: both frameworks see three equal channels
        import dataclasses

        import numpy as np

        split = dataclasses.replace(split, x_train=np.repeat(split.x_train, 3, -1), x_val=np.repeat(split.x_val, 3, -1))
    spec = member_spec(split.native_resolution, args.width)
    c = count(spec, split.num_classes)
    print(f"mobilenetv2-style at {spec.resolution}px: {c.params / 1e6:.2f}M params (+{c.bn_params} BN), "
          f"{c.multiply_adds / 1e6:.1f}M multiply-adds; {len(split.y_train)} training images", file=sys.stderr)
    results = [run_jax(spec, split, args.epochs, args.batch_size, args.jax_dtype)]
    print(json.dumps(results[-1]), file=sys.stderr)
    _save(args.out, results)
    for mode in [m for m in args.torch_modes.split(",") if m]:
        r = run_torch(spec, split, args.epochs, args.batch_size, mode)
        if r["params"] != c.params + c.bn_params:
            sys.exit(f"bench_jax_vs_torch: the PyTorch model has {r['params']} parameters, the spec "
                     f"{c.params + c.bn_params}: the two networks differ")
        results.append(r)
        print(json.dumps(r), file=sys.stderr)
        _save(args.out, results)  # each framework's figures are kept as soon as they exist
    base = results[0]["images_per_s"]
    for r in results:
        print(f"{r['framework']:>14}: {r['images_per_s']:9.0f} img/s  first epoch incl. compile "
              f"{r['compile_and_first_epoch_s']:6.1f} s  val acc {r['val_accuracy']:.4f}  "
              f"jax/this {base / r['images_per_s']:.2f}x  ({r['device']})")


def _save(path: str | None, results: list[dict]) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
