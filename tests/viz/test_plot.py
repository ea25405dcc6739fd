"""The schedule picture: drawn from the actions, rendered to a file that is not blank."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from ckpt_transform.schemes.actions import Advance, Record, Restore, Reverse, Store
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.schemes.validate import validate_schedule
from ckpt_transform.viz import plot_schedule
from ckpt_transform.viz.plot import _geometry


@pytest.mark.parametrize(("steps", "snapshots"), [(20, 3), (100, 5)])
def test_png_is_drawn_at_its_size_and_not_blank(tmp_path, steps, snapshots):
    path = tmp_path / "revolve.png"
    plot_schedule(Revolve(snapshots), steps, path=path, dpi=100)
    image = imread(path)
    # figsize 10.5 x 8.5 inches at 100 dpi
    assert image.shape[:2] == (850, 1050)
    rgb = image[..., :3]
    assert rgb.std() > 0.1  # a blank (one-colour) image has 0
    ink = (rgb.min(axis=2) < 0.9).mean()
    assert 0.05 < ink < 0.6
    # Reverse steps are drawn in matplotlib's tab:red (0.839, 0.153, 0.157).
    red = (abs(rgb[..., 0] - 0.839) < 0.05) & (rgb[..., 1] < 0.25) & (rgb[..., 2] < 0.25)
    assert red.sum() > 100


def test_svg_and_pdf(tmp_path):
    plot_schedule(Periodic(period=5), 30, path=tmp_path / "p.svg")
    assert "<svg" in (tmp_path / "p.svg").read_text()
    plot_schedule(OnlineR2(4), 30, path=tmp_path / "o.pdf")
    assert (tmp_path / "o.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize(
    "scheme", [Revolve(3), Periodic(period=4), OnlineR2(3), StoreAll()], ids=repr
)
def test_geometry_follows_the_actions(scheme):
    steps = 17
    actions = list(scheme.schedule(steps))
    counts = validate_schedule(actions, steps)
    g = _geometry(actions, steps)
    assert len(g.advance) == sum(isinstance(a, Advance) for a in actions)
    assert len(g.record) == sum(isinstance(a, Record) for a in actions)
    assert len(g.reverse) == sum(isinstance(a, Reverse) for a in actions)
    assert len(g.stores) == sum(isinstance(a, Store) for a in actions) == len(g.held)
    assert len(g.restores) == sum(isinstance(a, Restore) for a in actions)
    # Each unit of time is one step run, forward or reverse.
    assert g.end == counts.evaluations + steps
    assert g.end_forward == counts.primal_forward_steps + counts.primal_recorded_steps
    # Forward segments go right and down at one step per unit, reverse ones left and down.
    for (x0, t0), (x1, t1) in g.advance + g.record:
        assert x1 - x0 == t1 - t0 > 0
    for (x0, t0), (x1, t1) in g.reverse:
        assert x0 - x1 == t1 - t0 > 0
    # The reverse front starts at T when the primal run ends and reaches 0 at the end.
    assert g.front[0] == (steps, g.end_forward)
    assert g.front[-1] == (0, g.end)
    # Every checkpoint is held from its store to its free, never backwards in time.
    assert all(t0 <= t1 for _, t0, t1 in g.held)


def test_title_and_bars_carry_the_totals():
    steps, s = 40, 4
    ax = plot_schedule(Revolve(s), steps, path=None)
    counts = validate_schedule(Revolve(s).schedule(steps), steps)
    title = ax.get_title()
    assert f"{counts.forward_steps} passive + {counts.recorded_steps} taped" in title
    assert f"= {counts.evaluations} step evaluations" in title
    assert f"optimum with {s} snapshots" in title and str(revolve_evaluations(steps, s)) in title
    bars = ax.figure.axes[1]
    heights = sum(p.get_height() for p in bars.patches)
    assert heights == counts.evaluations
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # time runs down
    import matplotlib.pyplot as plt

    plt.close(ax.figure)


def test_draws_into_a_given_axes():
    fig = Figure()
    ax = fig.add_subplot()
    out = plot_schedule(Revolve(2), 10, ax=ax)
    assert out is ax and fig.axes == [ax]
    assert ax.get_legend() is not None
    assert ax.get_xlabel().startswith("state n")


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"must end in \.png, \.svg, \.pdf"):
        plot_schedule(Revolve(2), 10, path=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got 0"):
        plot_schedule(Revolve(2), 0)


def test_second_order_picture_names_the_sweeps():
    ax = plot_schedule(Revolve(2), 10, second_order=True)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "tangent sweep ends,\nsecond-order\nadjoint sweep starts" in labels
    assert ax.get_title().startswith("second order: the lifted loop over (state, tangent) pairs")
    import matplotlib.pyplot as plt

    plt.close(ax.figure)
