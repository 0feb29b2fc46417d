"""Named architectures: MnasNet-A1/B1/small, MobileNetV2/V1, EfficientNet-b0..b7, WRN-d-k.

Block strings are those of tensorflow/tpu ``mnasnet_models.py`` / ``efficientnet_builder.py``
(also in ``shared/latency/README.md``). Published figures at 224 for orientation:
MobileNetV2 1.0: 300M multiply-adds, 3.4M params; MnasNet-A1: 312M, 3.9M;
EfficientNet-B0: 0.39B, 5.3M; WRN-16-8: 11.0M params; WRN-28-10: 36.5M params.
"""

from __future__ import annotations

import dataclasses
import re

from search_space.blockstring import decode_blocks, round_filters, round_repeats, scale_width
from search_space.errors import SpecError
from search_space.spec import Activation, ArchSpec, MobileNetSpec, WideResNetSpec

MNASNET_A1 = ("r1_k3_s11_e1_i32_o16_noskip r2_k3_s22_e6_i16_o24 r3_k5_s22_e3_i24_o40_se0.25 "
              "r4_k3_s22_e6_i40_o80 r2_k3_s11_e6_i80_o112_se0.25 r3_k5_s22_e6_i112_o160_se0.25 "
              "r1_k3_s11_e6_i160_o320")
MNASNET_B1 = ("r1_k3_s11_e1_i32_o16_noskip r3_k3_s22_e3_i16_o24 r3_k5_s22_e3_i24_o40 r3_k5_s22_e6_i40_o80 "
              "r2_k3_s11_e6_i80_o96 r4_k5_s22_e6_i96_o192 r1_k3_s11_e6_i192_o320_noskip")
MNASNET_SMALL = ("r1_k3_s11_e1_i16_o8 r1_k3_s22_e3_i8_o16 r2_k3_s22_e6_i16_o16 r4_k5_s22_e6_i16_o32_se0.25 "
                 "r3_k3_s11_e6_i32_o32_se0.25 r3_k5_s22_e6_i32_o88_se0.25 r1_k3_s11_e6_i88_o144")
MOBILENETV2 = ("r1_k3_s11_e1_i32_o16 r2_k3_s22_e6_i16_o24 r3_k3_s22_e6_i24_o32 r4_k3_s22_e6_i32_o64 "
               "r3_k3_s11_e6_i64_o96 r3_k3_s22_e6_i96_o160 r1_k3_s11_e6_i160_o320")
MOBILENETV1 = ("r1_k3_s11_e1_i32_o64_noskip r1_k3_s22_e1_i64_o128_noskip r1_k3_s11_e1_i128_o128_noskip "
               "r1_k3_s22_e1_i128_o256_noskip r1_k3_s11_e1_i256_o256_noskip r1_k3_s22_e1_i256_o512_noskip "
               "r5_k3_s11_e1_i512_o512_noskip r1_k3_s22_e1_i512_o1024_noskip r1_k3_s11_e1_i1024_o1024_noskip")
EFFICIENTNET_B0 = ("r1_k3_s11_e1_i32_o16_se0.25 r2_k3_s22_e6_i16_o24_se0.25 r2_k5_s22_e6_i24_o40_se0.25 "
                   "r3_k3_s22_e6_i40_o80_se0.25 r3_k5_s11_e6_i80_o112_se0.25 r4_k5_s22_e6_i112_o192_se0.25 "
                   "r1_k3_s11_e6_i192_o320_se0.25")

# EfficientNet compound scaling (Tan & Le 2019; efficientnet_builder.efficientnet_params):
# name -> (width, depth, resolution, dropout).
EFFICIENTNET_PARAMS: dict[str, tuple[float, float, int, float]] = {
    "efficientnet-b0": (1.0, 1.0, 224, 0.2), "efficientnet-b1": (1.0, 1.1, 240, 0.2),
    "efficientnet-b2": (1.1, 1.2, 260, 0.3), "efficientnet-b3": (1.2, 1.4, 300, 0.3),
    "efficientnet-b4": (1.4, 1.8, 380, 0.4), "efficientnet-b5": (1.6, 2.2, 456, 0.4),
    "efficientnet-b6": (1.8, 2.6, 528, 0.5), "efficientnet-b7": (2.0, 3.1, 600, 0.5),
}

# name -> (block strings, stem filters, head filters, activation, head width policy)
_BLOCK_NETS: dict[str, tuple[str, int, int, Activation, str]] = {
    "mnasnet-a1": (MNASNET_A1, 32, 1280, Activation.RELU, "never"),
    "mnasnet-b1": (MNASNET_B1, 32, 1280, Activation.RELU, "never"),
    "mnasnet-small": (MNASNET_SMALL, 8, 1280, Activation.RELU, "never"),
    "mobilenetv2": (MOBILENETV2, 32, 1280, Activation.RELU6, "above_one"),
    "mobilenetv1": (MOBILENETV1, 32, 0, Activation.RELU6, "never"),
}


def head_policy(name: str) -> str:
    """How a width multiplier treats the head of a named family (see ``scale_width``)."""
    name = name.lower()
    if name.startswith("efficientnet"):
        return "always"
    return _BLOCK_NETS.get(name, ("", 0, 0, Activation.RELU, "never"))[4]


def efficientnet(name: str, resolution: int | None = None) -> MobileNetSpec:
    width, depth, res, dropout = EFFICIENTNET_PARAMS[name]
    base = decode_blocks(EFFICIENTNET_B0)
    blocks = []
    for b in base:
        blocks.append(dataclasses.replace(b, in_filters=round_filters(b.in_filters, width),
                                          out_filters=round_filters(b.out_filters, width),
                                          repeats=round_repeats(b.repeats, depth)))
    return MobileNetSpec(blocks=tuple(blocks), resolution=resolution or res, stem_filters=round_filters(32, width),
                         head_filters=round_filters(1280, width), activation=Activation.SWISH, dropout=dropout)


_WRN = re.compile(r"^wrn-(\d+)-(\d+)$")


def named_architectures() -> list[str]:
    return sorted(_BLOCK_NETS) + sorted(EFFICIENTNET_PARAMS) + ["wrn-D-K (e.g. wrn-16-8, wrn-28-10)"]


def get(name: str, resolution: int | None = None, width_multiplier: float = 1.0) -> ArchSpec:
    """A named architecture, optionally at another resolution and width multiplier."""
    key = name.strip().lower()
    if key in _BLOCK_NETS:
        blocks, stem, head, act, policy = _BLOCK_NETS[key]
        spec = MobileNetSpec(blocks=decode_blocks(blocks), stem_filters=stem, head_filters=head,
                             activation=act, resolution=resolution or 224)
        return scale_width(spec, width_multiplier, policy)
    if key in EFFICIENTNET_PARAMS:
        return scale_width(efficientnet(key, resolution), width_multiplier, "always")
    m = _WRN.match(key)
    if m:
        if width_multiplier != 1.0:
            raise SpecError("width_multiplier: WRN is scaled by its k (wrn-D-K), not a multiplier")
        return WideResNetSpec(depth=int(m.group(1)), width=int(m.group(2)), resolution=resolution or 32)
    raise SpecError(f"architecture: unknown name {name!r}; known: {', '.join(named_architectures())}")


def is_named(name: str) -> bool:
    key = name.strip().lower()
    return key in _BLOCK_NETS or key in EFFICIENTNET_PARAMS or bool(_WRN.match(key))
