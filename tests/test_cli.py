"""The ckpt-transform command: output through main([...]), exit codes, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from ckpt_transform.cli import main
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.schemes.validate import validate_schedule
from ckpt_transform.viz.summary import schedule_totals


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _total(text, key):
    return int(re.search(rf"^  {re.escape(key)}\s+(\d+)", text, re.M)[1])


def _one_error_line(err, command):
    errors = [x for x in err.splitlines() if "error:" in x]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"ckpt-transform {command}: error: ")
    return errors[0]


def test_help_on_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert all(name in out for name in ("schedule", "cost", "show"))
    for command, option in (
        ("schedule", "--max-rows"),
        ("cost", "--snapshots"),
        ("show", "--diff"),
    ):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and out.startswith(f"usage: ckpt-transform {command}") and option in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"ckpt-transform {version('ckpt_transform')}"


@pytest.mark.parametrize(
    ("argv", "scheme"),
    [
        (["revolve", "--snapshots", "3"], Revolve(3)),
        (["periodic", "--snapshots", "3"], Periodic(3)),
        (["periodic", "--period", "4"], Periodic(period=4)),
        (["online", "--snapshots", "3"], OnlineR2(3)),
        (["storeall"], StoreAll()),
    ],
    ids=lambda x: " ".join(x) if isinstance(x, list) else "",
)
def test_schedule_totals_equal_the_mock_executor(capsys, argv, scheme):
    steps = 20
    code, out, err = run(capsys, "schedule", *argv, "--steps", str(steps))
    assert code == 0 and err == ""
    counts = validate_schedule(scheme.schedule(steps), steps)
    assert out.startswith(f"{scheme!r} over {steps} steps: {counts.actions} actions")
    assert _total(out, "passive step evaluations (advance)") == counts.forward_steps
    assert _total(out, "taped step evaluations (record)") == counts.recorded_steps
    assert _total(out, "total step evaluations") == counts.evaluations
    assert _total(out, "snapshots held at most") == counts.max_snapshots
    assert _total(out, "taped steps held at most") == counts.max_taped_steps
    rows = re.findall(
        r"^\s*\d+\s+\d+  (?:advance|record|reverse|store|restore|free|primal)", out, re.M
    )
    assert len(rows) == counts.actions
    assert "legend:" in out


def test_schedule_compares_with_the_optimum(capsys):
    _, out, _ = run(capsys, "schedule", "revolve", "--steps", "100", "--snapshots", "5")
    assert _total(out, "optimum, 5 snapshots") == revolve_evaluations(100, 5)
    assert re.search(r"this schedule / optimum\s+1\.000", out)
    # StoreAll has no budget of its own: --snapshots gives one to compare with.
    _, out, _ = run(capsys, "schedule", "storeall", "--steps", "10")
    assert "no snapshot budget to compare with" in out
    _, out, _ = run(capsys, "schedule", "storeall", "--steps", "10", "--snapshots", "2")
    assert _total(out, "optimum, 2 snapshots") == revolve_evaluations(10, 2)


def test_schedule_rows_and_compression(capsys):
    _, out, _ = run(capsys, "schedule", "revolve", "--steps", "1000", "--snapshots", "10")
    n = validate_schedule(Revolve(10).schedule(1000), 1000).actions
    assert "step axis compressed: one column = 16 steps" in out
    assert f"... {n - 150} actions not shown" in out
    assert "--max-rows 0 to see every action" in out
    _, out, _ = run(
        capsys, "schedule", "revolve", "--steps", "30", "--snapshots", "3", "--max-rows", "0"
    )
    assert "not shown" not in out
    _, out, _ = run(
        capsys, "schedule", "revolve", "--steps", "30", "--snapshots", "3", "--width", "10"
    )
    assert "one column = 4 steps" in out


def test_schedule_plot(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    from matplotlib.image import imread

    path = tmp_path / "schedule.png"
    code, out, _ = run(
        capsys, "schedule", "revolve", "--steps", "20", "--snapshots", "3", "--plot", str(path)
    )
    assert code == 0 and out.rstrip().endswith(f"picture written to {path}")
    image = imread(path)
    assert image.shape[0] > 500 and image.shape[1] > 500 and image[..., :3].std() > 0.1


def test_schedule_plot_without_matplotlib(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    path = tmp_path / "schedule.png"
    code, out, err = run(
        capsys, "schedule", "revolve", "--steps", "5", "--snapshots", "2", "--plot", str(path)
    )
    assert code == 1 and not path.exists()
    assert "total step evaluations" in out  # the table is printed first
    assert "pip install matplotlib" in _one_error_line(err, "schedule")


def test_cost(capsys):
    steps, s = 60, 4
    code, out, err = run(capsys, "cost", "--steps", str(steps), "--snapshots", str(s))
    assert code == 0 and err == ""
    for scheme in (Revolve(s), Periodic(s), OnlineR2(s), StoreAll()):
        counts = validate_schedule(scheme.schedule(steps), steps)
        line = next(x for x in out.splitlines() if x.startswith(repr(scheme)))
        cells = line[len(repr(scheme)) :].split()
        assert int(cells[2]) == counts.evaluations
        assert cells[3] == f"{counts.evaluations / steps:.2f}"
        assert int(cells[5]) == counts.max_snapshots
        assert int(cells[7]) == schedule_totals(scheme, steps).peak_states
    assert "peak memory (states)" in out and "checkpoints plus taped states" in out
    assert f"optimum: {revolve_evaluations(steps, s)} evaluations" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["schedule", "revolve", "--steps", "10", "--snapshots", "0"],
            "argument --snapshots: the number of snapshots must be an integer >= 1, got 0",
        ),
        (
            ["schedule", "revolve", "--steps", "0", "--snapshots", "2"],
            "argument --steps: the number of steps must be an integer >= 1 and <= 100000, got 0",
        ),
        (
            ["schedule", "revolve", "--steps", "ten", "--snapshots", "2"],
            "the number of steps must be an integer >= 1 and <= 100000, got 'ten'",
        ),
        (
            ["cost", "--steps", "100001", "--snapshots", "2"],
            "<= 100000, got 100001",
        ),
        (["schedule", "revolve", "--steps", "10"], "revolve needs --snapshots S"),
        (["schedule", "online", "--steps", "10"], "online needs --snapshots S"),
        (
            ["schedule", "periodic", "--steps", "10"],
            "periodic takes exactly one of --snapshots S and --period P, got neither",
        ),
        (
            ["schedule", "periodic", "--steps", "10", "--snapshots", "2", "--period", "3"],
            "got both (--snapshots 2, --period 3)",
        ),
        (
            ["schedule", "revolve", "--steps", "10", "--snapshots", "2", "--period", "3"],
            "--period is for the periodic scheme only, got --period 3 with revolve",
        ),
        (
            ["schedule", "lazy", "--steps", "10"],
            "argument SCHEME: invalid choice: 'lazy' (choose from 'revolve', 'periodic', "
            "'online', 'storeall', 'multilevel')",
        ),
        (
            ["schedule", "revolve", "--steps", "10", "--snapshots", "2", "--plot", "a.jpg"],
            "--plot FILE must end in .png, .svg, .pdf (the picture's format), got 'a.jpg'",
        ),
        (
            ["schedule", "revolve", "--steps", "10", "--snapshots", "2", "--max-rows", "-1"],
            "the number of rows must be an integer >= 0, got -1",
        ),
        (["cost", "--steps", "10"], "the following arguments are required: --snapshots"),
        (["show", "x.py:f", "--diff", "--side-by-side"], "not allowed with argument"),
        (["show", "x.py:f", "--width", "80"], "--width is for --side-by-side only"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    line = _one_error_line(err, argv[0])
    assert message in line


def test_missing_plot_folder(capsys, tmp_path):
    target = tmp_path / "nowhere" / "a.png"
    code, _, err = run(
        capsys, "schedule", "revolve", "--steps", "5", "--snapshots", "2", "--plot", str(target)
    )
    assert code == 2 and "does not exist" in _one_error_line(err, "schedule")


HEAT = """\
import autograd.numpy as np

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.revolve import Revolve


def plain(T):
    return T


@checkpoint_struct(Revolve(4))
def heat(T, lam, n):
    for i in range(n):
        T = T + lam * (np.roll(T, 1) - 2 * T + np.roll(T, -1))
    return np.sum(T)
"""


@pytest.fixture
def heat_file(tmp_path):
    path = tmp_path / "heat_cli.py"
    path.write_text(HEAT)
    return path


def test_show(capsys, heat_file):
    from ckpt_transform.viz import load_function

    heat = load_function(f"{heat_file}:heat")
    code, out, _ = run(capsys, "show", f"{heat_file}:heat")
    assert code == 0 and out == heat.generated_source.rstrip("\n") + "\n"  # no colour off a tty
    code, out, _ = run(capsys, "show", f"{heat_file}:heat", "--diff", "--no-color")
    assert code == 0 and out.startswith(f"--- {heat_file.name}:11-15 (original)\n+++ ")
    assert "\n-@checkpoint_struct(Revolve(4))\n" in out
    first = heat.generated_source.splitlines()[0]
    assert f"\n+{first}\n" in out
    code, out, _ = run(capsys, "show", f"{heat_file}:heat", "--side-by-side", "--width", "90")
    assert code == 0 and out.startswith(f"original: {heat_file.name}:11-15")
    assert all(len(line) <= 90 for line in out.splitlines())


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{dir}/missing.py:heat", "does not exist"),
        ("{file}:nothing", "'nothing' is not defined"),
        ("{file}:plain", "not decorated with checkpoint_struct"),
        ("{file}", "expected FILE.py:FUNCTION"),
    ],
)
def test_show_errors(capsys, heat_file, target, message):
    code, out, err = run(capsys, "show", target.format(file=heat_file, dir=heat_file.parent))
    assert code == 2 and out == ""
    assert message in _one_error_line(err, "show")


def test_show_a_file_that_fails_to_import(capsys, tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("1 / 0\n")
    code, out, err = run(capsys, "show", f"{bad}:f")
    assert code == 1 and out == ""
    assert "ZeroDivisionError" in _one_error_line(err, "show")


def test_python_dash_m():
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-m", "ckpt_transform", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: ckpt-transform")


def test_schedule_second_order_labels_the_sweeps(capsys):
    code, out, _ = run(
        capsys, "schedule", "revolve", "--steps", "6", "--snapshots", "2", "--second-order"
    )
    assert code == 0
    assert "tangent sweep ends" in out and "second-order adjoint sweep starts" in out
    assert "(state, tangent) pairs: 4 states" in out
