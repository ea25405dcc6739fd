"""XAD's example: ``x = sin(x)`` repeated n times, a stage every 4 iterations.

Value and derivative against the analytic ones, ``x_n`` and ``prod_k cos(x_k)``, computed here in
plain floating point, independently of autograd.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import autograd.numpy as anp
import pytest
from autograd import value_and_grad

from ckpt_transform.stages import checkpoint_stage

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "repeated_sin.py"
RTOL = {"recompute": 1e-12, "forward": 1e-12, "analytic": 1e-12, "fd": 1e-6}


def analytic(n: int, x: float) -> tuple[float, float]:
    derivative = 1.0
    for _ in range(n):
        derivative *= math.cos(x)
        x = math.sin(x)
    return x, derivative


def sin_stage(n, x):
    for _ in range(n):
        x = anp.sin(x)
    return x


def sin_stage_vjp(g, ans, n, x):
    d = 1.0
    for _ in range(n):
        d = d * math.cos(x)
        x = math.sin(x)
    return None, g * d


@pytest.mark.parametrize("method", ["recompute", "forward", "fd", "analytic"])
@pytest.mark.parametrize(("n", "x"), [(12, 1.0), (10, 0.5), (101, 2.0), (3, -0.7)])
def test_repeated_sin_matches_analytic(method: str, n: int, x: float) -> None:
    stage = checkpoint_stage(sin_stage_vjp if method == "analytic" else method)(sin_stage)

    def repeated_sin(x):
        for i in range(0, n, 4):
            x = stage(min(4, n - i), x)  # the last stage is shorter when 4 does not divide n
        return x

    value, derivative = value_and_grad(repeated_sin)(x)
    value_exact, derivative_exact = analytic(n, x)
    assert value == pytest.approx(value_exact, rel=1e-15)
    assert abs(derivative - derivative_exact) <= RTOL[method] * abs(derivative_exact)


def load_example():
    spec = importlib.util.spec_from_file_location("repeated_sin_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("method", ["recompute", "forward", "fd", "analytic"])
def test_example_functions(method: str) -> None:
    example = load_example()
    run = example.make_checkpointed(example.METHODS[method], 100, 4)
    value, derivative = value_and_grad(run)(1.0)
    value_exact, derivative_exact = analytic(100, 1.0)
    assert example.analytic(100, 1.0) == (value_exact, derivative_exact)
    assert value == pytest.approx(value_exact, rel=1e-15)
    assert abs(derivative - derivative_exact) <= RTOL[method] * abs(derivative_exact)


def test_example_runs_as_a_script() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--n", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert set(rows) == {"recompute", "forward", "fd", "analytic"}
    value_exact, derivative_exact = analytic(20, 1.0)
    for method, (value, derivative, exact, error) in rows.items():
        assert float(value) == pytest.approx(value_exact, rel=1e-15)
        assert float(exact) == pytest.approx(derivative_exact, rel=1e-15)
        assert float(error) <= RTOL[method]
        assert abs(float(derivative) - derivative_exact) <= RTOL[method] * abs(derivative_exact)
