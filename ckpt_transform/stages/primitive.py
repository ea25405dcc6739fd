"""The stage as one autograd primitive: what its VJP and JVP run, at every order.

Under reverse mode the stage runs passively and keeps only its inputs (`keeper`); its VJP restores
them and applies the adjoint method (`methods`). When that VJP is itself being differentiated (a
derivative of a derivative: its cotangent or the kept inputs are traced values of an outer
recording), it runs in a form the outer recording can differentiate: autograd through the body for
``"recompute"`` and ``"forward"`` (both are J^T g exactly), autograd through the user's function
(with the output recomputed from the inputs) for a user VJP. ``"fd"`` has no exact derivative and
refuses with an error naming the method. Forward mode to higher order goes through the body.
"""

from __future__ import annotations

import weakref
from typing import Any

from autograd.extend import defjvp_argnums, defvjp_argnums, primitive

from ckpt_transform.stages.arguments import _contains_box
from ckpt_transform.stages.methods import (
    JVP_METHODS,
    VJP_METHODS,
    _output_eps,
    jvp_differentiable,
    vjp_differentiable,
)
from ckpt_transform.stages.spec import _method_key, _StageSpec

__all__ = ["_run_stage"]


@primitive
def _run_stage(spec: _StageSpec, *args: Any, **kwargs: Any) -> Any:
    # Reached with plain values (a passive run): the stage is just its function.
    return spec.fun(*args, **kwargs)


def _stage_vjp_maker(argnums, ans, args, kwargs):
    """autograd's VJP maker: called once the forward value is known, under reverse mode.

    It keeps the stage's inputs (and the output, for a user VJP) and returns the VJP closure; the
    closure holds only a handle, so nothing else of the forward run stays alive. Inputs that are
    traced values of an outer recording (a derivative of a derivative) are kept in memory as they
    are: they are what links this stage's adjoint to that recording.
    """
    spec, stage_args = args[0], args[1:]
    diff = tuple(a - 1 for a in argnums)  # positions in stage_args (args[0] is the spec)
    boxed = _contains_box(stage_args)
    if boxed:
        _refuse_fd(spec)
    needs_ans = callable(spec.method)
    handle = spec.keeper.keep(stage_args, ans, needs_ans, boxed)
    out_eps = _output_eps(ans)  # a number: what "fd" needs to know of the output, not the output

    def stage_vjp(g):
        try:
            higher = boxed or _contains_box(g)
            if higher:
                _refuse_fd(spec)
            kept_args, kept_ans = handle.restore()
            if not spec.keep_inputs:
                release()  # freed as the reverse sweep passes; the locals live until we return
            if higher:
                return vjp_differentiable(spec, diff, g, kept_args, kwargs)
            method = VJP_METHODS[_method_key(spec)]
            return method(spec, diff, g, kept_ans, kept_args, kwargs, out_eps)
        except BaseException:
            handle.abort()  # no file or thread outlives a failed reverse sweep
            raise

    # If the reverse sweep never runs, the inputs go when the recorded computation is dropped.
    release = weakref.finalize(stage_vjp, handle.release)
    return stage_vjp


def _stage_jvp_maker(argnums, gs, ans, args, kwargs):
    """autograd's JVP maker: forward-mode derivative of the stage, for every adjoint method."""
    spec, stage_args = args[0], args[1:]
    diff = tuple(a - 1 for a in argnums)
    if _contains_box(stage_args) or _contains_box(gs):
        _refuse_fd(spec, forward=True)
        return jvp_differentiable(spec, diff, tuple(gs), stage_args, kwargs)
    return JVP_METHODS[_method_key(spec)](spec, diff, tuple(gs), ans, stage_args, kwargs)


defvjp_argnums(_run_stage, _stage_vjp_maker)
defjvp_argnums(_run_stage, _stage_jvp_maker)


def _refuse_fd(spec: _StageSpec, forward: bool = False) -> None:
    """Finite differences have no exact derivative: refuse a derivative of one, saying so."""
    if spec.method != "fd":
        return
    mode = "in forward mode " if forward else ""
    raise NotImplementedError(
        f"stage {spec.name} (adjoint='fd') is being differentiated {mode}to higher order (a "
        "derivative of a derivative): finite differences give no exact derivative to "
        "differentiate again. Use adjoint='recompute' or 'forward', or a vjp function written "
        "with autograd.numpy, for this stage."
    )
