"""Every builder runs forward and backward on the CPU; built parameter counts equal the analytic ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from search_space import MnasNetSpace, count, zoo
from search_space.models import BN_EPSILON, BN_MOMENTUM, BatchNorm, build_model, init_model, param_counts
from tests.conftest import logits_of


def _forward_backward(spec, classes=10, batch=2, dtype=jnp.float32):
    model = init_model(spec, classes, seed=0, dtype=dtype)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, spec.resolution, spec.resolution, 3)), jnp.float32)
    y = jnp.arange(batch) % classes

    def loss_fn(m):
        logits = m(x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(batch), y]), logits

    # One compiled program: op-by-op eager dispatch compiles every primitive shape apart (minutes).
    graphdef, state = nnx.split(model)

    @jax.jit
    def step(state):
        return nnx.value_and_grad(loss_fn, has_aux=True)(nnx.merge(graphdef, state))

    (loss, logits), grads = step(state)
    assert logits.shape == (batch, classes) and logits.dtype == jnp.float32
    assert np.isfinite(float(loss))
    leaves = jax.tree_util.tree_leaves(nnx.state(grads, nnx.Param))
    # read on the host: jnp here compiled two small programs per gradient shape (125 for MnasNet-A1,
    # 3.3 of its 12.5 s of XLA compiling from an empty cache, 2-core CPU)
    assert sum(np.any(np.asarray(g, np.float32) != 0) for g in leaves) > 0.9 * len(leaves)
    return model


def _abstract_counts(spec, classes):
    return param_counts(nnx.eval_shape(lambda: build_model(spec, classes, rngs=nnx.Rngs(0))))


@pytest.mark.parametrize("name, classes", [("mnasnet-a1", 1000), ("mobilenetv2", 1000), ("mnasnet-small", 1000),
                                           ("efficientnet-b0", 1000), ("wrn-16-8", 10), ("wrn-28-10", 10)])
def test_built_params_equal_analytic(name, classes):
    spec = zoo.get(name)
    c = count(spec, classes)
    assert _abstract_counts(spec, classes) == (c.params, c.bn_params)


@pytest.mark.parametrize("name, res", [("mnasnet-a1", 32), ("efficientnet-b0", 32), ("wrn-16-1", 16)])
def test_named_builders_forward_backward(name, res):
    _forward_backward(zoo.get(name, resolution=res))


def _covering_member(space, shift, res):
    """Seven blocks cycling through every conv op, skip op, kernel, SE and filter choice."""
    vec = []
    for b in range(7):
        vec += [(b + shift) % 3, b % 2, (b + shift) % 2, (b + 1) % 2, (b + 2 * shift) % 3, b % 3, 0]
    return space.decode_member(vec + [res])


def test_a_searched_member_with_every_op_and_shortcut():
    spec = _covering_member(MnasNetSpace(32), 0, 0)
    plan_ops = {(l.op, l.shortcut) for l in __import__("search_space").layer_plan(spec, 10)}
    assert {op for op, _ in plan_ops} >= {"mbconv", "sepconv", "conv"}
    assert {sc for _, sc in plan_ops} >= {"none", "identity", "pool_proj"}
    model = _forward_backward(spec)
    assert param_counts(model) == (count(spec, 10).params, count(spec, 10).bn_params)


@pytest.mark.parametrize("name", ["mobilenetv2", "searched", "wrn-16-1"])
def test_zero_residual_init_starts_every_residual_layer_as_its_shortcut(name):
    from search_space.models import MobileLayer, WideBasic, residual_zero_paths

    spec = _covering_member(MnasNetSpace(32), 0, 0) if name == "searched" else zoo.get(name, resolution=16)
    plain, zeroed = init_model(spec, 10, seed=5), init_model(spec, 10, seed=5, zero_residual=True)
    paths = residual_zero_paths(zeroed)
    a, b = dict(nnx.to_flat_state(nnx.state(plain))), dict(nnx.to_flat_state(nnx.state(zeroed)))
    assert paths and paths <= b.keys()
    for path in a:  # the named parameters zero, every other draw unchanged
        va, vb = np.asarray(a[path].get_value()), np.asarray(b[path].get_value())
        if path in paths:
            assert not vb.any() and va.any(), path
        else:
            assert np.array_equal(va, vb), path
    residual = 0
    rng = np.random.default_rng(0)
    for path, m in nnx.iter_modules(zeroed):
        # (a plain conv layer's branch ends in its activation: not zeroed, residual_zero_paths says why)
        if (isinstance(m, MobileLayer) and m.shortcut == "identity" and m.project is not None
                or isinstance(m, WideBasic) and m.proj is None):
            cin = m.project.conv.kernel.shape[3] if isinstance(m, MobileLayer) else m.conv1.kernel.shape[2]  # = cout
            x = jnp.asarray(rng.normal(size=(2, 8, 8, cin)), jnp.float32)
            m.train()
            np.testing.assert_allclose(logits_of(m, x), np.asarray(x), atol=1e-6)  # the layer is its shortcut
            residual += 1
    assert residual >= 1
    # and they train: each zeroed parameter has a gradient
    graphdef, state = nnx.split(zeroed)
    x = jnp.asarray(rng.normal(size=(2, spec.resolution, spec.resolution, 3)), jnp.float32)
    grads = jax.jit(jax.grad(lambda s: nnx.merge(graphdef, s)(x)[:, 0].sum()))(state)
    flat = dict(nnx.to_flat_state(grads))
    assert all(np.abs(np.asarray(flat[p].get_value())).sum() > 0 for p in paths)


def test_bf16_compute_keeps_float32_params():
    spec = _covering_member(MnasNetSpace(32), 1, 3)
    model = _forward_backward(spec, dtype=jnp.bfloat16)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))


def test_host_init_matches_the_modules_initializers():
    spec = zoo.get("wrn-16-1", resolution=8).replace(dropout=0.3)
    host = dict(nnx.to_flat_state(nnx.state(init_model(spec, 10, seed=3))))
    eager = dict(nnx.to_flat_state(nnx.state(build_model(spec, 10, rngs=nnx.Rngs(3)))))
    assert host.keys() == eager.keys()
    for path, var in host.items():
        a, b = var.get_value(), eager[path].get_value()
        assert a.shape == b.shape and a.dtype == b.dtype, path
        if path[-1] == "kernel" and a.size >= 1000:
            assert float(jnp.std(a)) == pytest.approx(float(jnp.std(b)), rel=0.1), path
        elif path[-1] in ("bias", "scale", "mean", "var"):
            assert np.array_equal(a, b), path


def test_train_and_eval_modes_differ_in_batch_norm():
    spec = zoo.get("wrn-16-1", resolution=8)
    model = init_model(spec, 10)
    x = jnp.asarray(np.random.default_rng(1).normal(2.0, 3.0, size=(4, 8, 8, 3)), jnp.float32)
    model.train()
    train_out = model(x)
    model.eval()
    eval_out = model(x)
    assert not np.allclose(train_out, eval_out)
    assert np.allclose(eval_out, model(x))  # eval mode does not update statistics


@pytest.mark.parametrize("k, stride, size", [(3, 1, 7), (3, 2, 8), (5, 2, 7), (5, 1, 6), (7, 2, 9)])
def test_depthwise_shift_sum_equals_grouped_conv(k, stride, size):
    from search_space.models import depthwise_shift_sum

    rng = np.random.default_rng(k + stride + size)
    x = jnp.asarray(rng.normal(size=(2, size, size, 5)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k, 1, 5)), jnp.float32)
    ref = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       feature_group_count=5)
    np.testing.assert_allclose(depthwise_shift_sum(x, w, stride), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("k, stride, size", [(3, 1, 7), (3, 2, 8), (5, 2, 7), (5, 1, 6), (7, 2, 9)])
def test_depthwise_shift_sums_gradients_are_autodiffs_to_float_rounding(k, stride, size):
    """The kernel's gradient, taken one tap at a time in a loop, is autodiff's to float32 rounding
    (the same products summed; XLA may order a sum's terms otherwise, by one unit in the last
    place), and so is the input's; the grouped convolution's, to the shift sum's own rounding."""
    from search_space.models import _shift_sum, depthwise_shift_sum, xla_conv

    rng = np.random.default_rng(10 * k + size)
    x = jnp.asarray(rng.normal(size=(3, size, size, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k, 1, 4)), jnp.float32)

    def grads(f):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(jnp.tanh(f(x, w, stride)) ** 2), argnums=(0, 1)))(x, w)

    (dx, dw), (dx_ref, dw_ref) = grads(depthwise_shift_sum), grads(_shift_sum)
    assert dw.shape == w.shape and dx.shape == x.shape
    for got, ref in ((dw, dw_ref), (dx, dx_ref)):
        assert float(jnp.max(jnp.abs(got - ref))) <= 1e-6 * float(jnp.max(jnp.abs(ref)))
    dx_conv, dw_conv = grads(xla_conv)
    np.testing.assert_allclose(dw, dw_conv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, dx_conv, rtol=1e-4, atol=1e-4)


def test_depthwise_shift_sums_backward_keeps_no_copy_per_tap_and_sums_bfloat16_in_float32():
    """Autodiff's kernel gradient on the CPU writes out each tap's shifted input copy (25 for 5x5)
    before summing it; the tap loop keeps one. And its bfloat16 sums come out within bfloat16's
    rounding of float32's, where autodiff's were several percent off."""
    from search_space.models import _shift_sum, depthwise_shift_sum

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(16, 16, 16, 32)), jnp.float32)  # 0.52 MB
    w = jnp.asarray(rng.normal(size=(5, 5, 1, 32)) * 0.1, jnp.float32)

    def step(f):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w, 1).astype(jnp.float32) ** 2), argnums=(0, 1)))

    def temporaries(f):
        return step(f).lower(x, w).compile().memory_analysis().temp_size_in_bytes

    if jax.default_backend() == "cpu":
        assert temporaries(_shift_sum) > 10 * x.nbytes  # the copies this test is about
        assert temporaries(depthwise_shift_sum) < 0.4 * temporaries(_shift_sum)
    g32 = step(_shift_sum)(x, w)[1]
    xb, wb = x.astype(jnp.bfloat16), w.astype(jnp.bfloat16)
    g_ref = step(_shift_sum)(xb.astype(jnp.float32), wb.astype(jnp.float32))[1]
    g16 = step(depthwise_shift_sum)(xb, wb)[1].astype(jnp.float32)
    assert g16.shape == g32.shape
    assert float(jnp.linalg.norm(g16 - g_ref) / jnp.linalg.norm(g_ref)) < 0.01

def test_depthwise_mode_follows_the_backend_unless_overridden(monkeypatch):
    from flax import nnx

    from search_space.models import DepthwiseConv, depthwise_mode

    monkeypatch.delenv("NAS_DEPTHWISE", raising=False)
    assert depthwise_mode() == "shift"  # the CPU default
    conv = DepthwiseConv(8, 3, 2, nnx.Rngs(0), jnp.float32)
    x = jax.random.normal(jax.random.key(1), (2, 9, 9, 8))
    shifted = conv(x)
    monkeypatch.setenv("NAS_DEPTHWISE", "grouped")
    assert depthwise_mode() == "grouped"
    np.testing.assert_allclose(conv(x), shifted, rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("NAS_DEPTHWISE", "bogus")  # anything else: the backend's default
    assert depthwise_mode() == "shift"


def test_programs_built_for_another_backend_take_its_defaults(monkeypatch):
    """NAS_PROGRAM_BACKEND=gpu (experiments/check_gpu_plan.py) builds on the CPU what a GPU would run:
    grouped depthwise and XLA convolutions, bf16, the shifted sum's backward by autodiff."""
    from search_space.models import conv_mode, depthwise_mode, depthwise_shift_sum
    from trainer.config import TrainConfig, compute_dtype

    for var in ("NAS_DEPTHWISE", "NAS_CONV", "NAS_PROGRAM_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    big = 10**7  # training images: enough for the CPU to take matrix products
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 1, 4))
    cpu = jax.make_jaxpr(jax.grad(lambda w: depthwise_shift_sum(x, w, 1).sum()))(w)
    assert (depthwise_mode(), conv_mode(big), compute_dtype(TrainConfig())) == ("shift", "matmul", jnp.float32)
    monkeypatch.setenv("NAS_PROGRAM_BACKEND", "gpu")
    assert (depthwise_mode(), conv_mode(big), compute_dtype(TrainConfig())) == ("grouped", "conv", jnp.bfloat16)
    gpu = jax.make_jaxpr(jax.grad(lambda w: depthwise_shift_sum(x, w, 1).sum()))(w)
    assert "scan" in str(cpu) and "scan" not in str(gpu)  # the CPU's kernel gradient, tap by tap (lax.map)


@pytest.mark.parametrize("k, stride, size", [(1, 1, 6), (1, 2, 7), (3, 1, 7), (3, 2, 8), (5, 2, 7), (5, 1, 6)])
def test_conv_as_matmul_equals_xla_convolution_with_gradients(k, stride, size):
    from search_space.models import conv_as_matmul

    rng = np.random.default_rng(10 * k + stride + size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 4)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(k, k, 4, 6)), jnp.float32)

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

    np.testing.assert_allclose(conv_as_matmul(x, w, stride), xla(x, w), rtol=1e-5, atol=1e-4)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731 - a non-linear cotangent
    for got, ref in zip(jax.grad(loss(lambda x, w: conv_as_matmul(x, w, stride)), (0, 1))(x, w),
                        jax.grad(loss(xla), (0, 1))(x, w)):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("name", ["mnasnet-a1", "wrn-16-2"])
def test_both_convolution_lowerings_compute_the_same_network(monkeypatch, name):
    from search_space.models import (MATMUL_MIN_TRAIN_MULTIPLY_ADDS, TYPICAL_MEMBER_MULTIPLY_ADDS, conv_mode,
                                     depthwise_mode, set_conv_lowering)

    monkeypatch.delenv("NAS_CONV", raising=False)
    monkeypatch.delenv("NAS_DEPTHWISE", raising=False)
    # CPU defaults: XLA convolutions for short runs, matrix products from the break-even on, which
    # bigger members reach with fewer images: 4,000 images of a demo member, 173 of EfficientNet-b0's
    # 116M multiply-adds
    images = MATMUL_MIN_TRAIN_MULTIPLY_ADDS // TYPICAL_MEMBER_MULTIPLY_ADDS
    assert images == 4000
    assert conv_mode() == conv_mode(images - 1) == conv_mode(172, 116_167_168) == "conv"
    assert (conv_mode(images), depthwise_mode()) == ("matmul", "shift")
    assert conv_mode(173, 116_167_168) == "matmul" and conv_mode(7999, 2_500_000) == "conv"
    monkeypatch.setenv("NAS_CONV", "conv")  # the environment overrides
    assert conv_mode(10**6) == "conv"
    monkeypatch.setenv("NAS_CONV", "bogus")  # anything else: the default
    assert conv_mode(10**6) == "matmul"

    spec = zoo.get(name, resolution=32)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 32, 32, 3)), jnp.float32)
    model = init_model(spec, 10, seed=1)
    model.eval()
    set_conv_lowering(model, "conv")
    ref = logits_of(model, x)
    assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x: model(x))(x))
    set_conv_lowering(model, "matmul")
    np.testing.assert_allclose(logits_of(model, x), ref, rtol=1e-4, atol=1e-4)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda x: model(x))(x))  # nothing left to autotune
    with pytest.raises(ValueError, match="conv or matmul"):
        set_conv_lowering(model, "fft")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_batch_norm_is_flax_batch_norm_op_for_op(dtype):
    """The same program as nnx.BatchNorm's, in training (inside value_and_grad, as the trainer traces
    it) and in evaluation, so the same numbers in any network; and the same outputs, statistics and
    gradients."""
    c = 12
    x = jnp.asarray(np.random.default_rng(2).normal(1.5, 2.0, size=(8, 5, 5, c)), jnp.float32)

    def programs_and_results(cls):
        bn = cls(c, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, dtype=dtype, rngs=nnx.Rngs(0))
        bn.scale.set_value(jnp.linspace(0.5, 2.0, c))
        bn.bias.set_value(jnp.linspace(-1.0, 1.0, c))
        bn.train()
        train_def, state = nnx.split(bn)
        bn.eval()
        eval_def = nnx.graphdef(bn)

        def train_step(state, x):
            def loss(m):
                y = m(x)
                return (y.astype(jnp.float32) ** 2).mean(), y

            m = nnx.merge(train_def, state)
            (_, y), grads = nnx.value_and_grad(loss, has_aux=True)(m)
            return y, grads, nnx.state(m)

        def evaluate(state, x):
            return nnx.merge(eval_def, state)(x)

        y, grads, trained = jax.jit(train_step)(state, x)
        programs = (str(jax.make_jaxpr(train_step)(state, x)), str(jax.make_jaxpr(evaluate)(trained, x)))
        return programs, (y, grads, trained, jax.jit(evaluate)(trained, x))

    mine, flax_ = programs_and_results(BatchNorm), programs_and_results(nnx.BatchNorm)
    assert mine[0] == flax_[0]
    for a, b in zip(jax.tree_util.tree_leaves(mine[1]), jax.tree_util.tree_leaves(flax_[1])):
        assert a.dtype == b.dtype and np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
    assert not np.array_equal(np.asarray(mine[1][2]["mean"].get_value()), np.zeros(c))  # statistics moved


def test_pytorch_default_init_draws_every_kernel_and_bias_within_its_fan_in_bound():
    spec = _covering_member(MnasNetSpace(32), 1, 3)  # SE convs with biases, depthwise, classifier
    ours = dict(nnx.to_flat_state(nnx.state(init_model(spec, 10, seed=0), nnx.Param)))
    torch_like = dict(nnx.to_flat_state(nnx.state(init_model(spec, 10, seed=0, scheme="pytorch_default"), nnx.Param)))
    assert ours.keys() == torch_like.keys()
    checked = set()
    for path, var in torch_like.items():
        w = np.asarray(var.get_value())
        if path[-2] == "bn":  # batch norm starts as in every scheme: scale 1, offset 0
            assert np.array_equal(w, np.asarray(ours[path].get_value())), path
            continue
        kernel = np.asarray(torch_like[(*path[:-1], "kernel")].get_value())
        bound = 1 / np.sqrt(np.prod(kernel.shape[:-1]))  # fan_in: k*k*in per group, or in
        assert np.abs(w).max() <= bound and (w.size < 500 or abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound), path
        checked.add("depthwise" if w.ndim == 4 and w.shape[2] == 1 and w.shape[3] > 1 else path[-1] + str(w.ndim))
    assert checked == {"depthwise", "kernel4", "kernel2", "bias1"}
    dw = [k for k in ours if k[-1] == "kernel" and ours[k].get_value().shape[2:3] == (1,) and ours[k].get_value().shape[3] > 1]
    # sqrt(C)/2.5 times as wide for C channels (he_fan_out counts them, PyTorch does not): 2.3x at 32
    assert dw and all(np.std(torch_like[k].get_value()) > 2 * np.std(ours[k].get_value()) for k in dw)
    with pytest.raises(ValueError, match="scheme must be one of"):
        init_model(spec, 10, scheme="xavier")


def test_tf_reference_init_counts_a_depthwise_kernels_fan_out_as_the_mnasnet_code_does():
    from search_space.models import DepthwiseConv

    spec = _covering_member(MnasNetSpace(32), 1, 3)  # SE convs with biases, depthwise, classifier
    model = init_model(spec, 10, seed=0, scheme="tf_reference")
    ours = dict(nnx.to_flat_state(nnx.state(init_model(spec, 10, seed=0), nnx.Param)))
    tf_like = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    depthwise = {(*p, "kernel") for p, m in nnx.iter_modules(model) if isinstance(m, DepthwiseConv)}
    assert depthwise and ours.keys() == tf_like.keys()
    kinds = set()
    for path, var in tf_like.items():
        w = np.asarray(var.get_value(), np.float64)
        if path[-1] == "kernel" and w.ndim == 4:
            # tensorflow/tpu conv_kernel_initializer: std sqrt(2 / (k*k*last axis)); TensorFlow's
            # depthwise kernel (k, k, C, 1) ends in its multiplier, 1, so sqrt(2/9) for 3x3 at any width
            fan_out = w.shape[0] * w.shape[1] * (1 if path in depthwise else w.shape[3])
            std = np.sqrt(2.0 / fan_out)
            kinds.add("depthwise" if path in depthwise else "conv")
            if w.size >= 500:
                assert abs(w.std() / std - 1) < 0.1, path
                assert np.abs(w).max() > 2.2 * std, path  # a plain normal, not truncated at 2 sigma
        elif path[-1] == "kernel":  # the classifier: uniform within 1/sqrt(classes)
            assert np.abs(w).max() <= 1 / np.sqrt(10) and w.std() > 0.8 / np.sqrt(30), path
            kinds.add("dense")
        else:  # biases 0, batch norm as in every scheme
            assert np.array_equal(w, np.asarray(ours[path].get_value(), np.float64)), path
    assert kinds == {"depthwise", "conv", "dense"}
    # the depthwise kernels start sqrt(C) times wider than he_fan_out's (C channels, at least 16)
    assert all(np.std(tf_like[k].get_value()) > 3.5 * np.std(ours[k].get_value()) for k in depthwise)
