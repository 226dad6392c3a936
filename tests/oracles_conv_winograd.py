"""NumPy references for the Winograd F(2x2, 3x3) kernels (src_c/winograd.c), written from the definitions.

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


def wino_weights_ref(w, flip=False):
    """u[4a + b, f, c] = (G g G^T)[a, b] for g = w[f, c]; flipped: u[xi, c, f] from w[f, c, ::-1, ::-1]."""
    w = np.asarray(w, np.float64)
    if flip:
        w = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    t = np.einsum("ai,fcij,bj->abfc", G, w, G)
    return t.reshape(16, w.shape[0], w.shape[1])


BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)


def wino_magnitude_ref(x, w, padding, out_hw, bias=None):
    """The sum of the magnitudes of every term the F(2x2, 3x3) algorithm adds for each output:
    |A^T| [ sum_c (|G| |g| |G^T|) .* (|B^T| |d| |B|) ] |A| (+ |bias|), d the 4x4 input patch of the output's
    tile. Any summation order of those terms in precision u is within gamma_k = k u / (1 - k u) of the exact
    result times this (Higham, Accuracy and Stability, 2nd ed., section 4.2), k the longest chain of additions."""
    ph, pw = padding
    oh, ow = out_hw
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    n, c, h, wd = x.shape
    top, left = max(ph, 0), max(pw, 0)
    canvas = np.zeros((n, c, top + max(h, 2 * th - ph + 3), left + max(wd, 2 * tw - pw + 3)))
    canvas[:, :, top:top + h, left:left + wd] = np.abs(x)
    r0, c0 = top - ph, left - pw
    win = np.lib.stride_tricks.sliding_window_view(canvas, (4, 4), axis=(2, 3))
    d = win[:, :, r0:r0 + 2 * th:2, c0:c0 + 2 * tw:2]                         # (n, c, th, tw, 4, 4)
    v = np.einsum("ak,nctukl,bl->nctuab", np.abs(BT), d, np.abs(BT))
    u = np.einsum("ai,fcij,bj->fcab", np.abs(G), np.abs(np.asarray(w, np.float64)), np.abs(G))
    m = np.einsum("fcab,nctuab->nftuab", u, v)
    y = np.einsum("pa,nftuab,qb->nftupq", np.abs(AT), m, np.abs(AT))        # (n, f, th, tw, 2, 2)
    y = y.transpose(0, 1, 2, 4, 3, 5).reshape(n, w.shape[0], 2 * th, 2 * tw)[:, :, :oh, :ow]
    if bias is not None:
        y = y + np.abs(np.asarray(bias, np.float64))[None, :, None, None]
    return y


def gamma(k, dtype):
    """Higham's gamma_k = k u / (1 - k u), u the unit roundoff of dtype."""
    u = np.finfo(dtype).eps / 2
    return k * u / (1 - k * u)


A = AT.T


def wino_dw_magnitude_ref(x, delta, padding):
    """The magnitude of every term the transformed-domain weight gradient adds: |G^T| [sum over the tiles of
    all samples of |A| |dy| |A^T| .* |B^T| |d| |B|] |G| per filter and channel (dy the tile's 2x2 block of the
    output gradient, zero past its edge; d its 4x4 input patch)."""
    ph, pw = padding
    n, f, oh, ow = delta.shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    c, h, wd = x.shape[1:]
    top, left = max(ph, 0), max(pw, 0)
    canvas = np.zeros((n, c, top + max(h, 2 * th - ph + 3), left + max(wd, 2 * tw - pw + 3)))
    canvas[:, :, top:top + h, left:left + wd] = np.abs(x)
    win = np.lib.stride_tricks.sliding_window_view(canvas, (4, 4), axis=(2, 3))
    d = win[:, :, top - ph:top - ph + 2 * th:2, left - pw:left - pw + 2 * tw:2]      # (n, c, th, tw, 4, 4)
    v = np.einsum("ak,nctukl,bl->nctuab", np.abs(BT), d, np.abs(BT))
    dy = np.zeros((n, f, 2 * th, 2 * tw))
    dy[:, :, :oh, :ow] = np.abs(delta)
    blocks = dy.reshape(n, f, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)              # (n, f, th, tw, 2, 2)
    dd = np.einsum("ai,nftuij,bj->nftuab", np.abs(A), blocks, np.abs(A))
    u = np.einsum("nftuab,nctuab->fcab", dd, v)
    return np.einsum("ai,fcab,bj->fcij", np.abs(G), u, np.abs(G))
