"""Parameter and Module: the layer framework every layer, container and model builds on.

A Module computes ``forward(x)`` and, from the error of its output, ``backward(dy) -> dx`` (the delta of the
previous layer), accumulating its parameters' gradients into ``Parameter.grad`` like PyTorch. Submodules and
parameters are registered by attribute assignment, which gives dotted names ("0.weight") for free.
"""
from __future__ import annotations

import functools
import inspect
import math
import sys
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from cnn_core._validation import FLOAT_DTYPES, check_bool, check_finite, check_float_dtype, not_an_array

DEFAULT_DTYPE = np.dtype(np.float32)

# Per thread: how many containers are feeding one layer's output to the next (depth, see fed_by_a_layer), and
# the batch a training loop named (kept, screened: see batch_feed).
_forward_state = threading.local()


class fed_by_a_layer:
    """``with fed_by_a_layer():`` forward inputs come from another layer: layers skip the NaN/inf screen.

    The screen belongs to where a call enters the network, not to the modules: a container runs its first
    module as the caller did and the rest inside this block (a non-finite value born inside the network
    reaches the loss, which rejects it). Nothing is written into the modules, so a layer shared with another
    model, or used alone, keeps screening its own callers' input. Per thread, and nestable. A class, not a
    generator: a container enters it on every forward and fit on every step (~1 us less each).
    """

    __slots__ = ("depth",)

    def __enter__(self) -> None:
        self.depth = getattr(_forward_state, "depth", 0)
        _forward_state.depth = self.depth + 1

    def __exit__(self, *exc) -> None:
        _forward_state.depth = self.depth


class batch_feed:
    """``with batch_feed(kept, screened) as feed:`` a training loop's promises about its batches, made once for
    the loop; ``feed(x)`` before each step's forward names that step's batch x (the last one is forgotten at
    the block's end, and an enclosing block's promises come back).

    kept: x stays unchanged until the backward pass of the step's forward (fit's batch: nothing but the model
    runs between a step's forward and backward, and fit refills a batch buffer only two batches later), and
    so does every array one layer of the model hands to the next (no layer writes into its input: fit makes
    the promise only for models without ``inplace`` layers), so a layer given x itself, or inside
    ``fed_by_a_layer`` another layer's output, may keep a reference to it for backward instead of a private
    copy (is_kept; Linear, Conv2d, BatchNorm, the activations that keep their input).
    screened: the caller screened x's values for NaN/inf, so a layer given x itself skips its screen (as
    inside ``fed_by_a_layer``). A layer given any other array copies and screens it as before. Per thread.
    One object for the loop, not a context per step: entering two contexts cost ~6 us a step inside fit's
    loop (MLP 784-100-10, where a whole step is ~500 us), a name stored by ``feed`` ~0.1 us.
    """

    __slots__ = ("kept", "screened", "saved")

    def __init__(self, kept: bool, screened: bool) -> None:
        self.kept, self.screened = kept, screened

    def __enter__(self) -> "batch_feed":
        self.saved = getattr(_forward_state, "kept", None), getattr(_forward_state, "screened", None)
        return self

    def __call__(self, x: np.ndarray) -> None:
        _forward_state.kept = x if self.kept else None
        _forward_state.screened = x if self.screened else None

    def __exit__(self, *exc) -> None:
        _forward_state.kept, _forward_state.screened = self.saved


def is_kept(x: np.ndarray) -> bool:
    """Whether a layer may keep `x` for its backward pass without a private copy: inside an enclosing
    ``batch_feed(kept=True)``, `x` is the step's batch, or (inside ``fed_by_a_layer``) an array another layer
    of the model handed on, which nothing but the model touches until the step's backward is done (the
    promise excludes models with a layer that writes into its input)."""
    kept = getattr(_forward_state, "kept", None)
    return kept is not None and (kept is x or getattr(_forward_state, "depth", 0) > 0)


def resolve_dtype(dtype, name: str = "dtype") -> np.dtype:
    """Normalize a dtype argument (None -> float32); only float32 and float64 are supported."""
    if dtype is None:
        return DEFAULT_DTYPE
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {dtype!r}") from None
    check_float_dtype(dt, name)
    return dt


# Set once any Parameter is frozen: until then backward skips the scan for frozen parameters altogether.
_any_frozen = False


class Parameter:
    """A trainable array ``data`` with its gradient ``grad`` (same shape and dtype, starting at zeros).

    ``requires_grad=False`` freezes it, as in PyTorch: a module's backward leaves its ``grad`` at zero and the
    optimizers skip it. An optimizer leaves out the parameters that are frozen when it is built, so freeze
    before building it (a parameter frozen later keeps a zero gradient, but momentum or weight decay would
    still move it).
    """

    __slots__ = ("data", "_grad", "_zeroed", "_requires_grad")

    def __init__(self, data: np.ndarray, requires_grad: bool = True):
        if not isinstance(data, np.ndarray) or data.dtype not in FLOAT_DTYPES:
            raise TypeError(f"data: expected a float32 or float64 numpy.ndarray, got {data!r:.80}")
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self._requires_grad = True
        self.requires_grad = requires_grad

    # zero_grad only marks the gradient (_zeroed): it is filled with zeros when next read, unless a backward
    # that can write it outright (_grad_to_write) comes first, as PyTorch's zero_grad(set_to_none=True) lets
    # the next backward allocate it (an MLP 784-100-10 step: 318 KB of zeros less to write, then to read).

    @property
    def grad(self) -> np.ndarray:
        if self._zeroed:
            self._grad.fill(0)
            self._zeroed = False
        return self._grad

    @grad.setter
    def grad(self, value: np.ndarray) -> None:
        self._grad = value
        self._zeroed = False

    def _zero_grad(self) -> None:
        self._zeroed = True

    def _grad_to_write(self) -> tuple[np.ndarray, bool]:
        """(the gradient array, whether a backward must add to it): False right after zero_grad, when the
        backward may overwrite it instead of adding to zeros."""
        accumulate = not self._zeroed
        self._zeroed = False
        return self._grad, accumulate

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        global _any_frozen
        self._requires_grad = check_bool(value, "requires_grad")
        if not self._requires_grad:
            _any_frozen = True
            self.grad.fill(0)

    def requires_grad_(self, requires_grad: bool = True) -> "Parameter":
        """Set ``requires_grad`` in place and return the parameter (PyTorch's spelling)."""
        self.requires_grad = requires_grad
        return self

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def __repr__(self) -> str:
        frozen = "" if self._requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"


def grads_to_scan(params) -> list:
    """The gradient arrays a check for NaN/inf must read, one per parameter of `params`: a Parameter's own,
    or None when zero_grad marked it and no backward wrote it since (it reads as zeros); `.grad` for other
    objects. Why not `.grad` throughout: the property's call is most of the cost of listing them in fit's
    step (an MLP 784-100-10, 4 parameters: 1.8 us a step), and it would fill a marked gradient with zeros."""
    try:
        return [None if p._zeroed else p._grad for p in params]
    except AttributeError:
        return [p.grad for p in params]


class _IncompatibleKeys(NamedTuple):
    """What ``load_state_dict`` returns (PyTorch's fields): the module's keys the dict lacked, and the dict's
    keys the module does not have."""
    missing_keys: list[str]
    unexpected_keys: list[str]


class RemovableHandle:
    """Returned by ``register_forward_hook``: ``remove()`` unregisters the hook (a second call does nothing)."""

    __slots__ = ("_hooks", "_key")

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)

    def __enter__(self) -> "RemovableHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


_hook_ids = iter(range(1 << 62))


def _count(arrays: list, i: int) -> int:
    return sys.getrefcount(arrays[i])


# What _count reads for an array nobody but the list holds (measured, not assumed: what getrefcount counts
# differs between Python versions).
_ALONE = _count([np.empty(0)], 0)

# Arrays a module keeps per kind of handout: a layer's output of step t is still held (by the next layer's
# cache) when the layer fills the output of step t + 1, and the one of step t - 1 is free again.
_HANDOUT_DEPTH = 2

# Arrays smaller than this are new at each _handout: glibc serves them from its heap, where a freed chunk comes
# back without a page fault (its mmap and trim thresholds start at 128 KiB), and np.empty is cheaper than the
# reference-count bookkeeping (64 x 100 float32: 0.49 against 1.25 us a call). The tests set it to 0 so that
# small shapes exercise the recycling.
_HANDOUT_MIN_BYTES = 64 << 10


def _leave_frozen_grads_at_zero(backward: Callable) -> Callable:
    """Wrap a Module subclass's backward so that its own frozen parameters (requires_grad=False) end with a
    zero gradient whatever the layer accumulated: layers need no code for freezing, and nothing is scanned
    until some Parameter has been frozen."""
    @functools.wraps(backward)
    def wrapped(self, *args, **kwargs):
        out = backward(self, *args, **kwargs)
        if _any_frozen:
            for p in self.__dict__["_parameters"].values():
                if not p._requires_grad:
                    p.grad.fill(0)
        return out
    wrapped._keeps_frozen_at_zero = True
    return wrapped


class Module:
    """Base class of layers and containers.

    Subclasses call ``super().__init__(dtype)``, assign their Parameters and submodules as attributes,
    implement ``forward`` and ``backward``, and return their constructor arguments from ``get_config``.
    In eval mode a layer keeps no cache, so ``backward`` is only possible after a forward in train mode.
    ``_check_input`` screens a forward input for NaN/inf unless another layer produced it (a container runs
    all but its first module inside ``fed_by_a_layer``).

    ``parameter_shapes`` (classmethod, optional): ``parameter_shapes(**config) -> {name: shape}``, the
    parameters ``__init__(**config)`` would create, computed without allocating them, so that ``cnn_core.load``
    can check a file's weights against its architecture before building anything. None (the default) means
    unknown: such a module is built from its config to find out. Layers without parameters set it to
    ``no_parameters``.

    ``input_grad`` (default True): when False, layers with weights skip computing dC/dx in ``backward`` and
    return None, as PyTorch does for an input that does not require grad; ``fit`` sets it on the model while
    training, since nobody reads the gradient with respect to the data.
    """

    parameter_shapes: Callable[..., dict[str, tuple[int, ...]]] | None = None
    # True for a layer whose input is integer indices (Embedding); containers answer for their first module
    # (see takes_integer_input), so that fit, predict and summary pass such inputs through uncast.
    integer_input: bool = False
    # True for a layer that can end its forward with a ReLU in the same pass, a = max(z, 0): it defines
    # `_forward_relu(x) -> a`, after which its backward takes dC/da and applies the deck's sigma'(z) = [a > 0]
    # itself. Sequential runs such a layer and a ReLU right after it as one (nn.container).
    _fuses_relu: bool = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        backward = cls.__dict__.get("backward")
        if backward is not None and not getattr(backward, "_keeps_frozen_at_zero", False):
            cls.backward = _leave_frozen_grads_at_zero(backward)

    def __init__(self, dtype=None):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_dtype", resolve_dtype(dtype))
        object.__setattr__(self, "input_grad", True)

    # Attributes holding scratch arrays a layer reuses from step to step (None when absent): dropped with the
    # arrays _handout keeps (_drop_buffers) and left out of pickles and deep copies.
    _reused: tuple[str, ...] = ()

    def __getstate__(self) -> dict:
        """Pickles and deep copies leave out the arrays kept by _handout and the _reused scratch (not state)."""
        state = self.__dict__.copy()
        state.pop("_handouts", None)
        for name in self._reused:
            state[name] = None
        return state

    # -- registration ------------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"{type(self).__name__}.{name}: a buffer takes a numpy.ndarray or None, "
                                f"got {type(value).__name__}")
            buffers[name] = value
            object.__setattr__(self, name, value)
            return
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if name in self.__dict__.get("_buffers", ()):
            del self._buffers[name]
            self._non_persistent.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: np.ndarray | None, persistent: bool = True) -> None:
        """Register `tensor` as the buffer `name`: module state that is not a parameter (BatchNorm's running
        statistics). It is an attribute, listed by ``named_buffers``, cast by ``.to()`` when it is a float
        array, and saved in ``state_dict`` (when `persistent`) after the module's parameters; no optimizer
        sees it. Assigning an array to the attribute later replaces the buffer."""
        if not isinstance(name, str) or not name.isidentifier():
            raise TypeError(f"name: expected an identifier (str), got {name!r:.80}")
        if name in self._parameters or name in self._modules or (name in self.__dict__ and name not in self._buffers):
            raise ValueError(f"name: {name!r} is already an attribute of {type(self).__name__}")
        if tensor is not None and not isinstance(tensor, np.ndarray):
            raise TypeError(f"tensor: expected a numpy.ndarray or None, got {type(tensor).__name__}")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)
        object.__setattr__(self, name, tensor)

    def named_buffers(self, prefix: str = "") -> list[tuple[str, np.ndarray]]:
        """(dotted name, array) of every buffer that is not None, this module's first, then its children's."""
        out = [(prefix + name, b) for name, b in self._buffers.items() if b is not None]
        for name, m in self._modules.items():
            out.extend(m.named_buffers(prefix + name + "."))
        return out

    def buffers(self) -> list[np.ndarray]:
        return [b for _, b in self.named_buffers()]

    # -- hooks -------------------------------------------------------------------------------------------
    def register_forward_hook(self, hook: Callable) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every call of this module (``module(x)``; containers
        call their modules this way), with `inputs` the tuple of positional arguments. A hook that returns
        something other than None replaces the output. Returns a handle whose ``remove()`` unregisters it."""
        if not callable(hook):
            raise TypeError(f"hook: expected a callable hook(module, inputs, output), got {type(hook).__name__}")
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        return iter(self._modules.items())

    def children(self) -> Iterator["Module"]:
        return iter(self._modules.values())

    def modules(self) -> Iterator["Module"]:
        """This module and all its descendants, depth first."""
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def named_parameters(self, prefix: str = "") -> list[tuple[str, Parameter]]:
        out = [(prefix + name, p) for name, p in self._parameters.items()]
        for name, m in self._modules.items():
            out.extend(m.named_parameters(prefix + name + "."))
        return out

    def parameters(self) -> list[Parameter]:
        # named_parameters' order, without building the names: zero_grad walks this every training step
        out = list(self._parameters.values())
        for m in self._modules.values():
            out.extend(m.parameters())
        return out

    def zero_grad(self) -> None:
        for p in self.parameters():
            p._zero_grad()

    # -- forward / backward ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *args, **kwargs):
        out = self.forward(*args, **kwargs)
        if self._forward_hooks:
            for hook in list(self._forward_hooks.values()):
                result = hook(self, args, out)
                if result is not None:
                    out = result
        return out

    def _clear_cache(self) -> None:
        """Drop what forward kept for backward (layers with caches override)."""

    def _drop_buffers(self) -> None:
        """Drop the arrays kept for reuse between training steps: _handout's and the _reused scratch."""
        self.__dict__.pop("_handouts", None)
        for name in self._reused:
            object.__setattr__(self, name, None)

    def _need_cache(self, cache):
        """Return the forward cache for backward, or raise the RuntimeError that says why there is none."""
        if cache is None:
            if not self.training:
                raise RuntimeError(f"{type(self).__name__}.backward: the module is in eval mode, which keeps no "
                                   "forward cache; call train() and forward again before backward")
            raise RuntimeError(f"{type(self).__name__}.backward: called before forward")
        return cache

    def _check_input(self, x, name: str, ndim: int | None, layout: str, any_float: bool = False) -> None:
        """Validate a forward input: an ndarray of this module's dtype (of either float dtype when
        `any_float`, for layers without parameters, as PyTorch's), `ndim`-D (None: any), and finite unless
        another layer produced it (inside ``fed_by_a_layer``) or it is a batch its caller screened
        (``batch_feed``)."""
        if not isinstance(x, np.ndarray):
            raise not_an_array(x, f"{type(self).__name__}: {name}")
        if any_float:
            if x.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{type(self).__name__}: {name}: expected dtype float32 or float64, got {x.dtype}")
        elif x.dtype != self._dtype:
            raise TypeError(f"{type(self).__name__}: {name}: expected dtype {self._dtype} (the module's dtype; "
                            f"cast the input or call .to()), got {x.dtype}")
        if ndim is not None and x.ndim != ndim:
            raise ValueError(f"{type(self).__name__}: {name}: expected a {ndim}-D array {layout}, "
                             f"got shape {x.shape}")
        if not getattr(_forward_state, "depth", 0) and getattr(_forward_state, "screened", None) is not x:
            check_finite(x, f"{type(self).__name__}: {name}")

    def _check_grad(self, dy, name: str, shape: tuple[int, ...], dtype=None) -> None:
        """Validate a backward input: an ndarray of `dtype` (default this module's: the forward output's) and
        of the forward output's shape."""
        if not isinstance(dy, np.ndarray):
            raise TypeError(f"{type(self).__name__}: {name}: expected a numpy.ndarray, got {type(dy).__name__}")
        what = "" if dtype is None else " (the forward input's)"
        dtype = self._dtype if dtype is None else dtype
        if dy.dtype != dtype:
            raise TypeError(f"{type(self).__name__}: {name}: expected dtype {dtype}{what}, got {dy.dtype}")
        if dy.shape != shape:
            raise ValueError(f"{type(self).__name__}: {name}: expected shape {shape} (the forward output's), "
                             f"got {dy.shape}")

    def _handout(self, kind: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialized array for the module to fill and hand out (its output, an input gradient, or what its
        cache keeps). In training, one the module handed out as `kind` before and nobody holds any more (no
        reference, view or buffer export of it is left but the module's own), when one of this shape and
        dtype is; else a new one, kept for a later call. A fresh array of a few hundred KiB per step comes
        from pages the allocator returned to the system at the previous step's end and faults them in again
        (LeNet-5 in fit: 70-125 page faults a step before its max-pooling layers took this, ~1 after; epochs
        0.80-0.93x). In eval mode (where several threads may run the model at once), and for arrays under
        _HANDOUT_MIN_BYTES, always a new array."""
        if not self.training or math.prod(shape) * np.dtype(dtype).itemsize < _HANDOUT_MIN_BYTES:
            return np.empty(shape, dtype)
        kinds = self.__dict__.get("_handouts")
        if kinds is None:
            kinds = {}
            object.__setattr__(self, "_handouts", kinds)
        arrays = kinds.setdefault(kind, [])
        free = -1
        for i in range(len(arrays)):
            if _count(arrays, i) == _ALONE:
                a = arrays[i]
                if a.shape == shape and a.dtype == dtype:
                    return a
                free = i
        a = np.empty(shape, dtype)
        if free >= 0:
            arrays[free] = a
        elif len(arrays) < _HANDOUT_DEPTH:
            arrays.append(a)
        else:                      # all still held: the oldest is left to its holders
            arrays.pop(0)
            arrays.append(a)
        return a

    # -- modes -------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        keep = getattr(_forward_state, "handouts_kept", False)
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
            if not mode:
                m._clear_cache()
                if not keep:
                    m._drop_buffers()
        return self

    def eval(self) -> "Module":
        return self.train(False)

    # -- dtype -------------------------------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    def to(self, dtype) -> "Module":
        """Cast every parameter (and its gradient) to `dtype`, in place on the Parameter objects, and every
        float buffer (integer buffers, such as a batch counter, keep their dtype)."""
        dt = resolve_dtype(dtype)
        for m in self.modules():
            object.__setattr__(m, "_dtype", dt)
            m._clear_cache()
            m._drop_buffers()
            for p in m._parameters.values():
                if p.data.dtype != dt:
                    p.data = p.data.astype(dt)
                    p.grad = p.grad.astype(dt)
            for name, b in m._buffers.items():
                if b is not None and b.dtype.kind == "f" and b.dtype != dt:
                    setattr(m, name, b.astype(dt))
        return self

    def float(self) -> "Module":
        return self.to(np.float32)

    def double(self) -> "Module":
        return self.to(np.float64)

    # -- weights -----------------------------------------------------------------------------------------
    def _named_state(self, prefix: str = "") -> list[tuple[str, Parameter | np.ndarray]]:
        """What state_dict holds, in PyTorch's order: each module's parameters, then its persistent buffers,
        then its children's; values are the Parameter objects and the buffer arrays themselves."""
        out: list[tuple[str, Parameter | np.ndarray]] = [(prefix + n, p) for n, p in self._parameters.items()]
        out += [(prefix + n, b) for n, b in self._buffers.items() if b is not None and n not in self._non_persistent]
        for name, m in self._modules.items():
            out.extend(m._named_state(prefix + name + "."))
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of all parameter arrays and persistent buffers, keyed by dotted name (PyTorch's keys)."""
        return {name: (v.data if isinstance(v, Parameter) else v).copy() for name, v in self._named_state()}

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> _IncompatibleKeys:
        """Copy arrays into the parameters and buffers (in place), casting to their dtype.

        `state_dict` maps dotted names to array-likes (NumPy arrays, nested lists, or anything ``np.asarray``
        reads: a PyTorch ``{k: v.numpy()}`` dict loads directly). Everything is checked before anything is
        copied: each value must hold real numbers of the target's shape. With ``strict=True`` (default) the
        keys must match exactly (ValueError listing the missing and unexpected ones); with ``strict=False``
        only the common keys are loaded. Returns ``(missing_keys, unexpected_keys)``, a NamedTuple.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a dict, got {type(state_dict).__name__}")
        strict = check_bool(strict, "strict")
        targets = dict(self._named_state())
        missing = sorted(set(targets) - set(state_dict))
        unexpected = sorted(k for k in state_dict if k not in targets)
        if strict and (missing or unexpected):
            raise ValueError(f"state_dict: missing keys {missing}, unexpected keys {unexpected}")
        values = {}
        for name, t in targets.items():
            if name not in state_dict:
                continue
            v = state_dict[name]
            try:
                a = v if isinstance(v, np.ndarray) else np.asarray(v)
            except Exception:
                a = None
            if a is None or a.dtype.kind not in "biuf":
                raise TypeError(f"state_dict[{name!r}]: expected an array of real numbers, got {v!r:.80}")
            shape = t.shape
            if a.shape != shape:
                raise ValueError(f"state_dict[{name!r}]: expected shape {shape}, got {a.shape}")
            values[name] = a
        for name, a in values.items():
            t = targets[name]
            (t.data if isinstance(t, Parameter) else t)[...] = a
        return _IncompatibleKeys(missing, unexpected)

    # -- architecture ------------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """JSON-serializable constructor keyword arguments (subclasses add theirs to this)."""
        return {"dtype": self._dtype.name}

    def extra_repr(self) -> str:
        cfg = self.get_config()
        if cfg.get("dtype") == DEFAULT_DTYPE.name:
            cfg.pop("dtype")
        return ", ".join(f"{k}={v!r}" for k, v in cfg.items())

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


@contextmanager
def handouts_kept() -> Iterator[None]:
    """Within the block (on this thread), eval() keeps the arrays Module._handout recycles: for a switch to
    eval mode between training steps (predict, evaluate, fit's probe of the output shape and its validation
    each epoch), after which training refills those arrays instead of faulting in new ones (small_cnn, fit
    calls of 20 steps with validation: the first step of each call after the first took 16,000-18,000 page
    faults, the whole call 20,000-22,000; now 0-130 and 900-1,800). An eval() outside such a block drops
    them (a model put in eval mode for good does not hold its training arrays)."""
    saved = getattr(_forward_state, "handouts_kept", False)
    _forward_state.handouts_kept = True
    try:
        yield
    finally:
        _forward_state.handouts_kept = saved


def save_modes(module) -> list[tuple[Any, bool]]:
    """Every module's train/eval flag, the module's own first and then its descendants' (``modules()``
    order), for ``restore_modes``. A model that is not a Module (duck-typed, as ``fit`` accepts) is one entry."""
    modules = module.modules() if callable(getattr(module, "modules", None)) else (module,)
    return [(m, bool(getattr(m, "training", True))) for m in modules]


def restore_modes(saved: list[tuple[Any, bool]]) -> None:
    """Put every module of ``save_modes``'s list back in the mode it had, a mix of modes included."""
    # Parents come before children: train()/eval() resets a whole subtree, and the later entries then set
    # the children back, so a mix of modes comes back exactly.
    for m, training in saved:
        m.train() if training else m.eval()


@contextmanager
def temporary_mode(module, training: bool) -> Iterator[None]:
    """Within the block, `module` and all its submodules are in train (True) or eval (False) mode; on exit
    (an exception included) each module is back in the mode it had.

    For one caller at a time (``cnn_core.summary``, a one-off check): ``fit``, ``predict`` and ``evaluate``
    build their thread coordination on ``save_modes``/``restore_modes`` (see ``cnn_core.training``).

    Example:
        >>> from cnn_core import nn
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> _ = model[1].eval()                          # a mix: the ReLU alone in eval mode
        >>> with temporary_mode(model, False):
        ...     [m.training for m in model.modules()]
        [False, False, False]
        >>> [m.training for m in model.modules()]
        [True, True, False]
    """
    saved = save_modes(module)
    with handouts_kept():
        module.train() if training else module.eval()
    try:
        yield
    finally:
        restore_modes(saved)


def takes_integer_input(model) -> bool:
    """True when `model` reads integer indices (its first layer is an Embedding, say): ``fit``, ``predict``
    and ``summary`` then pass integer inputs through instead of requiring floats. Containers answer for
    their first module through their own ``integer_input``."""
    return bool(getattr(model, "integer_input", False))


def no_parameters(cls, **config) -> dict[str, tuple[int, ...]]:
    """``parameter_shapes`` of a layer without parameters (use as ``parameter_shapes = classmethod(no_parameters)``)."""
    return {}


_REGISTRY: dict[str, type] = {}


def register_module(cls: type) -> type:
    """Class decorator: make a Module subclass known to ``module_from_config`` under its class name."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module: expected a Module subclass, got {cls!r}")
    _REGISTRY[cls.__name__] = cls
    return cls


def module_to_config(module: Module, arg: str = "module") -> dict[str, Any]:
    """The architecture as {"type": class name, "config": get_config()} (containers list their modules);
    `arg` is how messages name the module (the caller's argument)."""
    if not isinstance(module, Module):
        raise TypeError(f"{arg}: expected a cnn_core.nn.Module, got {type(module).__name__}")
    name = type(module).__name__
    if _REGISTRY.get(name) is not type(module):
        raise ValueError(f"{arg}: {name} is not registered; decorate it with @cnn_core.nn.register_module")
    to_config: Callable | None = getattr(module, "_to_config", None)
    if to_config is not None:
        return to_config()
    return {"type": name, "config": module.get_config()}


def _resolve_config(cfg: Any) -> tuple[type, dict[str, Any]]:
    """The registered class of a module config and its constructor arguments, with every key checked.

    A config is {"type": name, "config": {arguments}} (containers with ``_from_config`` define their own keys);
    an argument must be one of the constructor's named parameters (``rng`` excluded: a file holds weights).
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg: expected a dict with a 'type' key, got {cfg!r:.120} ({type(cfg).__name__})")
    if "type" not in cfg:
        raise ValueError(f"cfg: expected a dict with a 'type' key, got {cfg!r:.120}")
    name = cfg["type"]
    if not isinstance(name, str):
        raise TypeError(f"cfg['type']: expected a registered class name (str), got {name!r:.80}")
    cls = _REGISTRY.get(name)
    if cls is None:
        raise ValueError(f"cfg: unknown module type {name!r:.80}; known: {sorted(_REGISTRY)}")
    if getattr(cls, "_from_config", None) is not None:
        return cls, {}
    unknown = sorted(set(cfg) - {"type", "config"})
    if unknown:
        raise ValueError(f"cfg: unknown keys {unknown} in the config of {name} (expected 'type' and 'config')")
    config = cfg.get("config", {})
    if not isinstance(config, dict):
        raise TypeError(f"cfg['config']: expected a dict of constructor arguments, got {config!r:.120}")
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        allowed = {n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        unknown = sorted(set(config) - (allowed - {"self", "rng"}))
        if unknown:
            raise ValueError(f"cfg['config']: unknown arguments {unknown} for {name} "
                             f"(expected some of {sorted(allowed - {'self', 'rng'})})")
    return cls, config


def parameter_shapes_from_config(cfg: Any) -> dict[str, tuple[int, ...]] | None:
    """The dotted parameter names and shapes ``module_from_config(cfg)`` would create, without allocating them.

    None when a module in the config has no ``parameter_shapes``: then only building it tells. Raises
    ValueError or TypeError for a config that module_from_config would refuse on these grounds.
    """
    cls, config = _resolve_config(cfg)
    from_config: Callable | None = getattr(cls, "_parameter_shapes_from_config", None)
    if from_config is not None:
        return from_config(cfg)
    if cls.parameter_shapes is None or getattr(cls, "_from_config", None) is not None:
        return None
    return cls.parameter_shapes(**config)


def module_from_config(cfg: dict[str, Any]) -> Module:
    """Rebuild a module (with fresh weights) from ``module_to_config``'s dict."""
    cls, config = _resolve_config(cfg)
    from_config: Callable | None = getattr(cls, "_from_config", None)
    if from_config is not None:
        return from_config(cfg)
    return cls(**config)
