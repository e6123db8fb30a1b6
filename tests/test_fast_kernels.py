"""The fast path's kernels (padded im2col/col2im, the fused epilogues, the optimizer updates, Winograd's
transforms, the one-channel convolution) against their NumPy twins, on random inputs of varied shapes, strides,
paddings and both dtypes, with ties in the pooling."""
import numpy as np
import pytest

from minicnn.kernels import fused, optim
from minicnn.kernels import im2col as im2col_module
from minicnn.layers.base import window_output_size
from minicnn.layers.conv2d import im2col

pytestmark = pytest.mark.twins  # .ci/run runs these again under each OPENBLAS_CORETYPE

DTYPES = [np.float32, np.float64]

CONVS = [  # (N, H, W, C, KH, KW, SH, SW, padding)
    (2, 5, 5, 1, 3, 3, 1, 1, "valid"),
    (3, 7, 6, 3, 3, 2, 2, 1, "valid"),
    (2, 7, 6, 3, 3, 2, 2, 1, "same"),
    (1, 9, 9, 4, 5, 5, 2, 2, "same"),
    (2, 8, 5, 2, 4, 4, 3, 2, "same"),  # even kernel: uneven padding (extra row at the bottom)
    (4, 4, 4, 2, 1, 1, 1, 1, "same"),
]


def tolerance(dtype):
    # atol: a float32 sum in another order is off by ulps of its terms (here up to ~20, ulp 2e-6), not of a
    # result that cancels to near 0 (seen: 1.9e-6 on 0.04 with other input seeds or OpenBLAS's Sandybridge kernels)
    return {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}


def conv_geometry(h, w, kh, kw, sh, sw, padding):
    out_h, (top, _) = window_output_size(h, kh, sh, padding)
    out_w, (left, _) = window_output_size(w, kw, sw, padding)
    return out_h, out_w, top, left


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CONVS)
def test_im2col_padded_and_col2im_padded(shape, dtype):
    n, h, w, c, kh, kw, sh, sw, padding = shape
    out_h, out_w, top, left = conv_geometry(h, w, kh, kw, sh, sw, padding)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    columns = np.full((n * out_h * out_w, kh * kw * c), np.nan, dtype=dtype)  # must be fully overwritten
    reference = im2col_module.im2col_into_numpy(x, columns.copy(), kh, kw, sh, sw, top, left, out_h, out_w)
    fast = im2col_module.im2col_into_numba(x, columns, kh, kw, sh, sw, top, left, out_h, out_w)
    np.testing.assert_array_equal(fast, reference)
    # and it is the plain im2col of the zero-padded input, the way Conv2D's reference code does it
    pad_h = window_output_size(h, kh, sh, padding)[1]
    pad_w = window_output_size(w, kw, sw, padding)[1]
    padded = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))
    np.testing.assert_array_equal(fast, im2col(padded, (kh, kw), (sh, sw), out_h, out_w))

    gradient = rng.standard_normal(reference.shape).astype(dtype)
    dx_reference = im2col_module.col2im_into_numpy(gradient, np.full_like(x, np.nan), kh, kw, sh, sw, top, left,
                                                     out_h, out_w)
    dx_fast = im2col_module.col2im_into_numba(gradient, np.full_like(x, np.nan), kh, kw, sh, sw, top, left,
                                                out_h, out_w)
    np.testing.assert_allclose(dx_fast, dx_reference, **tolerance(dtype))


def test_col2im_padded_is_the_adjoint_of_im2col_padded():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 3))
    out_h, out_w, top, left = conv_geometry(7, 6, 3, 3, 2, 2, "same")
    columns = rng.standard_normal((2 * out_h * out_w, 27))
    left_side = (im2col_module.im2col_into_numba(x, np.empty_like(columns), 3, 3, 2, 2, top, left, out_h, out_w)
                 * columns).sum()
    right_side = (x * im2col_module.col2im_into_numba(columns, np.empty_like(x), 3, 3, 2, 2, top, left, out_h,
                                                        out_w)).sum()
    assert left_side == pytest.approx(right_side, rel=1e-12)


POOLS = [  # (N, H, W, F, relu, pool (PH, PW, SH, SW, padding) or None)
    (2, 6, 6, 5, True, (2, 2, 2, 2, "valid")),
    (3, 7, 5, 4, True, (2, 2, 2, 2, "valid")),    # odd sizes: the last row/column is dropped
    (2, 7, 5, 3, False, (2, 2, 2, 2, "valid")),   # pooling without ReLU
    (2, 7, 8, 3, True, (3, 3, 2, 2, "valid")),    # overlapping windows
    (2, 7, 5, 6, True, (3, 3, 2, 2, "same")),     # padded, overlapping
    (1, 5, 5, 2, True, (2, 2, 2, 2, "same")),     # padding only at the bottom/right
    (2, 6, 7, 3, False, (3, 2, 1, 2, "same")),
    (2, 5, 4, 17, True, None),                    # ReLU only
    (2, 5, 4, 3, False, None),                    # bias only
]


def pool_arguments(h, w, relu, pool):
    if pool is None:
        return (h, w), (relu, 1, 1, 1, 1, 0, 0)
    ph, pw, sh, sw, padding = pool
    out_h, out_w, top, left = conv_geometry(h, w, ph, pw, sh, sw, padding)
    return (out_h, out_w), (relu, ph, pw, sh, sw, top, left)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOLS)
@pytest.mark.parametrize("with_ties", [False, True])
@pytest.mark.parametrize("slope", [0.0, 0.2], ids=["relu-or-none", "leaky"])
def test_conv_epilogue(case, dtype, with_ties, slope):
    """The Numba kernels against their twins; ``slope`` 0.2: a LeakyReLU in place of the case's ReLU."""
    n, h, w, f, relu, pool = case
    (out_h, out_w), arguments = pool_arguments(h, w, relu and not slope, pool)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((n, h, w, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    if with_ties:  # many equal values (and exact zeros after the ReLU): exercises the first-maximum rule
        z = np.round(z * 2).astype(dtype)
        bias = np.round(bias).astype(dtype)
    z[0, 0, :2, 0] = np.nan  # NaN goes through as the layers' kernels let it (a diverging model must show it)
    outputs = []
    for kernel in (fused.conv_epilogue_forward_into_numpy, fused.conv_epilogue_forward_into_numba):
        y = np.full((n, out_h, out_w, f), np.nan, dtype=dtype)
        argmax = np.full(y.shape, 255, dtype=np.uint8)
        kernel(z, bias, *arguments, y, argmax, slope)
        outputs.append((y, argmax))
    (y, argmax), (y_fast, argmax_fast) = outputs
    np.testing.assert_array_equal(y_fast, y)
    np.testing.assert_array_equal(argmax_fast, argmax)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dz, dz_fast = np.full_like(z, np.nan), np.full_like(z, np.nan)
    dbias, dbias_fast = np.ones(f, dtype), np.ones(f, dtype)  # the kernels ADD onto dbias
    fused.conv_epilogue_backward_into_numpy(dy, y, argmax, *arguments, dz, dbias, slope)
    fused.conv_epilogue_backward_into_numba(dy, y, argmax, *arguments, dz_fast, dbias_fast, slope)
    np.testing.assert_allclose(dz_fast, dz, **tolerance(dtype))  # overlapping windows add in another order
    np.testing.assert_allclose(dbias_fast, dbias, **tolerance(dtype))


def test_conv_epilogue_tie_rule_first_maximum_wins():
    z = np.zeros((1, 2, 2, 2), np.float32)
    z[0, :, :, 0] = [[1, 3], [3, 3]]   # three-way tie: the first in row-major window order (index 1) wins
    z[0, :, :, 1] = [[-2, -1], [-1, -3]]  # all negative: after the ReLU all four are 0, the first one wins
    for kernel in (fused.conv_epilogue_forward_into_numpy, fused.conv_epilogue_forward_into_numba):
        y, argmax = np.empty((1, 1, 1, 2), np.float32), np.empty((1, 1, 1, 2), np.uint8)
        kernel(z, np.zeros(2, np.float32), True, 2, 2, 2, 2, 0, 0, y, argmax)
        assert y.ravel().tolist() == [3, 0] and argmax.ravel().tolist() == [1, 0]
    for kernel in (fused.conv_epilogue_backward_into_numpy, fused.conv_epilogue_backward_into_numba):
        dz, dbias = np.empty_like(z), np.zeros(2, np.float32)
        kernel(np.ones((1, 1, 1, 2), np.float32), y, argmax, True, 2, 2, 2, 2, 0, 0, dz, dbias)
        assert dz[0, :, :, 0].tolist() == [[0, 1], [0, 0]]
        assert not dz[..., 1].any() and dbias.tolist() == [1, 0]  # a ReLU output of 0 passes no gradient


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (16, 64), (7, 33)])
@pytest.mark.parametrize("relu", [True, False])
def test_bias_relu(shape, dtype, relu):
    rng = np.random.default_rng(3)
    z = rng.standard_normal(shape).astype(dtype)
    z.ravel()[0] = 0.0
    z.ravel()[-1] = np.nan
    bias = rng.standard_normal(shape[1]).astype(dtype)
    y = fused.bias_relu_forward_in_place_numpy(z.copy(), bias, relu)
    y_fast = fused.bias_relu_forward_in_place_numba(z.copy(), bias, relu)
    np.testing.assert_array_equal(y_fast, y)
    dy = rng.standard_normal(shape).astype(dtype)
    dz, dbias = np.full_like(z, np.nan), np.full(shape[1], np.nan, dtype)
    dz_fast, dbias_fast = np.full_like(z, np.nan), np.full(shape[1], np.nan, dtype)
    fused.bias_relu_backward_into_numpy(dy, y, relu, dz, dbias)
    fused.bias_relu_backward_into_numba(dy, y, relu, dz_fast, dbias_fast)
    np.testing.assert_array_equal(dz_fast, dz)
    np.testing.assert_allclose(dbias_fast, dbias, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_updates(dtype):
    rng = np.random.default_rng(4)
    size = 1001  # not a multiple of the vector width
    params, grads, m, v, velocity = (rng.standard_normal(size).astype(dtype) for _ in range(5))
    v = np.abs(v)
    cast = np.dtype(dtype).type
    adam = (cast(1e-3), cast(0.1), cast(0.001), cast(1e-7))
    results = []
    for kernel in (optim.adam_update_numpy, optim.adam_update_numba):
        state = [params.copy(), grads, m.copy(), v.copy()]
        kernel(*state, *adam)
        results.append(state)
    for fast, reference in zip(results[1], results[0]):
        np.testing.assert_allclose(fast, reference, **tolerance(dtype))
    for nesterov in (False, True):
        outcome = []
        for kernel in (optim.sgd_update_numpy, optim.sgd_update_numba):
            state = [params.copy(), grads, velocity.copy()]
            kernel(*state, cast(0.01), cast(0.9), nesterov)
            outcome.append(state)
        for fast, reference in zip(outcome[1], outcome[0]):
            np.testing.assert_allclose(fast, reference, **tolerance(dtype))


WINOGRAD_CASES = [  # (N, H, W, C, F, padding)
    (2, 13, 13, 8, 6, "valid"),
    (3, 7, 6, 3, 5, "same"),
    (1, 5, 8, 2, 3, "valid"),
    (2, 6, 6, 4, 4, "same"),
    (1, 3, 3, 2, 2, "valid"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_winograd_transforms(case, dtype):
    """Each Winograd transform: Numba kernel == NumPy twin, on tile buffers with spare rows (as the fast path
    pads them); and the whole F(2x2, 3x3) convolution, forward and backward, == Conv2D's reference functions."""
    from minicnn.kernels import winograd
    from minicnn.layers.conv2d import conv2d_backward, conv2d_forward

    n, h, w, c, f, padding = case
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, h, w, c)).astype(dtype)
    kernel = rng.standard_normal((3, 3, c, f)).astype(dtype)
    reference, cache = conv2d_forward(x, kernel, np.zeros(f, dtype), (1, 1), padding)
    out_h, out_w = reference.shape[1:3]
    top = 1 if padding == "same" else 0
    tiles_h, tiles_w = winograd.tiles(out_h, out_w)
    count = n * tiles_h * tiles_w
    U = winograd.kernel_transform(kernel)
    np.testing.assert_allclose(U, np.einsum("ai,ijcf,bj->abcf", winograd.G, kernel, winograd.G).reshape(16, c, f),
                               **tolerance(dtype))
    np.testing.assert_allclose(winograd.kernel_transform_into_numba(kernel, np.empty_like(U)),
                               winograd.kernel_transform_into_numpy(kernel, np.empty_like(U)), **tolerance(dtype))

    def close_to(actual, desired):  # Winograd rounds differently from a direct sum: compare to the scale
        scale = np.abs(desired).max()
        np.testing.assert_allclose(actual / scale, desired / scale, rtol=0, atol=2e-6 if dtype == np.float32 else 1e-13)

    def both(name, *arguments, out):
        results = []
        for suffix in ("numpy", "numba"):
            buffer = np.full_like(out, 7.0)  # spare rows / untouched entries must stay as they were
            results.append(getattr(winograd, f"{name}_{suffix}")(*arguments, buffer))
        np.testing.assert_allclose(results[1], results[0], **tolerance(dtype))
        return results[1]

    V = both("input_transform_into", x, top, top, tiles_h, tiles_w, out=np.empty((16, count + 3, c), dtype))
    assert (V[:, count:] == 7.0).all()
    M = np.full((16, count + 3, f), 7.0, dtype)
    M[:, :count] = V[:, :count] @ U
    y = both("output_transform_into", M, tiles_h, tiles_w, out=np.empty((n, out_h, out_w, f), dtype))
    close_to(y, reference)

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx_reference, dkernel_reference, _ = conv2d_backward(dy, cache)
    dM = both("output_transform_backward_into", dy, tiles_h, tiles_w, out=np.empty((16, count + 3, f), dtype))
    dkernel = winograd.kernel_transform_backward(V[:, :count].transpose(0, 2, 1) @ dM[:, :count])
    close_to(dkernel, dkernel_reference)
    dV = np.full((16, count + 3, c), 7.0, dtype)
    dV[:, :count] = dM[:, :count] @ U.transpose(0, 2, 1)
    dx = both("input_transform_backward_into", dV, top, top, tiles_h, tiles_w, out=np.empty_like(x))
    close_to(dx, dx_reference)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_ties", [False, True])
def test_winograd_output_transform_pool(dtype, relu, with_ties):
    """Tiles -> pooled output in one kernel == output_transform_into then the 2x2 epilogue, both ways: Numba kernel vs
    NumPy twin (ties, NaN and the ReLU's zeros included), and the Numba kernel vs the two Numba kernels it fuses
    (bit for bit: it adds in the same order)."""
    from minicnn.kernels import winograd

    n, tiles_h, tiles_w, f = 3, 4, 5, 19
    rng = np.random.default_rng(9)
    count = n * tiles_h * tiles_w
    M = np.full((16, count + 3, f), 7.0, dtype)  # spare rows, as the fast path pads the tile buffers
    M[:, :count] = rng.standard_normal((16, count, f))
    bias = rng.standard_normal(f).astype(dtype)
    if with_ties:  # integers: many equal outputs in a window, and many exact zeros after the ReLU
        M[:, :count] = np.round(M[:, :count])
        bias = np.round(bias)
    M[:, 0, 0] = np.nan  # a NaN goes through (a diverging model must show it)
    shape = (n, tiles_h, tiles_w, f)
    results = []
    for kernel in (winograd.output_transform_pool_into_numpy, winograd.output_transform_pool_into_numba):
        y, argmax = np.full(shape, np.nan, dtype), np.full(shape, 255, np.uint8)
        kernel(M, tiles_h, tiles_w, bias, relu, y, argmax)
        results.append((y, argmax))
    z = winograd.output_transform_into_numba(M, tiles_h, tiles_w, np.empty((n, 2 * tiles_h, 2 * tiles_w, f), dtype))
    unfused = fused.conv_epilogue_forward_into_numba(z, bias, relu, 2, 2, 2, 2, 0, 0, np.empty(shape, dtype),
                                                np.empty(shape, np.uint8))
    (y, argmax), (y_fast, argmax_fast) = results
    np.testing.assert_array_equal(y_fast, unfused)
    np.testing.assert_allclose(y_fast, y, **tolerance(dtype))
    assert np.isnan(y_fast[0, 0, 0, 0])
    if with_ties:  # (random values: a rounding difference may move a near-tie)
        np.testing.assert_array_equal(argmax_fast, argmax)

    dy = rng.standard_normal(shape).astype(dtype)
    gradients = []
    for kernel in (winograd.output_transform_pool_backward_into_numpy, winograd.output_transform_pool_backward_into_numba):
        dM, dbias = np.full((16, count + 3, f), 7.0, dtype), np.ones(f, dtype)  # dbias is ADDED to
        kernel(dy, y_fast, argmax_fast, relu, tiles_h, tiles_w, dM, dbias)
        assert (dM[:, count:] == 7.0).all()
        gradients.append((dM, dbias))
    (dM, dbias), (dM_fast, dbias_fast) = gradients
    np.testing.assert_allclose(dM_fast, dM, **tolerance(dtype))
    np.testing.assert_allclose(dbias_fast, dbias, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_ties", [False, True])
@pytest.mark.parametrize("size", [(10, 10), (11, 8)])  # (11, 8): the last row goes unread
def test_single_channel_pool(dtype, relu, with_ties, size):
    """One-channel 3x3 convolution + bias + ReLU + 2x2 pool in one kernel: Numba == NumPy twin (forward with
    ties, NaN and ReLU zeros; the kernel and bias gradients), and the twin == Conv2D's reference + the epilogue."""
    from minicnn.kernels import single_channel
    from minicnn.layers.conv2d import conv2d_forward

    (h, w), n, f = size, 3, 21
    out_h, out_w = (h - 2) // 2, (w - 2) // 2
    rng = np.random.default_rng(11)
    x = rng.standard_normal((n, h, w, 1)).astype(dtype)
    kernel = rng.standard_normal((3, 3, 1, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    if with_ties:  # integers: many equal outputs in a window, and many exact zeros after the ReLU
        x, kernel, bias = np.round(x), np.round(kernel), np.round(bias)
    x[0, 0, 0, 0] = np.nan  # reaches the first window's outputs
    shape = (n, out_h, out_w, f)
    results = []
    for forward in (single_channel.single_channel_pool_forward_into_numpy, single_channel.single_channel_pool_forward_into_numba):
        y, argmax = np.full(shape, 7.0, dtype), np.full(shape, 255, np.uint8)
        forward(x, kernel, bias, relu, y, argmax)
        results.append((y, argmax))
    (y, argmax), (y_fast, argmax_fast) = results
    np.testing.assert_allclose(y_fast, y, **tolerance(dtype))
    assert np.isnan(y_fast[0, 0, 0]).all()
    if with_ties:  # (exact in both: the same maxima; random values may move a near-tie by a rounding)
        np.testing.assert_array_equal(argmax_fast, argmax)
    z, _ = conv2d_forward(x, kernel, np.zeros(f, dtype), (1, 1), "valid")
    reference = fused.conv_epilogue_forward_into_numpy(z[:, :2 * out_h, :2 * out_w], bias, relu, 2, 2, 2, 2, 0, 0,
                                                  np.empty(shape, dtype), np.empty(shape, np.uint8))
    np.testing.assert_allclose(y, reference, **tolerance(dtype))

    assert_pool_gradients_agree(single_channel.single_channel_pool_forward_into_numba,
                                (single_channel.single_channel_pool_backward_into_numpy,
                                 single_channel.single_channel_pool_backward_into_numba),
                                x, kernel, bias, relu, shape, rng, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_optimizer_state_never_goes_subnormal(dtype):
    """Where the gradient stays 0, m (and SGD's velocity) decay geometrically; below the smallest normal number
    they are set to 0 instead of going subnormal (which the CPU computes 10-100x slower): in kernel and twin."""
    tiny = np.finfo(dtype).tiny
    cast = np.dtype(dtype).type
    for adam in (optim.adam_update_numpy, optim.adam_update_numba):
        params, grads = np.ones(40, dtype), np.zeros(40, dtype)
        m, v = np.full(40, 1e-3, dtype), np.full(40, 1e-6, dtype)
        for _ in range(8000):  # (0.9**8000: below even float64's smallest normal)
            adam(params, grads, m, v, cast(1e-3), cast(0.1), cast(0.1), cast(1e-7))
        assert not np.any((m != 0) & (np.abs(m) < tiny)) and not np.any((v != 0) & (v < tiny))
        assert np.all(m == 0) and np.all(v == 0) and np.all(np.isfinite(params))
    for sgd in (optim.sgd_update_numpy, optim.sgd_update_numba):
        params, grads, velocity = np.ones(40, dtype), np.zeros(40, dtype), np.full(40, 1e-3, dtype)
        for _ in range(8000):
            sgd(params, grads, velocity, cast(0.01), cast(0.9), False)
        assert np.all(velocity == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("relu", [True, False])
@pytest.mark.parametrize("with_ties", [False, True])
@pytest.mark.parametrize("size, kernel_size", [((12, 12), 5), ((13, 10), 4), ((9, 11), 2)])  # odd: rows unread
def test_single_channel_kxk_pool(dtype, relu, with_ties, size, kernel_size):
    """One-channel KxK convolution + bias + ReLU + 2x2 pool, row by row: Numba == NumPy twin (forward with ties,
    NaN and ReLU zeros; the kernel and bias gradients), and the twin == Conv2D's reference + the epilogue."""
    from minicnn.kernels import single_channel
    from minicnn.layers.conv2d import conv2d_forward

    (h, w), n, f, k = size, 3, 6, kernel_size
    out_h, out_w = (h - k + 1) // 2, (w - k + 1) // 2
    rng = np.random.default_rng(12)
    x = rng.standard_normal((n, h, w, 1)).astype(dtype)
    kernel = rng.standard_normal((k, k, 1, f)).astype(dtype)
    bias = rng.standard_normal(f).astype(dtype)
    if with_ties:
        x, kernel, bias = np.round(x), np.round(kernel), np.round(bias)
    x[0, 0, 0, 0] = np.nan
    shape = (n, out_h, out_w, f)
    results = []
    for forward in (single_channel.single_channel_kxk_pool_forward_into_numpy,
                    single_channel.single_channel_kxk_pool_forward_into_numba):
        y, argmax = np.full(shape, 7.0, dtype), np.full(shape, 255, np.uint8)
        forward(x, kernel, bias, relu, y, argmax)
        results.append((y, argmax))
    (y, argmax), (y_fast, argmax_fast) = results
    np.testing.assert_allclose(y_fast, y, **tolerance(dtype))
    assert np.isnan(y_fast[0, 0, 0]).all()
    if with_ties:
        np.testing.assert_array_equal(argmax_fast, argmax)
    z, _ = conv2d_forward(x, kernel, np.zeros(f, dtype), (1, 1), "valid")
    reference = fused.conv_epilogue_forward_into_numpy(z[:, :2 * out_h, :2 * out_w], bias, relu, 2, 2, 2, 2, 0, 0,
                                                       np.empty(shape, dtype), np.empty(shape, np.uint8))
    np.testing.assert_allclose(y, reference, **tolerance(dtype))

    assert_pool_gradients_agree(single_channel.single_channel_kxk_pool_forward_into_numba,
                                (single_channel.single_channel_kxk_pool_backward_into_numpy,
                                 single_channel.single_channel_kxk_pool_backward_into_numba),
                                x, kernel, bias, relu, shape, rng, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", [0, 1, 2])
@pytest.mark.parametrize("shape", [(1, 784, 256), (1, 13, 5), (3, 64, 10), (7, 9, 1)])
def test_dense_activation_forward_into(shape, activation, dtype):
    """One image's Dense + activation without BLAS (kernels/small_batch.py): depths that are and are not multiples
    of the kernel's eight-row unroll; activation 0 none, 1 ReLU, 2 LeakyReLU."""
    from minicnn.kernels import small_batch
    rng = np.random.default_rng(sum(shape) + activation)
    batch, depth, units = shape
    x = rng.standard_normal((batch, depth)).astype(dtype)
    kernel = rng.standard_normal((depth, units)).astype(dtype)
    bias = rng.standard_normal(units).astype(dtype)
    expected = small_batch.dense_activation_forward_into_numpy(x, kernel, bias, activation, 0.2,
                                                               np.empty((batch, units), dtype))
    y = np.full((batch, units), np.nan, dtype)
    small_batch.dense_activation_forward_into_numba(x, kernel, bias, activation, 0.2, y)
    np.testing.assert_allclose(y, expected, **tolerance(dtype))
    if activation == 2:
        assert (expected < 0).any()  # (the slope was exercised)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_forward_into(dtype):
    from minicnn.kernels import small_batch
    x = np.random.default_rng(1).standard_normal((5, 10)).astype(dtype) * 30  # (large logits: the max is subtracted)
    expected = small_batch.softmax_forward_into_numpy(x, np.empty_like(x))
    y = small_batch.softmax_forward_into_numba(x, np.empty_like(x))
    np.testing.assert_allclose(y, expected, **tolerance(dtype))
    np.testing.assert_allclose(y.sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("softmax", [True, False])
@pytest.mark.parametrize("images", [1, 3])
def test_dense_tail_forward_into(dtype, softmax, images):
    """A chain of Dense layers (ReLU, none, LeakyReLU) and a Softmax in one call, their weights pieces of one flat
    buffer placed by the layout table (with gaps, biases before kernels), against the twin and against the layers'
    own functions on those pieces."""
    from minicnn.kernels import small_batch
    from minicnn.layers.dense import dense_forward
    rng = np.random.default_rng(7)
    sizes = [37, 20, 9, 4]
    x = rng.standard_normal((images, sizes[0])).astype(dtype)
    parameters = rng.standard_normal(2000).astype(dtype)
    layout, kernel_at, output_at = [], 1000, 0
    for number, (inputs, units) in enumerate(zip(sizes, sizes[1:])):
        layout.append((kernel_at, inputs, units, 10 + 100 * number, (1, 0, 2)[number], output_at))
        kernel_at += inputs * units + 3
        output_at += images * units
    layout, slopes = np.array(layout, dtype=np.int64), np.array([0.0, 0.0, 0.1])
    results = []
    for function in (small_batch.dense_tail_forward_into_numpy, small_batch.dense_tail_forward_into_numba):
        scratch = np.full(output_at, np.nan, dtype)
        probabilities = np.full((images, sizes[-1]), np.nan, dtype)
        results.append((function(x, parameters, layout, slopes, scratch, softmax, probabilities).copy(),
                        scratch.copy()))
    np.testing.assert_allclose(results[1][0], results[0][0], **tolerance(dtype))
    np.testing.assert_allclose(results[1][1], results[0][1], **tolerance(dtype))
    h = x
    for at, inputs, units, bias_at, activation, _ in layout:
        h = dense_forward(h, parameters[at:at + inputs * units].reshape(inputs, units),
                          parameters[bias_at:bias_at + units])[0]
        h = np.maximum(h, 0) if activation == 1 else np.where(h >= 0, h, 0.1 * h) if activation == 2 else h
    if softmax:
        h = np.exp(h - h.max(axis=1, keepdims=True))
        h /= h.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(results[1][0], h, **tolerance(dtype))


def assert_pool_gradients_agree(forward, backwards, x, kernel, bias, relu, shape, rng, dtype):
    """A one-channel conv + pool kernel pair (kernels/single_channel.py): backward's kernel and bias gradients,
    NumPy twin == Numba (``backwards``) == Conv2D's reference behind the epilogue's backward (x's NaN set to 0)."""
    from minicnn.layers.conv2d import conv2d_backward, conv2d_forward

    _, out_h, out_w, f = shape
    x[0, 0, 0, 0] = 0  # (gradients: finite numbers)
    z, cache = conv2d_forward(x, kernel, np.zeros(f, dtype), (1, 1), "valid")
    y, argmax = np.empty(shape, dtype), np.empty(shape, np.uint8)
    forward(x, kernel, bias, relu, y, argmax)
    dy = rng.standard_normal(shape).astype(dtype)
    gradients = []
    for backward in backwards:
        dkernel, dbias = np.full_like(kernel, 7.0), np.ones(f, dtype)  # dkernel is written, dbias ADDED to
        backward(dy, y, argmax, x, relu, dkernel, dbias)
        gradients.append((dkernel, dbias))
    (dkernel, dbias), (dkernel_fast, dbias_fast) = gradients
    np.testing.assert_allclose(dkernel_fast, dkernel, **tolerance(dtype))
    np.testing.assert_allclose(dbias_fast, dbias, **tolerance(dtype))
    dz = np.zeros(z.shape, dtype)
    fused.conv_epilogue_backward_into_numpy(dy, y, argmax, relu, 2, 2, 2, 2, 0, 0, dz[:, :2 * out_h, :2 * out_w],
                                            np.zeros(f, dtype))
    _, dkernel_reference, _ = conv2d_backward(dz, cache)
    np.testing.assert_allclose(dkernel, dkernel_reference, **tolerance(dtype))
