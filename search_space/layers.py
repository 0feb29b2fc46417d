"""Concrete layers of a spec at a resolution, and their analytic parameter and multiply-add counts.

``layer_plan(spec)`` unrolls a spec into :class:`Layer` values with input and output shapes; the
model builders, the counts and the latency model all read this one plan, so they cannot disagree
about what a spec means.

Counting conventions (those of the MobileNetV2 / MnasNet / EfficientNet papers):
* ``multiply_adds``: convolutions (k*k*cin*cout/groups per output pixel), squeeze-excite 1x1
  convs and the classifier; batch norm, activations, pooling and additions are not counted.
* ``params``: convolution and classifier weights and biases. Batch norm's scale and offset (2 per
  channel) are counted apart as ``bn_params``; its moving statistics are state, not parameters.
  MobileNetV2 1.0 at 224 has 3.47M params by this count (3.4M published) and 3.50M with BN.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from search_space.errors import SpecError
from search_space.spec import ArchSpec, ConvOp, MobileNetSpec, SkipOp, WideResNetSpec

Op = Literal["stem", "mbconv", "sepconv", "conv", "head", "classifier", "wrn_stem", "wrn_basic", "wrn_final"]


def conv_out(size: int, stride: int) -> int:
    """'SAME' padding output size."""
    return -(-size // stride)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer with shapes. Filters: ``cin`` -> (``cexp`` inner) -> ``cout``; spatial ``h_in`` -> ``h_out``."""

    name: str
    op: Op
    h_in: int
    w_in: int
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    cexp: int = 0  # channels of the expanded (depthwise) stage; cin for sepconv; 0 where none
    se_channels: int = 0  # reduced channels of squeeze-excite; 0 = no SE
    shortcut: Literal["none", "identity", "pool", "pool_proj", "proj"] = "none"
    params: int = 0
    bn_params: int = 0
    multiply_adds: int = 0

    @property
    def h_out(self) -> int:
        return conv_out(self.h_in, self.stride)

    @property
    def w_out(self) -> int:
        return conv_out(self.w_in, self.stride)


def _se_counts(channels: int, reduced: int) -> tuple[int, int]:
    """(params, multiply-adds) of SE: two 1x1 convs with biases on a pooled vector."""
    return 2 * channels * reduced + reduced + channels, 2 * channels * reduced


def se_channels(in_filters: int, ratio: float) -> int:
    """MnasNet: SE reduces to max(1, int(input_filters * se_ratio)) channels."""
    return max(1, int(in_filters * ratio)) if ratio > 0 else 0


def keeps_shape(stride: int, cin: int, cout: int, declared_in: int) -> bool:
    """Whether a mobile layer's output has its input's shape (stride 1, in == out channels, and the
    block string's declared input as well): where an identity shortcut applies, and where the pool
    skip is the identity (``search_space.space.canonical_skips``)."""
    return stride == 1 and cin == cout and declared_in == cout


def _mobile_layer(name: str, op: ConvOp, h: int, w: int, cin: int, cout: int, kernel: int, stride: int,
                  expand: int, se_ratio: float, skip: SkipOp, declared_in: int) -> Layer:
    """``declared_in`` is the block string's i: it sets SE width and the residual test (TF code)."""
    ho, wo = conv_out(h, stride), conv_out(w, stride)
    se = se_channels(declared_in, se_ratio)
    params = bn = madds = 0
    if op == ConvOp.CONV:
        cexp = 0
        params += kernel * kernel * cin * cout
        madds += kernel * kernel * cin * cout * ho * wo
        bn += 2 * cout
        se_on = cout
    else:
        cexp = cin * expand if op == ConvOp.MBCONV else cin
        if op == ConvOp.MBCONV:
            params += cin * cexp
            madds += cin * cexp * h * w
            bn += 2 * cexp
        params += kernel * kernel * cexp
        madds += kernel * kernel * cexp * ho * wo
        bn += 2 * cexp
        params += cexp * cout
        madds += cexp * cout * ho * wo
        bn += 2 * cout
        se_on = cexp
    if se:
        p, m = _se_counts(se_on, se)
        params += p
        madds += m
    same_shape = keeps_shape(stride, cin, cout, declared_in)
    if skip == SkipOp.NONE:
        shortcut = "none"
    elif same_shape:
        shortcut = "identity"
    elif skip == SkipOp.IDENTITY:
        shortcut = "none"
    elif cin == cout:
        shortcut = "pool"
    else:
        shortcut = "pool_proj"
        params += cin * cout
        madds += cin * cout * ho * wo
        bn += 2 * cout
    return Layer(name=name, op=op.value, h_in=h, w_in=w, cin=cin, cout=cout, kernel=kernel, stride=stride,
                 cexp=cexp, se_channels=se, shortcut=shortcut, params=params, bn_params=bn, multiply_adds=madds)


def _mobile_plan(spec: MobileNetSpec, num_classes: int, resolution: int) -> list[Layer]:
    h = w = resolution
    layers = [Layer(name="stem", op="stem", h_in=h, w_in=w, cin=3, cout=spec.stem_filters, kernel=3,
                    stride=spec.stem_stride, params=27 * spec.stem_filters, bn_params=2 * spec.stem_filters,
                    multiply_adds=27 * spec.stem_filters * conv_out(h, spec.stem_stride) * conv_out(w, spec.stem_stride))]
    h, w, c = layers[0].h_out, layers[0].w_out, spec.stem_filters
    for b, blk in enumerate(spec.blocks):
        for r in range(blk.repeats):
            first = r == 0
            layer = _mobile_layer(f"block{b + 1}.{r}", blk.conv_op, h, w, c, blk.out_filters, blk.kernel,
                                  blk.strides if first else 1, blk.expand, blk.se_ratio, blk.skip,
                                  declared_in=blk.in_filters if first else blk.out_filters)
            layers.append(layer)
            h, w, c = layer.h_out, layer.w_out, layer.cout
    c = spec.blocks[-1].out_filters
    if spec.head_filters:
        hf = spec.head_filters
        layers.append(Layer(name="head", op="head", h_in=h, w_in=w, cin=c, cout=hf, params=c * hf,
                            bn_params=2 * hf, multiply_adds=c * hf * h * w))
        c = hf
    layers.append(Layer(name="classifier", op="classifier", h_in=h, w_in=w, cin=c, cout=num_classes,
                        params=c * num_classes + num_classes, multiply_adds=c * num_classes))
    return layers


def wrn_group_widths(spec: WideResNetSpec) -> tuple[int, int, int]:
    return 16 * spec.width, 32 * spec.width, 64 * spec.width


def _wrn_plan(spec: WideResNetSpec, num_classes: int, resolution: int) -> list[Layer]:
    h = w = resolution
    layers = [Layer(name="stem", op="wrn_stem", h_in=h, w_in=w, cin=3, cout=16, kernel=3, params=27 * 16,
                    multiply_adds=27 * 16 * h * w)]
    n = (spec.depth - 4) // 6
    cin = 16
    for g, (cout, stride) in enumerate(zip(wrn_group_widths(spec), (1, 2, 2))):
        for r in range(n):
            s = stride if r == 0 else 1
            ho, wo = conv_out(h, s), conv_out(w, s)
            proj = cin != cout or s != 1
            params = 9 * cin * cout + 9 * cout * cout + (cin * cout if proj else 0)
            madds = (9 * cin * cout + 9 * cout * cout + (cin * cout if proj else 0)) * ho * wo
            layers.append(Layer(name=f"group{g + 1}.{r}", op="wrn_basic", h_in=h, w_in=w, cin=cin, cout=cout,
                                kernel=3, stride=s, shortcut="proj" if proj else "identity", params=params,
                                bn_params=2 * cin + 2 * cout, multiply_adds=madds))
            h, w, cin = ho, wo, cout
    layers.append(Layer(name="final_bn", op="wrn_final", h_in=h, w_in=w, cin=cin, cout=cin, bn_params=2 * cin))
    layers.append(Layer(name="classifier", op="classifier", h_in=h, w_in=w, cin=cin, cout=num_classes,
                        params=cin * num_classes + num_classes, multiply_adds=cin * num_classes))
    return layers


def layer_plan(spec: ArchSpec, num_classes: int = 1000, resolution: int | None = None) -> list[Layer]:
    """Every layer of ``spec`` at ``resolution`` (default: the spec's own)."""
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise SpecError(f"num_classes: must be a positive int, got {num_classes!r}")
    res = spec.resolution if resolution is None else resolution
    if not (isinstance(res, int) and res >= 1):
        raise SpecError(f"resolution: must be a positive int, got {res!r}")
    if isinstance(spec, MobileNetSpec):
        return _mobile_plan(spec, num_classes, res)
    if isinstance(spec, WideResNetSpec):
        return _wrn_plan(spec, num_classes, res)
    raise SpecError(f"spec: expected a member architecture, got {type(spec).__name__}")


@dataclasses.dataclass(frozen=True)
class Counts:
    params: int
    bn_params: int
    multiply_adds: int

    @property
    def flops(self) -> int:
        """FLOPs as 2 x multiply-adds (the convention of the ensembles paper's figures)."""
        return 2 * self.multiply_adds


def count(spec: ArchSpec, num_classes: int = 1000, resolution: int | None = None) -> Counts:
    plan = layer_plan(spec, num_classes, resolution)
    return Counts(params=sum(l.params for l in plan), bn_params=sum(l.bn_params for l in plan),
                  multiply_adds=sum(l.multiply_adds for l in plan))


def total_params(spec: ArchSpec, num_classes: int = 1000) -> int:
    return count(spec, num_classes).params
