"""A stage's arguments as autograd sees them: traced values inside containers made visible.

autograd sees only top-level boxes. A stage's positional arguments (and its output) may be plain
tuples/lists/dicts or dataclasses holding traced values, as happens when stages nest in stages and
in checkpointed loops; these are rebuilt with autograd's container constructors so that they are
traced as a whole.
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any

from autograd import builtins as abuiltins
from autograd.tracer import isbox

from ckpt_transform.backends.autograd import dataclass_replace
from ckpt_transform.stages.spec import _StageSpec

__all__ = ["_contains_box", "_prepare_args", "_traceable"]


def _prepare_args(spec: _StageSpec, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """Make differentiated values inside plain containers visible to autograd.

    autograd sees only top-level boxes: a plain tuple/list/dict or dataclass holding boxes is
    rebuilt with autograd's container constructors (and `dataclass_replace`), which box it as a
    whole. Any other object holding boxes would be differentiated through silently wrong, so it
    is an error.
    """
    out = list(args)
    for i, arg in enumerate(args):
        if isbox(arg) or not _contains_box(arg):
            continue
        if type(arg) in (tuple, list, dict) or _is_dataclass(arg):
            out[i] = _rebox(arg)
        else:
            raise TypeError(
                f"stage {spec.name}: positional argument {i} is a {type(arg).__name__} holding "
                "values being differentiated; a stage differentiates arrays, floats, and plain "
                "tuples/lists/dicts or dataclasses of them. Pass its arrays as separate arguments."
            )
    return tuple(out)


def _is_dataclass(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _rebox(value: Any) -> Any:
    """A plain container holding boxes, rebuilt so that autograd boxes it as a whole."""
    if not _contains_box(value) or isbox(value):
        return value
    if type(value) is tuple:
        return abuiltins.tuple([_rebox(v) for v in value])
    if type(value) is list:
        return abuiltins.list([_rebox(v) for v in value])
    if type(value) is dict:
        return abuiltins.dict({k: _rebox(v) for k, v in value.items()})
    if _is_dataclass(value):
        fields = (f.name for f in dataclasses.fields(value))
        return dataclass_replace(value, **{n: _rebox(getattr(value, n)) for n in fields})
    return value


def _contains_box(value: Any) -> bool:
    if isbox(value):
        return True
    if isinstance(value, (tuple, list)):
        return any(_contains_box(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_box(v) for v in value.values())
    if _is_dataclass(value):
        return any(_contains_box(getattr(value, f.name)) for f in dataclasses.fields(value))
    # Any other object: look at its attributes, one level (enough to catch a plain struct).
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict) and not (
        callable(value) or isinstance(value, (type, types.ModuleType))
    ):
        return any(isbox(v) for v in attributes.values())
    return False


def _traceable(out: Any) -> Any:
    """A stage's output as autograd can trace it: plain containers of boxes become boxes."""
    if type(out) in (tuple, list, dict) or _is_dataclass(out):
        return _rebox(out)
    return out
