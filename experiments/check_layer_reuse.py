"""Compile seconds per member as a search goes on, per-layer programs keyed exactly against padded.

    python -m experiments.check_layer_reuse --unit layer  --members 40 --out runs/reuse_layer.json
    python -m experiments.check_layer_reuse --unit padded --members 40 --out runs/reuse_padded.json
    python -m experiments.check_layer_reuse --plot runs/reuse_layer.json runs/reuse_padded.json \\
        --out experiments/results/layer_reuse/layer_reuse.png

One process compiles (and does not train) the members a random CIFAR-10 search trains, in its
order (experiments/check_shape_reuse.py), with ``trainer.compile_unit`` = ``--unit``: for each, the
seconds to find or compile its layer programs and how many of its layers compiled anew
(trainer/layerwise.py keeps them for later members). That is what per-layer compilation saves as
a search goes on, measured rather than counted (check_shape_reuse counts the layer kinds): on a GPU
the compile is mostly autotuning, here it is XLA's CPU compiler. Members are scaled to ``--width``
(the compile depends on the layers' number and kind far more than on their widths) on random
images of CIFAR-10's shape (compiling does not look at them); the proxy recipe's batch of 256.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _split(train: int = 512, val: int = 256) -> Any:
    from trainer.data import Split

    rng = np.random.default_rng(0)
    return Split("random-cifar-shape", rng.integers(0, 256, (train, 32, 32, 3), np.uint8),
                 rng.integers(0, 10, train).astype(np.int64), rng.integers(0, 256, (val, 32, 32, 3), np.uint8),
                 rng.integers(0, 10, val).astype(np.int64), tuple(str(i) for i in range(10)))


def measure(unit: str, members: int, width: float, seed: int, precompile_workers: int = 0) -> dict[str, Any]:
    import jax

    from experiments.check_shape_reuse import members_in_search_order
    from search_space.blockstring import scale_width
    from search_space.space import MnasNetSpace
    from trainer.config import TrainConfig
    from trainer.layerwise import LayerwiseTrainer
    from trainer.padded import covering_vectors

    specs = [scale_width(m, width, "never") for m in members_in_search_order("random", 30, seed)[:members]]
    split = _split()
    config = TrainConfig(epochs=10, batch_size=256, compile_unit=unit, precise_bn_images=0)
    precompiled = None
    if precompile_workers:
        from nas.precompile import precompile

        space = MnasNetSpace(32)
        covers = [scale_width(space.decode_member(v, canonical=False), width, "never") for v in covering_vectors(space)]
        precompiled = precompile(covers, split, config, precompile_workers,
                                 log=lambda line: print(f"[{unit}] {line}", file=sys.stderr, flush=True))
    rows = []
    start = time.perf_counter()
    for i, spec in enumerate(specs):
        t = LayerwiseTrainer(spec, split, config, i)
        seconds = t.compile()
        rows.append({"member": i + 1, "resolution": spec.resolution, "compile_s": seconds, "trace_s": t.trace_s,
                     "layers": t.stages, "layers_compiled": t.stages_compiled, "layers_loaded": t.stages_loaded})
        print(f"[{unit}] member {i + 1}/{len(specs)} {spec.resolution}px: compile {seconds:.1f} s (tracing "
              f"{t.trace_s:.1f} s), {t.stages_compiled} of {t.stages} layers new, {t.stages_loaded} of them loaded "
              f"from the compilation cache ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    return {"unit": unit, "width": width, "seed": seed, "rows": rows, "precompile": precompiled,
            "backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind)}


def _label(r: dict[str, Any]) -> str:
    p = r.get("precompile")
    return f"compile_unit={r['unit']}" + (f", after a {p['wall_s']:.0f} s precompile" if p else "")


def plot(paths: list[str], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for p in paths:
        r = json.loads(Path(p).read_text())
        x = [row["member"] for row in r["rows"]]
        a.plot(x, [row["compile_s"] for row in r["rows"]], marker=".", label=_label(r))
        # a precompile's wall seconds count from the start (its members are not in the rows)
        offset = (r.get("precompile") or {}).get("wall_s", 0.0)
        b.plot([0, *x], (offset + np.cumsum([0.0] + [row["compile_s"] for row in r["rows"]])) / 60, label=_label(r))
    a.set_ylabel("compile seconds of the member")
    b.set_ylabel("compile minutes so far (precompile included)")
    for ax in (a, b):
        ax.set_xlabel("members compiled (a random CIFAR-10 search's order)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"per-layer programs kept in one process, {r['backend']} ({r['device']}), width {r['width']:g}",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from search_space.errors import seed_arg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--unit", choices=["layer", "padded"], default="padded")
    ap.add_argument("--members", type=int, default=40)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--seed", type=seed_arg, default=0)
    ap.add_argument("--precompile", type=int, default=0, metavar="N",
                    help="--unit padded: first compile the space's 12 covering members in N processes into a "
                         "persistent compilation cache of its own (nas/precompile.py), from which the members "
                         "then load their layers; not counted in their compile seconds")
    ap.add_argument("--plot", nargs="+", metavar="JSON", help="draw these measurements into --out (a .png)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.plot:
        plot(args.plot, args.out)
        return 0
    if args.precompile:
        if args.unit != "padded":
            ap.error("--precompile: only with --unit padded")
        import tempfile

        import jax

        jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="layer-reuse-cache-"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    result = measure(args.unit, args.members, args.width, args.seed, args.precompile)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    rows = result["rows"]
    for a, b in ((0, 10), (10, 20), (20, 30), (30, len(rows))):
        b = min(b, len(rows))
        if b > a:
            part = rows[a:b]
            print(f"members {a + 1}-{b}: compile {np.mean([r['compile_s'] for r in part]):.1f} s a member, "
                  f"{sum(r['layers_compiled'] for r in part)} of {sum(r['layers'] for r in part)} layers new, "
                  f"{sum(r['layers_loaded'] for r in part)} of them loaded from the compilation cache")
    if result["precompile"]:
        p = result["precompile"]
        print(f"precompile: {p['members']} covering members in {p['wall_s']:.0f} s ({p['workers']} processes), "
              f"{p['stages_compiled_sum']} layers compiled; members: {sum(r['compile_s'] for r in rows):.0f} s "
              "of compiling in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
