"""Generated element loops: vectorised = scalar = plain autograd, value and gradient.

Hypothesis writes a time loop whose body holds one element loop over ``range(lo, n - hi)``:
scalar temporaries, element updates ``z[i + c] = ...`` and ``if`` statements, reading ``x``,
``y`` and ``z`` at offsets of the loop index, and the loop index itself as a value. Some loops
are independent (``z`` read only where it is written), some carry a dependence (``z`` read at
another offset), some read off the front of an array (a negative index, which wraps around: the
run-time guard must send them to the scalar loop). Each program runs three ways: decorated with
``vectorize=True``, decorated with ``vectorize=False``, and undecorated with every element
update written as a functional update (the oracle: plain autograd through the plain loop).
Values and gradients agree to 1e-12.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import tempfile
from pathlib import Path

import numpy as onp
from autograd import grad
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckpt_transform.runtime import support

_DIR = Path(tempfile.mkdtemp(prefix="ckpt_vectorize_"))
_COUNTER = itertools.count()

HEADER = """\
import autograd.numpy as np
from ckpt_transform import checkpoint_struct, Revolve


def _fset(z, k, v):
    k = k % len(z)
    return np.concatenate([z[:k], np.reshape(v, (1,)), z[k + 1 :]])

"""


@st.composite
def programs(draw):
    lo = draw(st.integers(0, 2))
    hi = draw(st.integers(0, 2))
    c = draw(st.integers(-lo, hi))  # the written offset: z[i + c] stays inside z
    dependent = draw(st.booleans())
    temps: list[str] = []

    def index(name: str) -> str:
        if name == "z" and not dependent:
            d = c
        else:
            d = draw(st.integers(-lo - 1, hi))  # -lo - 1 may read z[-1]: wraps around
        return f"i + {d}" if d > 0 else (f"i - {-d}" if d < 0 else "i")

    def expression(depth: int, in_if: bool) -> str:
        choices = ["read", "read", "const", "param", "index"] + (["temp"] if temps else [])
        if depth > 0:
            choices += ["binop", "binop"] + ([] if in_if else ["call"])
        kind = draw(st.sampled_from(choices))
        if kind == "read":
            name = draw(st.sampled_from(["x", "y", "z"]))
            return f"{name}[{index(name)}]"
        if kind == "const":
            return draw(st.sampled_from(["0.5", "2", "1.25"]))
        if kind == "param":
            return "a"
        if kind == "index":
            return "(i * 0.1)"
        if kind == "temp":
            return draw(st.sampled_from(temps))
        if kind == "call":
            return f"np.{draw(st.sampled_from(['sin', 'tanh', 'exp']))}({expression(0, in_if)})"
        op = draw(st.sampled_from(["+", "-", "*"]))
        return f"({expression(depth - 1, in_if)} {op} {expression(depth - 1, in_if)})"

    target = f"z[{'i' if c == 0 else (f'i + {c}' if c > 0 else f'i - {-c}')}]"
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["temp", "write", "write", "if"]))
        if kind == "temp":
            name = f"tmp{len(temps)}"
            lines.append(f"{name} = {expression(2, False)}")
            temps.append(name)
        elif kind == "write":
            lines.append(f"{target} = {expression(2, False)}")
        else:
            cond = f"{draw(st.sampled_from(['x', 'y']))}[i] > 0.4"
            lines.append(f"if {cond}:")
            lines.append(f"    {target} = {expression(1, True)}")
            if draw(st.booleans()):
                lines.append("else:")
                lines.append(f"    {target} = {expression(1, True)}")
    if not any(line.lstrip().startswith("z[") for line in lines):
        lines.append(f"{target} = {expression(1, False)}")
    return lo, hi, lines, dependent


def _source(lo: int, hi: int, lines: list[str], name: str, decorator: str) -> str:
    stop = f"n - {hi}" if hi else "n"
    body = "\n".join(" " * 12 + line for line in lines)
    return f"""
{decorator}
def {name}(x, y, a, steps):
    n = len(x)
    for t in range(steps):
        z = np.array(x)
        for i in range({lo}, {stop}):
{body}
        x = np.array(z) * 0.9 + 0.1 * y
    return np.sum(x * x) + a * np.sum(np.sin(x))
"""


def _plain(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("z["):
            indent = line[: len(line) - len(stripped)]
            key, value = stripped[2:].split("] = ", 1)
            line = f"{indent}z = _fset(z, {key}, {value})"
        out.append(line)
    return out


def _load(text: str) -> object:
    path = _DIR / f"generated_{next(_COUNTER)}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _guard_results():
    """Record what the vectorised loops' run-time guard decided."""
    results: list[bool] = []
    original = support.fits

    def spy(*args, **kwargs):
        result = original(*args, **kwargs)
        results.append(result)
        return result

    support.fits = spy
    try:
        yield results
    finally:
        support.fits = original


def _close(a, b) -> bool:
    return onp.allclose(a, b, rtol=1e-12, atol=1e-12)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(programs(), st.integers(1, 4), st.integers(6, 9))
def test_vectorised_equals_scalar_equals_plain_autograd(program, steps, n):
    lo, hi, lines, dependent = program
    text = HEADER
    text += _source(lo, hi, lines, "vec", "@checkpoint_struct(Revolve(2))")
    text += _source(lo, hi, lines, "scalar", "@checkpoint_struct(Revolve(2), vectorize=False)")
    text += _source(lo, hi, _plain(lines), "plain", "")
    module = _load(text)
    rng = onp.random.default_rng(n * 10 + steps)
    x, y, a = rng.uniform(0, 1, n), rng.uniform(0, 1, n), 0.3

    assert "vectorised from" not in module.scalar.generated_source
    if not dependent:
        assert "vectorised from" in module.vec.generated_source, module.vec.generated_source
    with _guard_results() as decided:
        outputs = {name: getattr(module, name)(x, y, a, steps) for name in ("vec", "scalar")}
        grads = {
            name: [grad(getattr(module, name), k)(x, y, a, steps) for k in range(3)]
            for name in ("vec", "scalar")
        }
    reads_wrapped = any(f"[i - {lo + 1}]" in line for line in lines)
    if not dependent and not reads_wrapped:
        assert decided and all(decided)  # the slices ran
    if reads_wrapped and "vectorised from" in module.vec.generated_source:
        assert not any(decided)  # z[-1] wraps around: the loop as written ran
    expected = module.plain(x, y, a, steps)
    expected_grads = [grad(module.plain, k)(x, y, a, steps) for k in range(3)]
    for name in ("vec", "scalar"):
        assert _close(outputs[name], expected), (name, text)
        for got, want in zip(grads[name], expected_grads):
            assert _close(got, want), (name, text)
