"""Checkpoints per MPI rank: the ``{rank}`` placeholder, the per-process temporary file, clean-up.

The rank comes from ``mpi4py.MPI.COMM_WORLD`` once the program has imported mpi4py, else from the
launcher's environment variables. One test runs two real ranks under ``mpiexec``; where MPI is not
installed it runs the same two processes with the variable a launcher sets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from ckpt_transform.errors import CheckpointError
from ckpt_transform.storage.hdf5 import HDF5Storage
from ckpt_transform.storage.hdf5.paths import RANK_VARIABLES


@pytest.fixture(autouse=True)
def outside_mpi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No launcher variables and no mpi4py unless a test sets them; temporary files here."""
    for name in RANK_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "mpi4py.MPI", raising=False)
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))


def round_trip(storage: HDF5Storage) -> str:
    with storage.session() as s:
        s.put(0, 1, [np.arange(3.0)], "(x,)")
        assert s.get(0)[0] == 1
        assert os.path.exists(s.path)
        path = s.path
    assert not os.path.exists(path)
    return path


@pytest.mark.parametrize("variable", RANK_VARIABLES)
def test_rank_from_the_launchers_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str
) -> None:
    monkeypatch.setenv(variable, "3")
    path = round_trip(HDF5Storage(tmp_path / "ckpt-{rank}.h5"))
    assert path == str(tmp_path / "ckpt-3.h5")


def test_rank_with_a_format_and_outside_mpi(tmp_path: Path) -> None:
    assert round_trip(HDF5Storage(tmp_path / "ckpt-{rank:03d}.h5")) == str(tmp_path / "ckpt-000.h5")
    assert round_trip(HDF5Storage(tmp_path / "a{{b}}-{rank}.h5")) == str(tmp_path / "a{b}-0.h5")


def test_rank_from_mpi4py_once_imported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A program that imported mpi4py: its COMM_WORLD is the authority, not the environment.
    world = types.SimpleNamespace(Get_rank=lambda: 5)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", types.SimpleNamespace(COMM_WORLD=world))
    monkeypatch.setenv("PMI_RANK", "1")
    storage = HDF5Storage(tmp_path / "ckpt-{rank}.h5")
    assert round_trip(storage) == str(tmp_path / "ckpt-5.h5")
    assert storage.path == str(tmp_path / "ckpt-{rank}.h5")  # the template stays the user's
    assert "{rank}" in repr(storage)


def test_temporary_file_names_the_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    path = round_trip(HDF5Storage())
    assert os.path.basename(path).startswith("ckpt_transform-rank2-")
    monkeypatch.delenv("OMPI_COMM_WORLD_RANK")
    assert os.path.basename(round_trip(HDF5Storage())).startswith("ckpt_transform-")


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("ckpt-{step}.h5", "{step}"),
        ("ckpt-{}.h5", "{}"),
        ("ckpt-{0}.h5", "{0}"),
        ("ckpt-{rank.real}.h5", "{rank.real}"),
        ("ckpt-{rank.h5", "single brace"),
        ("ckpt-}.h5", "single brace"),
        ("ckpt-{rank:s}.h5", "format of {rank}"),
    ],
)
def test_other_placeholders_are_refused(path: str, named: str) -> None:
    with pytest.raises(ValueError, match="is not understood") as info:
        HDF5Storage(path)
    message = str(info.value)
    assert named in message and repr(path) in message and "{rank}" in message


def test_a_launcher_variable_that_is_not_a_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_PROCID", "first")
    with pytest.raises(CheckpointError, match=r"SLURM_PROCID='first' should hold"):
        HDF5Storage("ckpt-{rank}.h5").session()


RANKS_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading
    import autograd.numpy as np
    from autograd import grad
    from ckpt_transform import HDF5Storage, Revolve, checkpointed_for

    if sys.argv[2] == "mpi4py":
        from mpi4py import MPI
        rank = MPI.COMM_WORLD.Get_rank()
    else:
        rank = int(os.environ["PMI_RANK"])
    directory = sys.argv[1]
    seen = []

    def step(x, i):
        seen.append(sorted(os.listdir(directory)))
        return x + 0.1 * np.sin(x + rank)

    def loss(x, storage):
        return np.sum(checkpointed_for(step, x, 12, Revolve(3, storage=storage)))

    def plain(x):
        for i in range(12):
            x = x + 0.1 * np.sin(x + rank)
        return np.sum(x)

    x0 = np.linspace(0.0, 1.0, 50)
    names = []
    for storage in (HDF5Storage(os.path.join(directory, "ckpt-{rank}.h5")), HDF5Storage()):
        g = grad(loss)(x0, storage)
        assert np.allclose(g, grad(plain)(x0), rtol=1e-13, atol=0), rank
        names.append(os.path.basename(storage.last_path))
    own = f"ckpt-{rank}.h5"
    assert any(own in names for names in seen), (own, seen[:3])
    threads = [t.name for t in threading.enumerate() if t.name.startswith("ckpt_transform-hdf5")]
    assert threads == [], threads
    with open(os.path.join(sys.argv[3], f"rank-{rank}.txt"), "w") as out:
        out.write(" ".join(names))
    """
)


def test_two_ranks_write_and_remove_their_own_files(tmp_path: Path) -> None:
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT)
    out, results = tmp_path / "checkpoints", tmp_path / "results"
    out.mkdir()
    results.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("PMI_RANK", None)
    search = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    mpiexec = shutil.which("mpiexec", path=search)
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        mpiexec = None
    args = [sys.executable, str(script), str(out)]
    if mpiexec is not None:
        cmd = [mpiexec, "-n", "2", *args, "mpi4py", str(results)]
        done = [subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)]
    else:  # the two processes a launcher would start, told their rank as MPICH's does
        done = [
            subprocess.run(
                [*args, "env", str(results)],
                env=dict(env, PMI_RANK=str(r)),
                capture_output=True,
                text=True,
                timeout=300,
            )
            for r in (0, 1)
        ]
    for run in done:
        assert run.returncode == 0, run.stderr
    for rank in (0, 1):
        named, temporary = (results / f"rank-{rank}.txt").read_text().split()
        assert named == f"ckpt-{rank}.h5"
        assert temporary.startswith(f"ckpt_transform-rank{rank}-")
    assert list(out.iterdir()) == []
    assert [p for p in tmp_path.iterdir() if p.suffix == ".h5"] == []
