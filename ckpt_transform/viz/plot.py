"""A schedule as a picture: the loop's states across, time running down.

The picture follows the pebble-game diagrams of TreeverseAlgorithm.jl (one column per state, time
running down the page, checkpoints as marks that stay while they are held, the part whose
gradient is known shaded red) and draws every action of a scheme's plan:

* x is the state index n (0..T); step n runs from x = n to x = n + 1.
* y is time, counted in steps run so far, forward or reverse, one unit each; slot actions
  (store, restore, free) take no time.
* A passive sweep (`Advance`) is a thin blue diagonal going right and down, a taped one
  (`Record`) a thick orange one, a reverse (`Reverse`) a thick red one going left and down.
* A checkpoint is a grey vertical band at its state, from its `Store` (black dot) to its `Free`
  (grey cross); each `Restore` is a green triangle, with a dotted line from where the current
  state was: the jump back that recomputation starts from.
* The light red region holds the states whose adjoint is already known; its left edge is the
  reverse sweep's front.
* The dashed line marks the end of the primal run.
* A two-level schedule (`Multilevel`) draws its disk checkpoints apart: a purple band, stored at
  a purple square and restored at a purple triangle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ckpt_transform._checks import typechecked
from ckpt_transform.schemes.actions import (
    Action,
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.base import Scheme
from ckpt_transform.viz.summary import ScheduleTotals, schedule_totals

__all__ = ["SUFFIXES", "plot_schedule"]

#: File types `plot_schedule` writes (by the path's suffix).
SUFFIXES = (".png", ".svg", ".pdf")

_PASSIVE, _TAPED, _REVERSE = "tab:blue", "tab:orange", "tab:red"
_STORE, _RESTORE, _FREE, _HELD = "black", "tab:green", "0.45", "0.75"
_DISK, _DISK_HELD = "tab:purple", "plum"


@dataclass
class _Geometry:
    """Where everything of one schedule goes on the picture (data coordinates: x state, y time)."""

    advance: list[tuple[tuple[float, float], tuple[float, float]]] = field(default_factory=list)
    record: list[tuple[tuple[float, float], tuple[float, float]]] = field(default_factory=list)
    reverse: list[tuple[tuple[float, float], tuple[float, float]]] = field(default_factory=list)
    jumps: list[tuple[tuple[float, float], tuple[float, float]]] = field(default_factory=list)
    stores: list[tuple[float, float]] = field(default_factory=list)
    restores: list[tuple[float, float]] = field(default_factory=list)
    frees: list[tuple[float, float]] = field(default_factory=list)
    held: list[tuple[float, float, float]] = field(default_factory=list)  # (n, t0, t1)
    disk_stores: list[tuple[float, float]] = field(default_factory=list)
    disk_restores: list[tuple[float, float]] = field(default_factory=list)
    disk_held: list[tuple[float, float, float]] = field(default_factory=list)
    front: list[tuple[float, float]] = field(default_factory=list)  # reverse front (x, t)
    end_forward: float = 0.0
    end: float = 0.0


def _geometry(actions: Sequence[Action], steps: int) -> _Geometry:
    g = _Geometry()
    t = 0
    x: int | None = 0  # the current state (None after a reverse: nothing is current)
    stored: dict[tuple[str, int], tuple[int, int]] = {}  # (level, slot) -> (n, store time)
    for action in actions:
        if isinstance(action, (Advance, Record)):
            seg = ((action.n0, t), (action.n1, t + action.n1 - action.n0))
            (g.advance if isinstance(action, Advance) else g.record).append(seg)
            t += action.n1 - action.n0
            x = action.n1
        elif isinstance(action, Reverse):
            length = action.n1 - action.n0
            g.reverse.append(((action.n1, t), (action.n0, t + length)))
            g.front += [(action.n1, t), (action.n0, t + length)]
            t += length
            x = action.n0
        elif isinstance(action, Store):
            stored[(action.level, action.slot)] = (action.n, t)
            (g.stores if action.level == "memory" else g.disk_stores).append((action.n, t))
        elif isinstance(action, Restore):
            if x is not None and x != action.n:
                g.jumps.append(((x, t), (action.n, t)))
            (g.restores if action.level == "memory" else g.disk_restores).append((action.n, t))
            x = action.n
        elif isinstance(action, Free):
            n, t0 = stored.pop((action.level, action.slot))
            (g.held if action.level == "memory" else g.disk_held).append((n, t0, t))
            g.frees.append((n, t))
        elif isinstance(action, EndForward):
            g.end_forward = t
            g.front.append((steps, t))
    g.end = t
    return g


def _evaluation_bars(ax: Any, g: _Geometry, steps: int) -> None:
    """Under the picture: how many times each step was run, passively and with a tape."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    passive = [0] * steps
    taped = [0] * steps
    for segments, counts in ((g.advance, passive), (g.record, taped)):
        for (n0, _), (n1, _) in segments:
            for n in range(int(n0), int(n1)):
                counts[n] += 1
    centres = [n + 0.5 for n in range(steps)]
    width = 0.8 if steps <= 200 else 1.0
    ax.bar(centres, passive, width=width, color=_PASSIVE, label="passive")
    ax.bar(centres, taped, width=width, bottom=passive, color=_TAPED, label="taped")
    top = max(p + t for p, t in zip(passive, taped))
    ax.set_ylim(0, top + 0.5)
    if top <= 6:
        ax.yaxis.set_major_locator(MultipleLocator(1))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
    ax.set_ylabel("runs of\nstep n")
    ax.grid(True, axis="y", color="0.9", lw=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)


def _title(summary: ScheduleTotals) -> str:
    c = summary.counts
    first = (
        f"{summary.scheme}, T = {summary.steps} steps: {c.forward_steps} passive + "
        f"{c.recorded_steps} taped = {c.evaluations} step evaluations"
    )
    lines = [first]
    if summary.optimum is not None:
        ratio = c.evaluations / summary.optimum if summary.optimum else 1.0
        lines.append(
            f"optimum with {summary.snapshots} snapshots, one taped step held at a time: "
            f"{summary.optimum} (this schedule: {ratio:.3f} x)"
        )
    lines.append(
        f"held at most: {c.max_snapshots} snapshots, {c.max_taped_steps} taped "
        f"step{'s' if c.max_taped_steps != 1 else ''}"
    )
    return "\n".join(lines)


@typechecked
def plot_schedule(
    scheme: Scheme,
    steps: int,
    ax: Any = None,
    path: str | os.PathLike[str] | None = None,
    *,
    snapshots: int | None = None,
    dpi: int = 150,
    actions: Sequence[Action] | None = None,
    second_order: bool = False,
) -> Any:
    """Draw ``scheme``'s schedule over ``steps`` steps: states across, time running down.

    Forward sweeps are diagonals going right (thin blue: passive, thick orange: taped), reverse
    steps thick red diagonals going left, checkpoints grey bands from their store to their free,
    restores green triangles with a dotted jump from the current state; the states whose adjoint
    is known are shaded red. The title gives the scheme and its totals against the optimum (see
    `ckpt_transform.viz.schedule_totals`). Readable for T from about 10 to a few hundred.

    Parameters
    ----------
    scheme
        Any scheme: ``Revolve(3)``, ``Periodic(period=5)``, ``OnlineR2(4)``, ``StoreAll()``.
    steps
        T >= 1, the loop's length.
    ax
        A matplotlib ``Axes`` to draw into; when None a new figure is made (through pyplot when
        ``path`` is None, so that it shows in a notebook; a detached ``Figure`` otherwise).
    path
        Save the figure there; the suffix picks the format (``.png``, ``.svg`` or ``.pdf``).
    snapshots
        The memory budget the optimum is computed for; the scheme's own by default.
    dpi
        Resolution of a saved PNG.
    actions
        The schedule, when already made (``list(scheme.schedule(steps))``); made here otherwise.
    second_order
        Label it as the tangent and second-order adjoint sweeps (`ckpt_transform.viz.timeline`).

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn into.

    Raises
    ------
    ImportError
        When matplotlib is not installed (``pip install matplotlib``).
    ValueError
        For ``steps < 1`` or a path whose suffix is not one of `SUFFIXES`.

    References
    ----------
    A. Griewank and A. Walther, "Algorithm 799: Revolve", ACM Trans. Math. Softw. 26(1), 19-45,
    2000. https://doi.org/10.1145/347837.347846 (binomial checkpointing and its optimum).

    The picture's layout follows the pebble-game diagrams of TreeverseAlgorithm.jl
    (https://github.com/GiggleLiu/TreeverseAlgorithm.jl).

    Examples
    --------
    >>> from ckpt_transform.schemes.revolve import Revolve
    >>> ax = plot_schedule(Revolve(3), 20, path="revolve.png")  # doctest: +SKIP
    """
    _check_arguments(steps, path)
    scheme = scheme.second_order() if second_order else scheme  # the lifted loop's plan
    if actions is None:
        actions = list(scheme.schedule(steps))
    summary = schedule_totals(scheme, steps, snapshots=snapshots, actions=actions)
    g = _geometry(actions, steps)
    ax, bars = _axes(ax, path)
    thin, thick = (1.2, 2.6) if steps <= 60 else (0.9, 1.8)  # long loops: thinner lines
    _draw(ax, g, steps, thin, thick)
    _frame(ax, g, steps, summary, second_order)
    _state_axis(ax, bars, g, steps)
    _legend(ax, thin, thick, bool(g.disk_stores), second_order)
    if path is not None:
        ax.figure.savefig(os.fspath(path), dpi=dpi)
    return ax


def _state_axis(ax: Any, bars: Any, g: _Geometry, steps: int) -> None:
    """The states' axis label, under the evaluation bars when they are drawn."""
    xlabel = "state n (step n runs from state n to state n + 1)"
    if bars is None:
        ax.set_xlabel(xlabel)
    else:
        _evaluation_bars(bars, g, steps)
        bars.set_xlabel(xlabel)


def _check_arguments(steps: int, path: str | os.PathLike[str] | None) -> None:
    """Fail early and clearly: a bad length, a path of unknown format, no matplotlib."""
    if steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if path is not None:
        suffix = os.path.splitext(os.fspath(path))[1].lower()
        if suffix not in SUFFIXES:
            raise ValueError(
                f"cannot tell the picture's format from {os.fspath(path)!r}: its name must end in "
                f"{', '.join(SUFFIXES)}"
            )
    try:
        import matplotlib
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError(
            "plot_schedule draws with matplotlib, which is not installed: pip install matplotlib"
        ) from error
    del matplotlib


def _axes(ax: Any, path: str | os.PathLike[str] | None) -> tuple[Any, Any]:
    """The axes to draw into and the evaluation bars' axes (None when ``ax`` was given)."""
    if ax is not None:
        return ax, None
    size = (10.5, 8.5)
    if path is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size, layout="constrained")
    else:
        from matplotlib.figure import Figure

        fig = Figure(figsize=size, layout="constrained")
    ax, bars = fig.subplots(2, 1, sharex=True, height_ratios=[4, 1])
    return ax, bars


def _draw(ax: Any, g: _Geometry, steps: int, thin: float, thick: float) -> None:
    """The schedule itself: the known-adjoint region, checkpoints, sweeps, slot actions."""
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Polygon

    marker = 28 if steps <= 60 else 14
    # The part whose adjoint is known: right of the reverse front, from the primal run's end.
    if g.front:
        outline = [*g.front, (g.front[-1][0], g.end), (steps, g.end)]
        ax.add_patch(Polygon(outline, closed=True, facecolor=_REVERSE, alpha=0.10, lw=0, zorder=0))
    for bands, colour in ((g.held, _HELD), (g.disk_held, _DISK_HELD)):
        for n, t0, t1 in bands:
            ax.plot(
                [n, n],
                [t0, t1],
                color=colour,
                lw=4 if steps <= 60 else 2.5,
                zorder=1,
                solid_capstyle="butt",
            )
    if g.jumps:
        ax.add_collection(
            LineCollection(g.jumps, colors=_RESTORE, linewidths=0.8, linestyles=":", zorder=2)
        )
    ax.add_collection(LineCollection(g.advance, colors=_PASSIVE, linewidths=thin, zorder=3))
    ax.add_collection(LineCollection(g.record, colors=_TAPED, linewidths=thick, zorder=4))
    ax.add_collection(LineCollection(g.reverse, colors=_REVERSE, linewidths=thick, zorder=4))
    for points, colour, shape in (
        (g.stores, _STORE, "o"),
        (g.restores, _RESTORE, "v"),
        (g.frees, _FREE, "x"),
        (g.disk_stores, _DISK, "s"),
        (g.disk_restores, _DISK, "v"),
    ):
        if points:
            ax.scatter(*zip(*points), s=marker, color=colour, marker=shape, zorder=5)
    ax.axhline(g.end_forward, color="0.3", lw=0.8, ls="--", zorder=2)


def _frame(
    ax: Any, g: _Geometry, steps: int, summary: ScheduleTotals, second_order: bool = False
) -> None:
    """Limits, ticks, labels, title and grid of the schedule's axes."""
    from matplotlib.ticker import MaxNLocator, MultipleLocator

    pad = max(0.5, steps / 50)
    ax.set_xlim(-pad, steps + pad)
    ax.set_ylim(g.end + max(1.0, g.end / 50), -max(1.0, g.end / 50))  # time runs down
    if steps <= 20:
        ax.xaxis.set_major_locator(MultipleLocator(1))  # every state labelled
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        if steps <= 50:
            ax.xaxis.set_minor_locator(MultipleLocator(1))  # a tick at every state
    ax.set_ylabel("time, running down: steps run so far\n(forward or reverse, one unit each)")
    lead = "second order: the lifted loop over (state, tangent) pairs\n" if second_order else ""
    ax.set_title(lead + _title(summary), fontsize=10)
    ax.grid(True, color="0.92", lw=0.6, zorder=-1)
    ax.set_axisbelow(True)


_END_LABEL = {
    False: "primal run ends,\nreverse sweep starts",
    True: "tangent sweep ends,\nsecond-order\nadjoint sweep starts",
}


def _legend(ax: Any, thin: float, thick: float, disk: bool, second_order: bool = False) -> None:
    """The legend, outside the axes (every part of the inside is drawn on for some scheme)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=_PASSIVE, lw=thin, label="passive step (advance)"),
        Line2D([], [], color=_TAPED, lw=thick, label="taped step (record)"),
        Line2D([], [], color=_REVERSE, lw=thick, label="step reversed (reverse)"),
        Line2D([], [], color=_HELD, lw=4, label="checkpoint held"),
        Line2D([], [], color=_STORE, marker="o", ls="", label="store"),
        Line2D([], [], color=_RESTORE, marker="v", ls=":", label="restore (jump back)"),
        Line2D([], [], color=_FREE, marker="x", ls="", label="free"),
        Patch(facecolor=_REVERSE, alpha=0.10, label="adjoint known\n(right of the front)"),
        Line2D([], [], color="0.3", lw=0.8, ls="--", label=_END_LABEL[second_order]),
    ]
    if disk:
        handles[4:4] = [
            Line2D([], [], color=_DISK_HELD, lw=4, label="disk checkpoint held"),
            Line2D([], [], color=_DISK, marker="s", ls="", label="disk write (store)"),
            Line2D([], [], color=_DISK, marker="v", ls="", label="disk read (restore)"),
        ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
