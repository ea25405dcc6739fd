"""The action table and its timeline, checked against the actions' own meaning."""

from __future__ import annotations

import doctest
import re

import pytest

import ckpt_transform.viz.ascii as ascii_view
from ckpt_transform.schemes.actions import (
    Advance,
    EndForward,
    Free,
    Record,
    Restore,
    Reverse,
    Store,
)
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.schemes.validate import validate_schedule
from ckpt_transform.viz import timeline

SCHEMES = [Revolve(2), Revolve(3), Periodic(period=4), Periodic(3), OnlineR2(3), StoreAll()]


def _table(text: str) -> list[tuple[int, int, str, str]]:
    """(index, evals, action text, strip) for every action row of a timeline."""
    lines = text.splitlines()
    header = next(i for i, x in enumerate(lines) if re.match(r"\s*#\s+evals\s+action", x))
    strip_at = lines[header].index("action") + len("action")
    # The strip starts two spaces after the widest action text; find it from the ruler's "0".
    strip_at = lines[header].index("0", strip_at)
    rows = []
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        m = re.match(r"\s*(\d+)\s+(\d+)  ", line)
        if m is None:
            continue  # the "... not shown ..." line
        rows.append((int(m[1]), int(m[2]), line[m.end() : strip_at].rstrip(), line[strip_at:]))
    return rows


def _totals(text: str) -> dict[str, int]:
    found = {}
    for key in (
        "passive step evaluations (advance)",
        "taped step evaluations (record)",
        "total step evaluations",
        "snapshots held at most",
        "taped steps held at most",
    ):
        m = re.search(rf"^  {re.escape(key)}\s+(\d+)", text, re.M)
        assert m, key
        found[key] = int(m[1])
    m = re.search(r"^  optimum, (\d+) snapshots\s+(\d+)", text, re.M)
    if m:
        found["optimum snapshots"], found["optimum"] = int(m[1]), int(m[2])
    return found


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
@pytest.mark.parametrize("steps", [1, 3, 10, 23])
def test_totals_equal_the_mock_executor(scheme, steps):
    counts = validate_schedule(scheme.schedule(steps), steps)
    totals = _totals(timeline(scheme, steps))
    assert totals["passive step evaluations (advance)"] == counts.forward_steps
    assert totals["taped step evaluations (record)"] == counts.recorded_steps
    assert totals["total step evaluations"] == counts.evaluations
    assert totals["snapshots held at most"] == counts.max_snapshots
    assert totals["taped steps held at most"] == counts.max_taped_steps
    own = getattr(scheme, "snapshots", None) or counts.max_snapshots
    if own:
        assert totals["optimum snapshots"] == own
        assert totals["optimum"] == revolve_evaluations(steps, own)
    else:  # StoreAll, or a Periodic(period=p) loop no longer than p: nothing held
        assert "optimum" not in totals


@pytest.mark.parametrize("scheme", SCHEMES, ids=repr)
def test_one_row_per_action_with_the_marks_it_means(scheme):
    steps = 23  # 24 positions: one column each at the default width
    actions = list(scheme.schedule(steps))
    rows = _table(timeline(scheme, steps))
    assert [r[0] for r in rows] == list(range(len(actions)))
    held: dict[int, int] = {}
    evals = 0
    front = None
    for action, (_, shown_evals, text, strip) in zip(actions, rows):
        strip = strip.ljust(steps + 1)
        assert len(strip) == steps + 1
        if isinstance(action, EndForward):
            assert text == "primal run ends"
            front = steps
        else:
            assert text == str(action)
        own: set[int] = set()
        if isinstance(action, (Advance, Record)):
            evals += action.n1 - action.n0
            ch = "-" if isinstance(action, Advance) else "="
            own = set(range(action.n0, action.n1))
            assert all(strip[n] == ch for n in own)
            assert strip.count(ch) == len(own)
        elif isinstance(action, Reverse):
            front = action.n0
            own = set(range(action.n0, action.n1))
            assert all(strip[n] == "<" for n in own) and strip.count("<") == len(own)
        elif isinstance(action, (Store, Restore, Free, EndForward)):
            if isinstance(action, Store):
                held[action.slot] = action.n
            if isinstance(action, Free):
                del held[action.slot]
            ch = {Store: "S", Restore: "R", Free: "F", EndForward: "|"}[type(action)]
            own = {action.n}
            assert strip[action.n] == ch
        assert shown_evals == evals
        for n, ch in enumerate(strip):
            if n in own:
                continue
            if n in held.values():
                assert ch == "o", (action, strip)
            elif front is not None and n >= front:
                assert ch == " ", (action, strip)
            else:
                assert ch == ".", (action, strip)


def test_long_loops_are_compressed_and_say_so():
    steps, width = 1000, 64
    text = timeline(Revolve(10), steps, width=width, max_rows=20)
    bucket = -(-(steps + 1) // width)  # 16
    assert f"step axis compressed: one column = {bucket} steps" in text
    rows = _table(text)
    assert all(len(r[3]) <= steps // bucket + 1 for r in rows)
    # The primal run's first advance [0, 285) covers the columns of positions 0..284.
    first = next(r for r in rows if r[2].startswith("advance"))
    assert first[2] == "advance  [0, 285)"
    assert first[3].rstrip(".") == "-" * (284 // bucket + 1)
    short = timeline(Revolve(3), 20)
    assert "one column per step, positions 0..20" in short


def test_max_rows_keeps_the_first_and_last_and_counts_the_rest():
    scheme, steps = Revolve(5), 100
    n = len(list(scheme.schedule(steps)))
    rows = _table(timeline(scheme, steps, max_rows=30))
    assert [r[0] for r in rows] == [*range(15), *range(n - 15, n)]
    assert f"... {n - 30} actions not shown (#15 to #{n - 16}) ..." in timeline(
        scheme, steps, max_rows=30
    )
    assert len(_table(timeline(scheme, steps, max_rows=0))) == n
    assert len(_table(timeline(scheme, steps))) == n


def test_legend_names_every_mark_the_strip_uses():
    text = timeline(Revolve(3), 20)
    marks = set("".join(r[3] for r in _table(text))) - {" "}
    for ch in marks:
        assert re.search(rf"(^|\s){re.escape(ch)} \w", ascii_view.LEGEND), ch
    assert "(blank) already reversed" in ascii_view.LEGEND


def test_options_to_leave_parts_out():
    bare = timeline(Revolve(3), 20, legend=False, totals=False)
    assert "legend:" not in bare and "totals" not in bare
    assert "legend:" in timeline(Revolve(3), 20) and "\ntotals\n" in timeline(Revolve(3), 20)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got 0"):
        timeline(Revolve(2), 0)
    with pytest.raises(ValueError, match=r"width must be an int >= 8 columns, got 7"):
        timeline(Revolve(2), 10, width=7)
    with pytest.raises(ValueError, match=r"max_rows must be an int >= 0"):
        timeline(Revolve(2), 10, max_rows=-1)


def test_docstring_example():
    failures, tried = doctest.testmod(ascii_view)
    assert tried >= 1 and failures == 0


def test_second_order_view_names_the_sweeps_and_counts_what_a_hessian_runs():
    """The view of a second-order run: its sweeps are named, and its totals are what the lifted
    loop of a real Hessian-vector product evaluated and held (stats.second_order)."""
    import autograd.numpy as anp
    from autograd.differential_operators import hessian_tensor_product

    from ckpt_transform import checkpointed_for

    steps, box = 6, {}

    def f(x):
        y, box["stats"] = checkpointed_for(
            lambda x, i: anp.sin(x) * 1.1, x, steps, Revolve(2), return_stats=True
        )
        return anp.sum(y**2)

    hessian_tensor_product(f)(anp.array([0.3, -0.2]), anp.array([1.0, 2.0]))
    lifted = box["stats"].second_order[0]
    assert lifted.sweep == "tangent, second-order adjoint"
    text = timeline(Revolve(2), steps, second_order=True)
    first = timeline(Revolve(2), steps)
    assert "tangent sweep ends" in text and "tangent" not in first
    assert "| tangent sweep ends, second-order adjoint sweep starts" in text
    counts = validate_schedule(Revolve(2).schedule(steps), steps)
    assert counts.evaluations == lifted.evaluations
    assert f"taped lifted step evaluations (record)     {lifted.recorded_steps}" in text
    assert f"total lifted step evaluations              {lifted.evaluations}" in text
    assert f"2 of 2   ((state, tangent) pairs: {2 * lifted.max_snapshots} states)" in text
    row = f"tangent, second-order adjoint: {lifted.evaluations} lifted evaluations, 2 (state, "
    assert re.search(rf"^second_order\[0\] +{re.escape(row)}", str(box["stats"]), re.M)


def test_second_order_view_shows_the_plan_of_the_pairs():
    """With Revolve(second_order_snapshots=k) the second-order view is Revolve(k)'s plan."""
    text = timeline(Revolve(5, second_order_snapshots=2), 6, second_order=True)
    assert text.splitlines()[0].startswith("Revolve(snapshots=2) over 6 steps")
    assert text == timeline(Revolve(2), 6, second_order=True)
    assert timeline(Revolve(5, second_order_snapshots=2), 6).startswith("Revolve(snapshots=5, ")
