"""The one rule that turns stored images into network inputs in [0, 1], for every reader of images.

Integer pixels are intensities on the 0..255 scale (x = pixel / 255); floating-point pixels are taken to be
already scaled to [0, 1] and are used as they are. Anything else is refused rather than guessed: a float
image stored as 0..255 and taken as [0, 1] saturates every input unit and gives a confident wrong class, and
one taken the other way comes out 255 times too dark.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import all_finite

PIXEL_RULE = "integer pixels 0..255 (scaled by 1/255) or floats already in [0, 1]"


def to_unit_range(images: np.ndarray, what: str) -> np.ndarray:
    """`images` as float32 in [0, 1] by PIXEL_RULE; a ValueError starting with `what` otherwise.

    Integer arrays must hold values in 0..255 and are divided by 255; float arrays must be finite and in
    [0, 1] and are only cast. Booleans, complex numbers and other kinds are refused. The message names the
    first offending value, where it is, the range found and how to convert.
    """
    kind = images.dtype.kind
    if kind not in "iuf":
        raise ValueError(f"{what}: expected {PIXEL_RULE}, got dtype {images.dtype}: convert it, e.g. "
                         f"a.astype(numpy.uint8) for 0..255 pixels")
    if kind == "f" and not all_finite(images):
        at = int(np.flatnonzero(~np.isfinite(images).ravel())[0])
        raise ValueError(f"{what}: expected {PIXEL_RULE}, got NaN or infinity "
                         f"({images.ravel()[at].item()!r} at index {_index(at, images.shape)})")
    hi_allowed = 255 if kind in "iu" else 1
    bad = (images < 0) | (images > hi_allowed)
    if bad.any():
        at = int(np.flatnonzero(bad.ravel())[0])
        hint = ("scale them to [0, 1] (for 0..255 pixels: a / 255) or store them as uint8" if kind == "f"
                else "rescale them to 0..255 and store them as uint8")
        raise ValueError(f"{what}: expected {PIXEL_RULE}, got {images.dtype} values in "
                         f"[{float(images.min()) + 0.0:g}, {float(images.max()) + 0.0:g}], the first outside being "
                         f"{images.ravel()[at].item()!r} at index {_index(at, images.shape)}: {hint}")
    if kind == "f":
        return images.astype(np.float32)
    return images.astype(np.float32) / np.float32(255.0)


def _index(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat, shape))
