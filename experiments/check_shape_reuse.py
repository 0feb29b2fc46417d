"""How often a new member's convolutions have shapes that earlier members already had, in the
CIFAR-10 search (experiments/search_cifar10.py), per controller: the ceiling on what a shared
per-fusion autotuning cache can save (GPU compiles are mostly autotuning; PERF_NOTES.md: 54 s cold,
12.5 s for an architecture differing from a cached one in one block).

    python -m experiments.check_shape_reuse --out experiments/results/shape_reuse

No training and no compiling: each member's layer plan (search_space/layers.py) is cut into its
convolutions, each named by what a convolution kernel is chosen for: kind (full k x k, depthwise,
1x1), input size, channels in and out, kernel and stride (batch size and dtype are the same for every
member of a search). Members come in the order a search trains them: samples of sizes 1, 2 and 3
take turns a batch at a time (nas/search.py), each new member once. Random search and REINFORCE at
initialization draw the same way (uniformly), so "random" stands for both at the start; "evolution"
is regularized evolution (controller/evolution.py) with rewards drawn at random, which is what its
reuse depends on least: children copy their parents' other decisions whatever the rewards were.
Prints, per controller, the distinct convolution shapes after 30 / 60 / 120 / all members and the
share of a new member's convolutions seen before, and draws both against members trained.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def conv_shapes(spec: Any, num_classes: int = 10) -> list[tuple]:
    """The convolutions of a member's layer plan, as (kind, input size, cin, cout, kernel, stride)."""
    from search_space.layers import layer_plan

    out: list[tuple] = []
    for layer in layer_plan(spec, num_classes):
        h = layer.h_in
        if layer.op in ("stem", "conv"):
            out.append(("full", h, layer.cin, layer.cout, layer.kernel, layer.stride))
        elif layer.op == "mbconv":
            if layer.cexp != layer.cin:
                out.append(("1x1", h, layer.cin, layer.cexp, 1, 1))
            out.append(("depthwise", h, layer.cexp, layer.cexp, layer.kernel, layer.stride))
            out.append(("1x1", layer.h_out, layer.cexp, layer.cout, 1, 1))
        elif layer.op == "sepconv":
            out.append(("depthwise", h, layer.cin, layer.cin, layer.kernel, layer.stride))
            out.append(("1x1", layer.h_out, layer.cin, layer.cout, 1, 1))
        elif layer.op == "head":
            out.append(("1x1", h, layer.cin, layer.cout, 1, 1))
        if layer.op in ("mbconv", "sepconv", "conv") and layer.shortcut in ("pool_proj", "proj"):
            out.append(("1x1", layer.h_out, layer.cin, layer.cout, 1, 1))
    return out


def layer_kinds(spec: Any, num_classes: int = 10) -> tuple[list[tuple], list[tuple]]:
    """A member's layers as the per-layer trainers key their programs (trainer/layerwise.py): exact
    (``compile_unit=layer``: the layer's operation, input size, widths, kernel, stride, expansion,
    squeeze-excite and shortcut) and padded (``compile_unit=padded``, trainer/padded.py: operation,
    block, first layer of its block or not, input size; the rest are envelope widths and switches)."""
    from search_space.layers import layer_plan

    exact, padded = [], []
    for layer in layer_plan(spec, num_classes):
        exact.append((layer.op, layer.h_in, layer.cin, layer.cout, layer.kernel, layer.stride, layer.cexp,
                      layer.se_channels, layer.shortcut))
        if layer.op in ("mbconv", "sepconv", "conv"):
            block, repeat = layer.name.removeprefix("block").split(".")
            padded.append((layer.op, layer.h_in, int(block), repeat == "0"))
        else:  # stem, head, classifier: fixed widths in the space (the head's input padded)
            padded.append((layer.op, layer.h_in))
    return exact, padded


def members_in_search_order(controller: str, samples_per_size: int, seed: int) -> list[Any]:
    """The distinct members a search of experiments/search_cifar10.py's space trains, in order."""
    import dataclasses

    from experiments.search_cifar10 import get_config
    from nas.search import make_controller, make_space

    config = dataclasses.replace(get_config(), controller=controller, seed=seed)
    decode = make_space(config, 32)
    counts = decode.choice_counts  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    ctrls = {n: make_controller(config, counts, n, decode) for n in config.sizes}
    seen_keys: set[tuple] = set()
    members = []
    for rnd in range(-(-samples_per_size // config.batch)):
        k = min(config.batch, samples_per_size - rnd * config.batch)
        drawn = [(n, ctrls[n].sample(k)) for n in config.sizes]
        for n, vecs in drawn:
            for vec in vecs:
                for pos, m in enumerate(decode(vec).members):
                    key = (m.id, pos)  # the member cache's key: spec and seed (the position)
                    if key not in seen_keys:
                        seen_keys.add(key)
                        members.append(m)
            ctrls[n].update(vecs, rng.random(len(vecs)))
    return members


def reuse_curve(members: list[Any]) -> dict[str, Any]:
    seen: set[tuple] = set()
    distinct, share_seen, counts = [], [], []
    layers: dict[str, set[tuple]] = {"exact": set(), "padded": set()}
    distinct_layers: dict[str, list[int]] = {"exact": [], "padded": []}
    layers_new: dict[str, list[float]] = {"exact": [], "padded": []}
    for m in members:
        shapes = conv_shapes(m)
        share_seen.append(sum(s in seen for s in shapes) / len(shapes))
        seen.update(shapes)
        distinct.append(len(seen))
        counts.append(len(shapes))
        for unit, kinds in zip(("exact", "padded"), layer_kinds(m)):
            layers_new[unit].append(sum(k not in layers[unit] for k in kinds) / len(kinds))
            layers[unit].update(kinds)
            distinct_layers[unit].append(len(layers[unit]))
    return {"members": len(members), "distinct_shapes": distinct, "share_seen": share_seen,
            "shapes_per_member": float(np.mean(counts)),
            # per-layer programs (trainer/layerwise.py), keyed exactly or padded (trainer/padded.py):
            # the distinct layer kinds so far, and the share of a member's layers of a kind not met before
            "distinct_layers": distinct_layers, "layers_new": layers_new}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples-per-size", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3, help="searches per controller (seeds 0..N-1)")
    ap.add_argument("--out", help="folder for shape_reuse.json and shape_reuse.png")
    args = ap.parse_args(argv)

    results: dict[str, list[dict[str, Any]]] = {}
    for controller in ("random", "evolution"):
        results[controller] = [reuse_curve(members_in_search_order(controller, args.samples_per_size, s))
                               for s in range(args.seeds)]
    print(f"{'controller':<11}{'seed':>5}{'members':>9}{'convs/member':>14}{'distinct shapes after 30/60/120/all':>38}"
          f"{'seen before, members 1-30 / 31-60 / 61+':>44}")
    for controller, runs in results.items():
        for seed, r in enumerate(runs):
            d, s = r["distinct_shapes"], np.asarray(r["share_seen"])
            at = " / ".join(str(d[min(i, len(d)) - 1]) for i in (30, 60, 120, len(d)))
            parts = " / ".join(f"{100 * s[a:b].mean():.0f}%" for a, b in ((0, 30), (30, 60), (60, len(s))) if b > a)
            print(f"{controller:<11}{seed:>5}{r['members']:>9}{r['shapes_per_member']:>14.1f}{at:>38}{parts:>44}")
    print("\nper-layer programs: distinct layer kinds after 30/60/120/all members, exact (compile_unit=layer) | "
          "padded (compile_unit=padded); a member's layers of a new kind, members 61 on")
    for controller, runs in results.items():
        for seed, r in enumerate(runs):
            cols = []
            for unit in ("exact", "padded"):
                d = r["distinct_layers"][unit]
                cols.append(" / ".join(str(d[min(i, len(d)) - 1]) for i in (30, 60, 120, len(d)))
                            + f", {100 * np.mean(r['layers_new'][unit][60:]):.1f}% new")
            print(f"{controller:<11}{seed:>5}   {cols[0]:<34}| {cols[1]}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "shape_reuse.json").write_text(json.dumps({"samples_per_size": args.samples_per_size,
                                                          "results": results}, indent=1) + "\n")
        _plot(results, out / "shape_reuse.png")
        print(f"written: {out}/shape_reuse.json, shape_reuse.png")
    return 0


def _plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b, c) = plt.subplots(1, 3, figsize=(16, 4))
    for (controller, runs), color in zip(results.items(), ("tab:blue", "tab:green")):
        for i, r in enumerate(runs):
            x = np.arange(1, r["members"] + 1)
            label = controller if i == 0 else None
            a.plot(x, r["distinct_shapes"], color=color, alpha=0.8, label=label)
            roll = np.convolve(r["share_seen"], np.ones(10) / 10, mode="valid")
            b.plot(x[9:], 100 * roll, color=color, alpha=0.8, label=label)
            for unit, style in (("exact", "-"), ("padded", "--")):
                c.plot(x, r["distinct_layers"][unit], color=color, ls=style, alpha=0.8,
                       label=f"{controller}, {unit} layers" if i == 0 else None)
    a.set_ylabel("distinct convolution shapes so far")
    b.set_ylabel("new member's convolutions seen before (%)")
    b.set_title("rolling mean over 10 members", fontsize=8)
    c.set_ylabel("distinct per-layer program keys so far")
    c.set_title("compile_unit=layer (exact) against compile_unit=padded", fontsize=8)
    for ax in (a, b, c):
        ax.set_xlabel("members trained (search order)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("CIFAR-10 search space (experiments/search_cifar10.py): convolution shapes repeated across members",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
