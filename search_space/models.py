"""Flax NNX model builders for any member spec, built from the same layer plan the counts use.

``build_model(spec, num_classes, rngs=...)`` returns an ``nnx.Module`` taking NHWC images at the
spec's resolution (any float dtype; normalized by the caller) and returning float32 logits. Batch
norm follows ``model.train()`` / ``model.eval()``. ``dtype=jnp.bfloat16`` computes in bf16 with
float32 parameters.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from search_space.layers import Layer, layer_plan
from search_space.spec import Activation, ArchSpec, MobileNetSpec, WideResNetSpec

_ACTIVATIONS: dict[Activation, Callable[[jax.Array], jax.Array]] = {
    Activation.RELU: jax.nn.relu,
    Activation.RELU6: jax.nn.relu6,
    Activation.SWISH: jax.nn.swish,
}

# He init on fan_out, as the MnasNet/EfficientNet reference code does for dense convolutions (for
# depthwise ones this counts the channels, torchvision's way, not the reference's: INIT_SCHEMES below).
_CONV_INIT = nnx.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")
# BN: TF-style momentum 0.99 is too slow for 10-epoch proxy runs; 0.9 tracks the statistics
# within a few hundred steps.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3


class BatchNorm(nnx.BatchNorm):
    """``nnx.BatchNorm`` over the channel (last) axis with the same arithmetic, whose running
    statistics are replaced with ``set_value`` instead of assigned with ``stat[...] = value``.

    Why: in flax 0.12 that index assignment compares the traced value's sharding, and a tracer
    answers with an AttributeError whose message JAX builds by walking the whole trace so far, so
    tracing a network costs time quadratic in its depth. On this project's 2-core CPU machines that
    was 1.4 s of a 4.3 s training-step trace for sampled CIFAR-10 members (4 members: 17.2 s of
    tracing without the walk's cost against 11.7 s; the compile after it is unchanged; the walk is
    the subject of jax-ml/jax pull request 40041). It traces to the same program as
    ``nnx.BatchNorm`` (tests/search_space/test_models.py compares the jaxprs, in training and in
    evaluation, float32 and bfloat16), so results stay bit for bit: a first version with the same
    arithmetic in another order changed the demo search's accuracies (one-epoch members amplify
    any rounding difference).
    """

    def __call__(self, x: jax.Array, use_running_average: bool | None = None, *,
                 mask: jax.Array | None = None) -> jax.Array:
        if (mask is not None or self.axis_name is not None or self.axis not in (-1, x.ndim - 1)
                or self.dtype is None or self.scale is None or self.bias is None):
            return super().__call__(x, use_running_average, mask=mask)  # cases this project never builds
        running = self.use_running_average if use_running_average is None else use_running_average
        # everything cast to the compute dtype, as flax's promote_dtype(..., dtype=self.dtype) does
        x, mean, var, scale, bias = (jnp.asarray(a, self.dtype) for a in (
            x, self.mean.get_value(), self.var.get_value(), self.scale.get_value(), self.bias.get_value()))
        if not running:  # statistics in at least float32, E[x^2] - E[x]^2 clipped at 0, as flax does
            axes = tuple(range(x.ndim - 1))
            xf = jnp.asarray(x, jnp.promote_types(self.dtype, jnp.float32))
            xf_sq = jax.lax.square(xf)
            mean, mean_sq = xf.mean(axes), xf_sq.mean(axes)
            var = jnp.maximum(0.0, mean_sq - jax.lax.square(mean))
            m = self.momentum
            self.mean.set_value(jax.lax.stop_gradient(m * self.mean.get_value() + (1 - m) * mean))
            self.var.set_value(jax.lax.stop_gradient(m * self.var.get_value() + (1 - m) * var))
        # the same operations in the same order as flax's, so the same program (test_models.py)
        shape = (1,) * (x.ndim - 1) + (x.shape[-1],)
        mean, var = mean.reshape(shape), var.reshape(shape)
        y = x - mean
        mul = jax.lax.rsqrt(var + self.epsilon)
        mul *= scale.reshape(shape)
        y *= mul
        y += bias.reshape(shape)
        return jnp.asarray(y, self.dtype)


def _bn(c: int, rngs: nnx.Rngs, dtype: Any) -> BatchNorm:
    return BatchNorm(c, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype, rngs=rngs)


def _same_pad(x: jax.Array, k: int, stride: int) -> tuple[jax.Array, int, int]:
    """``x`` (NHWC) padded as XLA's 'SAME' pads a kxk window at ``stride``; also the output size."""
    _, h, w, _ = x.shape
    ho, wo = -(-h // stride), -(-w // stride)
    th, tw = max((ho - 1) * stride + k - h, 0), max((wo - 1) * stride + k - w, 0)
    if th or tw:
        x = jnp.pad(x, ((0, 0), (th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0)))
    return x, ho, wo


def _shifted(xp: jax.Array, i: int, j: int, ho: int, wo: int, stride: int) -> jax.Array:
    """The window offset (i, j) of every output position: xp[:, i + stride*y, j + stride*x, :]."""
    return xp[:, i:i + (ho - 1) * stride + 1:stride, j:j + (wo - 1) * stride + 1:stride, :]


def _shift_sum(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    k = kernel.shape[0]
    xp, ho, wo = _same_pad(x, k, stride)
    out = None
    for i in range(k):
        for j in range(k):
            term = _shifted(xp, i, j, ho, wo, stride) * kernel[i, j, 0]
            out = term if out is None else out + term
    return out


def program_backend() -> str:
    """The backend the programs are built for: JAX's default one, unless ``NAS_PROGRAM_BACKEND``
    names another (experiments/check_gpu_plan.py builds a GPU's programs on a CPU with no GPU, for
    XLA to compile for a described GPU). The lowering choices below and the compute dtype follow it."""
    import os

    return os.environ.get("NAS_PROGRAM_BACKEND") or jax.default_backend()


def depthwise_shift_sum(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """Depthwise kxk conv with 'SAME' padding as a sum of k*k shifted, scaled copies of the input.

    Same result as ``conv_general_dilated(..., feature_group_count=C)`` (max difference 0.0 in
    float32), but XLA's CPU backend runs grouped convolutions slowly: forward+backward of a 3x3
    depthwise layer on 64x28x28x96 takes 2.07 s as a grouped conv and 0.36 s this way on this
    project's 2-core CPU machines. GPUs keep the grouped conv (about 150 us with gradients on an H100).
    On CPUs the kernel's gradient is taken one tap at a time (``_kernel_grad``); elsewhere the whole
    backward pass is autodiff's.
    """
    if program_backend() == "cpu":
        return _shift_sum_cpu(x, kernel, stride)
    return _shift_sum(x, kernel, stride)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shift_sum_cpu(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    return _shift_sum(x, kernel, stride)


def _shift_sum_cpu_fwd(x: jax.Array, kernel: jax.Array, stride: int) -> tuple[jax.Array, tuple]:
    return _shift_sum(x, kernel, stride), (x, kernel)


def _shift_sum_cpu_bwd(stride: int, residuals: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    x, kernel = residuals
    dx = jax.vjp(lambda x_: _shift_sum(x_, kernel, stride), x)[1](g)[0]  # autodiff's
    return dx, _kernel_grad(x, g, kernel.shape[0], stride).astype(kernel.dtype)


def _kernel_grad(x: jax.Array, g: jax.Array, k: int, stride: int) -> jax.Array:
    """The kernel's gradient, (k, k, 1, C): tap (i, j) is the sum over batch and positions of the
    input's window offset (i, j) times ``g``, one tap at a time in a loop.

    Why a loop: autodiff gives the same k*k sums, but XLA's CPU backend hands each to a reduction
    kernel of its own (YNNPACK) that reads a materialized operand, so every shifted copy of the
    input is written out first (25 for a 5x5 kernel); in the loop one tap's copy exists at a time.
    Measured on this project's 2-core CPU machines (float32): forward+backward of a 5x5 layer on
    64x28x28x96, 0.51 -> 0.06 GB of temporaries and 0.20 -> 0.09 s; the epoch program of
    EfficientNet-b0 as the CIFAR-10 study trains it (batch 256), 17.2 -> 7.9 GB and 21.4 -> 16.0 s
    for 512 images; of quarter- and half-width MnasNet-A1 / MobileNetV2 members, half the
    temporaries and 15-20% less compile time. The sums match autodiff's to float rounding
    (tests/search_space/test_models.py), and in bfloat16 they accumulate in float32 where
    autodiff's were 4-16% off on three layers. GPUs fuse each copy into its sum and keep
    autodiff's program."""
    n, _, _, c = x.shape
    xp, ho, wo = _same_pad(x, k, stride)
    span_h, span_w = (ho - 1) * stride + 1, (wo - 1) * stride + 1

    def tap(t: jax.Array) -> jax.Array:
        window = jax.lax.dynamic_slice(xp, (0, t // k, t % k, 0), (n, span_h, span_w, c))
        return jnp.sum(window[:, ::stride, ::stride, :] * g, axis=(0, 1, 2))

    return jax.lax.map(tap, jnp.arange(k * k)).reshape(k, k, 1, c)


_shift_sum_cpu.defvjp(_shift_sum_cpu_fwd, _shift_sum_cpu_bwd)


def depthwise_mode() -> str:
    """How depthwise convolutions run: ``shift`` (sum of shifted copies; the default on CPUs, where
    XLA's grouped convolution is slow) or ``grouped`` (one grouped convolution; the default
    elsewhere). ``NAS_DEPTHWISE=shift|grouped`` overrides it, e.g. to compare compile times on a GPU,
    where grouped convolutions are autotuned and the shifted sum is plain fused arithmetic."""
    import os

    mode = os.environ.get("NAS_DEPTHWISE", "")
    if mode in ("shift", "grouped"):
        return mode
    return "shift" if program_backend() == "cpu" else "grouped"


# On CPUs the matrix-product lowering pays for its longer compile (if longer: 0-10 s) after a
# training run of some 10^10 multiply-adds (training images x the member's multiply-adds per
# image): what it saves per image grows faster than the member. Measured on this project's 2-core
# CPU machines (one epoch, float32, 2026-12-06), XLA convolutions against matrix products, per
# training image: 2.3-8.1 ms against 0.6-2.6 ms for five of the demo's quarter-width searched
# members (2.3-7.3M multiply-adds at 14-28 px, batch 32; compile 2-10 s longer), break-even at
# 3.0 x 10^9 to 1.5 x 10^10; 14 ms against 4 ms for MnasNet-A1 at width 0.25, 28 px (9.9M; compile
# 2 s shorter); 60 ms against 10 ms for MobileNetV2 at width 0.5, 32 px (28M, batch 128; compile
# 1 s longer); 432 ms against 43 ms for EfficientNet-b0 at 32 px as the CIFAR-10 study trains it
# (116M, batch 256; compile 2 s shorter); 360 ms against 8.6 ms for WRN-16-2 at 32 px (101M,
# batch 128; compile 3.4 s against 4.8 s). The threshold sits above the five break-evens, so the
# demo's members (2,000 images) and the test suite's keep XLA's convolutions.
MATMUL_MIN_TRAIN_MULTIPLY_ADDS = 2 * 10**10
# A count for callers that give none: the demo's members, 2-7M multiply-adds (so 4,000 images).
TYPICAL_MEMBER_MULTIPLY_ADDS = 5 * 10**6


def conv_mode(train_images: int | None = None, multiply_adds: int | None = None) -> str:
    """How dense (non-depthwise) convolutions run: ``conv`` (one XLA convolution) or ``matmul``
    (one matrix product: 1x1 convolutions directly, kxk ones over their k*k shifted input copies
    stacked on the channel axis, i.e. im2col). ``NAS_CONV=conv|matmul`` decides; otherwise GPUs/TPUs
    use ``conv`` and CPUs ``matmul`` for a run of ``train_images`` images (epochs x examples) of a
    member of ``multiply_adds`` per image (``TYPICAL_MEMBER_MULTIPLY_ADDS`` if not given) that
    reaches ``MATMUL_MIN_TRAIN_MULTIPLY_ADDS``, else ``conv``.

    Measured on this project's 2-core CPU machines, see ``MATMUL_MIN_TRAIN_MULTIPLY_ADDS``; before,
    on sampled MnasNet-space members (width 0.25-0.5, batch 32-64, one epoch): ``matmul`` trains
    3-10x faster (354-575 against 123-192 img/s on Fashion-MNIST, 126-133 against 12-32 img/s on
    CIFAR-10; XLA's kxk convolutions are the slow part).

    Why it matters on a GPU: each convolution shape is autotuned over cuDNN's algorithms when a
    member compiles, most of a new member's 45-55 s compile (PERF_NOTES.md); with autotuning off
    that member trained at 1.0k img/s (which kernels were slow was not recorded). With autotuning
    off, cuBLAS picks matrix-product kernels by heuristics, and with ``NAS_DEPTHWISE=shift`` a member
    has no convolution left to autotune; whether its untuned speed is usable is what
    experiments/bench_compile_options.py measures there."""
    import os

    mode = os.environ.get("NAS_CONV", "")
    if mode in ("conv", "matmul"):
        return mode
    if program_backend() != "cpu" or train_images is None:
        return "conv"
    work = train_images * (TYPICAL_MEMBER_MULTIPLY_ADDS if multiply_adds is None else multiply_adds)
    return "matmul" if work >= MATMUL_MIN_TRAIN_MULTIPLY_ADDS else "conv"


def xla_conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A kxk convolution with 'SAME' padding as one XLA convolution (cuDNN on GPUs); kernel HWIO,
    grouped when its input depth is a fraction of ``x``'s (depthwise: kernel (k, k, 1, C))."""
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=x.shape[-1] // kernel.shape[2])


def conv_as_matmul(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A dense kxk convolution with 'SAME' padding (kernel HWIO) as one matrix product over the
    stacked shifted copies of the input (im2col); 1x1 convolutions need no copies. Same result as
    ``conv_general_dilated`` up to float summation order."""
    k, _, cin, cout = kernel.shape
    xp, ho, wo = _same_pad(x, k, stride)
    if k == 1:
        cols = _shifted(xp, 0, 0, ho, wo, stride)
    else:  # concatenation order (i, j, c) is the HWIO kernel's row-major flattening
        cols = jnp.concatenate([_shifted(xp, i, j, ho, wo, stride) for i in range(k) for j in range(k)], axis=-1)
    return jnp.einsum("nhwc,cd->nhwd", cols, kernel.reshape(k * k * cin, cout))


class Conv(nnx.Module):
    """kxk convolution, 'SAME' padding, optional bias; parameters named and shaped as ``nnx.Conv``'s
    (kernel HWIO, float32), computed in ``dtype`` either as an XLA convolution or as a matrix
    product (``conv_mode``)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, rngs: nnx.Rngs, dtype: Any,
                 groups: int = 1, bias: bool = False):
        self.kernel = nnx.Param(_CONV_INIT(rngs.params(), (kernel, kernel, cin // groups, cout), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((cout,), jnp.float32)) if bias else None
        self.stride = stride
        self.groups = groups
        self.dtype = dtype
        self.lowering: str | None = None  # conv | matmul; None: conv_mode() when traced

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.apply_kernel(x, self.kernel[...])

    def apply_kernel(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        """This convolution with ``kernel`` (float32, this one's shape) in place of its own: how a
        padded layer (trainer/padded.py) applies its kernel under a mask."""
        x = x.astype(self.dtype)
        w = kernel.astype(self.dtype)
        if self.groups == 1 and (self.lowering or conv_mode()) == "matmul":
            y = conv_as_matmul(x, w, self.stride)
        else:
            y = xla_conv(x, w, self.stride)
        return y + self.bias[...].astype(self.dtype) if self.bias is not None else y


def set_conv_lowering(model: nnx.Module, mode: str) -> None:
    """Fix how ``model``'s dense convolutions run (``conv`` or ``matmul``; see ``conv_mode``)."""
    if mode not in ("conv", "matmul"):
        raise ValueError(f"conv lowering must be conv or matmul, got {mode!r}")
    for _, m in nnx.iter_modules(model):
        if isinstance(m, Conv):
            m.lowering = mode


class DepthwiseConv(nnx.Module):
    """kxk depthwise conv without bias; kernel (k, k, 1, C) like ``nnx.Conv`` with feature groups = C."""

    def __init__(self, channels: int, kernel: int, stride: int, rngs: nnx.Rngs, dtype: Any):
        self.kernel = nnx.Param(_CONV_INIT(rngs.params(), (kernel, kernel, 1, channels), jnp.float32))
        self.stride = stride
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.apply_kernel(x, self.kernel[...])

    def apply_kernel(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
        """As ``Conv.apply_kernel``."""
        w = kernel.astype(self.dtype)
        x = x.astype(self.dtype)
        if depthwise_mode() == "shift":
            return depthwise_shift_sum(x, w, self.stride)
        return xla_conv(x, w, self.stride)


class ConvBN(nnx.Module):
    """conv -> BN -> optional activation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: Callable | None, rngs: nnx.Rngs,
                 dtype: Any, groups: int = 1):
        if groups > 1 and groups == cin == cout:
            self.conv = DepthwiseConv(cin, kernel, stride, rngs, dtype)
        else:
            self.conv = Conv(cin, cout, kernel, stride, rngs, dtype, groups)
        self.bn = _bn(cout, rngs, dtype)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return self.act(x) if self.act is not None else x


class SqueezeExcite(nnx.Module):
    def __init__(self, channels: int, reduced: int, act: Callable, rngs: nnx.Rngs, dtype: Any):
        self.reduce = Conv(channels, reduced, 1, 1, rngs, dtype, bias=True)
        self.expand = Conv(reduced, channels, 1, 1, rngs, dtype, bias=True)
        self.act = act

    def __call__(self, x: jax.Array) -> jax.Array:
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = self.expand(self.act(self.reduce(s)))
        return x * jax.nn.sigmoid(s)


def main_path(layer: Layer, act: Callable, rngs: nnx.Rngs, dtype: Any,
              ) -> tuple[ConvBN | None, ConvBN, ConvBN | None, int]:
    """A mobile layer's (expand, main, project) convolutions, in the order they draw their weights,
    and the channels its squeeze-excite acts on: conv, one kxk convolution; mbconv, 1x1 expand, kxk
    depthwise, 1x1 project; sepconv, the same without the expand."""
    if layer.op == "conv":
        return None, ConvBN(layer.cin, layer.cout, layer.kernel, layer.stride, act, rngs, dtype), None, layer.cout
    expand = ConvBN(layer.cin, layer.cexp, 1, 1, act, rngs, dtype) if layer.op == "mbconv" else None
    main = ConvBN(layer.cexp, layer.cexp, layer.kernel, layer.stride, act, rngs, dtype, groups=layer.cexp)
    return expand, main, ConvBN(layer.cexp, layer.cout, 1, 1, None, rngs, dtype), layer.cexp


class MobileLayer(nnx.Module):
    """One mbconv / sepconv / conv layer with its SE and shortcut (``search_space.space`` defines them)."""

    def __init__(self, layer: Layer, act: Callable, rngs: nnx.Rngs, dtype: Any):
        self.op = layer.op
        self.stride = layer.stride
        self.shortcut = layer.shortcut
        self.expand, self.main, self.project, se_on = main_path(layer, act, rngs, dtype)
        self.se = SqueezeExcite(se_on, layer.se_channels, act, rngs, dtype) if layer.se_channels else None
        self.proj = ConvBN(layer.cin, layer.cout, 1, 1, None, rngs, dtype) if layer.shortcut == "pool_proj" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.expand(x) if self.expand is not None else x
        y = self.main(y)
        if self.se is not None:
            y = self.se(y)
        if self.project is not None:
            y = self.project(y)
        if self.shortcut == "identity":
            y = y + x
        elif self.shortcut in ("pool", "pool_proj"):
            s = x
            if self.stride > 1:
                s = nnx.avg_pool(s, (self.stride, self.stride), strides=(self.stride, self.stride), padding="SAME")
            if self.proj is not None:
                s = self.proj(s)
            y = y + s
        return y


class Classifier(nnx.Module):
    """global average pool -> dropout -> dense; logits in float32."""

    def __init__(self, cin: int, num_classes: int, dropout: float, rngs: nnx.Rngs, dtype: Any):
        # A dropout module (and its RNG state) only where the rate is non-zero.
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.dense = nnx.Linear(cin, num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = jnp.mean(x, axis=(1, 2))
        if self.dropout is not None:
            x = self.dropout(x)
        return self.dense(x).astype(jnp.float32)


class MobileNet(nnx.Module):
    """Any MobileNet-family spec: searched members, MnasNet, MobileNetV2, EfficientNet."""

    def __init__(self, spec: MobileNetSpec, num_classes: int, *, rngs: nnx.Rngs, dtype: Any = jnp.float32):
        act = _ACTIVATIONS[spec.activation]
        plan = layer_plan(spec, num_classes)
        stem = plan[0]
        self.stem = ConvBN(3, stem.cout, 3, stem.stride, act, rngs, dtype)
        self.layers = nnx.List([MobileLayer(l, act, rngs, dtype) for l in plan if l.op in ("mbconv", "sepconv", "conv")])
        head = [l for l in plan if l.op == "head"]
        self.head = ConvBN(head[0].cin, head[0].cout, 1, 1, act, rngs, dtype) if head else None
        self.classifier = Classifier(plan[-1].cin, num_classes, spec.dropout, rngs, dtype)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x.astype(self.dtype))
        for layer in self.layers:
            x = layer(x)
        if self.head is not None:
            x = self.head(x)
        return self.classifier(x)


class WideBasic(nnx.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-[dropout]-conv3x3 (+ 1x1 projection)."""

    def __init__(self, layer: Layer, dropout: float, rngs: nnx.Rngs, dtype: Any):
        self.bn1 = _bn(layer.cin, rngs, dtype)
        self.conv1 = Conv(layer.cin, layer.cout, 3, layer.stride, rngs, dtype)
        self.bn2 = _bn(layer.cout, rngs, dtype)
        self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None
        self.conv2 = Conv(layer.cout, layer.cout, 3, 1, rngs, dtype)
        self.proj = Conv(layer.cin, layer.cout, 1, layer.stride, rngs, dtype) if layer.shortcut == "proj" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        o = jax.nn.relu(self.bn1(x))
        y = self.conv1(o)
        y = jax.nn.relu(self.bn2(y))
        y = self.conv2(self.dropout(y) if self.dropout is not None else y)
        return y + (self.proj(o) if self.proj is not None else x)


class WideResNet(nnx.Module):
    def __init__(self, spec: WideResNetSpec, num_classes: int, *, rngs: nnx.Rngs, dtype: Any = jnp.float32):
        plan = layer_plan(spec, num_classes)
        self.stem = Conv(3, 16, 3, 1, rngs, dtype)
        self.blocks = nnx.List([WideBasic(l, spec.dropout, rngs, dtype) for l in plan if l.op == "wrn_basic"])
        self.bn = _bn(plan[-1].cin, rngs, dtype)
        self.classifier = Classifier(plan[-1].cin, num_classes, 0.0, rngs, dtype)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x.astype(self.dtype))
        for block in self.blocks:
            x = block(x)
        return self.classifier(jax.nn.relu(self.bn(x)))


def build_model(spec: ArchSpec, num_classes: int, *, rngs: nnx.Rngs, dtype: Any = jnp.float32) -> nnx.Module:
    if isinstance(spec, MobileNetSpec):
        return MobileNet(spec, num_classes, rngs=rngs, dtype=dtype)
    if isinstance(spec, WideResNetSpec):
        return WideResNet(spec, num_classes, rngs=rngs, dtype=dtype)
    raise TypeError(f"build_model: expected a member spec, got {type(spec).__name__}")


# Initialization schemes of ``init_model`` (``TrainConfig.init`` picks one for training):
#   he_fan_out: the modules' own initializers (torchvision's MobileNetV2 convention): conv kernels He
#     truncated-normal on fan_out = k*k*out channels, depthwise ones too (a 3x3 depthwise kernel of
#     576 channels: standard deviation 0.020), the classifier LeCun truncated-normal on fan_in,
#     biases 0.
#   tf_reference: the MnasNet/EfficientNet reference code (tensorflow/tpu, conv_kernel_initializer
#     and dense_kernel_initializer): conv kernels normal with std sqrt(2 / fan_out), fan_out = k*k*
#     the kernel's last axis, which for a depthwise kernel (k, k, C, 1) in TensorFlow is its depth
#     multiplier 1, so every 3x3 depthwise kernel starts at std sqrt(2/9) = 0.47, 24x he_fan_out's
#     at 576 channels; dense kernels uniform within 1/sqrt(classes); biases 0.
#   pytorch_default: PyTorch's nn.Conv2d / nn.Linear defaults (kaiming_uniform_ with a = sqrt(5)):
#     every kernel and bias uniform within 1/sqrt(fan_in), fan_in = k*k*in channels per group (that
#     depthwise kernel: within 1/3, standard deviation 0.19).
# Why it matters with batch norm after every conv: the output does not depend on a kernel's scale,
# but the step does, by 1/scale^2 relative to the kernel, so a depthwise kernel started at 0.02
# moves some 500x faster, relative to itself, than one started at 0.47 until weight decay and the
# gradients reshape it (a 10-epoch proxy is 1,760 steps at batch 256).
# Measured (2-core CPU, 2026-12-02; MobileNetV2 1.0 at 32 px, 8,192 CIFAR-10 images, 8 epochs, batch
# 128, lr 0.1, float32; experiments/bench_jax_vs_torch.py; experiments/results/cpu_init_2026-12-02),
# this trainer's validation accuracy, seeds 0 / 1: he_fan_out 56.4% / 55.2%, pytorch_default
# 55.6% / 58.2%, tf_reference 46.3% / 48.9% (last-epoch loss 1.60 / 1.53 against 1.30-1.39: the
# wide depthwise kernels learn too slowly for a short run); PyTorch 59.1% from its own default
# against 53.5% from he_fan_out's distributions. So he_fan_out stays the default, pytorch_default
# leans better within seed noise (the GPU recipes phase, experiments/gpu_session.sh, tries it at
# full scale), and tf_reference is there to reproduce the reference code, not to train proxies.
INIT_SCHEMES = ("he_fan_out", "tf_reference", "pytorch_default")


def residual_zero_paths(model: nnx.Module) -> set[tuple]:
    """The state paths ``init_model(zero_residual=True)`` sets to zero: in each layer with a shortcut,
    the last parameter of its branch before the sum, so that the layer starts as its shortcut
    (Goyal et al. 2017, "zero-gamma"; torchvision's ``zero_init_residual``). A mobile layer's branch
    ends in its projection's batch norm (no activation after it): its scale. A WRN block's
    pre-activation branch ends in a convolution: its kernel (as Fixup does). Layers without a
    shortcut, or whose branch ends in an activation (a plain ``conv`` layer, whose ReLU would pass no
    gradient back from a zero output), keep their draws."""
    paths = set()
    for path, m in nnx.iter_modules(model):
        if isinstance(m, MobileLayer) and m.shortcut != "none" and m.project is not None:
            paths.add((*path, "project", "bn", "scale"))
        elif isinstance(m, WideBasic):
            paths.add((*path, "conv2", "kernel"))
    return paths


def init_model(spec: ArchSpec, num_classes: int, *, seed: int = 0, dtype: Any = jnp.float32,
               scheme: str = "he_fan_out", zero_residual: bool = False) -> nnx.Module:
    """``build_model`` with its parameters drawn on the host with numpy: same shapes, and with the
    default ``scheme`` the same distributions as the modules' initializers, without compiling anything.

    Eager NNX construction dispatches every initializer as its own XLA program: 12-23 s for
    MnasNet-A1 on this project's 2-core CPU machines, against about 1 s here (abstract build plus
    numpy draws). ``scheme`` (``INIT_SCHEMES``) draws kernels and biases; always: BN offsets 0, BN
    scales 1, BN statistics 0 / 1. ``zero_residual``: then zero ``residual_zero_paths``, each
    residual layer starting as its shortcut (the draws of everything else unchanged).
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init_model: scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    abstract = nnx.eval_shape(lambda: build_model(spec, num_classes, rngs=nnx.Rngs(0), dtype=dtype))
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(seed)
    keys = iter(jax.random.split(jax.random.key(seed), 1024))

    def truncated_normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        # Same as jax's truncated_normal variance scaling: +-2 sigma, std corrected by 0.8796.
        x = rng.standard_normal(shape)
        bad = np.abs(x) > 2
        while bad.any():
            x[bad] = rng.standard_normal(int(bad.sum()))
            bad = np.abs(x) > 2
        return (x * std / 0.87962566103423978).astype(np.float32)

    def uniform_fan_in(shape: tuple[int, ...], fan_in: int) -> np.ndarray:
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape).astype(np.float32)

    shapes = {path: var.get_value().shape for path, var in nnx.to_flat_state(state)}
    depthwise = {(*path, "kernel") for path, m in nnx.iter_modules(abstract) if isinstance(m, DepthwiseConv)}
    zeroed = residual_zero_paths(abstract) if zero_residual else set()

    def normal(shape: tuple[int, ...], std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def fan_in(kernel_shape: tuple[int, ...]) -> int:  # HWIO (I: per group) or (in, out)
        return int(np.prod(kernel_shape[:-1]))

    def fill(path: tuple, var: Any) -> Any:
        value = var.get_value()
        name, shape, vdtype = path[-1], value.shape, value.dtype
        if isinstance(var, nnx.RngKey):
            return var.replace(next(keys))
        if isinstance(var, nnx.RngCount):
            return var.replace(jnp.zeros(shape, vdtype))
        beside = shapes.get((*path[:-1], "kernel"))  # a conv's or dense layer's bias; BN has none
        if scheme == "pytorch_default" and name == "kernel":
            value = uniform_fan_in(shape, fan_in(shape))
        elif scheme == "pytorch_default" and name == "bias" and beside is not None:
            value = uniform_fan_in(shape, fan_in(beside))
        elif scheme == "tf_reference" and name == "kernel" and len(shape) == 4:
            out = 1 if path in depthwise else shape[3]  # TensorFlow's depthwise kernel ends in its multiplier
            value = normal(shape, np.sqrt(2.0 / (shape[0] * shape[1] * out)))
        elif scheme == "tf_reference" and name == "kernel" and len(shape) == 2:
            value = uniform_fan_in(shape, shape[1])  # the reference's bound, 1/sqrt(classes)
        elif name == "kernel" and len(shape) == 4:
            value = truncated_normal(shape, np.sqrt(2.0 / (shape[0] * shape[1] * shape[3])))
        elif name == "kernel" and len(shape) == 2:
            value = truncated_normal(shape, np.sqrt(1.0 / shape[0]))
        elif name in ("scale", "var"):
            value = np.ones(shape, np.float32)
        elif name in ("bias", "mean"):
            value = np.zeros(shape, np.float32)
        else:
            raise ValueError(f"init_model: no host initializer for {path}")
        if path in zeroed:  # drawn all the same, so that every other parameter's draw is unchanged
            value = np.zeros(shape, np.float32)
        return var.replace(jnp.asarray(value, vdtype))

    return nnx.merge(graphdef, nnx.map_state(fill, state))


def param_counts(model: nnx.Module) -> tuple[int, int]:
    """(params outside batch norm, batch-norm scale+offset params) of a built model."""
    total = sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))
    bn = 0
    for _, m in nnx.iter_modules(model):
        if isinstance(m, nnx.BatchNorm):
            bn += m.scale.size + m.bias.size
    return int(total - bn), int(bn)
