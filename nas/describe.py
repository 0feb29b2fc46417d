"""`nas describe`: parameters and multiply-adds per layer and in total."""

from __future__ import annotations

from typing import Any

from latency.estimator import ensemble_latency, get_estimator
from search_space.layers import count, layer_plan
from search_space.spec import ArchSpec, EnsembleSpec, WideResNetSpec, spec_id


def default_num_classes(spec: ArchSpec) -> int:
    """WRN figures are published for CIFAR-10 (10 classes); ImageNet networks for 1000."""
    return 10 if isinstance(spec, WideResNetSpec) else 1000


def describe_member(spec: ArchSpec, num_classes: int | None = None, device: str | None = "pixel1") -> dict[str, Any]:
    nc = num_classes or default_num_classes(spec)
    c = count(spec, nc)
    latency = get_estimator(device).estimate(spec, num_classes=nc) if device else None
    layers = [{"name": l.name, "op": l.op, "input": [l.h_in, l.w_in, l.cin], "output": [1, 1, l.cout] if l.op == "classifier" else [l.h_out, l.w_out, l.cout],
               "kernel": l.kernel, "stride": l.stride, "expanded": l.cexp, "se_channels": l.se_channels,
               "shortcut": l.shortcut, "params": l.params, "bn_params": l.bn_params,
               "multiply_adds": l.multiply_adds} for l in layer_plan(spec, nc)]
    return {"id": spec_id(spec), "spec": spec.to_dict(), "resolution": spec.resolution, "num_classes": nc,
            "params": c.params, "bn_params": c.bn_params, "multiply_adds": c.multiply_adds, "layers": layers,
            **({"latency_ms": latency.total_ms, "latency_device": f"{latency.device} ({latency.era} TFLite)"}
               if latency else {})}


def describe(spec: ArchSpec | EnsembleSpec, num_classes: int | None = None, device: str | None = "pixel1") -> dict[str, Any]:
    if isinstance(spec, EnsembleSpec):
        members = [describe_member(m, num_classes, device) for m in spec.members]
        out = {"id": spec_id(spec), "members": members, "params": sum(m["params"] for m in members),
               "bn_params": sum(m["bn_params"] for m in members),
               "multiply_adds": sum(m["multiply_adds"] for m in members)}
        if device:
            agg = ensemble_latency([m["latency_ms"] for m in members])
            out.update(latency_ms=agg.max_ms, latency_sum_ms=agg.sum_ms)
        return out
    return describe_member(spec, num_classes, device)


def format_member(d: dict[str, Any]) -> str:
    rows = [f"{'layer':<14}{'op':<11}{'input':>15}{'output':>15}{'k/s':>6}{'shortcut':>10}{'params':>12}{'MAdds':>14}"]
    for l in d["layers"]:
        i, o = "x".join(map(str, l["input"])), "x".join(map(str, l["output"]))
        rows.append(f"{l['name']:<14}{l['op']:<11}{i:>15}{o:>15}{str(l['kernel']) + '/' + str(l['stride']):>6}"
                    f"{l['shortcut']:>10}{l['params']:>12,}{l['multiply_adds']:>14,}")
    rows.append(f"{'total':<71}{d['params']:>12,}{d['multiply_adds']:>14,}")
    rows.append(f"params {d['params'] / 1e6:.3f}M (+{d['bn_params'] / 1e3:.1f}k batch-norm), "
                f"multiply-adds {d['multiply_adds'] / 1e6:.1f}M at {d['resolution']}px, {d['num_classes']} classes")
    if "latency_ms" in d:
        rows.append(f"latency {d['latency_ms']:.1f} ms on {d['latency_device']}")
    rows.append(f"id {d['id'][:16]}")
    return "\n".join(rows)


def format_description(d: dict[str, Any]) -> str:
    if "members" not in d:
        return format_member(d)
    parts = [f"== member {i + 1} ==\n{format_member(m)}" for i, m in enumerate(d["members"])]
    lat = f", latency max {d['latency_ms']:.1f} ms / sum {d['latency_sum_ms']:.1f} ms" if "latency_ms" in d else ""
    parts.append(f"ensemble of {len(d['members'])}: params {d['params'] / 1e6:.3f}M, "
                 f"multiply-adds {d['multiply_adds'] / 1e6:.1f}M{lat}, id {d['id'][:16]}")
    return "\n\n".join(parts)
