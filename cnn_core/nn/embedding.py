"""Embedding: a lookup table of learned vectors, read by integer indices (words, characters, tokens)."""
from __future__ import annotations

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import check_int, check_size, not_an_array
from cnn_core.nn.init import check_parameter_bytes, normal
from cnn_core.nn.module import Module, Parameter, register_module


@register_module
class Embedding(Module):
    """``y[..., :] = weight[x[...], :]``: each integer index in x picks a row of the (num_embeddings,
    embedding_dim) table. Backward scatter-adds the delta rows into ``weight.grad`` (an index that occurs k
    times receives the sum of its k delta rows); the row ``padding_idx``, if given, receives no gradient and
    starts at zero (a padding token contributes nothing and is never learned). There is no gradient with
    respect to the indices: backward returns None.

    Args:
        num_embeddings: the number of rows (vocabulary size).
        embedding_dim: the length of each vector.
        padding_idx: None (default) or the index of the padding row, in [-num_embeddings, num_embeddings)
            (negative counts from the end, as PyTorch's).
        dtype: float32 (default) or float64, of the table and the output.
        rng: seed or ``numpy.random.Generator`` for the initial table, N(0, 1) as PyTorch's (default: the
            global generator, see ``cnn_core.manual_seed``).

    Shape:
        - Input: ``(*)``, integer indices in [0, num_embeddings), any integer dtype
        - Output: ``(*, embedding_dim)``
        - weight: ``(num_embeddings, embedding_dim)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> emb = nn.Embedding(4, 2, padding_idx=0, rng=0)
        >>> emb.weight.data[:] = [[0, 0], [1, 2], [3, 4], [5, 6]]
        >>> emb(np.array([[1, 3, 0]]))
        array([[[1., 2.],
                [5., 6.],
                [0., 0.]]], dtype=float32)
        >>> _ = emb.backward(np.ones((1, 3, 2), np.float32))
        >>> emb.weight.grad                    # row 0 is the padding row: no gradient
        array([[0., 0.],
               [1., 1.],
               [0., 0.],
               [1., 1.]], dtype=float32)
    """

    integer_input = True

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype=None,
                 rng=None):
        super().__init__(dtype)
        self.num_embeddings = check_size(num_embeddings, "num_embeddings")
        self.embedding_dim = check_size(embedding_dim, "embedding_dim")
        if padding_idx is not None:
            padding_idx = check_int(padding_idx, "padding_idx", -self.num_embeddings, self.num_embeddings - 1)
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        shape = (self.num_embeddings, self.embedding_dim)
        check_parameter_bytes(shape, self._dtype, "num_embeddings, embedding_dim")
        w = normal(shape, 1.0, get_rng(rng), self._dtype)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)
        self._idx = None

    @classmethod
    def parameter_shapes(cls, num_embeddings, embedding_dim, **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        return {"weight": (check_size(num_embeddings, "num_embeddings"), check_size(embedding_dim, "embedding_dim"))}

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            raise not_an_array(x, "Embedding: x")
        if x.dtype.kind not in "iu":
            raise TypeError(f"Embedding: x: expected integer indices, got dtype {x.dtype}")
        if x.size:
            lo, hi = int(x.min()), int(x.max())
            if lo < 0 or hi >= self.num_embeddings:
                raise ValueError(f"Embedding: x: expected indices in [0, {self.num_embeddings}) (num_embeddings), "
                                 f"got values in [{lo}, {hi}]")
        idx = x.astype(np.intp)  # a private copy: the caller may reuse x before backward
        self._idx = idx if self.training else None
        return self.weight.data[idx]

    def backward(self, dy: np.ndarray) -> None:
        """dy = dC/dy (x.shape + (embedding_dim,)); accumulates dC/dweight and returns None (indices have no
        gradient)."""
        idx = self._need_cache(self._idx)
        self._check_grad(dy, "dy", idx.shape + (self.embedding_dim,))
        rows = idx.reshape(-1)
        d = dy.reshape(-1, self.embedding_dim)
        if self.padding_idx is not None:
            keep = rows != self.padding_idx
            rows, d = rows[keep], d[keep]
        np.add.at(self.weight.grad, rows, d)
        return None

    def _clear_cache(self) -> None:
        self._idx = None

    def get_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, **super().get_config()}
