"""A schedule as text: one row per action, with a timeline over the loop's steps.

Each row shows the action (as `str(action)` reads it), the running count of step evaluations,
and a strip over the positions 0..T of the loop: position n stands for step n (which maps the
state at n to the state at n + 1) and for the state at n itself (T has no step, only the output
state). The marks:

====  =====================================================================
``-``  a step run passively (`Advance`)
``=``  a step run with a tape (`Record`)
``<``  a step whose adjoint is pulled back (`Reverse`)
``S``  the state stored in a checkpoint slot (`Store`)
``R``  the state restored from its slot (`Restore`)
``F``  the checkpoint freed (`Free`)
``o``  a checkpoint held (under the action's own marks, which win)
``.``  a step not yet reversed
blank  a step already reversed (its adjoint is known)
``|``  the primal run ends here (the reverse sweep starts)
====  =====================================================================

A two-level schedule (`Multilevel`) draws its disk level apart: ``D`` a state written to disk,
``U`` read back from disk, ``X`` its disk copy freed, ``#`` a disk checkpoint held (the memory
level keeps ``S R F o``); the legend then has a line for them.

When T + 1 positions do not fit in the width, several positions share a column (a *bucket*);
a column then shows its strongest mark, in the order ``S R F |`` > ``<`` > ``=`` > ``-`` > ``o`` >
``.`` > blank, and the header says how many steps a column holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

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

__all__ = ["LEGEND", "format_totals", "timeline"]

# Strength of each mark when several fall into one column; higher wins.
_RANK = {" ": 0, ".": 1, "o": 2, "#": 2, "-": 3, "=": 4, "<": 5, "S": 6, "R": 6, "F": 6, "|": 6}
_RANK.update(D=6, U=6, X=6)
_SLOT_MARKS = {
    ("memory", Store): "S",
    ("memory", Restore): "R",
    ("memory", Free): "F",
    ("disk", Store): "D",
    ("disk", Restore): "U",
    ("disk", Free): "X",
}

LEGEND = (
    "legend: - passive step (advance)   = taped step (record)   < step reversed (reverse)\n"
    "        S store   R restore   F free   o checkpoint held   . not yet reversed\n"
    "        (blank) already reversed   | primal run ends, reverse sweep starts"
)
FIRST_ORDER_MARK = "| primal run ends, reverse sweep starts"
#: What the forward and the reverse part of a plan are called, at first and at second order.
FIRST_ORDER_SWEEPS = ("primal run", "reverse sweep")
SECOND_ORDER_SWEEPS = ("tangent sweep", "second-order adjoint sweep")
LEGEND_DISK = "        disk level: D write   U read back   X free   # disk checkpoint held"


@typechecked
def timeline(
    scheme: Scheme,
    steps: int,
    *,
    width: int = 64,
    max_rows: int | None = None,
    legend: bool = True,
    totals: bool = True,
    snapshots: int | None = None,
    actions: Sequence[Action] | None = None,
    second_order: bool = False,
) -> str:
    """The action table of ``scheme`` over ``steps`` steps, with an ASCII timeline and totals.

    Parameters
    ----------
    scheme
        Any scheme: ``Revolve(3)``, ``Periodic(period=5)``, ``OnlineR2(4)``, ``StoreAll()``.
    steps
        T >= 1, the loop's length.
    width
        Columns of the timeline strip (>= 8). When T + 1 positions do not fit, each column
        holds ``ceil((T + 1) / width)`` of them and the header says so.
    max_rows
        Show at most this many action rows (the first and last halves, with a line saying how many
        are left out); None or 0 shows every row. The totals always count every action.
    legend, totals
        Print the legend of the marks, and the totals (evaluations, the most snapshots and taped
        steps held, against the optimum), under the table.
    snapshots
        The memory budget the optimum is computed for; the scheme's own by default (see
        `ckpt_transform.viz.schedule_totals`).
    actions
        The schedule, when already made (``list(scheme.schedule(steps))``); made here otherwise.
    second_order
        Label the plan as a second-order derivative (``hessian``, ``make_jvp(grad(f))``) runs
        it over the lifted loop's (state, tangent) pairs: its forward part is the *tangent
        sweep*, its reverse part the *second-order adjoint sweep*, a checkpoint two states.

    Returns
    -------
    str
        The whole text, lines joined by newlines, with no trailing newline.

    Examples
    --------
    >>> from ckpt_transform.schemes.revolve import Revolve
    >>> print(timeline(Revolve(2), 2, legend=False, totals=False))
    Revolve(snapshots=2) over 2 steps: 9 actions
    step axis: one column per step, positions 0..2
    <BLANKLINE>
    #  evals  action                      0 2
    0      0  store    state 0 -> slot 0  S..
    1      1  advance  [0, 1)             -..
    2      2  record   [1, 2)             o=.
    3      2  primal run ends             o.|
    4      2  reverse  [1, 2)             o<
    5      2  restore  state 0 <- slot 0  R
    6      3  record   [0, 1)             =
    7      3  reverse  [0, 1)             <
    8      3  free     slot 0 (state 0)   F
    """
    _check_arguments(steps, width, max_rows)
    scheme = scheme.second_order() if second_order else scheme  # the lifted loop's plan
    if actions is None:
        actions = list(scheme.schedule(steps))
    summary = schedule_totals(scheme, steps, snapshots=snapshots, actions=actions)

    bucket = -(-(steps + 1) // width)
    ncols = steps // bucket + 1
    ends = f"{(SECOND_ORDER_SWEEPS if second_order else FIRST_ORDER_SWEEPS)[0]} ends"
    texts = [ends if isinstance(a, EndForward) else str(a) for a in actions]
    widths = (
        len(str(len(actions) - 1)),
        max(len("evals"), len(str(summary.evaluations))),
        max(len("action"), *(len(t) for t in texts)),
    )
    out = _header(summary.scheme, steps, len(actions), bucket, ncols, widths, second_order)
    out += _table(actions, texts, steps, bucket, ncols, max_rows, widths)
    return "\n".join(out + _footer(actions, summary, legend, totals, second_order))


def _footer(
    actions: Sequence[Action],
    summary: ScheduleTotals,
    legend: bool,
    totals: bool,
    second_order: bool,
) -> list[str]:
    """The lines of `timeline` under the rows: the legend and the totals, as asked for."""
    names = SECOND_ORDER_SWEEPS if second_order else FIRST_ORDER_SWEEPS
    out: list[str] = []
    if legend:
        out += ["", LEGEND.replace(FIRST_ORDER_MARK, f"| {names[0]} ends, {names[1]} starts")]
        if any(getattr(a, "level", "memory") != "memory" for a in actions):
            out.append(LEGEND_DISK)
    if totals:
        out += ["", format_totals(summary, second_order=second_order)]
    return out


def _check_arguments(steps: int, width: int, max_rows: int | None) -> None:
    if steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}")
    if width < 8:
        raise ValueError(f"width must be an int >= 8 columns, got {width!r}")
    if max_rows is not None and max_rows < 0:
        raise ValueError(f"max_rows must be an int >= 0 (0: every row), got {max_rows!r}")


def _header(
    scheme: str,
    steps: int,
    count: int,
    bucket: int,
    ncols: int,
    widths: tuple[int, int, int],
    second_order: bool = False,
) -> list[str]:
    """The lines of `timeline` above the rows: what is shown, the step axis, the column heads."""
    index_w, evals_w, text_w = widths
    axis = (
        f"step axis: one column per step, positions 0..{steps}"
        if bucket == 1
        else f"step axis compressed: one column = {bucket} steps (positions 0..{steps} in "
        f"{ncols} columns)"
    )
    lead = f"{'#':>{index_w}}  {'evals':>{evals_w}}  {'action':<{text_w}}  "
    lifted = [
        "second order: the plan of the lifted loop over (state, tangent) pairs, its tangent",
        "sweep then its second-order adjoint sweep; a checkpoint holds a state and its tangent",
    ]
    return [
        f"{scheme} over {steps} steps: {count} actions",
        *(lifted if second_order else []),
        axis,
        "",
        lead + _ruler(steps, bucket, ncols),
    ]


def _table(
    actions: Sequence[Action],
    texts: list[str],
    steps: int,
    bucket: int,
    ncols: int,
    max_rows: int | None,
    widths: tuple[int, int, int],
) -> list[str]:
    """The action rows of `timeline` (the middle ones left out beyond ``max_rows``)."""
    index_w, evals_w, text_w = widths
    cut: tuple[int, int] | None = None
    if max_rows and len(actions) > max_rows:
        head = (max_rows + 1) // 2
        tail = max_rows - head
        cut = (head, len(actions) - tail)
    hidden = cut or (0, 0)
    rows = _rows(actions, steps, bucket, ncols, lambda i: not hidden[0] <= i < hidden[1])
    out = []
    for i in range(len(actions)):
        if cut is not None and cut[0] <= i < cut[1]:
            if i == cut[0]:
                left = cut[1] - cut[0]
                out.append(
                    f"{'':>{index_w}}  {'':>{evals_w}}  ... {left} actions not shown "
                    f"(#{cut[0]} to #{cut[1] - 1}) ..."
                )
            continue
        evals, cells = rows[i]
        line = f"{i:>{index_w}}  {evals:>{evals_w}}  {texts[i]:<{text_w}}  {cells}"
        out.append(line.rstrip())
    return out


def format_totals(summary: ScheduleTotals, *, second_order: bool = False) -> str:
    """The totals block of `timeline`: what the schedule costs, against the optimum.

    Parameters
    ----------
    summary
        From `ckpt_transform.viz.schedule_totals`.
    second_order
        Name the sweeps of the lifted loop (tangent, second-order adjoint) and count lifted
        steps and (state, tangent) checkpoints (see `timeline`).

    Returns
    -------
    str
    """
    c = summary.counts
    T = summary.steps
    fwd, rev = SECOND_ORDER_SWEEPS if second_order else FIRST_ORDER_SWEEPS
    step = "lifted step" if second_order else "step"
    pairs: list[tuple[str, str]] = [
        (
            f"passive {step} evaluations (advance)",
            f"{c.forward_steps}   ({fwd} {c.primal_forward_steps}, {rev} "
            f"{c.forward_steps - c.primal_forward_steps})",
        ),
        (
            f"taped {step} evaluations (record)",
            f"{c.recorded_steps}   ({fwd} {c.primal_recorded_steps}, {rev} "
            f"{c.recorded_steps - c.primal_recorded_steps})",
        ),
        (
            f"total {step} evaluations",
            f"{c.evaluations}   = {summary.recomputation:.2f} x {T} steps",
        ),
    ]
    if summary.optimum is not None:
        ratio = c.evaluations / summary.optimum if summary.optimum else 1.0
        note = ""
        if c.max_taped_steps > 1:
            note = f"   (it holds up to {c.max_taped_steps} taped steps at once, the optimum 1)"
        pairs += [
            (
                f"optimum, {summary.snapshots} snapshots",
                f"{summary.optimum}   (binomial checkpointing's proven minimum P(T, s) + T,",
            ),
            ("", "one taped step held at a time)"),
            ("this schedule / optimum", f"{ratio:.3f}{note}"),
        ]
    else:
        pairs.append(("optimum", "no snapshot budget to compare with"))
    if summary.online_bound is not None:
        pairs.append(
            (
                "best possible online",
                f"{summary.online_bound}   (the least any plan can do without knowing T in "
                f"advance)",
            )
        )
    budget = f" of {summary.snapshots}" if summary.snapshots is not None else ""
    held = f"{c.max_snapshots}{budget}"
    if second_order:
        held += f"   ((state, tangent) pairs: {2 * c.max_snapshots} states)"
    pairs += [
        ("snapshots held at most", held),
        (f"taped {step}s held at most", str(c.max_taped_steps)),
    ]
    if c.writes.get("disk"):  # a two-level schedule
        most = c.level_max_snapshots
        pairs += [
            ("held at most, per level", f"memory {most.get('memory', 0)}, disk {most['disk']}"),
            ("disk writes / reads", f"{c.writes['disk']} / {c.reads.get('disk', 0)}"),
        ]
    w = max(len(k) for k, _ in pairs)
    return "\n".join(["totals"] + [f"  {k:<{w}}  {v}" for k, v in pairs])


def _ruler(steps: int, bucket: int, ncols: int) -> str:
    """Tick labels over the strip: multiples of a round number, far enough apart to read."""
    room = len(str(steps)) + 1
    spacing = 1
    for base in _round_numbers():
        if base // bucket >= room or base >= steps:
            spacing = base
            break
    line = [" "] * (ncols + room)
    ticks = list(range(0, steps + 1, spacing))
    if ticks[-1] != steps and (steps - ticks[-1]) // bucket >= room:
        ticks.append(steps)
    for t in ticks:
        label = str(t)
        col = t // bucket
        line[col : col + len(label)] = label
    return "".join(line).rstrip()


def _round_numbers():
    k = 1
    while True:
        for m in (1, 2, 5):
            yield m * k
        k *= 10


def _rows(
    actions: Sequence[Action],
    steps: int,
    bucket: int,
    ncols: int,
    wanted: Callable[[int], bool],
) -> dict[int, tuple[int, str]]:
    """For each wanted action index: the step evaluations so far (after it) and its strip.

    Every action updates the bookkeeping (checkpoints held, the reverse front, evaluations); only
    the wanted ones are drawn, so a long schedule shown in part costs little more than its replay.
    """
    held: dict[tuple[str, int], int] = {}  # (level, slot) -> state
    front: int | None = None  # positions >= front are reversed (None: the primal run)
    evals = 0
    out: dict[int, tuple[int, str]] = {}
    for i, action in enumerate(actions):
        if isinstance(action, (Advance, Record)):
            evals += action.n1 - action.n0
        elif isinstance(action, Reverse):
            front = action.n0
        elif isinstance(action, EndForward):
            front = steps
        elif isinstance(action, Store):
            held[(action.level, action.slot)] = action.n
        elif isinstance(action, Free):
            held.pop((action.level, action.slot), None)
        if not wanted(i):
            continue
        marks: dict[int, str] = {}

        def mark(col: int, ch: str, marks: dict[int, str] = marks) -> None:
            if _RANK[ch] > _RANK[marks.get(col, " ")]:
                marks[col] = ch

        for (level, _), n in held.items():
            mark(n // bucket, "o" if level == "memory" else "#")
        if isinstance(action, (Advance, Record, Reverse)):
            ch = "-" if isinstance(action, Advance) else "=" if isinstance(action, Record) else "<"
            for col in range(action.n0 // bucket, (action.n1 - 1) // bucket + 1):
                mark(col, ch)
        elif isinstance(action, (Store, Restore, Free)):
            kind = next(k for k in (Store, Restore, Free) if isinstance(action, k))
            mark(action.n // bucket, _SLOT_MARKS[(action.level, kind)])
        elif isinstance(action, EndForward):
            mark(action.n // bucket, "|")
        cells = []
        for col in range(ncols):
            ch = marks.get(col)
            if ch is None:
                # A column is blank once every position in it is reversed.
                done = front is not None and col * bucket >= front
                ch = " " if done else "."
            cells.append(ch)
        out[i] = (evals, "".join(cells))
    return out
