"""Bad input to `checkpoint_stage` gives a clear error: what was given, what is allowed."""

from __future__ import annotations

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad, jacobian, make_jvp, make_vjp

from ckpt_transform.errors import CheckpointError
from ckpt_transform.stages import checkpoint_stage


def test_unknown_method_names_the_allowed_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"adjoint must be 'recompute', 'forward', 'fd', or a function vjp\(g, ans, \*args\); "
        "got 'reverse'",
    ):
        checkpoint_stage("reverse")


def test_adjoint_of_wrong_type() -> None:
    with pytest.raises(TypeError):
        checkpoint_stage(3)


@pytest.mark.parametrize("step", [0.0, -1e-3, float("nan"), float("inf")])
def test_fd_step_must_be_positive(step: float) -> None:
    with pytest.raises(ValueError, match=r"fd_step must be a finite number > 0; got"):
        checkpoint_stage("fd", fd_step=step)


def test_fd_step_accepts_an_int() -> None:
    stage = checkpoint_stage("fd", fd_step=1)(lambda x: x * 2.0)
    assert grad(stage)(1.0) == pytest.approx(2.0)


def test_fd_step_only_with_fd() -> None:
    with pytest.raises(ValueError, match="fd_step is the finite-difference step of adjoint='fd'"):
        checkpoint_stage("recompute", fd_step=1e-4)


def test_decorator_without_parentheses_is_explained() -> None:
    def body(x):
        return x

    # Without parentheses, body is taken as the adjoint (a vjp function) and the decorator it
    # returns is then applied to the array: that must say what happened.
    decorator = checkpoint_stage(body)
    with pytest.raises(TypeError, match=r"with parentheses"):
        decorator(np.ones(3))


def test_keyword_argument_being_differentiated() -> None:
    stage = checkpoint_stage()(lambda x, *, scale: x * scale)
    with pytest.raises(TypeError, match="Pass it positionally"):
        grad(lambda s: anp.sum(stage(np.ones(2), scale=s)))(2.0)


def test_object_holding_boxes() -> None:
    class State:  # neither a plain container nor a dataclass: autograd cannot see inside
        def __init__(self, x):
            self.x = x

    stage = checkpoint_stage()(lambda s, y: s.x * y)
    with pytest.raises(TypeError, match="positional argument 0 is a State holding values being"):
        grad(lambda x: anp.sum(stage(State(x), 2.0)))(np.ones(2))


def _two_vjp_cases():
    def too_few(g, ans, x, y):
        return (g,)

    def not_a_tuple(g, ans, x, y):
        return g

    def wrong_shape(g, ans, x, y):
        return (g, np.ones(5))

    def wrong_container(g, ans, x, y):
        return (g, [g, g])

    return [
        (too_few, ValueError, "returned 1 cotangents for 2 positional arguments"),
        (not_a_tuple, TypeError, "returned a ndarray; it must return a tuple with one"),
        (wrong_shape, ValueError, r"argument 1 .* shape \(5,\) where the argument has shape \(3,"),
        (wrong_container, ValueError, r"structured as \[\*, \*\], the argument as \(\*, \*\)"),
    ]


@pytest.mark.parametrize(("vjp", "error", "message"), _two_vjp_cases())
def test_user_vjp_return_is_validated(vjp, error, message) -> None:
    def body(x, y):
        y0 = y[0] if isinstance(y, tuple) else y
        return x * anp.sum(y0)

    stage = checkpoint_stage(vjp)(body)
    x = np.ones(3)
    y = (np.ones(3), np.ones(3)) if "container" in vjp.__name__ else np.ones(3)
    with pytest.raises(error, match=message):
        grad(lambda x, y: anp.sum(stage(x, y)), (0, 1))(x, y)


def test_none_cotangent_means_zero() -> None:
    stage = checkpoint_stage(lambda g, ans, x, y: (g * y, None))(lambda x, y: x * y)
    gx, gy = grad(lambda x, y: anp.sum(stage(x, y)), (0, 1))(np.ones(2), np.full(2, 3.0))
    np.testing.assert_array_equal(gx, [3.0, 3.0])
    np.testing.assert_array_equal(gy, [0.0, 0.0])


def test_second_pullback_needs_keep_inputs() -> None:
    stage = checkpoint_stage()(anp.sin)
    pull, _ = make_vjp(lambda x: stage(x) * 2)(np.ones(2))
    first = pull(np.ones(2))
    np.testing.assert_allclose(first, 2 * np.cos(1.0) * np.ones(2))
    with pytest.raises(CheckpointError, match="keep_inputs=True"):
        pull(np.ones(2))


def test_keep_inputs_allows_jacobian() -> None:
    stage = checkpoint_stage(keep_inputs=True)(anp.sin)
    x = np.array([0.1, 0.2, 0.3])
    np.testing.assert_allclose(jacobian(stage)(x), np.diag(np.cos(x)), rtol=1e-15)


def test_higher_order_refused_with_finite_differences() -> None:
    stage = checkpoint_stage("fd")(anp.sin)
    message = r"stage sin \(adjoint='fd'\) is being differentiated to higher order"
    with pytest.raises(NotImplementedError, match=message):
        grad(grad(stage))(0.3)
    with pytest.raises(NotImplementedError, match="in forward mode to higher order"):
        grad(lambda x: make_jvp(stage)(x)(1.0)[1])(0.3)


def test_fd_on_a_type_it_cannot_flatten() -> None:
    stage = checkpoint_stage("fd")(lambda x: x * 2.0)
    with pytest.raises(TypeError, match="complex; adjoint='fd' handles real values only"):
        grad(lambda x: anp.real(anp.sum(stage(x * (1 + 1j)))))(np.ones(2))
