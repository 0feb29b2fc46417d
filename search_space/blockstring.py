"""Codec for the tensorflow/tpu MnasNet block-string grammar, and MnasNet width multipliers.

``r2_k3_s22_e6_i16_o24_se0.25_noskip``: r repeats, k kernel, s strides (two equal digits),
e expansion, i/o input/output filters, se squeeze-excite ratio (optional), noskip (no identity
residual). Two tokens extend the grammar for the MnasNet search space, and are written only when
used, so published networks read and write byte for byte:

* ``conv``: the block's op is a regular kxk convolution (written with e1);
* ``poolskip``: the skip op is the pooling shortcut defined in ``search_space.space``.

A block with e1 and no ``conv`` token is the depthwise-separable conv (MBConv without expansion).
"""

from __future__ import annotations

import math
import re

from search_space.errors import SpecError
from search_space.spec import BlockSpec, ConvOp, MobileNetSpec, SkipOp

_TOKEN = re.compile(r"^(r|k|s|e|i|o|se)(\d+(?:\.\d+)?)$")


def decode_block(text: str) -> BlockSpec:
    """Parse one block string; every error names the offending token."""
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"block string: expected text like 'r1_k3_s11_e1_i32_o16', got {text!r}")
    fields: dict[str, str] = {}
    skip, conv_op = SkipOp.IDENTITY, ConvOp.MBCONV
    for tok in text.strip().split("_"):
        if tok == "noskip":
            skip = SkipOp.NONE
        elif tok == "poolskip":
            skip = SkipOp.POOL
        elif tok == "conv":
            conv_op = ConvOp.CONV
        else:
            m = _TOKEN.match(tok)
            if not m:
                raise SpecError(f"block string {text!r}: unknown token {tok!r}")
            if m.group(1) in fields:
                raise SpecError(f"block string {text!r}: token {m.group(1)!r} given twice")
            fields[m.group(1)] = m.group(2)
    for need in ("r", "k", "s", "e", "i", "o"):
        if need not in fields:
            raise SpecError(f"block string {text!r}: missing token {need!r}")
    s = fields["s"]
    if len(s) != 2 or s[0] != s[1] or s[0] not in "12":
        raise SpecError(f"block string {text!r}: strides must be s11 or s22, got s{s}")
    ints = {}
    for key in ("r", "k", "e", "i", "o"):
        if not fields[key].isdigit():
            raise SpecError(f"block string {text!r}: {key} must be an integer, got {fields[key]!r}")
        ints[key] = int(fields[key])
    return BlockSpec(repeats=ints["r"], kernel=ints["k"], strides=int(s[0]), expand=ints["e"],
                     in_filters=ints["i"], out_filters=ints["o"],
                     se_ratio=float(fields.get("se", 0.0)), skip=skip, conv_op=conv_op)


def encode_block(b: BlockSpec) -> str:
    parts = [f"r{b.repeats}", f"k{b.kernel}", f"s{b.strides}{b.strides}", f"e{b.expand}",
             f"i{b.in_filters}", f"o{b.out_filters}"]
    if b.se_ratio > 0:
        parts.append(f"se{b.se_ratio:g}")
    if b.conv_op == ConvOp.CONV:
        parts.append("conv")
    if b.skip == SkipOp.NONE:
        parts.append("noskip")
    elif b.skip == SkipOp.POOL:
        parts.append("poolskip")
    return "_".join(parts)


def decode_blocks(texts: str | list[str] | tuple[str, ...]) -> tuple[BlockSpec, ...]:
    """A whitespace/comma separated string or a list of block strings."""
    if isinstance(texts, str):
        texts = [t for t in re.split(r"[\s,]+", texts.strip()) if t]
    if not texts:
        raise SpecError("blocks: no block strings given")
    return tuple(decode_block(t) for t in texts)


def encode_blocks(blocks: tuple[BlockSpec, ...]) -> str:
    return " ".join(encode_block(b) for b in blocks)


def round_filters(filters: int, multiplier: float, divisor: int = 8) -> int:
    """MnasNet/TF-slim channel rounding: nearest multiple of ``divisor``, never below 90%.

    ``mnasnet_models.round_filters``: new = max(divisor, int(f*m + divisor/2) // divisor * divisor);
    if new < 0.9 * f * m: new += divisor.
    """
    if multiplier == 1.0:
        return filters
    scaled = filters * multiplier
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def round_repeats(repeats: int, depth_multiplier: float) -> int:
    """EfficientNet depth scaling: ceil(repeats * multiplier)."""
    return int(math.ceil(depth_multiplier * repeats))


HEAD_POLICIES = ("never", "above_one", "always")


def scale_width(spec: MobileNetSpec, multiplier: float, head_policy: str = "never") -> MobileNetSpec:
    """Apply a width multiplier to stem and every block; the head by ``head_policy``.

    MnasNet never scales its 1280-channel head; TF-slim MobileNetV2 scales it only for
    multipliers above 1.0 (1792 at 1.4); EfficientNet always scales it.
    """
    if not multiplier > 0:
        raise SpecError(f"width_multiplier: must be > 0, got {multiplier!r}")
    if head_policy not in HEAD_POLICIES:
        raise SpecError(f"head_policy: must be one of {HEAD_POLICIES}, got {head_policy!r}")
    if multiplier == 1.0:
        return spec
    rf = lambda f: round_filters(f, multiplier)  # noqa: E731
    blocks = tuple(b.__class__(repeats=b.repeats, kernel=b.kernel, strides=b.strides, expand=b.expand,
                               in_filters=rf(b.in_filters), out_filters=rf(b.out_filters),
                               se_ratio=b.se_ratio, skip=b.skip, conv_op=b.conv_op)
                   for b in spec.blocks)
    scale_head = head_policy == "always" or (head_policy == "above_one" and multiplier > 1.0)
    head = rf(spec.head_filters) if (scale_head and spec.head_filters) else spec.head_filters
    return spec.replace(blocks=blocks, stem_filters=rf(spec.stem_filters), head_filters=head)
