"""Random loop bodies: @checkpoint_struct against autograd on the same plain loop.

Hypothesis writes functions of 1-3 state variables (floats or small arrays) and 1-2 parameters
whose loop body updates each state with a composition of numpy ufuncs, sometimes through a
temporary, an augmented assignment or a tuple assignment, for 0-40 steps. The source is
registered in linecache (as a notebook cell is), decorated with a random scheme, and its value
and gradient with respect to every argument compared with autograd's on the undecorated function;
the one program it may refuse instead is a temporary that aliases a state updated by ``+=``.
"""

from __future__ import annotations

import itertools
import linecache
import re

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt_transform import Periodic, Revolve, StoreAll
from ckpt_transform.api import checkpoint_struct
from ckpt_transform.errors import TransformError
from ckpt_transform.schemes.online_r2 import OnlineR2

RTOL = 1e-11
UNARY = ["np.sin", "np.cos", "np.tanh", "np.arctan", "np.exp(-0.5 * np.square({}))"]
BINARY = ["+", "-", "*"]
_counter = itertools.count()


@st.composite
def expressions(draw, names, depth):
    """A bounded-growth expression over ``names``: ufuncs, sums, products and constants."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        leaf = draw(st.sampled_from([*names, "const"]))
        if leaf == "const":
            return repr(draw(st.sampled_from([0.5, -1.25, 2.0, 0.1])))
        return leaf
    kind = draw(st.sampled_from(["unary", "binary"]))
    if kind == "unary":
        fn = draw(st.sampled_from(UNARY))
        inner = draw(expressions(names, depth - 1))
        return fn.format(inner) if "{}" in fn else f"{fn}({inner})"
    op = draw(st.sampled_from(BINARY))
    left = draw(expressions(names, depth - 1))
    right = draw(expressions(names, depth - 1))
    return f"({left} {op} {right})"


@st.composite
def loop_functions(draw):
    n_state = draw(st.integers(1, 3))
    n_param = draw(st.integers(1, 2))
    states = [f"s{k}" for k in range(n_state)]
    params = [f"p{k}" for k in range(n_param)]
    names = states + params
    body = []
    for s in states:
        # tanh keeps every state bounded, so 40 steps never overflow
        expr = draw(expressions(names + (["tmp"] if body and "tmp =" in body[0] else []), 3))
        form = draw(st.sampled_from(["assign", "augmented", "temporary"]))
        if form == "temporary" and not body:
            body.append(f"tmp = {draw(expressions(names, 2))}")
            body.append(f"{s} = 0.5 * {s} + 0.5 * np.tanh({expr} + tmp)")
        elif form == "augmented":
            body.append(f"{s} += 0.3 * np.tanh({expr}) - 0.3 * {s}")
        else:
            body.append(f"{s} = 0.5 * {s} + 0.5 * np.tanh({expr})")
    if n_state >= 2 and draw(st.booleans()):
        body.append(f"{states[0]}, {states[1]} = {states[1]}, {states[0]}")
    loss = " + ".join(f"np.sum({s} ** 2)" for s in states)
    lines = [
        f"def random_loop({', '.join(states + params)}, steps):",
        "    for i in range(steps):",
        *(f"        {line}" for line in body),
        f"    return {loss}",
    ]
    shapes = [draw(st.sampled_from([(), (3,)])) for _ in states]
    return "\n".join(lines) + "\n", n_state, n_param, shapes


def _aliased_then_augmented(source):
    """True when the body binds ``tmp`` to a state and later updates that state by ``+=``."""
    alias = re.search(r"^\s+tmp = (s\d)$", source, re.M)
    return alias is not None and re.search(rf"^\s+{alias.group(1)} \+= ", source, re.M) is not None


def compile_function(source):
    """Define the function from text registered in linecache, as a notebook cell is."""
    filename = f"<random loop {next(_counter)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"np": np, "__name__": "random_loops"}
    exec(compile(source, filename, "exec"), namespace)
    return namespace["random_loop"]


SCHEMES = [
    lambda: StoreAll(),
    lambda: Revolve(1),
    lambda: Revolve(3),
    lambda: Periodic(period=4),
    lambda: Periodic(3),
    lambda: OnlineR2(2),
    lambda: OnlineR2(5),
]


def _close(a, b, scale=None):
    """|a - b| <= RTOL * scale, the scale being |b| unless given."""
    a, b = onp.asarray(a, dtype=float), onp.asarray(b, dtype=float)
    if scale is None:
        scale = float(onp.max(onp.abs(b), initial=0.0))
    return float(onp.max(onp.abs(a - b), initial=0.0)) <= RTOL * max(scale, 1e-12)


def _gradients_close(got, want):
    """Relative to the whole gradient: a component that cancels to almost nothing (``s1 - s1``
    feeding a state) carries rounding of the size of the terms that cancelled, not of itself."""
    scale = max(float(onp.max(onp.abs(onp.asarray(w, dtype=float)), initial=0.0)) for w in want)
    return all(_close(g, w, scale) for g, w in zip(got, want))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=loop_functions(),
    steps=st.integers(0, 40),
    scheme_index=st.integers(0, len(SCHEMES) - 1),
    seed=st.integers(0, 2**16),
)
def test_random_bodies_match_autograd(case, steps, scheme_index, seed):
    source, n_state, n_param, shapes = case
    plain = compile_function(source)
    try:
        decorated = checkpoint_struct(SCHEMES[scheme_index]())(plain)
    except TransformError as err:
        # The one refusal this grammar can produce: `tmp = s` makes a second name for a state
        # that the body then updates by `+=` (in place, for an array), which the rewrite cannot
        # follow. Anything else refused is a failure.
        assert _aliased_then_augmented(source), (source, str(err))
        assert "in place" in str(err), str(err)
        return
    rng = onp.random.default_rng(seed)
    states = [rng.normal(size=shape) if shape else float(rng.normal()) for shape in shapes]
    params = [float(rng.uniform(0.2, 1.5)) for _ in range(n_param)]

    def args():  # fresh arrays each call: the plain loop's `+=` writes into its arguments
        return (*[onp.copy(s) if shape else s for s, shape in zip(states, shapes)], *params, steps)

    argnums = tuple(range(n_state + n_param))
    assert _close(decorated(*args()), plain(*args())), source
    got = grad(decorated, argnums)(*args())
    want = grad(plain, argnums)(*args())
    assert _gradients_close(got, want), source
    assert decorated.stats.steps == steps


def test_the_generator_covers_every_form():
    """The strategy above does produce temporaries, augmented and tuple assignments."""
    seen = set()

    @settings(max_examples=200, deadline=None)
    @given(case=loop_functions())
    def collect(case):
        source = case[0]
        seen.update(k for k in ("tmp =", "+=", ", s1 = s1, s0") if k in source)

    collect()
    assert seen == {"tmp =", "+=", ", s1 = s1, s0"}


@pytest.mark.parametrize("make_scheme", SCHEMES)
def test_a_fixed_random_style_body(make_scheme):
    source = (
        "def random_loop(s0, s1, p0, steps):\n"
        "    for i in range(steps):\n"
        "        tmp = np.sin(s1 * p0)\n"
        "        s0 += 0.3 * np.tanh(s0 * tmp) - 0.3 * s0\n"
        "        s1 = 0.5 * s1 + 0.5 * np.tanh(np.cos(s0) - p0)\n"
        "        s0, s1 = s1, s0\n"
        "    return np.sum(s0 ** 2) + np.sum(s1 ** 2)\n"
    )
    plain = compile_function(source)
    f = checkpoint_struct(make_scheme())(plain)

    def args():
        return (onp.array([0.3, -0.7, 1.1]), 0.4, 0.9, 17)

    assert _close(f(*args()), plain(*args()))
    assert _gradients_close(grad(f, (0, 1, 2))(*args()), grad(plain, (0, 1, 2))(*args()))
