"""Architecture values: frozen, validated, canonical, content-addressed.

A member of an ensemble is an :data:`ArchSpec`: either a :class:`MobileNetSpec` (stem, a tuple of
MnasNet-style :class:`BlockSpec` groups, head; every searched member and every block-string network
such as MnasNet-A1, MobileNetV2 or EfficientNet-b0) or a :class:`WideResNetSpec`
(Zagoruyko & Komodakis). An :class:`EnsembleSpec` is 1..16 members.

Every spec validates itself on construction (a bad field raises :class:`SpecError` naming it),
round-trips through canonical JSON (sorted keys, no whitespace) and has a stable id: the sha256 of
that canonical JSON. Python's ``hash()`` is never used for ids.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from typing import Any, Union

from search_space.errors import SpecError

MAX_ENSEMBLE_MEMBERS = 16


class ConvOp(str, enum.Enum):
    """The per-block convolution op of the MnasNet search space (see ``search_space.space``)."""

    MBCONV = "mbconv"  # mobile inverted bottleneck: 1x1 expand, kxk depthwise, [SE], 1x1 project
    SEPCONV = "sepconv"  # depthwise-separable: kxk depthwise, [SE], 1x1 project (= MBConv e1)
    CONV = "conv"  # regular kxk convolution in -> out, [SE]


class SkipOp(str, enum.Enum):
    """The per-block skip op (see ``search_space.space`` for the exact "pool" definition)."""

    NONE = "none"
    IDENTITY = "identity"
    POOL = "pool"


class Activation(str, enum.Enum):
    RELU = "relu"
    RELU6 = "relu6"
    SWISH = "swish"


def _check(cond: bool, field: str, msg: str) -> None:
    if not cond:
        raise SpecError(f"{field}: {msg}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class BlockSpec:
    """A group of ``repeats`` layers; the first has ``strides`` and in -> out, the rest out -> out.

    Mirrors the tensorflow/tpu MnasNet block string ``r2_k3_s22_e6_i16_o24_se0.25_noskip``.
    ``expand`` is only meaningful for MBConv; SepConv is written e1 and a regular conv e1 too.
    """

    repeats: int
    kernel: int
    strides: int
    expand: int
    in_filters: int
    out_filters: int
    se_ratio: float = 0.0
    skip: SkipOp = SkipOp.IDENTITY
    conv_op: ConvOp = ConvOp.MBCONV

    def __post_init__(self) -> None:
        object.__setattr__(self, "skip", _enum(SkipOp, self.skip, "block.skip"))
        object.__setattr__(self, "conv_op", _enum(ConvOp, self.conv_op, "block.conv_op"))
        object.__setattr__(self, "se_ratio", float(self.se_ratio))
        _check(_is_int(self.repeats) and 1 <= self.repeats <= 32, "block.repeats", f"must be an int in 1..32, got {self.repeats!r}")
        _check(_is_int(self.kernel) and self.kernel in (1, 3, 5, 7), "block.kernel", f"must be 1, 3, 5 or 7, got {self.kernel!r}")
        _check(_is_int(self.strides) and self.strides in (1, 2), "block.strides", f"must be 1 or 2, got {self.strides!r}")
        _check(_is_int(self.expand) and 1 <= self.expand <= 8, "block.expand", f"must be an int in 1..8, got {self.expand!r}")
        _check(_is_int(self.in_filters) and 1 <= self.in_filters <= 8192, "block.in_filters", f"must be an int in 1..8192, got {self.in_filters!r}")
        _check(_is_int(self.out_filters) and 1 <= self.out_filters <= 8192, "block.out_filters", f"must be an int in 1..8192, got {self.out_filters!r}")
        _check(0.0 <= self.se_ratio <= 1.0, "block.se_ratio", f"must be in [0, 1], got {self.se_ratio!r}")
        if self.conv_op == ConvOp.MBCONV and self.expand == 1:
            # One network, one spec: an MBConv without expansion *is* the separable conv (the
            # MnasNet block string writes both as e1).
            object.__setattr__(self, "conv_op", ConvOp.SEPCONV)
        if self.conv_op != ConvOp.MBCONV:
            _check(self.expand == 1, "block.expand", f"must be 1 for conv_op={self.conv_op.value}, got {self.expand}")


@dataclasses.dataclass(frozen=True)
class MobileNetSpec:
    """Stem conv -> blocks -> head 1x1 conv (``head_filters`` 0 = none) -> avg pool -> dropout -> FC."""

    blocks: tuple[BlockSpec, ...]
    resolution: int = 224
    stem_filters: int = 32
    stem_stride: int = 2
    head_filters: int = 1280
    activation: Activation = Activation.RELU
    dropout: float = 0.0

    family = "mobile"

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        object.__setattr__(self, "activation", _enum(Activation, self.activation, "activation"))
        object.__setattr__(self, "dropout", float(self.dropout))
        _check(len(self.blocks) >= 1, "blocks", "needs at least one block")
        for i, b in enumerate(self.blocks):
            _check(isinstance(b, BlockSpec), f"blocks[{i}]", f"must be a BlockSpec, got {type(b).__name__}")
        _check(_is_int(self.resolution) and 8 <= self.resolution <= 1024, "resolution", f"must be an int in 8..1024, got {self.resolution!r}")
        _check(_is_int(self.stem_filters) and 1 <= self.stem_filters <= 1024, "stem_filters", f"must be an int in 1..1024, got {self.stem_filters!r}")
        _check(self.stem_stride in (1, 2), "stem_stride", f"must be 1 or 2, got {self.stem_stride!r}")
        _check(_is_int(self.head_filters) and 0 <= self.head_filters <= 8192, "head_filters", f"must be an int in 0..8192, got {self.head_filters!r}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout!r}")
        # blocks[0].in_filters may differ from stem_filters: as in tensorflow/tpu's MnasNet code,
        # the first layer convolves whatever the stem produced, and a block's i only sets the SE
        # width and the residual test (MnasNet-small: stem 8, first block i16).
        for i in range(1, len(self.blocks)):
            prev, cur = self.blocks[i - 1], self.blocks[i]
            _check(cur.in_filters == prev.out_filters, f"blocks[{i}].in_filters",
                   f"must equal blocks[{i - 1}].out_filters={prev.out_filters}, got {cur.in_filters}")

    def to_dict(self) -> dict[str, Any]:
        from search_space.blockstring import encode_block

        return {
            "family": self.family,
            "resolution": self.resolution,
            "stem_filters": self.stem_filters,
            "stem_stride": self.stem_stride,
            "blocks": [encode_block(b) for b in self.blocks],
            "head_filters": self.head_filters,
            "activation": self.activation.value,
            "dropout": self.dropout,
        }

    def replace(self, **changes: Any) -> "MobileNetSpec":
        return dataclasses.replace(self, **changes)

    @property
    def id(self) -> str:
        return spec_id(self)


@dataclasses.dataclass(frozen=True)
class WideResNetSpec:
    """WRN-depth-width (Zagoruyko & Komodakis 2016): pre-activation basic blocks, 3 groups."""

    depth: int
    width: int
    resolution: int = 32
    dropout: float = 0.0

    family = "wrn"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dropout", float(self.dropout))
        _check(_is_int(self.depth) and self.depth >= 10 and (self.depth - 4) % 6 == 0, "depth",
               f"must be 6n+4 with n >= 1 (10, 16, 22, 28, ...), got {self.depth!r}")
        _check(_is_int(self.width) and 1 <= self.width <= 32, "width", f"must be an int in 1..32, got {self.width!r}")
        _check(_is_int(self.resolution) and 8 <= self.resolution <= 1024, "resolution", f"must be an int in 8..1024, got {self.resolution!r}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "depth": self.depth, "width": self.width,
                "resolution": self.resolution, "dropout": self.dropout}

    def replace(self, **changes: Any) -> "WideResNetSpec":
        return dataclasses.replace(self, **changes)

    @property
    def id(self) -> str:
        return spec_id(self)


ArchSpec = Union[MobileNetSpec, WideResNetSpec]


@dataclasses.dataclass(frozen=True)
class EnsembleSpec:
    """1..16 members whose softmax outputs are combined (geometric mean by default)."""

    members: tuple[ArchSpec, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", tuple(self.members))
        _check(1 <= len(self.members) <= MAX_ENSEMBLE_MEMBERS, "members",
               f"must hold 1..{MAX_ENSEMBLE_MEMBERS} specs, got {len(self.members)}")
        for i, m in enumerate(self.members):
            _check(isinstance(m, (MobileNetSpec, WideResNetSpec)), f"members[{i}]",
                   f"must be an architecture spec, got {type(m).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return {"family": "ensemble", "members": [m.to_dict() for m in self.members]}

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def id(self) -> str:
        return spec_id(self)


AnySpec = Union[MobileNetSpec, WideResNetSpec, EnsembleSpec]


def _enum(cls: type[enum.Enum], value: Any, field: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(repr(m.value) for m in cls)  # type: ignore[attr-defined]
        raise SpecError(f"{field}: unknown value {value!r}; choose one of {choices}") from None


def canonical_json(spec: AnySpec) -> str:
    """Sorted keys, no whitespace: the form that ids are computed from."""
    return json.dumps(spec.to_dict(), sort_keys=True, separators=(",", ":"))


def spec_id(spec: AnySpec) -> str:
    """sha256 (hex) of the canonical JSON."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def to_json(spec: AnySpec, indent: int | None = 2) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True, indent=indent)


def from_dict(d: Any) -> AnySpec:
    """Parse a spec dict (as written by ``to_dict``); blocks may be block strings or dicts."""
    from search_space.blockstring import decode_block

    if not isinstance(d, dict):
        raise SpecError(f"spec: expected a JSON object, got {type(d).__name__}")
    family = d.get("family", "mobile")
    if family == "ensemble":
        _only_keys(d, {"family", "members"}, "ensemble")
        members = d.get("members")
        if not isinstance(members, list):
            raise SpecError("members: expected a list of member specs")
        return EnsembleSpec(tuple(_as_arch(from_dict(m), i) for i, m in enumerate(members)))
    if family == "wrn":
        _only_keys(d, {"family", "depth", "width", "resolution", "dropout"}, "wrn")
        try:
            return WideResNetSpec(depth=d["depth"], width=d["width"], resolution=d.get("resolution", 32),
                                  dropout=d.get("dropout", 0.0))
        except KeyError as e:
            raise SpecError(f"{e.args[0]}: missing field of a wrn spec") from None
    if family == "mobile":
        allowed = {"family", "resolution", "stem_filters", "stem_stride", "blocks", "head_filters",
                   "activation", "dropout"}
        _only_keys(d, allowed, "mobile")
        if not isinstance(d.get("blocks"), list):
            raise SpecError("blocks: expected a list of block strings or block objects")
        blocks = []
        for i, b in enumerate(d["blocks"]):
            if isinstance(b, str):
                try:
                    blocks.append(decode_block(b))
                except SpecError as e:
                    raise SpecError(f"blocks[{i}]: {e}") from None
            elif isinstance(b, dict):
                try:
                    blocks.append(BlockSpec(**b))
                except TypeError as e:
                    raise SpecError(f"blocks[{i}]: {e}") from None
            else:
                raise SpecError(f"blocks[{i}]: expected a block string or object, got {type(b).__name__}")
        kwargs = {k: d[k] for k in allowed - {"family", "blocks"} if k in d}
        return MobileNetSpec(blocks=tuple(blocks), **kwargs)
    raise SpecError(f"family: unknown value {family!r}; choose one of 'mobile', 'wrn', 'ensemble'")


def _as_arch(spec: AnySpec, i: int) -> ArchSpec:
    if isinstance(spec, EnsembleSpec):
        raise SpecError(f"members[{i}]: an ensemble cannot be a member")
    return spec


def _only_keys(d: dict[str, Any], allowed: set[str], family: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SpecError(f"{unknown[0]}: unknown field of a {family} spec; known: {', '.join(sorted(allowed))}")


def from_json(text: str) -> AnySpec:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"spec JSON: {e}") from None
    return from_dict(d)
