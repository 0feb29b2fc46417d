"""Readers for the measured per-layer latency tables, into one format: ``{key: ms}`` plus the
:class:`~search_space.layers.Layer` each key stands for (so the cost model can be fitted on it).

* ProxylessNAS "mobile" (Pixel 1, TFLite float, 1 big core, batch 1): ``expand`` is a ratio.
* Single-Path NAS (Pixel 1): 22 MBConv slots of a fixed skeleton at 224, choices k3e3/k3e6/k5e3/k5e6.
* Once-for-all (Samsung Note10): ``expand`` is a channel count, with ``se`` and ``hs`` flags.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import yaml

from latency.features import layer_key, mb_key
from search_space.blockstring import decode_blocks
from search_space.layers import Layer, conv_out
from search_space.spec import MobileNetSpec

_SHAPE = r"(\d+)x(\d+)x(\d+)"
_MB = re.compile(rf"^expanded_conv-input:{_SHAPE}-output:{_SHAPE}-expand:(\d+)-kernel:(\d+)-stride:(\d+)-idskip:(\d)"
                 r"(?:-se:(\d)-hs:(\d))?$")
_CONV = re.compile(rf"^(Conv|Conv_1)-input:{_SHAPE}-output:{_SHAPE}$")
_LOGITS = re.compile(rf"^Logits-input:{_SHAPE}-output:(\d+)$")


@dataclasses.dataclass(frozen=True)
class TableEntry:
    key: str
    ms: float
    layer: Layer


def _mb_layer(h: int, w: int, cin: int, cout: int, cexp: int, k: int, s: int, skip: bool, se: bool) -> Layer:
    op = "sepconv" if cexp == cin else "mbconv"
    se_ch = max(1, cin // 4) if se else 0  # OFA's SE reduces the expanded map by 4; only the flag matters
    return Layer(name="table", op=op, h_in=h, w_in=w, cin=cin, cout=cout, kernel=k, stride=s, cexp=cexp,
                 se_channels=se_ch, shortcut="identity" if skip else "none")


def _entry_from_key(raw: str, ms: float, expand_is_ratio: bool) -> TableEntry | None:
    m = _MB.match(raw)
    if m:
        h, w, cin, ho, wo, cout, e, k, s, idskip = (int(x) for x in m.groups()[:10])
        se = m.group(11) == "1"
        if m.group(12) == "1":
            return None  # h-swish layers: outside this project's op set
        cexp = cin * e if expand_is_ratio else e
        layer = _mb_layer(h, w, cin, cout, cexp, k, s, bool(idskip), se)
        return TableEntry(layer_key(layer) or "", ms, layer)
    m = _CONV.match(raw)
    if m:
        h, w, cin, ho, wo, cout = (int(x) for x in m.groups()[1:])
        if m.group(1) == "Conv":
            layer = Layer(name="stem", op="stem", h_in=h, w_in=w, cin=cin, cout=cout, kernel=3, stride=h // ho)
        else:
            layer = Layer(name="head", op="head", h_in=h, w_in=w, cin=cin, cout=cout)
        return TableEntry(layer_key(layer) or "", ms, layer)
    m = _LOGITS.match(raw)
    if m:
        h, w, cin, classes = (int(x) for x in m.groups())
        if h == 1:
            return None  # MobileNetV3-style head after pooling and Conv_2: not our head
        layer = Layer(name="classifier", op="classifier", h_in=h, w_in=w, cin=cin, cout=classes)
        return TableEntry(layer_key(layer) or "", ms, layer)
    return None


def read_yaml_table(path: Path, expand_is_ratio: bool) -> list[TableEntry]:
    """ProxylessNAS / OFA yaml: ``key: {mean: ms, ...}``. Entries outside our op set are skipped."""
    data = yaml.safe_load(Path(path).read_text())
    out = []
    for raw, stats in data.items():
        e = _entry_from_key(raw, float(stats["mean"]), expand_is_ratio)
        if e is not None:
            out.append(e)
    return out


# Single-Path NAS skeleton at 224 (shared/latency/README.md); slot i is the i-th unrolled layer.
SINGLEPATH_SKELETON = ("r1_k3_s11_e1_i32_o16_noskip r4_k5_s22_e6_i16_o24 r4_k5_s22_e6_i24_o40 r4_k5_s22_e6_i40_o80 "
                       "r4_k5_s11_e6_i80_o96 r4_k5_s22_e6_i96_o192 r1_k3_s11_e6_i192_o320_noskip")
SINGLEPATH_CHOICES = {"0": (3, 3), "1": (3, 6), "2": (5, 3), "3": (5, 6)}  # -> (kernel, expansion)
SINGLEPATH_BASE_MS = 19.5999  # stem, head, pooling and classifier (singlepath_supernet.py)


def read_singlepath_table(path: Path) -> list[TableEntry]:
    data = json.loads(Path(path).read_text())
    spec = MobileNetSpec(blocks=decode_blocks(SINGLEPATH_SKELETON), resolution=224)
    slots = []
    h = conv_out(224, spec.stem_stride)
    for b in spec.blocks:
        for r in range(b.repeats):
            cin = b.in_filters if r == 0 else b.out_filters
            stride = b.strides if r == 0 else 1
            skip = b.skip.value != "none" and stride == 1 and cin == b.out_filters
            slots.append((h, cin, b.out_filters, stride, skip, b.expand))
            h = conv_out(h, stride)
    out = []
    for i, (h, cin, cout, stride, skip, e_fixed) in enumerate(slots):
        for choice, ms in data[str(i)].items():
            k, e = SINGLEPATH_CHOICES[choice]
            if e_fixed == 1:
                k, e = 3, 1  # the first layer is fixed (e1 k3): its four measurements are repeats
            ho = conv_out(h, stride)
            layer = _mb_layer(h, h, cin, cout, cin * e, k, stride, skip, False)
            out.append(TableEntry(mb_key(h, h, cin, ho, ho, cout, cin * e, k, stride, skip, False), float(ms), layer))
    return out


def as_lookup(entries: list[TableEntry]) -> dict[str, float]:
    """key -> ms; repeated keys (Single-Path's fixed first layer) average."""
    sums: dict[str, list[float]] = {}
    for e in entries:
        sums.setdefault(e.key, []).append(e.ms)
    return {k: sum(v) / len(v) for k, v in sums.items()}
