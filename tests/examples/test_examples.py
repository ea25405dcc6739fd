"""Every script in examples/ runs, with small sizes, as a user runs it: ``python examples/NAME.py``.

Each runs in a subprocess from a temporary directory (pictures and files land there), must exit
with 0, and must print the figures that say it worked: gradients agreeing with plain autograd,
with finite differences or with the analytic derivative, and the checkpointing counts. The
tolerances are those the mathematics allows (rounding for equal computations, truncation of the
central difference otherwise), not copies of a run's output.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args: str, cwd: Path) -> str:
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (
        f"{name} {' '.join(args)} exited with {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )
    return proc.stdout


def number(pattern: str, text: str) -> float:
    """The float captured by ``pattern``'s first group in ``text`` (which must match)."""
    match = re.search(pattern, text)
    assert match, f"no match for {pattern!r} in:\n{text}"
    return float(match.group(1))


def check_picture(path: Path) -> None:
    assert path.is_file(), f"{path} was not written"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG file"
    assert path.stat().st_size > 5_000, f"{path} is too small to hold a plot"


def check_revolve_counts(out: str, snapshots: int, steps: int) -> None:
    evaluations = re.search(
        r"primal evaluations\s+(\d+) \((\d+) passive \+ (\d+) taped; proven minimum (\d+)\)", out
    )
    assert evaluations, out
    total, passive, taped, minimum = map(int, evaluations.groups())
    assert total == passive + taped == minimum
    assert taped == steps
    assert number(r"snapshots held at most\s+(\d+)", out) <= snapshots


def test_every_example_is_tested():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {name[len("test_") :] + ".py" for name in globals() if name.startswith("test_")}
    assert scripts <= tested, f"examples without a test here: {sorted(scripts - tested)}"


def test_heat(tmp_path):
    out = run_example(
        "heat.py", "--n", "30", "--steps", "60", "--snapshots", "3", "--out", "h.png", cwd=tmp_path
    )
    assert number(r"relative difference from plain autograd: (\S+)", out) < 1e-12
    check_revolve_counts(out, snapshots=3, steps=60)
    check_picture(tmp_path / "h.png")


def test_repeated_sin(tmp_path):
    n, x = 24, 0.7
    out = run_example("repeated_sin.py", "--n", str(n), "--x", str(x), cwd=tmp_path)
    # the analytic derivative, computed here: prod cos(x_k) over x_{k+1} = sin(x_k)
    derivative = 1.0
    for _ in range(n):
        derivative *= math.cos(x)
        x = math.sin(x)
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in ("recompute", "forward", "fd", "analytic"):
            rows[parts[0]] = (float(parts[1]), float(parts[2]))
    assert set(rows) == {"recompute", "forward", "fd", "analytic"}, out
    for method, (value, d) in rows.items():
        assert value == pytest.approx(x, rel=1e-15), method
        tolerance = 1e-7 if method == "fd" else 1e-13
        assert d == pytest.approx(derivative, rel=tolerance), method


def test_burgers(tmp_path):
    out = run_example(
        "burgers.py",
        *("--n", "16", "--steps", "30", "--snapshots", "4"),
        *("--h5", "checkpoints.h5", "--out", "b.png"),
        cwd=tmp_path,
    )
    # Central differences with ε = 1e-5 on a smooth map: truncation ~ε², rounding ~1e-16/ε.
    assert number(r"relative difference (\S+)", out) < 1e-6
    initial = number(r"kinetic energy: initial (\S+),", out)
    final = number(r"kinetic energy: .*final (\S+)", out)
    assert 0 < final < initial  # viscosity dissipates energy: a check on the physics
    check_revolve_counts(out, snapshots=4, steps=30)
    assert "checkpoints.h5" in out
    assert not (tmp_path / "checkpoints.h5").exists(), "the HDF5 checkpoint file was left behind"
    check_picture(tmp_path / "b.png")


def test_ode_while(tmp_path):
    out = run_example("ode_while.py", "--t-end", "1.5", "--snapshots", "3", cwd=tmp_path)
    assert number(r"relative difference from plain autograd (\S+)", out) < 1e-12
    assert number(r"relative difference from the difference (\S+)", out) < 1e-6
    assert "the same piece" in out
    steps = re.search(r"steps taken: (\d+) accepted \+ (\d+) rejected = (\d+)", out)
    assert steps, out
    accepted, rejected, total = map(int, steps.groups())
    assert accepted + rejected == total > 10
    assert number(r"loop iterations\s+(\d+)", out) == total
    assert number(r"snapshots held at most\s+(\d+)", out) <= 3
    evaluations = number(r"primal evaluations\s+(\d+)", out)
    assert evaluations >= number(r"least possible online\s+(\d+)", out)


def test_fit_diffusion(tmp_path):
    out = run_example(
        "fit_diffusion.py",
        *("--n", "31", "--steps", "150", "--snapshots", "4", "--noise", "0"),
        cwd=tmp_path,
    )
    assert number(r"relative difference (\S+)\)", out) < 1e-6
    # exact data: the fit must find the true coefficient, to the optimiser's tolerance
    assert number(r"error (\S+) \(relative", out) == pytest.approx(0.0, abs=1e-6)
    assert number(r"iterations (\d+),", out) >= 1
    assert "CONVERGENCE" in out


def test_fit_diffusion_with_noise(tmp_path):
    out = run_example(
        "fit_diffusion.py",
        *("--n", "31", "--steps", "150", "--snapshots", "4", "--noise", "0.002"),
        cwd=tmp_path,
    )
    error = abs(number(r"error (\S+) \(relative", out))
    standard_error = number(r"standard error from the noise (\S+)", out)
    assert 0 < standard_error < 0.05
    assert error < 4 * standard_error  # fails by chance with probability ~6e-5


def test_burgers_picture_says_it_shows_the_gradient_per_unit_area(tmp_path, monkeypatch):
    import importlib.util

    import matplotlib.figure
    import numpy as np

    spec = importlib.util.spec_from_file_location("burgers_example", EXAMPLES / "burgers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    labels: list[str] = []

    def savefig(fig, path, **kwargs):
        labels.extend(ax.get_ylabel() for ax in fig.axes)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    field = np.ones((8, 8))
    module._plot(field, field, field, field, 0.1, str(tmp_path / "b.png"))
    assert "dE/du0 / dx²  (gradient per unit area)" in labels
    assert "dE/dv0 / dx²  (gradient per unit area)" in labels


def test_burgers_mpi(tmp_path):
    """The MPI example on a 2 x 2 process grid (mpiexec -n 4), against the one-process run."""
    mpiexec = Path(sys.executable).parent / "mpiexec"
    command = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", "4", sys.executable]
    command += [str(EXAMPLES / "burgers_mpi.py"), "--n", "16", "--steps", "20"]
    command += ["--snapshots", "4", "--out", "b.png"]
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    root = str(EXAMPLES.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "on 2 x 2 ranks" in out
    assert "check against the one-process gradient: passed" in out
    for name in ("final energy", "dE/du0", "dE/dv0", "dE/dν"):
        assert number(rf"  {re.escape(name)}\s+(\S+)", out) <= 1e-12
    per_rank = [int(b) for b in re.findall(r"  rank \d: (\d+)", out)]
    single = number(r"one process: (\d+)", out)
    assert len(per_rank) == 4 and sum(per_rank) == single, out
    check_picture(tmp_path / "b.png")


def test_heat_jax(tmp_path):
    import jax  # noqa: F401  (the test extra installs jax: missing is a failure)

    out = run_example("heat_jax.py", "--n", "20", "--steps", "40", "--snapshots", "3", cwd=tmp_path)
    assert "T = T.at[1:n - 1].set(interior)" in out
    assert number(r"max \|dL/dT0 - scan\| = (\S+)", out) < 1e-12
    lam, lam_scan = re.search(r"dL/dlam = (\S+), scan (\S+)", out).groups()
    assert math.isclose(float(lam), float(lam_scan), rel_tol=1e-12)
    total = number(r"evaluations (\d+)", out)
    assert total == number(r"\(optimum (\d+)\)", out)
    assert number(r"snapshots held (\d+)", out) <= 3
