"""Padded layers: one set of per-layer programs for every member of the search space.

``trainer.compile_unit="padded"`` trains a member with the per-layer programs of
trainer/layerwise.py, but each mbconv / sepconv / conv layer is first widened to the *envelope* of
its position in the MnasNet space: the widest filters the space allows for its block (1.25 x
MobileNetV2's), expansion 6, a 5x5 kernel, squeeze-excite, and a pooled 1x1 projection shortcut on a
block's first layer. The member's own weights sit in a corner of the envelope's arrays (a 3x3 kernel
in the centre of a 5x5 one) and everything else is zero; what differs between members of one
envelope, the kernel size, whether squeeze-excite and which shortcut, are switches held as state
(``PadGate``), inputs of the programs rather than constants in them. So a layer's programs depend
only on (block, first layer of the block or not, operation, input resolution): 169 kinds for the
CIFAR-10 space, where exact layers keep coming (a random search's 180 members: 1,741-1,786 distinct
exact layers, and from the 61st member on 59-62% of a member's layers new, against 0-0.3% padded;
experiments/results/shape_reuse, docs/training.md).

Why the padded member computes the member and nothing else (checked against the unpadded trainer
step by step in tests/trainer/test_padded.py):
* zero weights into and out of a padded channel keep it zero: its batch norm sees zeros and gives
  its offset, 0, and every activation of this space maps 0 to 0; its gradient is zero because every
  weight that reads it is zero, so its weights, their momentum and their weight decay stay zero;
* a 3x3 kernel in the centre of a 5x5 one is the same 'SAME' convolution (the padding differs by
  one pixel a side at either stride), and the kernel is multiplied by its mask in the forward pass so
  that the ring's gradient is zero too;
* squeeze-excite off selects a gate of 1 (``jnp.where``, exact), and a shortcut off adds 0 x the
  shortcut; the unused parts' gradients are zero.
Floating-point sums run over more (zero) terms in another order, so results agree to rounding,
not bit for bit, and a member trained padded is a different cache entry from one trained unpadded
(``compile_unit`` is part of the trainer config's key).

The price is arithmetic: a padded layer computes its envelope's multiply-adds (about 2-4x a
typical member's on the CPU, where that is the cost; on a GPU these small networks run at about 1%
of its peak, ../shared/PERF_NOTES.md, so the step's fixed cost dominates).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from search_space.blockstring import round_filters
from search_space.layers import Layer, layer_plan
from search_space.models import (_ACTIVATIONS, Classifier, ConvBN, MobileNet, SqueezeExcite, main_path,
                                  set_conv_lowering)
from search_space.space import (EXPANDS, FILTER_MULTIPLIERS, KERNELS, MOBILENETV2_BLOCKS, SE_RATIOS, STEM_FILTERS,
                                 MnasNetSpace)
from search_space.spec import ConvOp, MobileNetSpec


class PadGate(nnx.Variable):
    """A padded layer's switches for one member (kernel mask, squeeze-excite on, shortcut gates):
    state rather than parameters, so the optimizer leaves them alone and programs take them as inputs."""


def envelope_spec(spec: MobileNetSpec) -> MobileNetSpec:
    """``spec`` widened to the MnasNet space's envelope, block by block, with the same layer counts,
    strides, stem, head and resolution: each block's widest filters choice at the spec's width (the
    width multiplier read off the stem, MobileNetV2's 32 filters), the largest expansion (mbconv),
    kernel and squeeze-excite ratio of the space. Never narrower than ``spec`` itself, so any
    MobileNet-family spec pads; only members of one space share the envelope."""
    width = spec.stem_filters / STEM_FILTERS
    blocks, in_filters = [], spec.stem_filters
    for b, blk in enumerate(spec.blocks):
        widest = (round_filters(round_filters(MOBILENETV2_BLOCKS[b][1], max(FILTER_MULTIPLIERS)), width)
                  if b < len(MOBILENETV2_BLOCKS) else 0)
        out = max(blk.out_filters, widest)
        blocks.append(dataclasses.replace(
            blk, in_filters=in_filters, out_filters=out, kernel=max(blk.kernel, max(KERNELS)),
            expand=max(blk.expand, max(EXPANDS)) if blk.conv_op == ConvOp.MBCONV else blk.expand,
            se_ratio=max(blk.se_ratio, max(SE_RATIOS))))
        in_filters = out
    return spec.replace(blocks=tuple(blocks))


def covering_vectors(space: MnasNetSpace) -> list[tuple[int, ...]]:
    """Member decision vectors whose padded layers are every padded layer kind of ``space``: one
    member per (operation, input resolution), every block of it that operation at its most layers
    (so each block has a first layer and a later one); the other choices are the space's first,
    which padding does not see. With the stem, head and classifier at each resolution, that is every
    program a search's padded members can ask for (3 operations x 4 resolutions = 12 members for the
    MnasNet space; tests/trainer/test_padded.py checks them against random members)."""
    choices = [d.choices for d in space.decisions]
    names = [d.name for d in space.decisions]
    ops = next(c for n, c in zip(names, choices) if n.endswith(".conv_op"))
    resolutions = choices[names.index("resolution")]
    vectors = []
    for r in range(len(resolutions)):
        for op in range(len(ops)):
            vec = []
            for name, c in zip(names, choices):
                if name.endswith(".conv_op"):
                    vec.append(op)
                elif name.endswith(".layers"):
                    vec.append(max(range(len(c)), key=lambda i: c[i]))
                elif name == "resolution":
                    vec.append(r)
                else:
                    vec.append(0)
            vectors.append(tuple(vec))
    return vectors


class PaddedMobileLayer(nnx.Module):
    """A mobile layer at its envelope's widths (``search_space.models.MobileLayer``'s structure with
    squeeze-excite always and, on a block's first layer, a pooled 1x1 projection shortcut), whose
    kernel size, squeeze-excite and shortcut for the member at hand are ``PadGate`` switches."""

    def __init__(self, env: Layer, first: bool, act: Callable, rngs: nnx.Rngs, dtype: Any):
        self.op, self.stride = env.op, env.stride
        self.expand, self.main, self.project, se_on = main_path(env, act, rngs, dtype)
        self.se = SqueezeExcite(se_on, env.se_channels, act, rngs, dtype)
        self.proj = ConvBN(env.cin, env.cout, 1, 1, None, rngs, dtype) if first else None
        self.kernel_mask = PadGate(jnp.ones((env.kernel, env.kernel), jnp.float32))
        self.se_on = PadGate(jnp.ones((), jnp.float32))
        self.identity_on = PadGate(jnp.zeros((), jnp.float32))  # "identity" or "pool": y + P(x)
        self.proj_on = PadGate(jnp.zeros((), jnp.float32))  # "pool_proj": y + proj(P(x))

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.expand(x) if self.expand is not None else x
        main = self.main
        masked = main.conv.kernel[...] * self.kernel_mask[...][:, :, None, None]
        y = main.bn(main.conv.apply_kernel(y, masked))
        y = main.act(y) if main.act is not None else y
        s = jnp.mean(y, axis=(1, 2), keepdims=True)
        s = self.se.expand(self.se.act(self.se.reduce(s)))
        y = y * jnp.where(self.se_on[...] > 0, jax.nn.sigmoid(s), 1)
        if self.project is not None:
            y = self.project(y)
        short = x
        if self.stride > 1:
            short = nnx.avg_pool(short, (self.stride, self.stride), strides=(self.stride, self.stride), padding="SAME")
        y = y + self.identity_on[...].astype(y.dtype) * _fit_channels(short, y.shape[-1])
        if self.proj is not None:
            y = y + self.proj_on[...].astype(y.dtype) * self.proj(short)
        return y


def _fit_channels(x: jax.Array, channels: int) -> jax.Array:
    """``x`` cut or zero-padded to ``channels`` on its last axis (an identity shortcut between two
    envelope widths: the member's channels, equal on both sides, sit within both)."""
    c = x.shape[-1]
    if c >= channels:
        return x[..., :channels]
    return jnp.pad(x, ((0, 0),) * (x.ndim - 1) + ((0, channels - c),))


def layer_gates(real: Layer, env_kernel: int) -> dict[str, np.ndarray]:
    """The ``PadGate`` values that make a padded layer (kernel ``env_kernel``) compute ``real``: its
    kernel's centre, whether it has squeeze-excite, and which shortcut it takes."""
    mask = np.zeros((env_kernel, env_kernel), np.float32)
    o = (env_kernel - real.kernel) // 2
    mask[o:o + real.kernel, o:o + real.kernel] = 1.0
    return {"kernel_mask": mask, "se_on": np.float32(real.se_channels > 0),
            "identity_on": np.float32(real.shortcut in ("identity", "pool")),
            "proj_on": np.float32(real.shortcut == "pool_proj")}


def _flat(module: nnx.Module) -> dict[tuple, Any]:
    return {tuple(str(k) for k in path): var for path, var in nnx.to_flat_state(nnx.state(module))}


def embed_padded(real: np.ndarray, shape: tuple[int, ...], base: float, name: str) -> np.ndarray:
    """``real`` in the corner of a ``shape`` array of ``base``; a conv kernel (HWIO) centred in space."""
    out = np.full(shape, base, real.dtype)
    if real.ndim != len(shape) or any(r > s for r, s in zip(real.shape, shape)):
        raise ValueError(f"padded layer: {name} of shape {real.shape} does not fit {shape}")
    start = [0] * real.ndim
    if name == "kernel" and real.ndim == 4:
        start[0], start[1] = (shape[0] - real.shape[0]) // 2, (shape[1] - real.shape[1]) // 2
    out[tuple(slice(s, s + n) for s, n in zip(start, real.shape))] = real
    return out


# (graphdef, abstract state) of each padded module kind, built once per process: tracing a layer's
# construction costs about 0.1-0.2 s of host time (2-core CPU), which a search would otherwise pay
# for every layer of every member.

@functools.lru_cache(maxsize=512)
def _abstract_layer(env: Layer, first: bool, activation: Any, dtype: Any) -> tuple[Any, Any]:
    act = _ACTIVATIONS[activation]
    return nnx.split(nnx.eval_shape(lambda: PaddedMobileLayer(env, first, act, nnx.Rngs(0), dtype)))


@functools.lru_cache(maxsize=64)
def _abstract_head(cin: int, cout: int, activation: Any, dtype: Any) -> tuple[Any, Any]:
    act = _ACTIVATIONS[activation]
    return nnx.split(nnx.eval_shape(lambda: ConvBN(cin, cout, 1, 1, act, nnx.Rngs(0), dtype)))


@functools.lru_cache(maxsize=64)
def _abstract_classifier(cin: int, classes: int, dropout: float, dtype: Any) -> tuple[Any, Any]:
    return nnx.split(nnx.eval_shape(lambda: Classifier(cin, classes, dropout, nnx.Rngs(0), dtype)))


def pad_module(real: nnx.Module, abstract: tuple[Any, Any], gates: dict[str, np.ndarray] | None = None,
               ) -> nnx.Module:
    """The module ``abstract`` describes (wider, same submodule names), holding ``real``'s state
    embedded (``embed_padded``): padded kernels, biases and batch-norm offsets and means zero, scales and
    variances one; parts ``real`` lacks (squeeze-excite, projection) as fresh zeros; ``gates`` set
    its ``PadGate`` switches."""
    graphdef, state = abstract
    have = _flat(real)
    gates = gates or {}

    def fill(path: tuple, var: Any) -> Any:
        key = tuple(str(k) for k in path)
        name, shape = key[-1], var.get_value().shape
        if isinstance(var, PadGate):
            return var.replace(jnp.asarray(gates[name]))
        if key in have:
            value = have[key].get_value()
            if isinstance(var, (nnx.RngKey, nnx.RngCount)):
                return var.replace(value)
            return var.replace(jnp.asarray(embed_padded(np.asarray(value), shape, 1.0 if name in ("scale", "var") else 0.0,
                                                  name)))
        if isinstance(var, (nnx.RngKey, nnx.RngCount)):
            raise ValueError(f"padded layer: no random state for {key} in the member")
        base = 1.0 if name in ("scale", "var") else 0.0
        return var.replace(jnp.full(shape, base, var.get_value().dtype))

    return nnx.merge(graphdef, nnx.map_state(fill, state))


def padded_stages(model: MobileNet, spec: MobileNetSpec, num_classes: int, lowering: str) -> list[nnx.Module]:
    """``model``'s stages (trainer/layerwise.py's ``model_stages``) with every mobile layer, the head
    and (without a head) the classifier padded to ``envelope_spec(spec)``; the stem as it is.
    ``lowering`` is the model's dense-convolution lowering, given to the new modules too."""
    act, dtype = spec.activation, model.dtype
    env = envelope_spec(spec)
    real_plan = [l for l in layer_plan(spec, num_classes) if l.op in ("mbconv", "sepconv", "conv")]
    env_plan = [l for l in layer_plan(env, num_classes) if l.op in ("mbconv", "sepconv", "conv")]
    stages: list[nnx.Module] = [model.stem]
    for module, real, wide in zip(model.layers, real_plan, env_plan):
        # what the module is built from, the rest blanked so that one kind is one cache entry
        wide = dataclasses.replace(wide, name="", h_in=0, w_in=0, shortcut="none", params=0, bn_params=0,
                                   multiply_adds=0)
        stages.append(pad_module(module, _abstract_layer(wide, real.name.endswith(".0"), act, dtype),
                                 layer_gates(real, wide.kernel)))
    last = env_plan[-1].cout
    if model.head is not None:
        stages.append(pad_module(model.head, _abstract_head(last, model.head.bn.num_features, act, dtype)))
        stages.append(model.classifier)
    else:
        stages.append(pad_module(model.classifier, _abstract_classifier(last, num_classes, spec.dropout, dtype)))
    for s in stages[1:]:
        set_conv_lowering(s, lowering)
    return stages
