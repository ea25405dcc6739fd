"""ckpt_transform.mpi under real MPI: the programs in tests/mpi/programs, run by mpiexec.

Each test launches ``mpiexec -n N python PROGRAM`` (N = 1, 2, 4; 4 oversubscribes a 2-core
machine, which MPICH allows) under a timeout, so a rank that hangs fails the test instead of
holding up the run. The programs batch many cases into one launch and compare, on every rank,
the distributed gradient with the one-process gradient of the same global model.

These tests are not skipped when MPI is missing: they fail, saying how to install it
(``pip install -e ".[test]"`` brings mpi4py and the mpich wheel).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = Path(__file__).resolve().parent / "programs"


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel's), else the one on PATH."""
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail("mpiexec not found: pip install -e '.[test]' (mpi4py and mpich)")
    return found


def launch(n: int, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess:
    """Run ``mpiexec -n n python args...`` from the repository; kill every rank on timeout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    command = [mpiexec(), "-n", str(n), sys.executable, *args]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(command)} hung (killed after {timeout} s)\n{out}\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


@pytest.mark.parametrize("n", [1, 2, pytest.param(4, marks=pytest.mark.slow)])
def test_distributed_gradients_equal_one_process(n: int, tmp_path: Path) -> None:
    run = launch(n, str(PROGRAMS / "gradients.py"), str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    match = re.search(r"ok: (\d+) of (\d+) case-ranks on (\d+) ranks", run.stdout)
    assert match, run.stdout + run.stderr
    ok, total, ranks = map(int, match.groups())
    assert ranks == n
    assert ok == total >= 60 * n, run.stdout
    assert not list(tmp_path.glob("*.h5")), "a rank left its checkpoint file behind"


@pytest.mark.parametrize("n", [2, 4])
def test_while_count_mismatch_raises_on_every_rank(n: int, tmp_path: Path) -> None:
    run = launch(n, str(PROGRAMS / "failures.py"), "while", str(tmp_path), timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    for rank in range(n):
        lines = (tmp_path / f"rank-{rank}.txt").read_text().splitlines()
        mine = [line for line in lines if line.startswith(f"rank {rank} ")]
        caught = [line for line in mine if "caught CheckpointError" in line]
        assert len(caught) == 4, mine
        functional, untraced, decorated, reuse = caught
        for line in (functional, untraced):
            # rank 0 stops after 3 iterations, the others would go on: both counts are named
            assert "rank 0 ended it after 3 iterations" in line, line
            assert "at least 4 iterations" in line, line
        assert "differs across ranks after 3 iterations" in decorated, decorated
        assert f"true on ranks {', '.join(map(str, range(1, n)))}" in decorated or (
            n == 2 and "true on rank 1" in decorated
        ), decorated
        assert "create a new communicator" in reuse, reuse
        total = float(sum(range(n)))
        assert f"rank {rank}: a new communicator sums {total}" in lines


@pytest.mark.parametrize("where", ["forward", "reverse"])
@pytest.mark.parametrize("n", [2, 4])
def test_a_step_raising_on_one_rank_ends_every_rank(n: int, where: str, tmp_path: Path) -> None:
    run = launch(n, str(PROGRAMS / "failures.py"), where, str(tmp_path), timeout=120)
    assert run.returncode != 0, run.stdout + run.stderr
    step = 3 if where == "forward" else 5
    for rank in range(n):
        lines = (tmp_path / f"rank-{rank}.txt").read_text().splitlines()
        want = f"rank {rank} ends with ValueError: step {step} failed on rank {n - 1}"
        assert lines == [want], run.stderr
    assert f"ValueError: step {step} failed on rank {n - 1}" in run.stderr


SIGNATURES = """
import inspect
from ckpt_transform import mpi

def signature(obj):
    parts, star = [], False
    for p in inspect.signature(obj).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        text = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "") + p.name
        parts.append(text if p.default is p.empty else f"{text}={p.default!r}")
    return f"{obj.__name__}({', '.join(parts)})"

for name in mpi.__all__:
    print(signature(getattr(mpi, name)))
"""


def test_api_page_shows_the_signatures_of_the_code() -> None:
    """docs/api.md's block on ckpt_transform.mpi (not run by the docs test) matches the code."""
    run = launch(1, "-c", SIGNATURES, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    actual = {line for line in run.stdout.splitlines() if line}
    page = (ROOT / "docs" / "api.md").read_text()
    block = page.split("from ckpt_transform.mpi import (", 1)[1].split(")\n```", 1)[0]
    shown = {m.group(1) for m in re.finditer(r"#\s+(\w+\(.*?\))(?::|$)", block, re.M)}
    assert shown == actual
