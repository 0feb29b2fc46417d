"""On-device preprocessing: gather a batch of uint8 images, random crop, flip, resize, normalize;
and the views a member is scored on."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def crop_padding(native: int, pad_at_32: int = 4) -> int:
    """The random crop's padding at ``native`` px: ``pad_at_32`` px at 32 px (4: the CIFAR recipe),
    scaled with the image size, at least 1 unless ``pad_at_32`` is 0 (no translation)."""
    return 0 if pad_at_32 == 0 else max(1, round(pad_at_32 * native / 32))


def random_crop_flip(key: jax.Array, x: jax.Array, pad: int, flip: bool) -> jax.Array:
    """Per-example random translation by up to ``pad`` px (zero padding) and horizontal flip."""
    n, h, w, _ = x.shape
    kx, ky, kf = jax.random.split(key, 3)
    padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    dx = jax.random.randint(kx, (n,), 0, 2 * pad + 1)
    dy = jax.random.randint(ky, (n,), 0, 2 * pad + 1)
    crop = jax.vmap(lambda img, i, j: jax.lax.dynamic_slice(img, (i, j, 0), (h, w, img.shape[-1])))(padded, dy, dx)
    if flip:
        do_flip = jax.random.bernoulli(kf, 0.5, (n,))
        crop = jnp.where(do_flip[:, None, None, None], crop[:, :, ::-1, :], crop)
    return crop


def to_model_input(x_uint8: jax.Array, mean: jax.Array, std: jax.Array, resolution: int) -> jax.Array:
    """uint8 NHWC -> normalized float32 RGB at the member's resolution (bilinear when it differs).

    Grayscale images are repeated to three channels: every model has an RGB stem, so counts and
    latencies keep the ImageNet convention.
    """
    x = (x_uint8.astype(jnp.float32) / 255.0 - mean) / std
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    n, h, w, c = x.shape
    if (h, w) != (resolution, resolution):
        x = jax.image.resize(x, (n, resolution, resolution, c), method="linear", antialias=True)
    return x


def scoring_views(model: Callable[[jax.Array], jax.Array], x: jax.Array, flip: bool) -> jax.Array:
    """The logits a member is scored by, float32 (views, N, classes): of the model input ``x``, then,
    with ``flip`` (``trainer.tta_flip``), of its mirror image. Their mean is the score: its softmax is
    the renormalized geometric mean of the views' softmaxes (the ensembles' rule)."""
    out = [model(x)]
    if flip:
        out.append(model(x[:, :, ::-1, :]))
    return jnp.stack(out).astype(jnp.float32)
