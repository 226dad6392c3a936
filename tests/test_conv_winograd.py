"""Winograd F(2x2, 3x3) and F(4x4, 3x3) kernels (src_c/winograd.c through _conv.wino_weights / wino_conv3x3 /
wino_dw3x3; `tile` 2 or 4), and
Conv2d on that path (forward, input and weight gradients), against the NumPy oracles of oracles_conv_winograd and
oracles_conv_general, float32 and float64, on every SIMD path; float64 finite differences.

Error bound tested: every output within gamma_k * S of the float64 direct convolution, S the sum of the
magnitudes of the terms the algorithm adds (oracles_conv_winograd.wino_magnitude_ref) and k = C + 12 the
longest chain of roundings one term goes through (weight transform 4, input transform 2, the product 1, the
GEMM's sum over C channels C - 1, output transform 4, bias 1; the halvings in G are exact). This is the
standard a-priori bound for any summation order (Higham 4.2), so it holds for every GEMM blocking. It is
larger than im2col's gamma_{9C} * sum |w||x| only by the transforms' coefficients (|B^T| sums up to 2 values
per step, |A^T| up to 3): a few float32 ulps of each output's magnitude, what oneDNN's and cuDNN's Winograd
convolutions accept too. float64 gets the same bound at its own epsilon plus the oracle's own float64
rounding (gamma_{9C} * sum |w||x|).

F(4x4, 3x3), the same statement with its own matrices and chain: k = C + 21 (weight transform 8: per pass of
G a product by an inexact constant 1/6, 1/12 or 1/24, that constant's own rounding and two additions; input
transform 6: per pass of B^T at most three roundings, the factors 2 and 4 exact, 5 not; the product 1; the
GEMM's sum C - 1; output transform 6: three per pass of A^T, the factors 2, 4, 8 exact; bias 1). The bound is
larger relative to the outputs than F(2x2)'s, not because the rounding is looser but because the magnitude S
is: |B^T|'s rows sum to up to 10 and |A^T|'s to up to 18, so float32 F(4x4) loses about 1-2 more decimal
digits than F(2x2) on an output that cancels (test_f4_error_is_larger_but_bounded shows where it stands: the
measured error against the max |output|, and that it stays within the stated bound). The weight gradient's
chain: A 2 per pass (4), input transform 6, product 1, the tile sums, G^T . G 5 per pass (10).
"""
import numpy as np
import pytest
from oracles_conv_general import conv2d_general_backward_ref
from oracles_conv_winograd import (conv3x3_abs_ref, conv3x3_ref, gamma, matrices, wino_dw_magnitude_ref,
                                   wino_magnitude_ref, wino_weights_ref)

import cnn_core
import cnn_core.nn.conv as conv_module
from cnn_core import nn
from cnn_core.kernels import _conv

DTYPES = [np.float32, np.float64]

# (N, C, F, H, W, (ph, pw), (OH, OW) or None for H + 2p - 2, chunk, bias)
CASES = [
    (3, 4, 5, 8, 8, (1, 1), None, 2, True),       # even output, 'same'
    (2, 3, 6, 7, 9, (1, 1), None, 1, True),       # odd output sizes: the last tile row / column is cut
    (2, 5, 3, 6, 5, (0, 0), None, 2, False),      # no padding, no bias
    (1, 2, 4, 5, 6, (2, 2), None, 1, True),       # padding 2 (the input gradient's for padding 0)
    (3, 3, 2, 9, 4, (2, 0), None, 3, True),       # unequal paddings
    (2, 6, 7, 4, 4, (1, 1), (3, 5), 1, True),     # output smaller than the padding allows (after-padding 0 / 2)
    (2, 2, 3, 6, 6, (-1, 0), (2, 4), 2, True),    # negative padding: a crop
    (1, 1, 1, 1, 1, (1, 1), None, 1, True),       # one pixel
    (4, 16, 8, 7, 7, (1, 1), None, 3, True),      # a modern shape in miniature; a short last chunk
    # chunks of 8 or more: F(4x4)'s canvases copied in register transposes at the vector levels (8 float32
    # or 4 float64 samples at a time), the samples left over one by one
    (9, 3, 4, 11, 19, (1, 1), None, 9, True),     # 8 + 1 samples; rows of 19: 2 whole vectors and 3 masked
    (8, 2, 3, 18, 16, (1, 1), None, 8, False),    # rows of 16: whole vectors only
    (8, 2, 2, 5, 6, (-1, 0), (2, 4), 8, True),    # a crop: rows shorter than a vector
]


TILES = [2, 4]


def _run(case, dtype, seed=0, tile=2):
    n, c, f, h, w, pad, out_hw, chunk, has_bias = case
    out_hw = out_hw or (h + 2 * pad[0] - 2, w + 2 * pad[1] - 2)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if has_bias else None
    u = np.empty(((tile + 2) ** 2, f, c), dtype)
    _conv.wino_weights(wt, u, False)
    y = np.full((n, f, *out_hw), np.nan, dtype)
    scratch = np.empty((cnn_core.get_num_threads(), _conv.wino_scratch(chunk, c, f, *out_hw, tile)), dtype)
    _conv.wino_conv3x3(x, u, b, y, scratch, chunk, *pad)
    return x, wt, b, pad, out_hw, y


def _bound(x, wt, b, pad, out_hw, dtype, tile=2):
    c = x.shape[1]
    bound = gamma(c + (12 if tile == 2 else 21), dtype) * wino_magnitude_ref(x, wt, pad, out_hw, b, tile)
    if dtype == np.float64:   # the oracle's own rounding
        bound += gamma(9 * c + 1, np.float64) * (conv3x3_abs_ref(x, wt, pad, out_hw) + (0 if b is None else
                                                                                       np.abs(b)[:, None, None]))
    return bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("f,c", [(5, 3), (3, 70), (70, 33)])   # rows of u shorter and longer than a block of 32
@pytest.mark.parametrize("tile", TILES)
def test_weights_match_oracle(dtype, flip, f, c, tile):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    xi = (tile + 2) ** 2
    u = np.empty((xi, c, f) if flip else (xi, f, c), dtype)
    _conv.wino_weights(w, u, flip)
    ref = wino_weights_ref(w, flip, tile)
    if tile == 2:
        # G has entries 0, +-1/2, 1: each u entry is a sum of at most 9 scaled weights, 4 roundings deep
        np.testing.assert_allclose(u, ref, rtol=0, atol=gamma(4, dtype) * 9 * np.abs(w).max())
    else:
        # 8 roundings deep (module docstring), each entry against its own terms' magnitude |G| |g| |G^T|
        # (plus the oracle's float64 rounding, as deep)
        g = np.abs(matrices(4)[0])
        wa = np.abs(w.astype(np.float64))
        if flip:
            wa = wa[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
        mag = np.einsum("ai,fcij,bj->abfc", g, wa, g).reshape(u.shape)
        assert np.all(np.abs(u - ref) <= (gamma(8, dtype) + gamma(8, np.float64)) * mag)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("tile", TILES)
def test_conv_matches_oracle_within_bound(case, dtype, tile, simd):
    x, wt, b, pad, out_hw, y = _run(case, dtype, tile=tile)
    ref = conv3x3_ref(x.astype(np.float64), wt, pad, out_hw, b)
    err = np.abs(y.astype(np.float64) - ref)
    bound = _bound(x, wt, b, pad, out_hw, dtype, tile)
    assert np.all(np.isfinite(y))
    assert np.all(err <= bound), f"max err / bound {np.max(err / np.maximum(bound, 1e-300)):.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", TILES)
def test_bound_is_tight_enough_to_fail(dtype, tile):
    """The bound is a few ulps of each output's magnitude: a wrong tap (here one filter's weight moved)
    breaks it. F(4x4)'s magnitude S is about 50x F(2x2)'s here (|B^T| and |A^T| sum up to 10 and 18 per row,
    squared by the two passes: measured max bound 5.2e3 eps * max |y| against 1.1e2), so the tap it is sure to
    catch is 100x larger; its measured error is 1e3x below its bound (test_f4_error_is_larger_but_bounded)."""
    case = (2, 4, 5, 8, 8, (1, 1), None, 2, True)
    x, wt, b, pad, out_hw, y = _run(case, dtype, tile=tile)
    wrong = wt.copy()
    wrong[0, 0, 0, 0] += np.finfo(dtype).eps ** 0.5 * (1 if tile == 2 else 100)
    ref = conv3x3_ref(x.astype(np.float64), wrong, pad, out_hw, b)
    bound = _bound(x, wt, b, pad, out_hw, dtype, tile)
    assert not np.all(np.abs(y - ref) <= bound)
    assert np.max(bound) < (1e3 if tile == 2 else 1e4) * np.finfo(dtype).eps * np.abs(ref).max()


def test_f4_error_is_larger_but_bounded():
    """float32 F(4x4, 3x3) at the benchmark's 64 -> 128 channels, 7x7: its error against the float64 result,
    relative to the largest output, stays within a few 1e-6 (measured 3.2e-6; F(2x2)'s 2.9e-7: F(4x4)'s
    larger transform coefficients cost one decimal digit, as Lavin & Gray report), and within the stated bound
    everywhere (measured err / bound at most 1.1e-3: the a-priori bound counts every term at full size)."""
    case = (4, 64, 16, 7, 7, (1, 1), None, 4, True)
    errs = {}
    for tile in TILES:
        x, wt, b, pad, out_hw, y = _run(case, np.float32, tile=tile)
        ref = conv3x3_ref(x.astype(np.float64), wt, pad, out_hw, b)
        err = np.abs(y - ref)
        bound = _bound(x, wt, b, pad, out_hw, np.float32, tile)
        assert np.all(err <= bound)
        assert np.max(err / bound) > 1e-4
        errs[tile] = err.max() / np.abs(ref).max()
    assert errs[2] <= errs[4] < 1e-5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pad", [(1, 1), (0, 0), (2, 1)])
@pytest.mark.parametrize("tile", TILES)
def test_flipped_weights_give_the_input_gradient(dtype, pad, tile, simd):
    """dx of y = conv3x3(x, w, pad) is conv3x3(delta, flip(w), 2 - pad) with output H x W: checked against the
    adjoint identity <conv(x), delta> = <x, dx> in float64 through the direct oracle."""
    rng = np.random.default_rng(2)
    n, c, f, h, w = 2, 3, 4, 7, 6
    oh, ow = h + 2 * pad[0] - 2, w + 2 * pad[1] - 2
    wt = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    delta = rng.standard_normal((n, f, oh, ow)).astype(dtype)
    u = np.empty(((tile + 2) ** 2, c, f), dtype)
    _conv.wino_weights(wt, u, True)
    dx = np.empty((n, c, h, w), dtype)
    scratch = np.empty((cnn_core.get_num_threads(), _conv.wino_scratch(1, f, c, h, w, tile)), dtype)
    _conv.wino_conv3x3(delta, u, None, dx, scratch, 1, 2 - pad[0], 2 - pad[1])
    # the exact dx, column by column of the identity: dx[n, c, i, j] = <delta, conv(e_{n,c,i,j}, w)>
    ref = np.zeros((n, c, h, w))
    for ci in range(c):
        for i in range(h):
            for j in range(w):
                e = np.zeros((1, c, h, w))
                e[0, ci, i, j] = 1
                col = conv3x3_ref(e, wt, pad, (oh, ow))[0]              # (f, oh, ow)
                ref[:, ci, i, j] = np.einsum("fpq,nfpq->n", col, delta.astype(np.float64))
    flipped = wt[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    bound = _bound(delta, flipped, None, (2 - pad[0], 2 - pad[1]), (h, w), dtype, tile)
    assert np.all(np.abs(dx - ref) <= bound)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("tile", TILES)
def test_weights_thread_count_never_changes_a_result(dtype, flip, tile, num_threads):
    """The weight transform splits the rows of u's matrices between threads (CNN_WINO_WEIGHT_MIN_PAIRS
    pairs a thread): every row written, the same bits on 1 and 2 threads. 71 x 40 pairs: an odd row count,
    more than two threads' worth; u starts as NaN, so a row no share wrote shows."""
    w = np.random.default_rng(2).standard_normal((71, 40, 3, 3)).astype(dtype)
    xi = (tile + 2) ** 2
    out = []
    for threads in (1, 2):
        num_threads(threads)
        u = np.full((xi, 40, 71) if flip else (xi, 71, 40), np.nan, dtype)
        _conv.wino_weights(w, u, flip)
        out.append(u)
    assert np.isfinite(out[1]).all()
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", TILES)
def test_thread_count_and_chunk_never_change_a_result(dtype, tile, num_threads):
    case = (5, 6, 7, 9, 9, (1, 1), None, 2, True)
    num_threads(1)
    y1 = _run(case, dtype, tile=tile)[-1]
    num_threads(2)
    y2 = _run(case, dtype, tile=tile)[-1]
    np.testing.assert_array_equal(y1, y2)
    y3 = _run(case[:7] + (1,) + case[8:], dtype, tile=tile)[-1]   # chunks of 1: fewer tiles per GEMM
    np.testing.assert_allclose(y3, y1, rtol=0, atol=np.max(_bound(*_run(case, dtype)[:5], dtype, tile)))


def _run_dw(case, dtype, chunk, seed=0, tile=2):
    n, c, f, h, w, pad, out_hw = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    delta = rng.standard_normal((n, f, *out_hw)).astype(dtype)
    gw = np.full((f, c, 3, 3), 0.5, dtype)   # the kernel adds to what is there
    gb = np.full(f, 0.25, dtype)
    scratch = np.empty((cnn_core.get_num_threads(), _conv.wino_scratch(chunk, c, f, *out_hw, tile)), dtype)
    partial = np.empty((_conv.NSLOTS, (tile + 2) ** 2 * f * c + f), dtype)
    _conv.wino_dw3x3(x, delta, gw, gb, scratch, partial, chunk, *pad, tile=tile)
    return x, delta, gw - dtype(0.5), gb - dtype(0.25)


def _dw_bound(x, delta, pad, dtype, shift=0.5, tile=2):
    # Each term: delta transform 2 roundings, input transform 2, the product 1, the sums over the n*TS tiles
    # (within a chunk, across a slot's chunks, across the slots: at most n*(TS + 1) + 8), G^T . G 4; then the
    # addition to the gradient already there (`shift`: _run_dw's 0.5, subtracted again: 1 rounding each).
    # F(4x4): 4 + 6 + 1 + 10 = 21 besides the sums (module docstring).
    n, _, oh, ow = delta.shape
    ts = -(-oh // tile) * -(-ow // tile)
    k = n * (ts + 1) + 8 + (9 if tile == 2 else 21)
    mag = wino_dw_magnitude_ref(x, delta, pad, tile)
    bound = gamma(k, dtype) * mag + (gamma(2, dtype) * (mag + shift) if shift else 0)
    if dtype == np.float64:   # the oracle's own float64 sums (n*OH*OW terms)
        bound += gamma(n * oh * ow, np.float64) * mag
    return bound


def _db_bound(delta, dtype, shift):
    """dC/db: a plain sum of the n*OH*OW values of each filter (chains at most that long plus the 8 slots),
    added to `shift` and, in _run_dw, shift subtracted again."""
    mag = np.abs(delta.astype(np.float64)).sum(axis=(0, 2, 3))
    k = delta[:, 0].size + 8
    return gamma(k, dtype) * mag + (gamma(2, dtype) * (mag + shift) if shift else 0) + (
        gamma(k, np.float64) * mag if dtype == np.float64 else 0)


DW_CASES = [  # (N, C, F, H, W, (ph, pw), (OH, OW))
    (3, 4, 5, 8, 8, (1, 1), (8, 8)),
    (2, 3, 6, 7, 9, (1, 1), (7, 9)),       # odd outputs: the last tiles' blocks are cut
    (5, 2, 4, 5, 6, (0, 2), (3, 8)),       # unequal padding; chunks of 2 leave a short one
    (9, 3, 3, 4, 4, (2, 2), (6, 6)),       # more chunks than slots
    (9, 1, 2, 2, 9, (2, 2), (4, 11)),      # rows of 9 in, 11 out (chunks of 9: transposes, masked tails, a sample left)
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", DW_CASES)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("chunk", [2, 9])   # 9: F(4x4)'s canvas copies in register transposes (see CASES)
def test_weight_gradient_matches_oracle_within_bound(case, dtype, tile, chunk, simd):
    x, delta, gw, gb = _run_dw(case, dtype, chunk=chunk, tile=tile)
    _, dw_ref, db_ref = conv2d_general_backward_ref(x, np.zeros((case[2], case[1], 3, 3)), delta, 1, case[5])
    assert np.all(np.abs(gw - dw_ref) <= _dw_bound(x, delta, case[5], dtype, tile=tile))
    assert np.all(np.abs(gb - db_ref) <= _db_bound(delta, dtype, 0.25))
    wrong = x.copy()
    wrong[0, 0, 0, 0] += 1e-2
    _, dw_wrong, _ = conv2d_general_backward_ref(wrong, np.zeros((case[2], case[1], 3, 3)), delta, 1, case[5])
    assert not np.all(np.abs(gw - dw_wrong) <= _dw_bound(x, delta, case[5], dtype, tile=tile))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", TILES)
# more chunks than slots; 41 x 53 filter-channel pairs, an odd count split between two threads in the last step
# (G^T du G per pair, CNN_WINO_FINISH_MIN_PAIRS)
@pytest.mark.parametrize("case", [DW_CASES[3], (2, 41, 53, 4, 4, (1, 1), (4, 4))])
def test_weight_gradient_thread_count_never_changes_a_result(dtype, tile, case, num_threads):
    num_threads(1)
    one = _run_dw(case, dtype, chunk=1, tile=tile)
    num_threads(2)
    two = _run_dw(case, dtype, chunk=1, tile=tile)
    for a, b in zip(one[2:], two[2:]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("chunk", [4, 9])   # 4: three chunks, the last of 1 sample; 9: one, in transposes
def test_kept_tiles_give_the_bits_of_tiles_from_x(dtype, tile, chunk, simd):
    """wino_conv3x3 with `kept` leaves every chunk's transformed input tiles there and computes the same y;
    wino_dw3x3 reading them gives the bits of wino_dw3x3 transforming x again, and does not read x (a garbage
    x with the kept tiles changes nothing). A buffer too small for every chunk is refused."""
    n, c, f, h, w, pad = 9, 5, 4, 9, 11, (1, 1)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, 3, 3)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    u = np.empty(((tile + 2) ** 2, f, c), dtype)
    _conv.wino_weights(wt, u, False)
    scratch = np.empty((cnn_core.get_num_threads(), _conv.wino_scratch(chunk, c, f, h, w, tile)), dtype)
    nchunks = -(-n // chunk)
    kept = np.full(nchunks * _conv.wino_kept_size(chunk, c, h, w, tile), np.nan, dtype)
    y, y_kept = np.empty((n, f, h, w), dtype), np.empty((n, f, h, w), dtype)
    _conv.wino_conv3x3(x, u, b, y, scratch, chunk, *pad)
    _conv.wino_conv3x3(x, u, b, y_kept, scratch, chunk, *pad, kept)
    assert np.array_equal(y, y_kept)
    delta = rng.standard_normal((n, f, h, w)).astype(dtype)
    partial = np.empty((_conv.NSLOTS, (tile + 2) ** 2 * f * c + f), dtype)
    grads = []
    for xs, tiles in ((x, None), (np.full_like(x, 1e3), kept)):
        gw, gb = np.zeros((f, c, 3, 3), dtype), np.zeros(f, dtype)
        _conv.wino_dw3x3(xs, delta, gw, gb, scratch, partial, chunk, *pad, tile=tile, kept=tiles)
        grads.append((gw, gb))
    assert np.array_equal(grads[0][0], grads[1][0]) and np.array_equal(grads[0][1], grads[1][1])
    with pytest.raises(ValueError, match="kept: expected at least"):
        _conv.wino_conv3x3(x, u, b, y_kept, scratch, chunk, *pad, kept[:-1])
    with pytest.raises(ValueError, match="kept: expected at least"):
        _conv.wino_dw3x3(x, delta, gw, gb, scratch, partial, chunk, *pad, tile=tile, kept=kept[:-1])


# ---- Conv2d on the Winograd path (3x3, stride 1, one group, 24+ input and 16+ output channels) -------------

# (N, C, F, H, W, padding, bias)
LAYER_CASES = [   # with conv_module._WINO4_MAX_SIZE 8 (WINO4_MAX below): at most 8x8 F(4x4), larger F(2x2)
    (2, 24, 16, 9, 10, 1, True),    # F(2x2) everywhere
    (2, 24, 16, 10, 10, 0, True),   # output 8x8: forward and dW F(4x4), the input gradient (10x10) F(2x2)
    (3, 24, 16, 6, 7, 1, True),
    (2, 24, 24, 5, 5, 0, False),
    (2, 28, 16, 7, 6, "same", True),
    (9, 24, 16, 4, 4, 2, True),     # several chunks, padding 2 (the input gradient's padding 0)
]


# The layer's F(4x4) size limit, patched: 0 runs every pass by F(2x2), 8 mixes them on LAYER_CASES, the
# default (32) runs them all by F(4x4).
WINO4_MAX = [0, 8, conv_module._WINO4_MAX_SIZE]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYER_CASES)
@pytest.mark.parametrize("wino4_max", WINO4_MAX)
def test_layer_forward_backward_within_bound(case, dtype, wino4_max, simd, monkeypatch):
    monkeypatch.setattr(conv_module, "_WINO4_MAX_SIZE", wino4_max)
    n, c, f, h, w, padding, bias = case
    m = nn.Conv2d(c, f, 3, padding=padding, bias=bias, dtype=dtype, rng=0)
    pads = (1, 1) if padding == "same" else (padding, padding)
    assert m._winograd(pads)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    y = m(x)
    out_hw = y.shape[2:]
    tile, dx_tile = conv_module._wino_tile(*out_hw), conv_module._wino_tile(h, w)
    b = None if m.bias is None else m.bias.data
    ref = conv3x3_ref(x, m.weight.data, pads, out_hw, b)
    assert np.all(np.abs(y - ref) <= _bound(x, m.weight.data, b, pads, out_hw, dtype, tile))
    delta = rng.standard_normal(y.shape).astype(dtype)
    m.zero_grad()
    dx = m.backward(delta)
    dx_ref, dw_ref, db_ref = conv2d_general_backward_ref(x, m.weight.data, delta, 1, pads)
    flipped = m.weight.data[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    assert np.all(np.abs(dx - dx_ref) <= _bound(delta, flipped, None, (2 - pads[0], 2 - pads[1]), (h, w), dtype,
                                                dx_tile))
    assert np.all(np.abs(m.weight.grad - dw_ref) <= _dw_bound(x, delta, pads, dtype, shift=0, tile=tile))
    if bias:
        assert np.all(np.abs(m.bias.grad - db_ref) <= _db_bound(delta, dtype, 0))


# F(2x2) (_WINO4_MAX_SIZE 0); with 8: F(2x2), mixed, F(4x4) on the three cases. The first case in F(2x2) and
# the second with 8 (F(4x4) forward and dW, F(2x2) input gradient) run every kernel; the rest are exhaustive
# (pyproject.toml's markers).
@pytest.mark.parametrize("case,wino4_max", [
    pytest.param(case, wino4_max, marks=() if (i, wino4_max) in ((0, 0), (1, 8)) else pytest.mark.exhaustive)
    for i, case in enumerate(LAYER_CASES[:3]) for wino4_max in (0, 8)])
def test_layer_gradcheck(case, wino4_max, monkeypatch):
    monkeypatch.setattr(conv_module, "_WINO4_MAX_SIZE", wino4_max)
    n, c, f, h, w, padding, bias = case
    m = nn.Conv2d(c, f, 3, padding=padding, bias=bias, dtype=np.float64, rng=0)
    assert cnn_core.gradcheck(m, np.random.default_rng(2).standard_normal((n, c, h, w)))


def test_layer_paths_agree_and_thread_count_never_changes_a_result(num_threads, monkeypatch):
    """Winograd and im2col give the same float64 step within the bound; 1 and 2 threads bitwise equal."""
    m = nn.Conv2d(24, 16, 3, padding=1, dtype=np.float64, rng=0)
    x = np.random.default_rng(4).standard_normal((5, 24, 6, 6))
    delta = np.random.default_rng(5).standard_normal((5, 16, 6, 6))
    out = []
    for threads, wino in [(1, True), (2, True), (2, False)]:
        num_threads(threads)
        monkeypatch.setattr(conv_module, "_WINO_MIN_IN_CHANNELS", 24 if wino else 10 ** 9)
        assert m._winograd((1, 1)) == wino
        m.zero_grad()
        out.append((m(x), m.backward(delta), m.weight.grad.copy()))
    for a, b in zip(out[0], out[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(out[1], out[2]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wino4_max", [0, conv_module._WINO4_MAX_SIZE])   # F(2x2) / F(4x4) forward and dW
def test_layer_keeps_the_tiles_for_the_weight_gradient(dtype, wino4_max, monkeypatch):
    """In training, forward on the F(4x4) path keeps the transformed input tiles and backward reads them in
    place of x (which it neither copies nor reads); on the F(2x2) path (tiles 4x x's size) it keeps a copy of
    x instead. Either way the same bits as the kernels on x without `kept`, with the caller's x changed in
    place between forward and backward; in eval mode nothing is kept."""
    monkeypatch.setattr(conv_module, "_WINO4_MAX_SIZE", wino4_max)
    n, c, f, h, w = 9, 24, 16, 8, 8
    m = nn.Conv2d(c, f, 3, padding=1, dtype=dtype, rng=0)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    z = m(x)
    four = wino4_max >= h
    assert (m._cache[3] is not None) == four and (m._xin is None) == four
    x_kept = x.copy()
    x[:] = 1e3                                   # the caller reuses its array before backward
    delta = rng.standard_normal(z.shape).astype(dtype)
    m.backward(delta)
    tile = conv_module._wino_tile(h, w)
    assert tile == (4 if wino4_max else 2)
    chunk, per_thread = m._wino_chunk(n, c, f, h, w, tile)
    scratch = np.empty((cnn_core.get_num_threads(), per_thread), dtype)
    gw, gb = np.zeros_like(m.weight.data), np.zeros_like(m.bias.data)
    partial = np.empty((_conv.NSLOTS, (tile + 2) ** 2 * f * c + f), dtype)
    _conv.wino_dw3x3(x_kept, delta, gw, gb, scratch, partial, chunk, 1, 1, tile=tile)
    assert np.array_equal(m.weight.grad, gw) and np.array_equal(m.bias.grad, gb)
    m.eval()
    m(x_kept)
    assert m._cache is None
