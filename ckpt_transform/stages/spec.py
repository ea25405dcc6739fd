"""What a stage is: its function, its adjoint method and where its inputs wait."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ckpt_transform.stages.keeper import _InputKeeper

__all__ = ["_StageSpec"]

_METHODS = ("recompute", "forward", "fd")
_ALLOWED = "'recompute', 'forward', 'fd', or a function vjp(g, ans, *args)"


def _name_of(fun: object) -> str:
    return getattr(fun, "__name__", None) or repr(fun)


def _describe_method(method: object) -> str:
    if isinstance(method, str):
        return repr(method)
    return f"the function {_name_of(method)}"


@dataclasses.dataclass(frozen=True, eq=False)
class _StageSpec:
    """What a stage is: its function, adjoint method and where its inputs wait."""

    fun: Callable[..., Any]
    method: str | Callable[..., Any]
    keeper: _InputKeeper
    fd_step: float | None
    keep_inputs: bool

    @property
    def name(self) -> str:
        return _name_of(self.fun)


def _method_key(spec: _StageSpec) -> str:
    return spec.method if isinstance(spec.method, str) else "user"
