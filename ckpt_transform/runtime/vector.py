"""Run-time checks and helpers of element loops that the transform vectorised.

`ckpt_transform.transform.vectorize` replaces a loop ``for i in range(lo, hi): x[i] = ...`` by
slice arithmetic under a guard, ``fits``: the slices compute exactly what the loop computes only
when every slice stays inside its array (a negative index would wrap around, a slice past the end
would be cut short), every indexed value is a numpy array of exactly the indexed rank and every
loop-invariant operand is a scalar (an array operand would broadcast along the slice). Otherwise
the loop runs as written.
"""

from __future__ import annotations

import operator
from typing import Any

import autograd.numpy as anp
import numpy as np

from ckpt_transform.backends.autograd import getval

__all__ = ["fits", "span", "where"]


def fits(spans: tuple[tuple[Any, Any], ...], *accesses: Any, scalars: tuple = ()) -> bool:
    """True when the slices of a vectorised element loop cover exactly the loop's elements.

    Parameters
    ----------
    spans
        ``(lo, hi)`` of each loop of the nest, outermost first.
    accesses
        Pairs ``array, axes``: per axis of the key, None for a loop-invariant index, else
        ``(dim, offset, ...)``, the loop of the nest and every offset the array is read or
        written at on that axis.
    scalars
        The loop-invariant operands of the element expressions.
    """
    bounds = []
    for lo, hi in spans:
        try:
            lo, hi = operator.index(lo), operator.index(hi)
        except TypeError:
            return False
        if lo >= hi:
            return False
        bounds.append((lo, hi))
    for array, axes in zip(accesses[::2], accesses[1::2]):
        raw = getval(array)
        if not isinstance(raw, np.ndarray) or raw.ndim != len(axes):
            return False
        for size, axis in zip(raw.shape, axes):
            if axis is None:
                continue
            lo, hi = bounds[axis[0]]
            try:
                offsets = [operator.index(o) for o in axis[1:]]
            except TypeError:
                return False
            if lo + min(offsets) < 0 or hi - 1 + max(offsets) >= size:
                return False
    return all(np.ndim(getval(s)) == 0 for s in scalars)


def where(condition: Any, then: Any, other: Any) -> Any:
    """``then`` where ``condition`` holds, else ``other`` (differentiable in both).

    The branches are broadcast to the common shape first, so that the gradient of a scalar
    branch (``z[i] = a`` under an ``if``) comes back summed to a scalar.
    """
    shape = np.broadcast_shapes(np.shape(condition), anp.shape(then), anp.shape(other))
    if anp.shape(then) != shape:  # adding zeros broadcasts with a gradient that sums back
        then = then + np.zeros(shape)
    if anp.shape(other) != shape:
        other = other + np.zeros(shape)
    return anp.where(condition, then, other)


def span(lo: int, hi: int, dim: int, ndims: int) -> np.ndarray:
    """The values ``lo, ..., hi - 1`` of loop ``dim`` of a nest of ``ndims`` loops, shaped to
    broadcast along that loop's axis (a loop index used as a value in a vectorised loop)."""
    shape = [1] * ndims
    shape[dim] = -1
    return np.arange(lo, hi).reshape(shape)
