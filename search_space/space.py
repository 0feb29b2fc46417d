"""The MnasNet factorized hierarchical search space for ensembles (Tan et al. 2019, Sec. 4.1).

The backbone is MobileNetV2 (Sandler et al. 2018): stem conv3x3/2 with 32 filters, seven blocks
(t, c, n, s) below, head conv1x1 with 1280 filters, average pool, FC. Each block is searched with
seven decisions, and each member with one more, the input resolution: m = 7 x 7 + 1 = 50
decisions per member, n x m for an ensemble of n (member after member).

The choices, in decision order within a block (this table is the one place that defines them):

===============  ===========================  ==============================================
decision         choices (index order)        meaning
===============  ===========================  ==============================================
conv_op          mbconv, sepconv, conv        mbconv: 1x1 expand -> kxk depthwise -> [SE] ->
                                              1x1 linear project (MobileNetV2 bottleneck).
                                              sepconv: kxk depthwise -> [SE] -> 1x1 linear
                                              project (= mbconv with e1).
                                              conv: one regular kxk conv in -> out (BN, act)
                                              -> [SE].
expand           3, 6                         expansion ratio of mbconv's 1x1 expand conv;
                                              ignored (written e1) for sepconv and conv.
kernel           3, 5                         kernel of the depthwise (or regular) conv.
se_ratio         0, 0.25                      squeeze-excite: global pool -> 1x1 conv to
                                              max(1, int(in_filters * ratio)) -> act -> 1x1
                                              conv back -> sigmoid gate; 0 = no SE.
skip             none, identity, pool         none: no shortcut. identity: y = F(x) + x on the
                                              layers whose input and output shapes match
                                              (stride 1, in == out), none elsewhere (the
                                              block-string rule). pool: a shortcut on *every*
                                              layer, P(x) = AvgPool(window = stride = the
                                              layer's stride, SAME) then, when in != out, a
                                              1x1 conv + BN to the output channels; y = F(x) +
                                              P(x). Where shapes match, pool == identity; it
                                              differs on a block's first layer, where it adds a
                                              downsampling shortcut (as ResNet-D does).
filters          0.75, 1.0, 1.25              x MobileNetV2's output filters c, rounded to a
                                              multiple of 8, never below 90% (round_filters).
layers           -1, 0, +1                    added to MobileNetV2's n; at least 1 layer.
===============  ===========================  ==============================================

plus, per member, ``resolution`` in {0.5, 0.75, 0.875, 1.0} x the data set's native size
(112/168/196/224 at 224), rounded to the nearest pixel.

Small inputs: with a native size of 64 px or less (CIFAR's 32, MNIST's 28) the stem and the first
stride-2 block run at stride 1, so the total stride is 8 instead of 32 and a 32 px input still
ends at a 4x4 feature map (2x2 at the 0.5 resolution) instead of collapsing to 1x1
(:func:`adapt_for_small_input`; the same rule airbench and the CIFAR ports of MobileNetV2 use).

Every vector of valid choice indices decodes to a valid spec (no rejection loop). Some choices are
inert in places, and decoding writes them canonically, so that two vectors that build the same
network decode to the same spec (and id, and member-cache key): the expansion of a block whose op
has none is written 1, and a block's skip op is written as the first choice that builds the same
layers (:func:`canonical_skips`: pool is identity where the first layer's shapes match; identity is
none on a one-layer block whose shapes do not). ``encode`` returns the canonical vector of a spec
(expand index 0 where it is ignored; the smallest layers index that gives the clamped layer count;
the skip as written canonically), and ``decode(encode(spec)) == canonical_skips(spec)``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

from search_space.blockstring import round_filters
from search_space.errors import SpecError
from search_space.layers import keeps_shape
from search_space.spec import Activation, AnySpec, BlockSpec, ConvOp, EnsembleSpec, MobileNetSpec, SkipOp, spec_id

# MobileNetV2 backbone, Sandler et al. 2018 Table 2: (expansion t, filters c, layers n, stride s).
MOBILENETV2_BLOCKS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
SMALL_INPUT_MAX = 64  # px: native sizes at or below this use the small-input stride rule

CONV_OPS = (ConvOp.MBCONV, ConvOp.SEPCONV, ConvOp.CONV)
EXPANDS = (3, 6)
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = (SkipOp.NONE, SkipOp.IDENTITY, SkipOp.POOL)
FILTER_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
RESOLUTION_FRACTIONS = (0.5, 0.75, 0.875, 1.0)

BLOCK_DECISIONS: tuple[tuple[str, tuple], ...] = (
    ("conv_op", CONV_OPS), ("expand", EXPANDS), ("kernel", KERNELS), ("se_ratio", SE_RATIOS),
    ("skip", SKIPS), ("filters", FILTER_MULTIPLIERS), ("layers", LAYER_DELTAS),
)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One categorical decision: its name (``block3.kernel``) and its choices."""

    name: str
    choices: tuple

    @property
    def num_choices(self) -> int:
        return len(self.choices)


def adapt_for_small_input(spec: MobileNetSpec) -> MobileNetSpec:
    """Stem stride 1 and the first stride-2 block at stride 1 (total stride 32 -> 8)."""
    blocks = list(spec.blocks)
    for i, b in enumerate(blocks):
        if b.strides == 2:
            blocks[i] = dataclasses.replace(b, strides=1)
            break
    return spec.replace(stem_stride=1, blocks=tuple(blocks))


def canonical_skips(spec: MobileNetSpec) -> MobileNetSpec:
    """``spec`` with each block's skip op written as the first of (none, identity, pool) that builds
    the same layers (by ``search_space.layers``' own shape test, ``keeps_shape``, which decides each
    layer's shortcut there; a test checks the merges against layer plans of random members). Where a block's first layer keeps its shape (stride 1, in ==
    out), pool adds the identity on every layer, as identity does; on a one-layer block whose shape
    changes, identity adds nothing, as none does. Without this, such pairs of specs were different
    ids for one network: trained twice, and an evolution child differing from its parent only there
    was not redrawn (1 to 8 of each of the CPU searches' 119-120 members, in
    experiments/results/cpu_search*; two one-member samples of cpu_search_2026-12-02, #9 and #12,
    retrained to the same loss curve). Apply it to the final spec: a width multiplier can make a
    first layer's shapes match (8 -> 8 channels at a quarter width where 32 -> 16 at full)."""
    blocks, channels = [], spec.stem_filters
    for b in spec.blocks:
        first_keeps = keeps_shape(b.strides, channels, b.out_filters, b.in_filters)  # the block's first layer
        skip = b.skip
        if skip == SkipOp.POOL and first_keeps:
            skip = SkipOp.IDENTITY
        elif skip == SkipOp.IDENTITY and not first_keeps and b.repeats == 1:
            skip = SkipOp.NONE
        blocks.append(dataclasses.replace(b, skip=skip) if skip != b.skip else b)
        channels = b.out_filters
    return spec if tuple(blocks) == spec.blocks else spec.replace(blocks=tuple(blocks))


def canonical_network(spec: AnySpec) -> AnySpec:
    """``canonical_skips(spec)`` for a MobileNet-style spec, any other spec as it is: the one spec
    of the network ``spec`` builds."""
    return canonical_skips(spec) if isinstance(spec, MobileNetSpec) else spec


def network_id(spec: AnySpec) -> str:
    """``spec_id`` of the network ``spec`` builds (``canonical_network``): two specs that differ only
    in an inert skip choice share it (records written before decoding made skips canonical,
    2026-12-07, hold such pairs under two ids)."""
    return spec_id(canonical_network(spec))


def member_resolution(fraction: float, native_resolution: int) -> int:
    return int(round(fraction * native_resolution))


@dataclasses.dataclass(frozen=True)
class MnasNetSpace:
    """The per-member space at a data set's native resolution; ensembles concatenate members."""

    native_resolution: int = 224
    activation: Activation = Activation.RELU

    def __post_init__(self) -> None:
        if not (isinstance(self.native_resolution, int) and 8 <= self.native_resolution <= 1024):
            raise SpecError(f"native_resolution: must be an int in 8..1024, got {self.native_resolution!r}")

    @property
    def small_input(self) -> bool:
        return self.native_resolution <= SMALL_INPUT_MAX

    @property
    def decisions(self) -> tuple[Decision, ...]:
        """The m = 50 decisions of one member, in order."""
        out = [Decision(f"block{b + 1}.{name}", choices)
               for b in range(len(MOBILENETV2_BLOCKS)) for name, choices in BLOCK_DECISIONS]
        res = tuple(member_resolution(f, self.native_resolution) for f in RESOLUTION_FRACTIONS)
        out.append(Decision("resolution", res))
        return tuple(out)

    @property
    def num_decisions(self) -> int:
        return len(MOBILENETV2_BLOCKS) * len(BLOCK_DECISIONS) + 1

    @property
    def choice_counts(self) -> tuple[int, ...]:
        return tuple(d.num_choices for d in self.decisions)

    def ensemble_choice_counts(self, n: int) -> tuple[int, ...]:
        return self.choice_counts * n

    def size(self, n: int = 1) -> int:
        """Number of distinct decision vectors for an ensemble of n (ordered members)."""
        return math.prod(self.choice_counts) ** n

    def log10_size(self, n: int = 1) -> float:
        return n * sum(math.log10(c) for c in self.choice_counts)

    # -- decoding -----------------------------------------------------------------------------

    def _check_vector(self, vec: Sequence[int], counts: Sequence[int]) -> list[int]:
        v = [int(x) for x in vec]
        if len(v) != len(counts):
            raise SpecError(f"decisions: expected {len(counts)} values, got {len(v)}")
        names = [d.name for d in self.decisions]
        for j, (x, c) in enumerate(zip(v, counts)):
            if not 0 <= x < c:
                raise SpecError(f"decisions[{j}] ({names[j % len(names)]}): index {x} out of range 0..{c - 1}")
        return v

    def decode_member(self, vec: Sequence[int], canonical: bool = True) -> MobileNetSpec:
        """One member's m decisions -> its spec; ``canonical=False`` keeps the skip ops as drawn, for
        a caller that changes the widths first and then applies :func:`canonical_skips` itself."""
        v = self._check_vector(vec, self.choice_counts)
        blocks = []
        in_filters = STEM_FILTERS
        k = len(BLOCK_DECISIONS)
        for b, (t, c, n, s) in enumerate(MOBILENETV2_BLOCKS):
            op_i, exp_i, ker_i, se_i, skip_i, fil_i, lay_i = v[b * k:(b + 1) * k]
            op = CONV_OPS[op_i]
            out = round_filters(c, FILTER_MULTIPLIERS[fil_i])
            blocks.append(BlockSpec(
                repeats=max(1, n + LAYER_DELTAS[lay_i]), kernel=KERNELS[ker_i], strides=s,
                expand=EXPANDS[exp_i] if op == ConvOp.MBCONV else 1,
                in_filters=in_filters, out_filters=out, se_ratio=SE_RATIOS[se_i],
                skip=SKIPS[skip_i], conv_op=op))
            in_filters = out
        spec = MobileNetSpec(blocks=tuple(blocks), stem_filters=STEM_FILTERS, head_filters=HEAD_FILTERS,
                             resolution=member_resolution(RESOLUTION_FRACTIONS[v[-1]], self.native_resolution),
                             activation=self.activation)
        spec = adapt_for_small_input(spec) if self.small_input else spec
        return canonical_skips(spec) if canonical else spec

    def decode(self, vec: Sequence[int], canonical: bool = True) -> EnsembleSpec:
        """n x m decisions (member after member) -> an ensemble of n."""
        m = self.num_decisions
        if len(vec) == 0 or len(vec) % m:
            raise SpecError(f"decisions: expected a multiple of {m} values (n x m), got {len(vec)}")
        return EnsembleSpec(tuple(self.decode_member(vec[i:i + m], canonical) for i in range(0, len(vec), m)))

    # -- encoding -----------------------------------------------------------------------------

    def encode_member(self, spec: MobileNetSpec) -> tuple[int, ...]:
        """The canonical decision vector of a spec from this space; SpecError if it is not in it."""
        expected = self.decode_member([0] * self.num_decisions)  # adapted for small inputs already
        spec = canonical_skips(spec)
        if len(spec.blocks) != len(MOBILENETV2_BLOCKS) or spec.stem_stride != expected.stem_stride:
            raise SpecError("spec: not in the MnasNet search space (block count or stem stride differ)")
        out: list[int] = []
        for b, (blk, (t, c, n, s)) in enumerate(zip(spec.blocks, MOBILENETV2_BLOCKS)):
            op_i = _index(CONV_OPS, blk.conv_op, f"block{b + 1}.conv_op")
            exp_i = _index(EXPANDS, blk.expand, f"block{b + 1}.expand") if blk.conv_op == ConvOp.MBCONV else 0
            fil = [round_filters(c, f) for f in FILTER_MULTIPLIERS]
            fil_i = _index(fil, blk.out_filters, f"block{b + 1}.filters")
            lay = [max(1, n + d) for d in LAYER_DELTAS]
            lay_i = _index(lay, blk.repeats, f"block{b + 1}.layers")
            out += [op_i, exp_i, _index(KERNELS, blk.kernel, f"block{b + 1}.kernel"),
                    _index(SE_RATIOS, blk.se_ratio, f"block{b + 1}.se_ratio"),
                    _index(SKIPS, blk.skip, f"block{b + 1}.skip"), fil_i, lay_i]
        res = [member_resolution(f, self.native_resolution) for f in RESOLUTION_FRACTIONS]
        out.append(_index(res, spec.resolution, "resolution"))
        vec = tuple(out)
        if self.decode_member(vec) != spec:
            raise SpecError("spec: not in the MnasNet search space (strides, stem or head differ)")
        return vec

    def encode(self, ensemble: EnsembleSpec) -> tuple[int, ...]:
        out: list[int] = []
        for m in ensemble.members:
            if not isinstance(m, MobileNetSpec):
                raise SpecError("spec: only MobileNet-family members are in the MnasNet search space")
            out += self.encode_member(m)
        return tuple(out)

    def sample(self, rng: np.random.Generator, n: int = 1) -> tuple[int, ...]:
        """A uniformly random n x m decision vector."""
        return tuple(int(rng.integers(c)) for c in self.ensemble_choice_counts(n))


def _index(choices: Sequence, value: object, field: str) -> int:
    for i, c in enumerate(choices):
        if c == value:
            return i
    raise SpecError(f"{field}: {value!r} is not a choice of the search space ({list(choices)})")
