"""Each adjoint method of `checkpoint_stage` against plain autograd on five stage functions.

The reference is autograd applied to the undecorated computation. Each case also carries a
hand-derived VJP (used as the "analytic" method), so the user-VJP path is checked against the
same reference; each stage sits between other operations so its inputs and output cotangent are
intermediate values, not the arguments of `grad`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.linalg
from autograd import grad, make_jvp, make_vjp, value_and_grad
from autograd.builtins import tuple as atuple

from ckpt_transform.stages import checkpoint_stage

RNG = np.random.default_rng(20260)
A = RNG.standard_normal((5, 5)) / 3


# --- five stage functions and their hand-derived VJPs -------------------------------------------


def scalar_fun(x):
    return anp.sin(x) * anp.exp(x)


def scalar_vjp(g, ans, x):
    return (g * (anp.cos(x) + anp.sin(x)) * anp.exp(x),)


def vector_fun(x):
    return anp.tanh(A @ x) + x**2


def vector_vjp(g, ans, x):
    t = anp.tanh(A @ x)
    return (A.T @ (g * (1 - t**2)) + 2 * x * g,)


def matrix_fun(m):
    return m @ m.T + anp.sin(m)


def matrix_vjp(g, ans, m):
    # d(M M^T) = dM M^T + M dM^T, so <G, d(M M^T)> = <(G + G^T) M, dM>.
    return ((g + g.T) @ m + g * anp.cos(m),)


def several_fun(x, w, b, k, s):
    # k is an int: it passes through, not differentiated.
    return anp.tanh(w @ x + b) * s + k * x


def several_vjp(g, ans, x, w, b, k, s):
    t = anp.tanh(w @ x + b)
    dz = g * s * (1 - t**2)
    return (w.T @ dz + k * g, anp.outer(dz, x), dz, None, anp.sum(g * t))


def tuple_fun(x, y):
    return x * y, anp.sin(x) + y**2, anp.sum(x)


def tuple_vjp(g, ans, x, y):
    g0, g1, g2 = g
    return (g0 * y + g1 * anp.cos(x) + g2, g0 * x + 2 * y * g1)


@dataclasses.dataclass
class Case:
    """A stage function, its VJP, example inputs, and which inputs are differentiated."""

    name: str
    fun: Callable[..., Any]
    vjp: Callable[..., Any]
    args: tuple[Any, ...]
    diff: tuple[int, ...]


CASES = [
    Case("scalar", scalar_fun, scalar_vjp, (0.7,), (0,)),
    Case("vector", vector_fun, vector_vjp, (RNG.standard_normal(5),), (0,)),
    Case("matrix", matrix_fun, matrix_vjp, (RNG.standard_normal((3, 3)),), (0,)),
    Case(
        "several",
        several_fun,
        several_vjp,
        (RNG.standard_normal(4), RNG.standard_normal((4, 4)) / 2, RNG.standard_normal(4), 3, 1.3),
        (0, 1, 2, 4),
    ),
    Case("tuple", tuple_fun, tuple_vjp, (RNG.standard_normal(3), RNG.standard_normal(3)), (0, 1)),
]
METHODS = ["recompute", "forward", "fd", "analytic"]
RTOL = {"recompute": 1e-12, "forward": 1e-12, "analytic": 1e-12, "fd": 1e-6}


def traced(fun: Callable[..., Any]) -> Callable[..., Any]:
    """The plain function as autograd traces it: a returned tuple must be autograd's tuple."""

    def wrapped(*args):
        out = fun(*args)
        return atuple(out) if isinstance(out, tuple) else out

    return wrapped


def adjoint_of(case: Case, method: str):
    return case.vjp if method == "analytic" else method


def weights_like(value: Any, seed: int) -> Any:
    rng = np.random.default_rng(seed)
    if isinstance(value, tuple):
        return tuple(weights_like(v, seed + i + 1) for i, v in enumerate(value))
    return rng.standard_normal(np.shape(value))


def embed(stage: Callable[..., Any], case: Case) -> Callable[..., Any]:
    """A scalar loss with the stage in the middle: inputs transformed, outputs weighted."""
    out_weights = weights_like(case.fun(*case.args), 7)

    def loss(*args):
        inner = [0.9 * a + 0.05 * anp.sin(a) if i in case.diff else a for i, a in enumerate(args)]
        out = stage(*inner)
        if not isinstance(out_weights, tuple):
            return anp.sum(out_weights * anp.cos(out))
        # a traced tuple output is a box: index it rather than unpack it as a Python tuple
        return sum(anp.sum(w * anp.cos(out[i])) for i, w in enumerate(out_weights))

    return loss


def assert_close(actual: Any, expected: Any, rtol: float) -> None:
    if isinstance(expected, (tuple, list)):
        assert type(actual) is type(expected) and len(actual) == len(expected)
        for a, e in zip(actual, expected):
            assert_close(a, e, rtol)
        return
    expected = np.asarray(expected)
    scale = max(float(np.max(np.abs(expected))), 1e-300)
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradient_matches_plain_autograd(case: Case, method: str) -> None:
    loss_plain = embed(case.fun, case)
    loss_stage = embed(checkpoint_stage(adjoint_of(case, method))(case.fun), case)
    value, gradient = value_and_grad(loss_stage, case.diff)(*case.args)
    value_ref, gradient_ref = value_and_grad(loss_plain, case.diff)(*case.args)
    assert value == value_ref  # the forward pass runs the same operations passively
    assert_close(gradient, gradient_ref, RTOL[method])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_vjp_of_stage_itself_matches_plain(case: Case, method: str) -> None:
    """The stage's output is the traced output itself: the cotangent arrives from the user."""
    stage = checkpoint_stage(adjoint_of(case, method))(case.fun)
    g = weights_like(case.fun(*case.args), 11)
    for argnum in case.diff:
        pull, ans = make_vjp(stage, argnum)(*case.args)
        pull_ref, ans_ref = make_vjp(traced(case.fun), argnum)(*case.args)
        assert_close(ans, ans_ref, 0.0)
        assert_close(pull(g), pull_ref(g), RTOL[method])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_forward_mode_through_stage(case: Case, method: str) -> None:
    """make_jvp through a stage (needed when a stage sits in a stage with adjoint='forward')."""
    stage = checkpoint_stage(adjoint_of(case, method))(case.fun)
    for argnum in case.diff:
        tangent = weights_like(case.args[argnum], 13)
        if isinstance(case.args[argnum], float):
            tangent = float(tangent)
        ans, dy = make_jvp(stage, argnum)(*case.args)(tangent)
        ans_ref, dy_ref = make_jvp(traced(case.fun), argnum)(*case.args)(tangent)
        assert_close(ans, ans_ref, 0.0)
        assert_close(dy, dy_ref, RTOL[method])


@pytest.mark.parametrize("method", METHODS)
def test_untraced_call_just_calls_the_function(method: str) -> None:
    calls = []

    def body(x, n):
        calls.append(n)
        return (x * n, "extra", n)

    stage = checkpoint_stage(
        adjoint=(lambda g, ans, x, n: (g[0] * n, None)) if method == "analytic" else method
    )(body)
    x = np.arange(3.0)
    out = stage(x, 2)
    assert calls == [2]
    np.testing.assert_array_equal(out[0], x * 2)
    assert out[1:] == ("extra", 2)
    assert stage.original is body
    assert stage.__name__ == "body"


@pytest.mark.parametrize(
    ("method", "runs"),
    [("recompute", 2), ("forward", 1 + 3), ("fd", 1 + 2 * 3), ("analytic", 1)],
)
def test_number_of_evaluations(method: str, runs: int) -> None:
    """Forward: one passive run; reverse: recompute once, one JVP per input, two runs per input."""
    calls = []

    def body(x):
        calls.append(1)
        return anp.sin(x) * 2

    stage = checkpoint_stage(
        (lambda g, ans, x: (2 * g * anp.cos(x),)) if method == "analytic" else method
    )(body)
    grad(lambda x: anp.sum(stage(x)))(np.array([0.1, 0.2, 0.3]))
    assert len(calls) == runs


@pytest.mark.parametrize("method", METHODS)
def test_container_arguments(method: str) -> None:
    """Tuples, lists and dicts of arrays are differentiated as a whole, even when built plainly."""

    def body(params, xs):
        return params["a"] * anp.sin(xs[0]) + params["b"] ** 2 * xs[1]

    def body_vjp(g, ans, params, xs):
        return (
            {"a": anp.sum(g * anp.sin(xs[0])), "b": g * xs[1] * 2 * params["b"]},
            [g * params["a"] * anp.cos(xs[0]), g * params["b"] ** 2],
        )

    stage = checkpoint_stage(body_vjp if method == "analytic" else method)(body)

    def loss(f, a, b, x0, x1):
        # a plain dict and a plain list holding values being differentiated
        return anp.sum(anp.tanh(f({"a": a, "b": b * 1.1}, [x0, x1 * 0.5])))

    args = (0.4, RNG.standard_normal(2), RNG.standard_normal(2), RNG.standard_normal(2))
    argnums = (0, 1, 2, 3)
    expected = grad(lambda *a: loss(body, *a), argnums)(*args)
    actual = grad(lambda *a: loss(stage, *a), argnums)(*args)
    assert_close(actual, expected, RTOL[method])


@pytest.mark.parametrize("method", ["recompute", "forward", "fd"])
def test_float32_keeps_dtype_and_fd_scales_its_step(method: str) -> None:
    x = np.linspace(0.1, 1.0, 4, dtype=np.float32)
    stage = checkpoint_stage(method)(lambda v: anp.sin(v) * v)
    cot = grad(lambda v: anp.sum(stage(v)))(x)
    assert cot.dtype == np.float32
    exact = np.cos(x.astype(np.float64)) * x + np.sin(x.astype(np.float64))
    # float32: rounding ~ 6e-8; fd with h = eps32**(1/3) ~ 5e-3: eps**(2/3) ~ 2.5e-5 relative.
    np.testing.assert_allclose(cot, exact, rtol=1e-6 if method != "fd" else 1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_output_independent_of_differentiated_input(method: str) -> None:
    """A zero cotangent, and no warning (warnings are errors in this suite)."""
    stage = checkpoint_stage((lambda g, ans, x, y: (None, g)) if method == "analytic" else method)(
        lambda x, y: y * 1.0
    )
    x = np.array([1.0, 2.0])
    gx, gy = grad(lambda x, y: anp.sum(stage(x, y) ** 2), (0, 1))(x, 3.0)
    np.testing.assert_array_equal(gx, np.zeros(2))
    assert abs(gy - 6.0) < 1e-6  # d(y^2)/dy at y = 3


def test_fd_step_is_used() -> None:
    """A large explicit step gives the central difference of that step, not the derivative."""
    h = 0.5
    stage = checkpoint_stage("fd", fd_step=h)(anp.exp)
    x = 0.3
    expected = (np.exp(x + h) - np.exp(x - h)) / (2 * h)
    assert abs(grad(stage)(x) - expected) < 1e-12
    assert abs(grad(stage)(x) - np.exp(x)) > 1e-3


def test_fd_step_scales_with_input() -> None:
    """Default step eps**(1/3) * max(1, |x|): about eps**(2/3) relative to the scale, any |x|."""
    stage = checkpoint_stage("fd")(lambda x: x**3)
    for x in (1e-3, 1.0, 1e4):
        # truncation h^2 f'''(x)/6 = h^2, rounding ~ eps |f| / h: both ~ 1e-11 of max(1, f')
        assert abs(grad(stage)(x) - 3 * x**2) <= 1e-9 * max(1.0, 3 * x**2)


@pytest.mark.parametrize("method", ["recompute", "forward", "fd", "analytic"])
def test_int_and_object_arguments_pass_through(method: str) -> None:
    def body(x, n, label, scale=1.0):
        assert isinstance(n, int) and label == "tag"
        return x**n * scale

    def body_vjp(g, ans, x, n, label, scale=1.0):
        return (g * n * x ** (n - 1) * scale, None, None)

    stage = checkpoint_stage(body_vjp if method == "analytic" else method)(body)
    x = np.array([0.5, 1.5])
    gx = grad(lambda x: anp.sum(stage(x, 3, "tag", scale=2.0)))(x)
    np.testing.assert_allclose(gx, 6 * x**2, rtol=RTOL[method])


def test_higher_order_with_recompute() -> None:
    stage = checkpoint_stage("recompute")(scalar_fun)

    def f(x):
        return stage(stage(x) * 0.5)

    def f_plain(x):
        return scalar_fun(scalar_fun(x) * 0.5)

    assert abs(grad(grad(f))(0.3) - grad(grad(f_plain))(0.3)) < 1e-12


@dataclasses.dataclass
class Rod:
    """A struct state, as `checkpoint_struct` users write them: arrays, a coefficient, metadata."""

    T: Any
    k: float
    steps: int
    label: str


def laplacian(t):
    return anp.roll(t, 1) - 2 * t + anp.roll(t, -1)


def rod_step(rod, dt):
    # builds a new instance from traced values; the stage boxes it for autograd
    return Rod(
        T=rod.T + dt * rod.k * laplacian(rod.T), k=rod.k, steps=rod.steps + 1, label=rod.label
    )


def rod_step_vjp(g, ans, rod, dt):
    # T' = T + dt k L T with L symmetric (periodic): dT = g + dt k L g, dk = dt <g, L T>.
    lt = laplacian(rod.T)
    d_rod = Rod(
        T=g.T + dt * rod.k * laplacian(g.T),
        k=g.k + dt * anp.sum(g.T * lt),
        steps=rod.steps,
        label=rod.label,
    )
    return d_rod, rod.k * anp.sum(g.T * lt)


@pytest.mark.parametrize("method", METHODS)
def test_dataclass_in_and_out(method: str) -> None:
    stage = checkpoint_stage(rod_step_vjp if method == "analytic" else method)(rod_step)

    def loss(step, rod, dt):
        for _ in range(3):
            rod = step(rod, dt)
        assert rod.steps == 3 and rod.label == "rod"
        return anp.sum(anp.sin(rod.T)) * rod.k

    rod = Rod(T=RNG.standard_normal(6), k=0.7, steps=0, label="rod")
    d_rod, d_dt = grad(lambda r, dt: loss(stage, r, dt), (0, 1))(rod, 0.1)
    e_rod, e_dt = grad(lambda r, dt: loss(rod_step, r, dt), (0, 1))(rod, 0.1)
    assert type(d_rod) is Rod
    assert_close(d_rod.T, e_rod.T, RTOL[method])
    assert_close(d_rod.k, e_rod.k, RTOL[method])
    assert_close(d_dt, e_dt, RTOL[method])


# --- an external library's routine with its adjoint ---------------------------------------------


def lu_solve_stage(a, b):
    """x = A^{-1} b by scipy's LU: autograd cannot trace this, only the user's VJP or fd can."""
    return scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), b)


def lu_solve_vjp(g, ans, a, b):
    # x = A^{-1} b: with lambda = A^{-T} g, db = lambda and dA = -lambda x^T.
    lam = scipy.linalg.lu_solve(scipy.linalg.lu_factor(a), g, trans=1)
    return -np.outer(lam, ans), lam


@pytest.mark.parametrize("method", ["fd", "analytic"])
def test_external_library_stage(method: str) -> None:
    stage = checkpoint_stage(lu_solve_vjp if method == "analytic" else method)(lu_solve_stage)
    a = np.eye(4) * 3 + RNG.standard_normal((4, 4)) * 0.3
    b = RNG.standard_normal(4)

    def loss(solve, a, b):
        return anp.sum(anp.sin(solve(a * 1.1, anp.tanh(b))))

    got = grad(lambda a, b: loss(stage, a, b), (0, 1))(a, b)
    want = grad(lambda a, b: loss(anp.linalg.solve, a, b), (0, 1))(a, b)
    assert_close(got, want, RTOL[method])


def test_fd_mixed_precision_steps_each_element_on_its_own_scale() -> None:
    """A float32 array next to a float64 float: steps on the scale of float32, the coarser of
    the inputs' and of the output's (float32 too) precision."""
    stage = checkpoint_stage("fd")(lambda x, c: anp.sin(x) * c)
    x = np.linspace(0.1, 1.0, 4, dtype=np.float32)
    gx, gc = grad(lambda x, c: anp.sum(stage(x, c)), (0, 1))(x, 1.5)
    x64 = x.astype(np.float64)
    # With float64's step (6e-6) on float32 values (or a float32 output) the rounding error would
    # be ~eps32/h ~ 2%; float32's own step gives ~eps32**(2/3) ~ 2.5e-5.
    np.testing.assert_allclose(gx, 1.5 * np.cos(x64), rtol=1e-4)
    assert gc == pytest.approx(np.sum(np.sin(x64)), rel=1e-4)
