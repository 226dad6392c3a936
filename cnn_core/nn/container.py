"""Sequential: the layers of a feed-forward net, run forward in order and backward in reverse."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from cnn_core.nn.module import (Module, fed_by_a_layer, module_from_config, module_to_config,
                                parameter_shapes_from_config, register_module)


@register_module
class Sequential(Module):
    """``Sequential(*modules)``: ``a = m_k(...m_1(x))``; backward hands each layer's delta to the one before it.

    All modules must share one dtype, which becomes the container's. Only the first layer screens its input
    for NaN/inf, and only when the call enters the network there: the others are fed by a layer (they run
    inside ``fed_by_a_layer``), and a non-finite value born inside the network reaches the loss, which
    rejects it. The modules themselves are not changed, so a layer keeps screening when used alone or in
    another model. ``input_grad`` is the first layer's.

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
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"modules[{i}]: expected a Module, got {type(m).__name__}")
        dtypes = {m.dtype for m in modules}
        if len(dtypes) > 1:
            raise TypeError(f"modules: expected one dtype for all modules, got {sorted(d.name for d in dtypes)}; "
                            "build them with the same dtype= or call .to() on the Sequential")
        super().__init__(dtypes.pop() if dtypes else None)
        for i, m in enumerate(modules):
            setattr(self, str(i), m)
        self._layers = list(modules)

    @property
    def input_grad(self) -> bool:
        layers = self.__dict__.get("_layers")
        return layers[0].input_grad if layers else True

    @input_grad.setter
    def input_grad(self, on: bool) -> None:
        layers = self.__dict__.get("_layers")  # absent while Module.__init__ sets the default
        if layers:
            layers[0].input_grad = bool(on)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self._layers:
            return x
        x = self._layers[0].forward(x)
        with fed_by_a_layer():
            for m in self._layers[1:]:
                x = m.forward(x)
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for m in reversed(self._layers):
            dy = m.backward(dy)
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

    @staticmethod
    def _config_modules(cfg: dict) -> list:
        unknown = sorted(set(cfg) - {"type", "modules"})
        if unknown:
            raise ValueError(f"cfg: unknown keys {unknown} in the config of Sequential (expected 'type' and "
                             "'modules')")
        mods = cfg.get("modules")
        if not isinstance(mods, list):
            raise TypeError(f"cfg['modules']: expected a list of module configs, got {mods!r:.120}")
        return mods

    @classmethod
    def _from_config(cls, cfg: dict) -> "Sequential":
        return cls(*(module_from_config(m) for m in cls._config_modules(cfg)))

    @classmethod
    def _parameter_shapes_from_config(cls, cfg: dict) -> dict[str, tuple[int, ...]] | None:
        shapes: dict[str, tuple[int, ...]] = {}
        for i, m in enumerate(cls._config_modules(cfg)):
            sub = parameter_shapes_from_config(m)
            if sub is None:
                return None
            shapes.update({f"{i}.{name}": shape for name, shape in sub.items()})
        return shapes
