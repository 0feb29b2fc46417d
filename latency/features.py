"""Per-layer cost features of the per-op latency model, and lookup keys of measured tables.

A layer's modeled latency is theta . features(layer): multiply-adds of 1x1 convolutions (and the
classifier), of depthwise convolutions, of full kxk convolutions, memory traffic (activation
elements read and written by each op plus weight elements), and the number of ops (a per-op
overhead). Squeeze-excite, pooling shortcuts and residual adds have no coefficient of their own:
they are costed by the traffic and op count they cause, since no Pixel-1 table measures them.
Features are in millions (of multiply-adds or elements) so coefficients read as ms per million.
"""

from __future__ import annotations

import numpy as np

from search_space.layers import Layer

FEATURES = ("madds_1x1", "madds_depthwise", "madds_full", "memory", "ops")


def layer_features(l: Layer) -> np.ndarray:
    """[1x1 MAdds, depthwise MAdds, full-conv MAdds, memory elements, op count], MAdds/elements in millions."""
    m1 = mdw = mfull = mem = ops = 0.0
    hi, wi, ho, wo = l.h_in, l.w_in, l.h_out, l.w_out
    a_in, a_out = hi * wi, ho * wo
    if l.op in ("stem", "wrn_stem"):
        mfull += l.kernel * l.kernel * l.cin * l.cout * a_out
        mem += a_in * l.cin + a_out * l.cout + l.kernel * l.kernel * l.cin * l.cout
        ops += 1
    elif l.op in ("mbconv", "sepconv"):
        if l.op == "mbconv":
            m1 += l.cin * l.cexp * a_in
            mem += a_in * (l.cin + l.cexp) + l.cin * l.cexp
            ops += 1
        mdw += l.kernel * l.kernel * l.cexp * a_out
        mem += a_in * l.cexp + a_out * l.cexp + l.kernel * l.kernel * l.cexp
        m1 += l.cexp * l.cout * a_out
        mem += a_out * (l.cexp + l.cout) + l.cexp * l.cout
        ops += 2
    elif l.op == "conv":
        mfull += l.kernel * l.kernel * l.cin * l.cout * a_out
        mem += a_in * l.cin + a_out * l.cout + l.kernel * l.kernel * l.cin * l.cout
        ops += 1
    elif l.op == "head":
        m1 += l.cin * l.cout * a_in
        mem += a_in * (l.cin + l.cout) + l.cin * l.cout
        ops += 1
    elif l.op == "classifier":
        m1 += l.cin * l.cout
        mem += a_in * l.cin + l.cin * l.cout
        ops += 2
    elif l.op == "wrn_basic":
        mfull += 9 * (l.cin + l.cout) * l.cout * a_out
        mem += a_in * l.cin + 3 * a_out * l.cout + 9 * (l.cin + l.cout) * l.cout
        ops += 2
        if l.shortcut == "proj":
            m1 += l.cin * l.cout * a_out
            mem += a_out * (l.cin + l.cout)
            ops += 1
    elif l.op == "wrn_final":
        mem += 2 * a_in * l.cin
        ops += 1
    if l.se_channels:
        c = l.cout if l.op == "conv" else l.cexp
        m1 += 2 * c * l.se_channels
        mem += 3 * a_out * c  # pool reads the map; the gate reads and writes it
        ops += 4  # pool, reduce, expand, multiply
    if l.shortcut in ("identity", "pool", "pool_proj"):
        mem += 3 * a_out * l.cout  # the add reads two maps and writes one
        ops += 1
    if l.shortcut in ("pool", "pool_proj") and l.stride > 1:
        mem += a_in * l.cin + a_out * l.cin
        ops += 1
    if l.shortcut == "pool_proj":
        m1 += l.cin * l.cout * a_out
        mem += a_out * (l.cin + l.cout) + l.cin * l.cout
        ops += 1
    return np.array([m1 / 1e6, mdw / 1e6, mfull / 1e6, mem / 1e6, ops])


def layer_key(l: Layer) -> str | None:
    """The key of a layer in this project's uniform table format; None for layers no table holds.

    ``mb:HxWxC->HxWxC:eEXPANDED:kK:sS:skipB:seB`` (expanded = channels of the depthwise stage),
    ``stem:HxWx3->HxWxC``, ``head:HxWxC->HxWxC``, ``logits:HxWxC->N``.
    """
    if l.op == "stem":
        return f"stem:{l.h_in}x{l.w_in}x{l.cin}->{l.h_out}x{l.w_out}x{l.cout}"
    if l.op == "head":
        return f"head:{l.h_in}x{l.w_in}x{l.cin}->{l.h_out}x{l.w_out}x{l.cout}"
    if l.op == "classifier":
        return f"logits:{l.h_in}x{l.w_in}x{l.cin}->{l.cout}"
    if l.op in ("mbconv", "sepconv") and l.shortcut in ("none", "identity"):
        return mb_key(l.h_in, l.w_in, l.cin, l.h_out, l.w_out, l.cout, l.cexp, l.kernel, l.stride,
                      l.shortcut == "identity", bool(l.se_channels))
    return None


def mb_key(h: int, w: int, cin: int, ho: int, wo: int, cout: int, cexp: int, kernel: int, stride: int,
           skip: bool, se: bool) -> str:
    return f"mb:{h}x{w}x{cin}->{ho}x{wo}x{cout}:e{cexp}:k{kernel}:s{stride}:skip{int(skip)}:se{int(se)}"
