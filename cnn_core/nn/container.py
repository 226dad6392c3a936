"""Containers: Sequential (a chain), Residual (y = block(x) + shortcut(x)), Concat (parallel branches joined
along a dimension) and ModuleList (a list of registered modules), so that networks which are not a chain are
built without autograd: each container's backward routes the deltas the way its forward routed the data.

Containers call their modules as ``m(x)``, so forward hooks run (see ``Module.register_forward_hook``).
"""
from __future__ import annotations

import numbers
from typing import Iterable, Iterator

import numpy as np

from cnn_core.nn.activation import ReLU
from cnn_core.nn.module import (Module, fed_by_a_layer, module_from_config, module_to_config,
                                parameter_shapes_from_config, register_module, takes_integer_input)


def _one_dtype(modules, name: str):
    """The dtype all `modules` with parameters or buffers share (None for no modules), else a TypeError naming
    `name`. Modules without state (activations, dropout) take either float dtype, so theirs does not count
    unless no module has state (then the first one's is taken)."""
    for i, m in enumerate(modules):
        if not isinstance(m, Module):
            raise TypeError(f"{name}[{i}]: expected a Module, got {type(m).__name__}")
    stateful = [m for m in modules if m.parameters() or m.buffers()]
    dtypes = {m.dtype for m in stateful} or {m.dtype for m in modules[:1]}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: expected one dtype for all modules, got {sorted(d.name for d in dtypes)}; "
                        "build them with the same dtype= or call .to() on the container")
    return dtypes.pop() if dtypes else None


def _config_list(cfg: dict, cls: str, key: str, extra: tuple[str, ...] = ()) -> list:
    unknown = sorted(set(cfg) - {"type", key, *extra})
    if unknown:
        raise ValueError(f"cfg: unknown keys {unknown} in the config of {cls} (expected 'type', {key!r}"
                         f"{''.join(', ' + repr(e) for e in extra)})")
    mods = cfg.get(key)
    if not isinstance(mods, list):
        raise TypeError(f"cfg[{key!r}]: expected a list of module configs, got {mods!r:.120}")
    return mods


def _prefixed_shapes(named_cfgs) -> dict[str, tuple[int, ...]] | None:
    shapes: dict[str, tuple[int, ...]] = {}
    for prefix, m in named_cfgs:
        sub = parameter_shapes_from_config(m)
        if sub is None:
            return None
        shapes.update({f"{prefix}.{name}": shape for name, shape in sub.items()})
    return shapes


@register_module
class Sequential(Module):
    """``Sequential(*modules)``: ``a = m_k(...m_1(x))``; backward hands each layer's delta to the one before it.

    All modules must share one dtype, which becomes the container's. Only the first layer screens its input
    for NaN/inf, and only when the call enters the network there: the others are fed by a layer (they run
    inside ``fed_by_a_layer``), and a non-finite value born inside the network reaches the loss, which
    rejects it. The modules themselves are not changed, so a layer keeps screening when used alone or in
    another model. ``input_grad`` is the first layer's.

    A ``ReLU`` right after a ``Linear`` or ``Conv2d`` runs inside that layer's forward, ``a = max(z, 0)``
    written as z is made, and its mask inside that layer's backward (the same values as two separate
    passes, without the pass over z and over delta between them; neither module may have forward hooks, or
    the two run apart). The ReLU still holds its output, as after a call of its own.

    Indexing returns a module, slicing a new Sequential of the same (shared) modules.

    Args:
        *modules: the layers, in the order the input flows through them.

    Shape:
        - Input: the first module's input
        - Output: the last module's output

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> model = nn.Sequential(nn.Linear(784, 30, rng=0), nn.Sigmoid(), nn.Linear(30, 10, rng=1))
        >>> model(np.zeros((4, 784), np.float32)).shape
        (4, 10)
        >>> len(model), model[1]
        (3, Sigmoid())
        >>> model[:2](np.zeros((4, 784), np.float32)).shape
        (4, 30)
        >>> [name for name, _ in model.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
    """

    def __init__(self, *modules: Module):
        super().__init__(_one_dtype(modules, "modules"))
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        self._layers = list(modules)
        self._fused: frozenset[int] = frozenset()     # the last forward's ReLUs run inside the layer before

    @property
    def input_grad(self) -> bool:
        layers = self.__dict__.get("_layers")
        return layers[0].input_grad if layers else True

    @input_grad.setter
    def input_grad(self, on: bool) -> None:
        layers = self.__dict__.get("_layers")  # absent while Module.__init__ sets the default
        if layers:
            layers[0].input_grad = bool(on)

    @property
    def integer_input(self) -> bool:
        return bool(self._layers) and takes_integer_input(self._layers[0])

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self._layers:
            return x
        self._fused = fused = _fused_relus(self._layers)
        x = self._call(0, x, fused)
        with fed_by_a_layer():
            for i in range(1, len(self._layers)):
                if i not in fused:
                    x = self._call(i, x, fused)
        return x

    def _call(self, i: int, x: np.ndarray, fused: frozenset[int]) -> np.ndarray:
        """Module i on x, with the ReLU after it when that one is fused."""
        if i + 1 not in fused:
            return self._layers[i](x)
        a = self._layers[i]._forward_relu(x)
        self._layers[i + 1]._keep_output(a)
        return a

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for i in reversed(range(len(self._layers))):
            if i not in self._fused:          # a fused ReLU's mask is in the backward of the layer before it
                dy = self._layers[i].backward(dy)
        return dy

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return Sequential(*self._layers[idx])
        return self._layers[idx]

    def _to_config(self) -> dict:
        return {"type": "Sequential", "modules": [module_to_config(m) for m in self._layers]}

    @classmethod
    def _from_config(cls, cfg: dict) -> "Sequential":
        return cls(*(module_from_config(m) for m in _config_list(cfg, "Sequential", "modules")))

    @classmethod
    def _parameter_shapes_from_config(cls, cfg: dict) -> dict[str, tuple[int, ...]] | None:
        return _prefixed_shapes((str(i), m) for i, m in enumerate(_config_list(cfg, "Sequential", "modules")))


def _fused_relus(layers: list[Module]) -> frozenset[int]:
    """Indices of the ReLUs (the class itself) that follow a layer able to apply them (Module._fuses_relu),
    neither with forward hooks."""
    return frozenset(i for i in range(1, len(layers))
                     if type(layers[i]) is ReLU and layers[i - 1]._fuses_relu
                     and not layers[i]._forward_hooks and not layers[i - 1]._forward_hooks)


@register_module
class Residual(Module):
    """``Residual(block, shortcut=None)``: ``y = block(x) + shortcut(x)``, the shortcut the identity by
    default (ResNet's basic block); backward sums the two paths' deltas, ``dx = block'(dy) + shortcut'(dy)``
    (``+ dy`` for the identity).

    The block's and the shortcut's outputs must have one shape (a shortcut such as a 1x1 ``Conv2d`` with stride
    matches them when the block changes channels or size). Parameters are named ``block.*`` and ``shortcut.*``.

    Args:
        block: the residual branch F, a Module.
        shortcut: a Module for the projection path, or None for the identity.

    Shape:
        - Input: the block's input
        - Output: the block's output, equal to the shortcut's (or the input's for the identity)

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> res = nn.Residual(nn.Sequential(nn.Linear(3, 3, rng=0), nn.ReLU()))
        >>> x = np.ones((2, 3), np.float32)
        >>> bool(np.all(res(x) >= x))                 # x + relu(...) >= x
        True
        >>> [name for name, _ in res.named_parameters()]
        ['block.0.weight', 'block.0.bias']
    """

    def __init__(self, block: Module, shortcut: Module | None = None):
        if not isinstance(block, Module):
            raise TypeError(f"block: expected a Module, got {type(block).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(f"shortcut: expected a Module or None, got {type(shortcut).__name__}")
        super().__init__(_one_dtype([block] + ([shortcut] if shortcut is not None else []), "block, shortcut"))
        self.block = block
        self.shortcut = shortcut
        self._shape = None

    @property
    def integer_input(self) -> bool:
        return takes_integer_input(self.__dict__.get("block"))

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = self.block(x)
        with fed_by_a_layer():  # the block screened x already
            s = x if self.shortcut is None else self.shortcut(x)
        if not isinstance(y, np.ndarray) or not isinstance(s, np.ndarray) or y.shape != s.shape:
            what = "the input's" if self.shortcut is None else "the shortcut's output's"
            raise ValueError(f"Residual: block: expected an output of {what} shape "
                             f"{getattr(s, 'shape', None)}, got {getattr(y, 'shape', None)}")
        self._shape = y.shape if self.training else None
        return y + s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape = self._need_cache(self._shape)
        self._check_grad(dy, "dy", shape)
        dx = self.block.backward(dy)
        ds = dy if self.shortcut is None else self.shortcut.backward(dy)
        if dx is None or ds is None:  # a path skipped dC/dx (input_grad False): nobody needs it
            return None
        return dx + ds

    def _clear_cache(self) -> None:
        self._shape = None

    def _to_config(self) -> dict:
        return {"type": "Residual", "block": module_to_config(self.block),
                "shortcut": None if self.shortcut is None else module_to_config(self.shortcut)}

    @staticmethod
    def _config_parts(cfg: dict) -> tuple[dict, dict | None]:
        unknown = sorted(set(cfg) - {"type", "block", "shortcut"})
        if unknown or "block" not in cfg:
            raise ValueError(f"cfg: expected the keys 'type', 'block' and 'shortcut' in the config of Residual, "
                             f"got {sorted(cfg)}")
        return cfg["block"], cfg.get("shortcut")

    @classmethod
    def _from_config(cls, cfg: dict) -> "Residual":
        block, shortcut = cls._config_parts(cfg)
        return cls(module_from_config(block), None if shortcut is None else module_from_config(shortcut))

    @classmethod
    def _parameter_shapes_from_config(cls, cfg: dict) -> dict[str, tuple[int, ...]] | None:
        block, shortcut = cls._config_parts(cfg)
        return _prefixed_shapes([("block", block)] + ([("shortcut", shortcut)] if shortcut is not None else []))


@register_module
class Concat(Module):
    """``Concat(*branches, dim=1)``: every branch reads the same input and their outputs are joined along
    `dim` (Inception's parallel branches, joined along the channels); backward splits the delta along `dim`
    and sums the branches' deltas with respect to the shared input.

    Args:
        *branches: the Modules, in the order their outputs are joined (at least one).
        dim: the dimension to join along (negative counts from the end); the outputs must agree on every other.

    Shape:
        - Input: the branches' input
        - Output: the branches' outputs joined along `dim`: ``(N, C_1 + ... + C_k, H, W)`` for dim=1

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> cat = nn.Concat(nn.Linear(4, 2, rng=0), nn.Linear(4, 3, rng=1))
        >>> cat(np.ones((5, 4), np.float32)).shape
        (5, 5)
        >>> cat.backward(np.ones((5, 5), np.float32)).shape
        (5, 4)
    """

    def __init__(self, *branches: Module, dim: int = 1):
        if not branches:
            raise ValueError("branches: expected at least one Module, got none")
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"dim: expected an int, got {dim!r} ({type(dim).__name__})")
        super().__init__(_one_dtype(branches, "branches"))
        for i, m in enumerate(branches):
            setattr(self, str(i), m)
        self._branches = list(branches)
        self.dim = int(dim)
        self._sizes = None

    @property
    def integer_input(self) -> bool:
        branches = self.__dict__.get("_branches")
        return bool(branches) and takes_integer_input(branches[0])

    def forward(self, x: np.ndarray) -> np.ndarray:
        outs = [self._branches[0](x)]
        with fed_by_a_layer():  # the first branch screened x already
            outs += [m(x) for m in self._branches[1:]]
        shapes = [getattr(o, "shape", None) for o in outs]
        ndim = len(shapes[0])
        if not -ndim <= self.dim < ndim:
            raise ValueError(f"Concat: dim: expected an int in [{-ndim}, {ndim}) for outputs of shape {shapes[0]}, "
                             f"got {self.dim}")
        d = self.dim % ndim
        if any(len(s) != ndim or s[:d] + s[d + 1:] != shapes[0][:d] + shapes[0][d + 1:] for s in shapes):
            raise ValueError(f"Concat: branches: expected outputs that agree on every dimension but dim={self.dim}, "
                             f"got shapes {shapes}")
        y = np.concatenate(outs, axis=d)
        self._sizes = (d, [s[d] for s in shapes], y.shape) if self.training else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        d, sizes, shape = self._need_cache(self._sizes)
        self._check_grad(dy, "dy", shape)
        pieces = np.split(dy, np.cumsum(sizes)[:-1], axis=d)
        dx = None
        for m, piece in zip(self._branches, pieces):
            g = m.backward(np.ascontiguousarray(piece))
            if g is not None:
                dx = g if dx is None else dx + g
        return dx

    def _clear_cache(self) -> None:
        self._sizes = None

    def __len__(self) -> int:
        return len(self._branches)

    def __getitem__(self, idx: int) -> Module:
        return self._branches[idx]

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def _to_config(self) -> dict:
        return {"type": "Concat", "branches": [module_to_config(m) for m in self._branches], "dim": self.dim}

    @classmethod
    def _from_config(cls, cfg: dict) -> "Concat":
        branches = _config_list(cfg, "Concat", "branches", ("dim",))
        return cls(*(module_from_config(m) for m in branches), dim=cfg.get("dim", 1))

    @classmethod
    def _parameter_shapes_from_config(cls, cfg: dict) -> dict[str, tuple[int, ...]] | None:
        return _prefixed_shapes((str(i), m) for i, m in enumerate(_config_list(cfg, "Concat", "branches", ("dim",))))


@register_module
class ModuleList(Module):
    """``ModuleList(modules=None)``: a list of modules whose parameters are registered (named ``0.weight``,
    ``1.weight``, ... as PyTorch's), for models that call their modules in their own ``forward``. It has no
    forward of its own.

    Args:
        modules: an iterable of Modules, or None for an empty list.

    Shape:
        - no forward: the modules' own shapes apply

    Example:
        >>> from cnn_core import nn
        >>> layers = nn.ModuleList([nn.Linear(2, 2, rng=0) for _ in range(2)])
        >>> _ = layers.append(nn.ReLU())
        >>> len(layers), [name for name, _ in layers.named_parameters()][:2]
        (3, ['0.weight', '0.bias'])
    """

    def __init__(self, modules: Iterable[Module] | None = None):
        mods = [] if modules is None else list(modules)
        super().__init__(_one_dtype(mods, "modules"))
        self._list: list[Module] = []
        self.extend(mods)

    def append(self, module: Module) -> "ModuleList":
        if not isinstance(module, Module):
            raise TypeError(f"module: expected a Module, got {type(module).__name__}")
        setattr(self, str(len(self._list)), module)
        self._list.append(module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def __len__(self) -> int:
        return len(self._list)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._list)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(self._list[idx])
        return self._list[idx]

    def _to_config(self) -> dict:
        return {"type": "ModuleList", "modules": [module_to_config(m) for m in self._list]}

    @classmethod
    def _from_config(cls, cfg: dict) -> "ModuleList":
        return cls(module_from_config(m) for m in _config_list(cfg, "ModuleList", "modules"))

    @classmethod
    def _parameter_shapes_from_config(cls, cfg: dict) -> dict[str, tuple[int, ...]] | None:
        return _prefixed_shapes((str(i), m) for i, m in enumerate(_config_list(cfg, "ModuleList", "modules")))
