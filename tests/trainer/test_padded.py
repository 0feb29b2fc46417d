import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from search_space import MnasNetSpace, scale_width
from search_space.blockstring import round_filters
from search_space.layers import layer_plan
from search_space.models import init_model
from search_space.space import MOBILENETV2_BLOCKS
from search_space.spec import Activation
from tests.trainer.test_train import tiny_member
from trainer.config import TrainConfig
from trainer.data import validation_split
from trainer.layerwise import PROGRAMS, LayerwiseTrainer, model_stages
from trainer.padded import PaddedMobileLayer, envelope_spec, padded_stages

CONFIG = TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1, precise_bn_images=64)

# One decision vector per block: (conv_op, expand, kernel, se, skip, filters, layers) indices, so
# that the member has every operation, both kernels, squeeze-excite on and off, and each shortcut
# (none, identity, pooled, pooled with a projection) at stride 1 and 2.
VARIED = [
    [1, 0, 1, 1, 1, 1, 1],  # sepconv 5x5 SE, identity
    [0, 0, 0, 0, 2, 0, 0],  # mbconv e3 3x3, pool (16 -> 24 channels: projection)
    [2, 0, 0, 1, 1, 2, 1],  # conv 3x3 SE, identity; stride 2
    [0, 1, 1, 1, 2, 1, 0],  # mbconv e6 5x5 SE, pool; stride 2
    [1, 0, 0, 0, 0, 0, 0],  # sepconv 3x3, none
    [2, 0, 1, 0, 2, 2, 0],  # conv 5x5, pool; stride 2
    [0, 0, 0, 1, 1, 0, 1],  # mbconv e3 3x3 SE, identity
]


def varied_member(width: float = 0.25, resolution_index: int = 3):
    vec = [i for block in VARIED for i in block] + [resolution_index]
    return scale_width(MnasNetSpace(28).decode_member(vec), width, "never").replace(head_filters=64)


def test_the_envelope_is_each_blocks_widest_choice_and_never_narrower_than_the_member():
    spec = MnasNetSpace(32).decode_member([0] * 50)  # every block at its narrowest choices
    env = envelope_spec(spec)
    for blk, wide, (_, c, _, _) in zip(spec.blocks, env.blocks, MOBILENETV2_BLOCKS):
        assert wide.out_filters == round_filters(c, 1.25) > blk.out_filters
        assert (wide.kernel, wide.expand, wide.se_ratio) == (5, 6, 0.25)
        assert (wide.repeats, wide.strides, wide.conv_op, wide.skip) == (blk.repeats, blk.strides, blk.conv_op, blk.skip)
    assert (env.resolution, env.stem_filters, env.head_filters) == (spec.resolution, spec.stem_filters, spec.head_filters)
    # at a quarter width (the stem says 0.25) the envelope is the quarter-width space's widest
    quarter = envelope_spec(scale_width(spec, 0.25, "never"))
    assert [b.out_filters for b in quarter.blocks] == [round_filters(round_filters(c, 1.25), 0.25)
                                                       for _, c, _, _ in MOBILENETV2_BLOCKS]
    # a member wider than the space keeps its own widths
    wide = scale_width(spec, 2.0, "never").replace(stem_filters=32)
    assert [b.out_filters for b in envelope_spec(wide).blocks] == [max(b.out_filters, round_filters(c, 1.25))
                                                                   for b, (_, c, _, _) in zip(wide.blocks, MOBILENETV2_BLOCKS)]


def _as_function(stage: nnx.Module):
    """(the stage as a function of its parameters and input, its parameters)."""
    graphdef, params, rest = nnx.split(stage, nnx.Param, ...)
    return (lambda p, x: nnx.merge(graphdef, p, rest, copy=True)(x)), params


def _run(stage: nnx.Module, x: jax.Array, dy: jax.Array | None = None):
    """The stage's output at ``x`` and, given ``dy``, the gradients of its parameters and input as
    well: one compiled program a stage, each operation's result rounded to the compute dtype as op
    by op (``xla_allow_excess_precision`` off). With it on, XLA keeps bfloat16 intermediates in
    float32 inside a fusion, and the member's and the padded layer's programs fuse differently: in
    bfloat16 that moved 0.3% of one layer's input gradients (block2.0's) by up to 1.1 (likely a
    rounding crossing a point where the gradient jumps). Op by op instead took 128 s from an empty
    compilation cache against 46 s compiled (the bfloat16 case alone, 2-core CPU, 2026-12-05)."""
    apply, params = _as_function(stage)

    def forward_backward(p, x, dy):
        y, vjp = jax.vjp(apply, p, x)
        return (y, *vjp(dy))

    f, args = (apply, (params, x)) if dy is None else (forward_backward, (params, x, dy))
    return jax.jit(f).lower(*args).compile(compiler_options={"xla_allow_excess_precision": False})(*args)


def _output(stage: nnx.Module, x: jax.Array) -> jax.ShapeDtypeStruct:
    """The shape and dtype of the stage's output at ``x`` (traced, not run)."""
    apply, params = _as_function(stage)
    return jax.eval_shape(apply, params, x)


def _widen(a: jax.Array, channels: int) -> jax.Array:
    """``a`` with zero channels appended up to ``channels``, built on the host: as jnp.pad, each
    shape would be a program of its own to compile."""
    a = np.asarray(a)
    return jnp.asarray(np.pad(a, ((0, 0),) * (a.ndim - 1) + ((0, channels - a.shape[-1]),)), a.dtype)


def _normal(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> jax.Array:
    """Standard normal values drawn on the host: jax.random.normal compiled a program per shape,
    1.7-2.5 s each, 111 of them in this module (2-core CPU, 2026-12-07)."""
    return jnp.asarray(rng.standard_normal(shape, dtype=np.float32), dtype)


def _close(actual, desired, what: str, tol: float = 1e-5) -> None:
    """Equal up to rounding: sums of different lengths and order (``tol`` of the largest value;
    1e-5 for float32)."""
    desired = np.asarray(desired, np.float32)
    np.testing.assert_allclose(np.asarray(actual, np.float32), desired, rtol=10 * tol,
                               atol=tol * (1 + np.abs(desired).max()), err_msg=what)


def _corner(padded: np.ndarray, real: np.ndarray, kernel: bool) -> tuple[tuple[slice, ...], np.ndarray]:
    """(where ``real`` sits in ``padded``, everything else of ``padded``)."""
    start = [0] * real.ndim
    if kernel and real.ndim == 4:
        start[0] = start[1] = (padded.shape[0] - real.shape[0]) // 2
    where = tuple(slice(s, s + n) for s, n in zip(start, real.shape))
    rest = np.array(padded, copy=True)
    rest[where] = 0
    return where, rest


@pytest.mark.parametrize("mode,dtype", [("train", "float32"), ("eval", "float32"), ("train", "bfloat16")])
def test_each_padded_layer_computes_the_members_layer_and_leaves_its_padding_at_zero(mode, dtype):
    # bfloat16 is the GPU's compute dtype: the padding stays exactly zero there too, and the
    # member's values agree within its rounding (8 bits of mantissa: 1e-2 of the largest value)
    spec = varied_member()
    plan = layer_plan(spec, 10)
    kinds = {(l.op, l.kernel, l.se_channels > 0, l.shortcut, l.stride) for l in plan[1:-2]}
    assert {op for op, *_ in kinds} == {"mbconv", "sepconv", "conv"}
    assert {s for *_, s, _ in kinds} == {"none", "identity", "pool", "pool_proj"}
    assert {(k, se) for _, k, se, *_ in kinds} >= {(3, False), (3, True), (5, False), (5, True)}
    model = init_model(spec, 10, seed=1, dtype=getattr(jnp, dtype))
    tol = 1e-5 if dtype == "float32" else 1e-2
    real_stages, padded = model_stages(model), padded_stages(model, spec, 10, "conv")
    assert len(real_stages) == len(padded) == len(plan) and padded[0] is real_stages[0]
    assert sum(isinstance(s, PaddedMobileLayer) for s in padded) == len(plan) - 3
    env_plan = layer_plan(envelope_spec(spec), 10)
    rng = np.random.default_rng(0)
    for i, (real, wide, layer) in enumerate(zip(real_stages, padded, plan)):
        getattr(real, mode)(), getattr(wide, mode)()
        if i == 0:
            continue
        x = _normal(rng, (8, layer.h_in, layer.w_in, layer.cin), model.dtype)
        xw = _widen(x, env_plan[i].cin)
        if mode == "eval":
            y, yw = _run(real, x), _run(wide, xw)
        else:
            out = _output(real, x)
            dy = _normal(rng, out.shape, out.dtype)
            y, g, dx = _run(real, x, dy)
            yw, gw, dxw = _run(wide, xw, _widen(dy, _output(wide, xw).shape[-1]))
        c = y.shape[-1]
        _close(yw[..., :c], y, layer.name, tol)
        assert not np.any(np.asarray(yw[..., c:])), layer.name
        if mode == "eval":
            continue
        _close(dxw[..., :layer.cin], dx, f"{layer.name} dx", tol)
        assert not np.any(np.asarray(dxw[..., layer.cin:]))
        grads = {jax.tree_util.keystr(p): v for p, v in jax.tree_util.tree_leaves_with_path(gw)}
        seen = set()
        for path, gr in jax.tree_util.tree_leaves_with_path(g):
            name = jax.tree_util.keystr(path)
            where, rest = _corner(np.asarray(grads[name]), np.asarray(gr), "kernel" in name)
            _close(np.asarray(grads[name])[where], gr, f"{layer.name} {name}", tol)
            assert not np.any(rest), f"{layer.name} {name}: a padded weight would move"
            seen.add(name)
        for name, gr in grads.items():  # parts the member does not have (SE, projection) stay put
            if name not in seen:
                assert not np.any(np.asarray(gr)), f"{layer.name} {name}"


def test_a_padded_member_trains_as_the_layerwise_one(fashion):
    # A step from the same weights on the same batch: the same loss, and validation logits (after
    # precise batch norm) within float rounding. The member uses swish, not its usual ReLU. With
    # ReLU the step amplifies rounding: the padded step's differences (1e-5) moved the ReLU
    # member's logits by 0.09-0.72 at one or two of its resolutions (14, 24, 28 px) in each of
    # three builds (jax 0.10.2 with XLA's default flags and with
    # XLA_FLAGS=--xla_backend_optimization_level=2, jax 0.12.0.1), which ones depending on the
    # build, and by 1e-4 to 5e-3 at the others; the swish member's logits stayed within 4.5e-4 at all three
    # resolutions in all three builds (2-core CPU, 2026-12-06). So the likely amplifier is ReLU's
    # kink (a pre-activation that is zero but for rounding passes its gradient or not), which
    # swish does not have. ReLU layers are checked one by one above, where nothing amplifies.
    split = validation_split(fashion, 200, seed=0, train_examples=CONFIG.batch_size)
    member = tiny_member(res_index=2).replace(activation=Activation.SWISH)  # 24 px
    layers = LayerwiseTrainer(member, split, CONFIG.replace(compile_unit="layer"), 3)
    padded = LayerwiseTrainer(member, split, CONFIG.replace(compile_unit="padded"), 3)
    assert padded.lowering.endswith(",unit=padded") and padded.stages == layers.stages
    np.testing.assert_allclose(padded.run_epoch(0), layers.run_epoch(0), rtol=1e-5)
    lp, ll = padded.logits(split.x_val), layers.logits(split.x_val)
    assert lp.shape == ll.shape == (200, 10)
    np.testing.assert_allclose(lp, ll, atol=2e-3)


def test_members_of_one_envelope_share_every_program(fashion):
    # Other widths, expansions, kernels, squeeze-excite and shortcuts, the same operations, layer
    # counts and resolution: the second member compiles nothing new.
    PROGRAMS.clear()
    split = validation_split(fashion, 200, seed=0, train_examples=64)
    config = CONFIG.replace(compile_unit="padded", precise_bn_images=0)
    first = LayerwiseTrainer(varied_member(), split, config, 0)
    first.compile()
    assert first.stages_compiled > 0
    vec = [i for block in VARIED for i in block] + [3]
    for b in range(7):  # expand, kernel, se, skip, filters: another choice each (layer counts kept)
        for d, n in zip(range(1, 6), (2, 2, 2, 3, 3)):
            vec[b * 7 + d] = (vec[b * 7 + d] + 1) % n
    other = scale_width(MnasNetSpace(28).decode_member(vec), 0.25, "never").replace(head_filters=64)
    assert [b.out_filters for b in other.blocks] != [b.out_filters for b in first.spec.blocks]
    second = LayerwiseTrainer(other, split, config, 1)
    second.compile()
    assert second.stages_compiled == 0 and second.stages == first.stages
    assert np.isfinite(second.run_epoch(0)).all()


def test_the_covering_members_hold_every_padded_layer_kind_random_members_meet():
    from experiments.check_shape_reuse import layer_kinds
    from trainer.padded import covering_vectors

    for native in (32, 28):  # CIFAR-10's space, and Fashion-MNIST's (the README demo's)
        space = MnasNetSpace(native)
        vectors = covering_vectors(space)
        assert len(vectors) == 3 * 4  # an operation at a resolution each
        covered = {kind for v in vectors for kind in layer_kinds(space.decode_member(v))[1]}
        rng = np.random.default_rng(native)
        met = {kind for _ in range(1500) for kind in layer_kinds(space.decode_member(space.sample(rng, 1)))[1]}
        assert met <= covered
        assert len(covered - met) <= 2  # the cover holds next to nothing random members never have
        if native == 32:
            assert len(covered) == 169  # the count docs/training.md and trainer/padded.py give
