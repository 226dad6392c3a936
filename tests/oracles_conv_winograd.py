"""NumPy references for the Winograd F(2x2, 3x3) and F(4x4, 3x3) kernels (src_c/winograd.c), written from the
definitions (Lavin & Gray 2016's matrices; `tile` = 2 or 4 picks the algorithm).

conv3x3_ref is the direct cross-correlation in float64 (sliding windows, einsum), independent of the tile
algebra; conv3x3_abs_ref the same sum over |w| * |x|, the scale the rounding error bound is stated against;
wino_weights_ref the weight transform G g G^T from the matrices themselves.
"""
import numpy as np

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])


def conv3x3_ref(x, w, padding, out_hw, bias=None):
    """y[n, f, oh, ow] = bias[f] + sum_{c,i,j} w[f, c, i, j] x[n, c, oh - ph + i, ow - pw + j], x zero outside
    its planes; padding (ph, pw) is the padding before, out_hw the output size. Float64."""
    ph, pw = padding
    oh, ow = out_hw
    n, c, h, wd = x.shape
    # a zero canvas big enough for every read: rows -ph .. oh - ph + 2
    top, left = max(ph, 0), max(pw, 0)
    canvas = np.zeros((n, c, top + max(h, oh - ph + 2 + 1), left + max(wd, ow - pw + 2 + 1)))
    canvas[:, :, top:top + h, left:left + wd] = x
    r0, c0 = top - ph, left - pw
    win = np.lib.stride_tricks.sliding_window_view(canvas, (3, 3), axis=(2, 3))[:, :, r0:r0 + oh, c0:c0 + ow]
    y = np.einsum("ncpqij,fcij->nfpq", win, np.asarray(w, np.float64))
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y


def conv3x3_abs_ref(x, w, padding, out_hw):
    """sum_{c,i,j} |w[f, c, i, j]| |x[n, c, oh - ph + i, ow - pw + j]|: the magnitude of each output's terms."""
    return conv3x3_ref(np.abs(np.asarray(x, np.float64)), np.abs(np.asarray(w, np.float64)), padding, out_hw)


BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# F(4x4, 3x3): interpolation points 0, +-1, +-2 and infinity
G4 = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
               [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])
BT4 = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=np.float64)
AT4 = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
               dtype=np.float64)


def matrices(tile):
    """(G, B^T, A^T) of F(tile x tile, 3x3)."""
    return (G, BT, AT) if tile == 2 else (G4, BT4, AT4)


def wino_weights_ref(w, flip=False, tile=2):
    """u[(tile + 2) a + b, f, c] = (G g G^T)[a, b] for g = w[f, c]; flipped: u[xi, c, f] from
    w[f, c, ::-1, ::-1]."""
    g = matrices(tile)[0]
    w = np.asarray(w, np.float64)
    if flip:
        w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    t = np.einsum("ai,fcij,bj->abfc", g, w, g)
    return t.reshape((tile + 2) ** 2, w.shape[0], w.shape[1])


def _patches(x, padding, th, tw, tile):
    """|x|'s (tile + 2) x (tile + 2) input patches of the th x tw tiles, `tile` apart: (n, c, th, tw, a, a)."""
    ph, pw = padding
    n, c, h, wd = x.shape
    a = tile + 2
    top, left = max(ph, 0), max(pw, 0)
    canvas = np.zeros((n, c, top + max(h, tile * th - ph + a - 1), left + max(wd, tile * tw - pw + a - 1)))
    canvas[:, :, top:top + h, left:left + wd] = np.abs(x)
    r0, c0 = top - ph, left - pw
    win = np.lib.stride_tricks.sliding_window_view(canvas, (a, a), axis=(2, 3))
    return win[:, :, r0:r0 + tile * th:tile, c0:c0 + tile * tw:tile]


def wino_magnitude_ref(x, w, padding, out_hw, bias=None, tile=2):
    """The sum of the magnitudes of every term the F(tile x tile, 3x3) algorithm adds for each output:
    |A^T| [ sum_c (|G| |g| |G^T|) .* (|B^T| |d| |B|) ] |A| (+ |bias|), d the (tile + 2)^2 input patch of the
    output's tile. Any summation order of those terms in precision u is within gamma_k = k u / (1 - k u) of the
    exact result times this (Higham, Accuracy and Stability, 2nd ed., section 4.2), k the longest chain of
    roundings."""
    g, bt, at = matrices(tile)
    oh, ow = out_hw
    th, tw = -(-oh // tile), -(-ow // tile)
    n = x.shape[0]
    d = _patches(x, padding, th, tw, tile)                                     # (n, c, th, tw, a, a)
    v = np.einsum("ak,nctukl,bl->nctuab", np.abs(bt), d, np.abs(bt))
    u = np.einsum("ai,fcij,bj->fcab", np.abs(g), np.abs(np.asarray(w, np.float64)), np.abs(g))
    m = np.einsum("fcab,nctuab->nftuab", u, v)
    y = np.einsum("pa,nftuab,qb->nftupq", np.abs(at), m, np.abs(at))          # (n, f, th, tw, tile, tile)
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, w.shape[0], tile * th, tile * tw)[:, :, :oh, :ow]
    if bias is not None:
        y = y + np.abs(np.asarray(bias, np.float64))[None, :, None, None]
    return y


def gamma(k, dtype):
    """Higham's gamma_k = k u / (1 - k u), u the unit roundoff of dtype."""
    u = np.finfo(dtype).eps / 2
    return k * u / (1 - k * u)


def wino_dw_magnitude_ref(x, delta, padding, tile=2):
    """The magnitude of every term the transformed-domain weight gradient adds: |G^T| [sum over the tiles of
    all samples of |A| |dy| |A^T| .* |B^T| |d| |B|] |G| per filter and channel (dy the tile's tile x tile block
    of the output gradient, zero past its edge; d its input patch)."""
    g, bt, at = matrices(tile)
    n, f, oh, ow = delta.shape
    th, tw = -(-oh // tile), -(-ow // tile)
    d = _patches(x, padding, th, tw, tile)
    v = np.einsum("ak,nctukl,bl->nctuab", np.abs(bt), d, np.abs(bt))
    dy = np.zeros((n, f, tile * th, tile * tw))
    dy[:, :, :oh, :ow] = np.abs(delta)
    blocks = dy.reshape(n, f, th, tile, tw, tile).transpose(0, 1, 2, 4, 3, 5)       # (n, f, th, tw, tile, tile)
    dd = np.einsum("ia,nftuij,jb->nftuab", np.abs(at), blocks, np.abs(at))
    u = np.einsum("nftuab,nctuab->fcab", dd, v)
    return np.einsum("ai,fcab,bj->fcij", np.abs(g), u, np.abs(g))
