"""Winograd's minimal filtering F(2x2, 3x3): a 3x3, stride-1 convolution with 2.25x fewer multiplications.

A 3x3 convolution makes each 2x2 block of outputs from a 4x4 block ("tile") of input. Winograd showed that
for one channel this costs 16 multiplications instead of 36, after cheap additions::

    Y = A^T [ (G g G^T) * (B^T d B) ] A        d: 4x4 input tile, g: 3x3 kernel, Y: 2x2 outputs, *: elementwise

    B^T = [[1, 0, -1, 0],   G = [[1,    0,   0],    A^T = [[1, 1,  1,  0],
           [0, 1,  1, 0],        [1/2,  1/2, 1/2],         [0, 1, -1, -1]]
           [0, -1, 1, 0],        [1/2, -1/2, 1/2],
           [0, 1,  0, -1]]       [0,    0,   1]]

Over channels the elementwise product becomes, for each of the 16 positions k of a 4x4 tile, one matrix
product that sums over the input channels C::

    V[k] = B^T d B, all tiles             (16, P, C)   P = number of tiles (images x tile rows x tile columns)
    U[k] = G g G^T, all kernels           (16, C, F)
    M[k] = V[k] @ U[k]                    (16, P, F)   16 matrix products (BLAS)
    y    = A^T M A per tile               (N, OH, OW, F)

The arrays V, M and their gradients may have MORE than P rows along their second axis (the fast path pads
them: 16 streams exactly 4 KB apart would fight over the same cache sets); only the first P are used.

Tile (ty, tx) reads input rows 2*ty - pad_top .. +3 and columns 2*tx - pad_left .. +3 (zero outside the image)
and writes output rows 2*ty, 2*ty + 1 and columns 2*tx, 2*tx + 1 (dropped past the output's edge).

Backward is the adjoint of each linear step, in reverse (so it is the exact gradient of the forward)::

    dM    = A dY A^T per tile                                   output_transform_backward_into
    dU[k] = V[k]^T @ dM[k], summed over chunks; dkernel = G^T dU G
    dV[k] = dM[k] @ U[k]^T;  dx = sum over tiles of B dV B^T    input_transform_backward_into

When a 2x2 max-pool (stride 2) follows and the tiles line up with its windows, a tile's 2x2 outputs ARE one
pool window: ``output_transform_pool_into`` then goes from M straight to the pooled output (bias, ReLU, maximum and
argmax as kernels/fused.py), and ``output_transform_pool_backward_into`` from the pooled gradient straight to dM,
without the convolution's output (or its gradient) ever being written out.

Each transform has a NumPy twin written with the matrices above (read those first) and a Numba kernel that
spells the same additions out.
"""
from __future__ import annotations

import numpy as np

from minicnn.kernels.fused import conv_epilogue_backward_into_numpy, conv_epilogue_forward_into_numpy
from minicnn.kernels.jit import njit

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def tiles(out_h, out_w):
    """Number of 2x2 output tiles down and across."""
    return -(-out_h // 2), -(-out_w // 2)


# ---------------------------------------------------------------- the kernel itself (NumPy; the fast path calls
# kernel_transform_into, whose Numba kernel is below with the others)
def kernel_transform(kernel):
    """U = G g G^T for every (input channel, filter): kernel (3, 3, C, F) -> U (16, C, F).

    Same as ``np.einsum("ai,ijcf,bj->abcf", G, kernel, G)``, as two matrix products (einsum is slow here)."""
    _, _, channels, filters = kernel.shape
    matrix = G.astype(kernel.dtype)
    rows = (matrix @ kernel.reshape(3, -1)).reshape(4, 3, -1)           # G g: (a, j, c*f)
    return np.matmul(matrix, rows).reshape(16, channels, filters)        # (G g) G^T: (a, b, c*f)


def kernel_transform_into_numpy(kernel, U):
    """U[...] = kernel_transform(kernel): the NumPy twin of the kernel below (which the fast path calls)."""
    U[...] = kernel_transform(kernel)
    return U


def kernel_transform_backward(dU):
    """dkernel = G^T dU G: the gradient of kernel_transform. dU (16, C, F) -> (3, 3, C, F)."""
    _, channels, filters = dU.shape
    matrix = G.astype(dU.dtype)
    columns = np.matmul(matrix.T, dU.reshape(4, 4, -1))                  # dU G: (a, j, c*f)
    return (matrix.T @ columns.reshape(4, -1)).reshape(3, 3, channels, filters)


# ---------------------------------------------------------------- NumPy twins (read these first)
def _padded_for_tiles(x, tiles_h, tiles_w, pad_top, pad_left):
    """x zero-padded so that every tile's 4x4 window lies inside: (N, 2*tiles_h + 2, 2*tiles_w + 2, C)."""
    batch, height, width, channels = x.shape
    padded = np.zeros((batch, 2 * tiles_h + 2, 2 * tiles_w + 2, channels), dtype=x.dtype)
    h, w = min(height, padded.shape[1] - pad_top), min(width, padded.shape[2] - pad_left)
    padded[:, pad_top:pad_top + h, pad_left:pad_left + w] = x[:, :h, :w]
    return padded


def input_transform_into_numpy(x, pad_top, pad_left, tiles_h, tiles_w, V):
    """V[...] = B^T d B for every 4x4 tile d of x (N, H, W, C); V is (16, N*tiles_h*tiles_w, C)."""
    padded = _padded_for_tiles(x, tiles_h, tiles_w, pad_top, pad_left)
    # d[a, b] = the (a, b) element of every tile: (4, 4, N, tiles_h, tiles_w, C)
    d = np.stack([np.stack([padded[:, a:a + 2 * tiles_h:2, b:b + 2 * tiles_w:2, :] for b in range(4)])
                  for a in range(4)])
    matrix = B_T.astype(x.dtype)
    count = x.shape[0] * tiles_h * tiles_w
    V[:, :count] = np.einsum("ia,abntuc,jb->ijntuc", matrix, d, matrix).reshape(16, count, x.shape[3])
    return V


def input_transform_backward_into_numpy(dV, pad_top, pad_left, tiles_h, tiles_w, dx):
    """dx[...] = sum over tiles of B dV B^T, added at each tile's 4x4 window (the adjoint of input_transform_into)."""
    batch, height, width, channels = dx.shape
    matrix = B_T.astype(dx.dtype)
    tiles = dV[:, :batch * tiles_h * tiles_w].reshape(4, 4, batch, tiles_h, tiles_w, channels)
    dd = np.einsum("ia,ijntuc,jb->abntuc", matrix, tiles, matrix)
    padded = np.zeros((batch, 2 * tiles_h + 2, 2 * tiles_w + 2, channels), dtype=dx.dtype)
    for a in range(4):
        for b in range(4):
            padded[:, a:a + 2 * tiles_h:2, b:b + 2 * tiles_w:2, :] += dd[a, b]
    h = min(height, padded.shape[1] - pad_top)
    w = min(width, padded.shape[2] - pad_left)
    dx[...] = 0
    dx[:, :h, :w] = padded[:, pad_top:pad_top + h, pad_left:pad_left + w]
    return dx


def output_transform_into_numpy(M, tiles_h, tiles_w, y):
    """y[...] = A^T M A for every tile, cut to y's size; M (16, N*tiles_h*tiles_w, F), y (N, OH, OW, F)."""
    batch, out_h, out_w, filters = y.shape
    matrix = A_T.astype(y.dtype)
    tiles = M[:, :batch * tiles_h * tiles_w].reshape(4, 4, batch, tiles_h, tiles_w, filters)
    blocks = np.einsum("ia,abntuf,jb->ntiujf", matrix, tiles, matrix)
    y[...] = blocks.reshape(batch, 2 * tiles_h, 2 * tiles_w, filters)[:, :out_h, :out_w]
    return y


def output_transform_backward_into_numpy(dy, tiles_h, tiles_w, dM):
    """dM[...] = A dY A^T for every tile (dY zero past the output's edge): the adjoint of output_transform_into."""
    batch, out_h, out_w, filters = dy.shape
    full = np.zeros((batch, 2 * tiles_h, 2 * tiles_w, filters), dtype=dy.dtype)
    full[:, :out_h, :out_w] = dy
    blocks = full.reshape(batch, tiles_h, 2, tiles_w, 2, filters)
    matrix = A_T.astype(dy.dtype)
    dM[:, :batch * tiles_h * tiles_w] = np.einsum("ia,ntiujf,jb->abntuf", matrix, blocks, matrix).reshape(16, -1,
                                                                                                          filters)
    return dM



# -- output transform and a 2x2 max-pool in one pass (a 2x2 output tile IS a 2x2 pool window)
def output_transform_pool_into_numpy(M, tiles_h, tiles_w, bias, relu, y, argmax):
    """y[...] = maxpool2x2(relu(A^T M A + bias)), argmax[...] = where each maximum was (as kernels/fused.py);
    y, argmax (N, tiles_h, tiles_w, F): one pooled output per tile. Returns y."""
    batch, _, _, filters = y.shape
    z = np.empty((batch, 2 * tiles_h, 2 * tiles_w, filters), dtype=y.dtype)
    output_transform_into_numpy(M, tiles_h, tiles_w, z)
    return conv_epilogue_forward_into_numpy(z, bias, relu, 2, 2, 2, 2, 0, 0, y, argmax)


def output_transform_pool_backward_into_numpy(dy, y, argmax, relu, tiles_h, tiles_w, dM, dbias):
    """dM[...] = the gradient of M through output_transform_pool_into; dbias += the bias gradient. Returns dM."""
    batch, _, _, filters = dy.shape
    dz = np.empty((batch, 2 * tiles_h, 2 * tiles_w, filters), dtype=dy.dtype)
    conv_epilogue_backward_into_numpy(dy, y, argmax, relu, 2, 2, 2, 2, 0, 0, dz, dbias)
    return output_transform_backward_into_numpy(dz, tiles_h, tiles_w, dM)

# ---------------------------------------------------------------- Numba kernels (same results, fast)
# The kernels spell the matrix products out from the matrices' nonzero entries (all +1 or -1). The forward
# transforms give each output (one of the 16 or 4 tile positions, for every channel) its own loop over channels
# that writes ONE array: that is what lets the compiler vectorise them (a loop writing 16 arrays is not). The
# backward transforms do the same: rows first into a small scratch array, then columns, one loop per output.
#
# B^T row i:    (B^T d)[i] = d[first] + sign * d[second]
BT_ROWS = ((0, 2, -1), (1, 2, 1), (2, 1, -1), (1, 3, -1))
# A^T row i:    (column a, sign) of its nonzero entries
AT_ROWS = (((0, 1), (1, 1), (2, 1)), ((1, 1), (2, -1), (3, -1)))


# G's rows (the matrix G above): (G g)[a] = G_ROWS[a][0] * g[0] + G_ROWS[a][1] * g[1] + G_ROWS[a][2] * g[2]
G_ROWS = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


@njit(cache=True, nogil=True, error_model="numpy", twin=kernel_transform_into_numpy)
def kernel_transform_into_numba(kernel, U):
    # per input channel c: t = G g (4x3 per filter), then U[4a + b] = (t G^T)[a, b]; every inner loop runs over
    # the filters and writes one array. (NumPy's two matrix products took ~2x as long for a 64x64 kernel, and
    # their OpenBLAS threads woke for it: 7.3 ms for a 128x128 kernel on a busy machine, docs/performance.md)
    _, _, channels, filters = kernel.shape
    t = np.empty((4, 3, filters), dtype=kernel.dtype)
    for c in range(channels):
        for a in range(4):
            row = G_ROWS[a]
            g0, g1, g2 = kernel.dtype.type(row[0]), kernel.dtype.type(row[1]), kernel.dtype.type(row[2])
            for j in range(3):
                for f in range(filters):
                    t[a, j, f] = g0 * kernel[0, j, c, f] + g1 * kernel[1, j, c, f] + g2 * kernel[2, j, c, f]
        for a in range(4):
            for b in range(4):
                row = G_ROWS[b]
                g0, g1, g2 = kernel.dtype.type(row[0]), kernel.dtype.type(row[1]), kernel.dtype.type(row[2])
                k = 4 * a + b
                for f in range(filters):
                    U[k, c, f] = g0 * t[a, 0, f] + g1 * t[a, 1, f] + g2 * t[a, 2, f]
    return U


@njit(cache=True, nogil=True, error_model="numpy", twin=input_transform_into_numpy)
def input_transform_into_numba(x, pad_top, pad_left, tiles_h, tiles_w, V):
    batch, height, width, channels = x.shape
    # every tile must lie whole inside what we read (no bounds checks below): x itself if it does (a "valid"
    # convolution: the seed CNN's), otherwise a zero-padded copy of x
    padded = x
    if pad_top > 0 or pad_left > 0 or 2 * tiles_h + 2 > height or 2 * tiles_w + 2 > width:
        padded = np.zeros((batch, 2 * tiles_h + 2, 2 * tiles_w + 2, channels), dtype=x.dtype)
        rows, cols = min(height, padded.shape[1] - pad_top), min(width, padded.shape[2] - pad_left)
        for n in range(batch):
            for iy in range(rows):
                for ix in range(cols):
                    for c in range(channels):
                        padded[n, iy + pad_top, ix + pad_left, c] = x[n, iy, ix, c]
    for n in range(batch):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                y0, x0 = 2 * ty, 2 * tx
                for i in range(4):
                    a1, a2, sign = BT_ROWS[i]
                    sign_a = x.dtype.type(sign)  # (x.dtype: an int64 sign would make the sums float64)
                    for j in range(4):
                        b1, b2, sign = BT_ROWS[j]
                        sign_b = x.dtype.type(sign)
                        k = 4 * i + j
                        for c in range(channels):  # V[k] = (B^T d B)[i, j] = t[i, b1] + sign_b * t[i, b2]
                            V[k, p, c] = ((padded[n, y0 + a1, x0 + b1, c] + sign_a * padded[n, y0 + a2, x0 + b1, c])
                                          + sign_b * (padded[n, y0 + a1, x0 + b2, c]
                                                      + sign_a * padded[n, y0 + a2, x0 + b2, c]))
    return V


@njit(cache=True, nogil=True, error_model="numpy", twin=input_transform_backward_into_numpy)
def input_transform_backward_into_numba(dV, pad_top, pad_left, tiles_h, tiles_w, dx):
    batch, height, width, channels = dx.shape
    t = np.empty((4, 4, channels), dtype=dx.dtype)  # one tile's B dV (rows done, columns not yet)
    flat = dx.reshape(-1)
    zero = dx.dtype.type(0)
    for i in range(flat.size):
        flat[i] = zero
    for n in range(batch):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                for j in range(4):  # t = B dV: row 0 = dV row 0, row 1 = 1 - 2 + 3, row 2 = 1 + 2 - 0, row 3 = -3
                    for c in range(channels):
                        t[0, j, c] = dV[j, p, c]
                    for c in range(channels):
                        t[1, j, c] = dV[4 + j, p, c] - dV[8 + j, p, c] + dV[12 + j, p, c]
                    for c in range(channels):
                        t[2, j, c] = dV[4 + j, p, c] + dV[8 + j, p, c] - dV[j, p, c]
                    for c in range(channels):
                        t[3, j, c] = -dV[12 + j, p, c]
                for a in range(4):  # dx (tile rows) += t B^T: the same combinations on the columns
                    iy = 2 * ty + a - pad_top
                    if iy < 0 or iy >= height:
                        continue
                    ix = 2 * tx - pad_left
                    if 0 <= ix < width:
                        for c in range(channels):
                            dx[n, iy, ix, c] += t[a, 0, c]
                    if 0 <= ix + 1 < width:
                        for c in range(channels):
                            dx[n, iy, ix + 1, c] += t[a, 1, c] - t[a, 2, c] + t[a, 3, c]
                    if 0 <= ix + 2 < width:
                        for c in range(channels):
                            dx[n, iy, ix + 2, c] += t[a, 1, c] + t[a, 2, c] - t[a, 0, c]
                    if 0 <= ix + 3 < width:
                        for c in range(channels):
                            dx[n, iy, ix + 3, c] -= t[a, 3, c]
    return dx


@njit(cache=True, nogil=True, error_model="numpy", twin=output_transform_into_numpy)
def output_transform_into_numba(M, tiles_h, tiles_w, y):
    batch, out_h, out_w, filters = y.shape
    real = y.dtype.type  # (the signs in y's dtype: int64 signs would make the sums float64)
    for n in range(batch):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                for i in range(2):
                    oy = 2 * ty + i
                    if oy >= out_h:
                        continue
                    (a0, s), (a1, t), (a2, u) = AT_ROWS[i]
                    sa0, sa1, sa2 = real(s), real(t), real(u)
                    for j in range(2):
                        ox = 2 * tx + j
                        if ox >= out_w:
                            continue
                        (b0, s), (b1, t), (b2, u) = AT_ROWS[j]
                        sb0, sb1, sb2 = real(s), real(t), real(u)
                        for f in range(filters):  # (A^T M A)[i, j]
                            y[n, oy, ox, f] = (
                                sa0 * (sb0 * M[4 * a0 + b0, p, f] + sb1 * M[4 * a0 + b1, p, f]
                                       + sb2 * M[4 * a0 + b2, p, f])
                                + sa1 * (sb0 * M[4 * a1 + b0, p, f] + sb1 * M[4 * a1 + b1, p, f]
                                         + sb2 * M[4 * a1 + b2, p, f])
                                + sa2 * (sb0 * M[4 * a2 + b0, p, f] + sb1 * M[4 * a2 + b1, p, f]
                                         + sb2 * M[4 * a2 + b2, p, f]))
    return y


@njit(cache=True, nogil=True, error_model="numpy")
def _tile_dM_numba(y00, y01, y10, y11, p, dM):
    """dM[:, p] = A dY A^T for one tile, from its four output gradients (one row of filters each): t = A dY
    (rows y0 + y1 and y0 - y1 in the middle), then the same on the columns. One loop per output row of dM."""
    for f in range(dM.shape[2]):
        dM[0, p, f] = y00[f]
    for f in range(dM.shape[2]):
        dM[1, p, f] = y00[f] + y01[f]
    for f in range(dM.shape[2]):
        dM[2, p, f] = y00[f] - y01[f]
    for f in range(dM.shape[2]):
        dM[3, p, f] = -y01[f]
    for f in range(dM.shape[2]):
        dM[4, p, f] = y00[f] + y10[f]
    for f in range(dM.shape[2]):
        dM[5, p, f] = (y00[f] + y10[f]) + (y01[f] + y11[f])
    for f in range(dM.shape[2]):
        dM[6, p, f] = (y00[f] + y10[f]) - (y01[f] + y11[f])
    for f in range(dM.shape[2]):
        dM[7, p, f] = -(y01[f] + y11[f])
    for f in range(dM.shape[2]):
        dM[8, p, f] = y00[f] - y10[f]
    for f in range(dM.shape[2]):
        dM[9, p, f] = (y00[f] - y10[f]) + (y01[f] - y11[f])
    for f in range(dM.shape[2]):
        dM[10, p, f] = (y00[f] - y10[f]) - (y01[f] - y11[f])
    for f in range(dM.shape[2]):
        dM[11, p, f] = -(y01[f] - y11[f])
    for f in range(dM.shape[2]):
        dM[12, p, f] = -y10[f]
    for f in range(dM.shape[2]):
        dM[13, p, f] = -y10[f] - y11[f]
    for f in range(dM.shape[2]):
        dM[14, p, f] = y11[f] - y10[f]
    for f in range(dM.shape[2]):
        dM[15, p, f] = y11[f]


@njit(cache=True, nogil=True, error_model="numpy", twin=output_transform_backward_into_numpy)
def output_transform_backward_into_numba(dy, tiles_h, tiles_w, dM):
    batch, out_h, out_w, filters = dy.shape
    zero = dy.dtype.type(0)
    # a tile's four dY values (0 past the output's edge), one row of filters each
    y00, y01 = np.empty(filters, dtype=dy.dtype), np.empty(filters, dtype=dy.dtype)
    y10, y11 = np.empty(filters, dtype=dy.dtype), np.empty(filters, dtype=dy.dtype)
    for n in range(batch):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                oy, ox = 2 * ty, 2 * tx
                second_row, second_col = oy + 1 < out_h, ox + 1 < out_w
                for f in range(filters):
                    y00[f] = dy[n, oy, ox, f]
                    y01[f] = dy[n, oy, ox + 1, f] if second_col else zero
                    y10[f] = dy[n, oy + 1, ox, f] if second_row else zero
                    y11[f] = dy[n, oy + 1, ox + 1, f] if second_row and second_col else zero
                _tile_dM_numba(y00, y01, y10, y11, p, dM)
    return dM


@njit(cache=True, nogil=True, error_model="numpy", twin=output_transform_pool_into_numpy)
def output_transform_pool_into_numba(M, tiles_h, tiles_w, bias, relu, y, argmax):
    batch, _, _, filters = y.shape
    zero = y.dtype.type(0)
    for n in range(batch):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                for f in range(filters):
                    # A^T M A, columns first (the order output_transform_into_numba adds in: the same roundings)
                    u00 = M[0, p, f] + M[1, p, f] + M[2, p, f]
                    u01 = M[1, p, f] - M[2, p, f] - M[3, p, f]
                    u10 = M[4, p, f] + M[5, p, f] + M[6, p, f]
                    u11 = M[5, p, f] - M[6, p, f] - M[7, p, f]
                    u20 = M[8, p, f] + M[9, p, f] + M[10, p, f]
                    u21 = M[9, p, f] - M[10, p, f] - M[11, p, f]
                    u30 = M[12, p, f] + M[13, p, f] + M[14, p, f]
                    u31 = M[13, p, f] - M[14, p, f] - M[15, p, f]
                    # the pool: as conv_epilogue_forward_into_numba's 2x2 path (first maximum wins, then the ReLU)
                    best = (u00 + u10 + u20) + bias[f]
                    index = 0
                    value = (u01 + u11 + u21) + bias[f]
                    if value > best or (value != value and best == best):
                        best, index = value, 1
                    value = (u10 - u20 - u30) + bias[f]
                    if value > best or (value != value and best == best):
                        best, index = value, 2
                    value = (u11 - u21 - u31) + bias[f]
                    if value > best or (value != value and best == best):
                        best, index = value, 3
                    if relu and best <= zero:  # (NaN stays NaN)
                        best, index = zero, 0
                    y[n, ty, tx, f] = best
                    argmax[n, ty, tx, f] = index
    return y


@njit(cache=True, nogil=True, error_model="numpy", twin=output_transform_pool_backward_into_numpy)
def output_transform_pool_backward_into_numba(dy, y, argmax, relu, tiles_h, tiles_w, dM, dbias):
    batch, _, _, filters = dy.shape
    zero = dy.dtype.type(0)
    # the gradient of a tile's four outputs: the pooled gradient at the maximum, 0 elsewhere
    y00, y01 = np.empty(filters, dtype=dy.dtype), np.empty(filters, dtype=dy.dtype)
    y10, y11 = np.empty(filters, dtype=dy.dtype), np.empty(filters, dtype=dy.dtype)
    for n in range(batch):
        for ty in range(tiles_h):
            for tx in range(tiles_w):
                p = (n * tiles_h + ty) * tiles_w + tx
                for f in range(filters):
                    gradient = dy[n, ty, tx, f]
                    if relu and not y[n, ty, tx, f] > zero:
                        gradient = zero
                    dbias[f] += gradient
                    index = argmax[n, ty, tx, f]
                    y00[f] = gradient if index == 0 else zero
                    y01[f] = gradient if index == 1 else zero
                    y10[f] = gradient if index == 2 else zero
                    y11[f] = gradient if index == 3 else zero
                _tile_dM_numba(y00, y01, y10, y11, p, dM)
    return dM
