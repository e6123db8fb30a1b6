"""Every Numba kernel against its plain NumPy twin, on random inputs of varied shapes and both dtypes."""
from pathlib import Path

import numpy as np
import pytest

from minicnn.kernels import batch_norm, dropout, fused, optim, pooling, relu, softmax_xent
from minicnn.kernels.jit import KernelTable, LazyKernel, all_kernels

pytestmark = pytest.mark.twins  # .ci/run runs these again under each OPENBLAS_CORETYPE

SHAPES = [  # (N, H, W, C, KH, KW, SH, SW)
    (2, 5, 5, 1, 3, 3, 1, 1),
    (3, 7, 6, 3, 3, 2, 2, 1),
    (1, 9, 9, 4, 5, 5, 2, 2),
    (4, 4, 4, 2, 1, 1, 1, 1),
    (2, 6, 8, 5, 2, 2, 2, 2),
]
DTYPES = [np.float32, np.float64]


def out_size(size, window, stride):
    return (size - window) // stride + 1


def test_every_kernel_is_registered_with_its_twin_and_tested():
    """Every @njit(twin=...) kernel is in the registry, its twin is a different (plain Python) function, and one of
    the twin test modules (this one or test_fast_kernels.py) calls both versions by name."""
    kernels = all_kernels()
    assert len(kernels) >= 20
    sources = "".join((Path(__file__).parent / name).read_text() for name in ("test_kernels_twins.py",
                                                                                "test_fast_kernels.py"))
    for name, pair in kernels.items():
        assert isinstance(pair.numba, LazyKernel) and not isinstance(pair.numpy, LazyKernel), name
        by_name = f'"{name}"' in sources  # (test_winograd_transforms builds the names: "input_transform_into")
        assert f"{name}_numba" in sources or by_name, f"no twin test calls {name}_numba"
        assert pair.numpy.__name__ in sources or by_name, f"no twin test calls {pair.numpy.__name__}"


def test_a_kernel_table_hands_out_the_numba_kernel_or_its_twin():
    assert KernelTable("numpy").relu_forward is relu.relu_forward_numpy
    assert KernelTable("numba").relu_forward is relu.relu_forward_numba.load()
    with pytest.raises(AttributeError, match="no kernel named"):
        KernelTable("numba").no_such_kernel
    with pytest.raises(ValueError):
        KernelTable("cuda")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_ties", [False, True])
def test_maxpool_forward_and_backward(shape, dtype, with_ties):
    n, h, w, c, ph, pw, sh, sw = shape
    oh, ow = out_size(h, ph, sh), out_size(w, pw, sw)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    if with_ties:
        x = np.round(x).astype(dtype)  # many equal values: exercises the first-maximum rule
    y_reference, arg_reference = pooling.maxpool_forward_numpy(x, ph, pw, sh, sw, oh, ow)
    y_fast, arg_fast = pooling.maxpool_forward_numba(x, ph, pw, sh, sw, oh, ow)
    np.testing.assert_array_equal(y_fast, y_reference)
    np.testing.assert_array_equal(arg_fast, arg_reference)

    dy = rng.standard_normal(y_reference.shape).astype(dtype)
    dx_reference = pooling.maxpool_backward_add_into_numpy(dy, arg_reference, np.zeros_like(x), ph, pw, sh, sw)
    dx_fast = pooling.maxpool_backward_add_into_numba(dy, arg_fast, np.zeros_like(x), ph, pw, sh, sw)
    np.testing.assert_allclose(dx_fast, dx_reference, rtol=1e-6,  # overlapping windows add in another order
                               atol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4, 5), (0, 3)])
def test_relu(shape, dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    if x.size:
        x.reshape(-1)[0] = 0.0
    y = relu.relu_forward_numba(x)
    np.testing.assert_array_equal(y, relu.relu_forward_numpy(x))
    dy = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(relu.relu_backward_numba(dy, y), relu.relu_backward_numpy(dy, y))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch, classes", [(1, 2), (7, 10), (64, 10), (5, 3)])
def test_softmax_cross_entropy(batch, classes, dtype):
    rng = np.random.default_rng(4)
    logits = (rng.standard_normal((batch, classes)) * 5).astype(dtype)
    logits[0, 0] = 80  # large logits must not overflow
    labels = rng.integers(0, classes, size=batch)
    loss_reference, grad_reference = softmax_xent.sparse_softmax_cross_entropy(logits, labels, 1.0 / batch)
    loss_fast, grad_fast = softmax_xent.softmax_xent_numba(logits, labels, 1.0 / batch)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert np.isfinite(loss_fast)
    assert loss_fast == pytest.approx(loss_reference, rel=tolerance)
    assert grad_fast.dtype == dtype
    np.testing.assert_allclose(grad_fast, grad_reference, rtol=tolerance, atol=tolerance / batch)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update(dtype):
    rng = np.random.default_rng(5)
    size = 1001
    arrays = [rng.standard_normal(size).astype(dtype) for _ in range(2)] + [
        np.abs(rng.standard_normal(size)).astype(dtype) * 0.01 for _ in range(2)]
    scalars = [dtype(0.0031), dtype(0.1), dtype(0.001), dtype(1e-7)]
    reference = [a.copy() for a in arrays]
    fast = [a.copy() for a in arrays]
    optim.adam_update_numpy(*reference, *scalars)
    optim.adam_update_numba(*fast, *scalars)
    for got, expected in zip(fast, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_update(dtype, nesterov):
    rng = np.random.default_rng(6)
    params, grads, velocity = (rng.standard_normal(257).astype(dtype) for _ in range(3))
    reference = [params.copy(), grads, velocity.copy()]
    fast = [params.copy(), grads, velocity.copy()]
    optim.sgd_update_numpy(*reference, dtype(0.01), dtype(0.9), nesterov)
    optim.sgd_update_numba(*fast, dtype(0.01), dtype(0.9), nesterov)
    np.testing.assert_allclose(fast[0], reference[0], rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(fast[2], reference[2], rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("fill_mode", [0, 1, 2, 3])
@pytest.mark.parametrize("nearest", [False, True])
def test_affine_warp_forward_and_backward(dtype, fill_mode, nearest):
    """The augmentation layers' warp (kernels/warp.py): rotations plus shifts, so reads fall outside the image."""
    from minicnn.kernels import warp
    from minicnn.layers.random_rotation import rotation_transforms

    rng = np.random.default_rng(11)
    x = rng.random((5, 11, 9, 3)).astype(dtype)
    transforms = rotation_transforms(rng.uniform(-1, 1, 5), 11, 9)
    transforms[:, 2] += rng.uniform(-3, 3, 5)
    transforms[:, 5] += rng.uniform(-3, 3, 5)
    expected = warp.affine_warp_numpy(x, transforms, fill_mode, 0.25, nearest)
    actual = warp.affine_warp_numba(x, transforms, fill_mode, 0.25, nearest)
    assert actual.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(actual, expected)
    dy = rng.standard_normal(x.shape).astype(dtype)
    expected = warp.affine_warp_backward_numpy(dy, transforms, fill_mode, nearest)
    actual = warp.affine_warp_backward_numba(dy, transforms, fill_mode, nearest)
    assert actual.dtype == dtype
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 if dtype == np.float32 else 1e-14)  # sum order


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 5, 4, 7), (10, 3), (1, 1)])
def test_dropout_kernels_draw_the_layers_mask(shape, dtype):
    """The mask is the layer's (minicnn/layers/dropout.py), bit for bit, at any offset into the batch."""
    rng = np.random.default_rng(7)
    x, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    for rate, seed, call, offset in [(0.3, 5, 0, 0), (0.5, 2 ** 31 - 1, 17, 1234), (0.9, 0, 3, 7)]:
        results = []
        for forward in (dropout.dropout_forward_into_numpy, dropout.dropout_forward_into_numba):
            y, mask = np.empty_like(x), np.empty(shape, dtype=np.bool_)
            forward(x, rate, seed, call, offset, y, mask)
            results.append((y, mask))
        np.testing.assert_array_equal(results[1][1], results[0][1])
        np.testing.assert_array_equal(results[1][0], results[0][0])
        mask = results[0][1]
        dx = [backward(dy, mask, rate, np.empty_like(dy))
              for backward in (dropout.dropout_backward_into_numpy, dropout.dropout_backward_into_numba)]
        np.testing.assert_array_equal(dx[1], dx[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows, features", [(200, 7), (3, 1), (64, 33)])
def test_batch_norm_kernels(rows, features, dtype):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((rows, features)) * 3 + 5).astype(dtype)
    dy = rng.standard_normal((rows, features)).astype(dtype)
    shift = rng.standard_normal(features)
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    sums = [kernel(x, shift, np.ones((2, features)))
            for kernel in (batch_norm.batch_norm_sums_into_numpy, batch_norm.batch_norm_sums_into_numba)]
    np.testing.assert_allclose(sums[1], sums[0], rtol=1e-12)
    scale, offset = (rng.standard_normal(features).astype(dtype) for _ in range(2))
    mean, inv = x.mean(axis=0), (1 / (x.std(axis=0) + 1)).astype(dtype)
    dbeta_mean, dgamma_mean = (rng.standard_normal(features).astype(dtype) for _ in range(2))
    for with_relu, slope in ((False, 0.0), (True, 0.0), (False, 0.2)):  # (slope 0.2: a LeakyReLU after it)
        y = [kernel(x, scale, offset, with_relu, np.empty_like(x), slope)
             for kernel in (batch_norm.batch_norm_forward_into_numpy, batch_norm.batch_norm_forward_into_numba)]
        np.testing.assert_array_equal(y[1], y[0])
        assert not with_relu or (y[0] >= 0).all()
        assert not slope or rows < 10 or (y[0] < 0).any()
        y = y[0]
        sums = [kernel(dy, y, with_relu, x, mean, inv, np.zeros((2, features)), slope) for kernel in
                (batch_norm.batch_norm_backward_sums_into_numpy, batch_norm.batch_norm_backward_sums_into_numba)]
        np.testing.assert_allclose(sums[1], sums[0], rtol=1e-9, atol=1e-12)
        dx = [kernel(dy, y, with_relu, x, mean, inv, scale, dbeta_mean, dgamma_mean, np.empty_like(x), slope)
              for kernel in (batch_norm.batch_norm_backward_into_numpy, batch_norm.batch_norm_backward_into_numba)]
        np.testing.assert_allclose(dx[1], dx[0], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("slope", [0.2, 0.0])
def test_bias_leaky_relu_kernels(slope, dtype):
    rng = np.random.default_rng(9)
    z, dy = (rng.standard_normal((6, 9)).astype(dtype) for _ in range(2))
    z[0, :3] = 0  # (x >= 0 keeps x: the layer's rule at exactly 0)
    bias = rng.standard_normal(9).astype(dtype)
    bias[:3] = 0
    results = []
    for forward in (fused.bias_leaky_relu_forward_in_place_numpy, fused.bias_leaky_relu_forward_in_place_numba):
        y, positive = z.copy(), np.empty(z.shape, dtype=np.bool_)
        forward(y, bias, slope, positive)
        results.append((y, positive))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])
    grads = []
    for backward in (fused.bias_leaky_relu_backward_into_numpy, fused.bias_leaky_relu_backward_into_numba):
        dz, dbias = np.empty_like(dy), np.empty(9, dtype=dtype)
        backward(dy, results[0][1], slope, dz, dbias)
        grads.append((dz, dbias))
    np.testing.assert_array_equal(grads[1][0], grads[0][0])
    np.testing.assert_allclose(grads[1][1], grads[0][1], rtol=1e-5 if dtype == np.float32 else 1e-12)
