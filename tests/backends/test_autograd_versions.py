"""The public-API fallback for segment taping, forced, gives the same gradients with one warning.

The fallback is chosen at import (`ckpt_transform.backends.autograd`), so each case runs in a
fresh interpreter with ``CKPT_AUTOGRAD_PUBLIC=1``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import autograd.numpy as np
import numpy as onp
from autograd import grad

from ckpt_transform.backends import autograd as backend

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, warnings
warnings.simplefilter("always")
import autograd.numpy as np
from autograd import grad
from ckpt_transform import Revolve
from ckpt_transform.backends import autograd as backend
from ckpt_transform.runtime.driver import checkpointed_for

def loss(x, a):
    step = lambda y, i, a: np.sin(y) * a + 0.1 * y
    return np.sum(checkpointed_for(step, x, 9, Revolve(3), params=(a,)) ** 2)

def reset(x, steps):  # the output does not depend on the input: zeros, and no warning
    return np.sum(checkpointed_for(lambda y, i: y * 0.0 + 1.0, x, steps, Revolve(2)))

x = np.linspace(0.1, 1.0, 4)
print(json.dumps({
    "public": backend.PUBLIC_API_ONLY,
    "value": float(loss(x, 0.7)),
    "dx": grad(loss, 0)(x, 0.7).tolist(),
    "da": float(grad(loss, 1)(x, 0.7)),
    "reset": grad(reset)(x, 3).tolist(),
}))
"""


def _plain(x, a):
    for _ in range(9):
        x = np.sin(x) * a + 0.1 * x
    return np.sum(x**2)


def _child(env_value: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("CKPT_AUTOGRAD_PUBLIC", None)
    if env_value is not None:
        env["CKPT_AUTOGRAD_PUBLIC"] = env_value
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", CHILD],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )


def test_forced_public_path_gives_the_plain_gradients_with_one_warning():
    run = _child("1")
    out = json.loads(run.stdout)
    assert out["public"] is True
    assert run.stderr.count("taped with autograd.make_vjp instead") == 1, run.stderr
    assert "CKPT_AUTOGRAD_PUBLIC=1 is set" in run.stderr
    assert "Output seems independent of input" not in run.stderr
    x = onp.linspace(0.1, 1.0, 4)
    assert onp.isclose(out["value"], _plain(x, 0.7), rtol=1e-12)
    assert onp.allclose(out["dx"], grad(_plain, 0)(x, 0.7), rtol=1e-12, atol=1e-15)
    assert onp.isclose(out["da"], grad(_plain, 1)(x, 0.7), rtol=1e-12)
    assert out["reset"] == [0.0, 0.0, 0.0, 0.0]


def test_the_internal_path_is_chosen_when_it_fits_and_agrees_with_the_public_one():
    run = _child(None)
    assert json.loads(run.stdout)["public"] is False
    assert "make_vjp instead" not in run.stderr
    assert backend._internals_fit() is None
    f = lambda t: np.sin(t) * np.sum(t)  # noqa: E731
    x, g = onp.array([0.4, 1.5, -0.2]), onp.array([1.0, -2.0, 0.5])
    vjp_a, value_a = backend._internal_segment_vjp(f, x)
    vjp_b, value_b = backend._public_segment_vjp(f, x)
    assert onp.array_equal(value_a, value_b)
    assert onp.allclose(vjp_a(g), vjp_b(g), rtol=1e-15)
    assert not onp.allclose(vjp_a(g), 0.0)


def test_a_broken_internal_is_detected(monkeypatch):
    monkeypatch.setattr(backend, "VJPNode", None)
    assert "AttributeError" in backend._internals_fit()
