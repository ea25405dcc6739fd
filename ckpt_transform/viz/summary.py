"""What a schedule costs, next to the optimum: the figures the table, the picture and ``cost`` show.

Every figure here comes from replaying the scheme's own plan through the mock executor
(`ckpt_transform.schemes.validate.validate_schedule`), never from a formula the scheme is supposed
to follow; the optimum beside it is the closed form of binomial checkpointing
(`ckpt_transform.schemes.cost.revolve_evaluations`, Griewank & Walther, ACM TOMS 26(1), 2000,
https://doi.org/10.1145/347837.347846), so a teacher sees how far each scheme is from the proven
minimum for the same number of snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ckpt_transform._checks import check_int, typechecked
from ckpt_transform.runtime.stats import replay_counts
from ckpt_transform.schemes.actions import Action
from ckpt_transform.schemes.base import Scheme
from ckpt_transform.schemes.cost import revolve_evaluations
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.schemes.validate import ScheduleCounts, validate_schedule

__all__ = [
    "MAX_STEPS",
    "ScheduleTotals",
    "compare_schemes",
    "cost_table",
    "schedule_totals",
]

#: The longest loop these views replay. A schedule is replayed action by action (Revolve over
#: 100 000 steps with 10 snapshots is about half a million actions, a few seconds).
MAX_STEPS = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleTotals:
    """The counts of one scheme's schedule over ``steps`` steps, and the optimum beside them.

    Attributes
    ----------
    scheme
        The scheme's ``repr`` (``"Revolve(snapshots=3)"``).
    steps
        T, the loop's length.
    counts
        What the replayed schedule did (`ScheduleCounts`: passive and taped evaluations, the most
        snapshots and taped steps held at once, the number of actions).
    snapshots
        The memory budget the optimum is computed for (None when there is none to compare with,
        as for `StoreAll` with no budget given).
    optimum
        The fewest step evaluations with ``snapshots`` snapshots and one taped step held at a time:
        binomial checkpointing's ``P(T, s) + T`` (None when ``snapshots`` is None).
    online_bound
        For an online scheme, the fewest evaluations any plan that does not know T in advance can
        reach with the same snapshots (None otherwise, or when not available).
    peak_states
        The most states held at once: checkpoints plus taped states (one per taped step) held at
        the same moment; what a run of this schedule reports as ``stats.peak_states``.
    """

    scheme: str
    steps: int
    counts: ScheduleCounts
    snapshots: int | None
    optimum: int | None
    online_bound: int | None = None
    peak_states: int = 0

    @property
    def evaluations(self) -> int:
        """Total step evaluations, passive plus taped."""
        return self.counts.evaluations

    @property
    def recomputation(self) -> float:
        """Step evaluations per step of the loop (1.0: no step is evaluated twice)."""
        return self.counts.evaluations / self.steps if self.steps else 0.0


@typechecked
def schedule_totals(
    scheme: Scheme,
    steps: int,
    *,
    snapshots: int | None = None,
    actions: Sequence[Action] | None = None,
) -> ScheduleTotals:
    """Replay ``scheme``'s schedule over ``steps`` steps and put its counts beside the optimum.

    Parameters
    ----------
    scheme
        Any scheme (`Revolve`, `Periodic`, `OnlineR2`, `StoreAll` or one of your own).
    steps
        T >= 0, the loop's length.
    snapshots
        The budget to compare with. When None: the scheme's own ``snapshots`` if it has one,
        else the most checkpoints its schedule held (if any).
    actions
        The schedule, when already made (``list(scheme.schedule(steps))``); made here otherwise.

    Returns
    -------
    ScheduleTotals

    Raises
    ------
    ScheduleViolation
        When the schedule breaks the action contract (a scheme of your own, most likely).

    References
    ----------
    A. Griewank and A. Walther, "Algorithm 799: Revolve", ACM Trans. Math. Softw. 26(1), 19-45,
    2000. https://doi.org/10.1145/347837.347846 (the optimum).
    """
    _check_steps(steps)
    if actions is None:
        actions = list(scheme.schedule(steps))
    counts = validate_schedule(actions, steps)
    if snapshots is None:
        own = getattr(scheme, "snapshots", None)
        if isinstance(own, int) and not isinstance(own, bool) and own >= 1:
            snapshots = own
        elif counts.max_snapshots >= 1:
            snapshots = counts.max_snapshots
    optimum = revolve_evaluations(steps, snapshots) if snapshots is not None else None
    bound = None
    if getattr(scheme, "online", False) and snapshots is not None:
        try:
            from ckpt_transform.schemes.online_r2 import online_lower_bound
        except ImportError:  # pragma: no cover - depends on the installed version
            pass
        else:
            bound = online_lower_bound(steps, snapshots)
    return ScheduleTotals(
        scheme=repr(scheme),
        steps=steps,
        counts=counts,
        snapshots=snapshots,
        optimum=optimum,
        online_bound=bound,
        peak_states=replay_counts(actions, steps).peak_states,
    )


@typechecked
def compare_schemes(steps: int, snapshots: int) -> list[ScheduleTotals]:
    """The totals of every scheme for one loop and one budget, in the order of `cost_table`.

    Revolve(snapshots), Periodic(snapshots=snapshots), OnlineR2(snapshots) and
    StoreAll(), each replayed over ``steps`` steps and compared with the optimum for
    ``snapshots`` snapshots.

    Parameters
    ----------
    steps
        T >= 1.
    snapshots
        s >= 1, the loop's input state included.

    Returns
    -------
    list of ScheduleTotals
    """
    _check_steps(steps)
    check_int("snapshots", snapshots, 1)
    schemes = [Revolve(snapshots), Periodic(snapshots), OnlineR2(snapshots), StoreAll()]
    return [schedule_totals(s, steps, snapshots=snapshots) for s in schemes]


@typechecked
def cost_table(steps: int, snapshots: int) -> str:
    """A plain-text table comparing the schemes for ``steps`` steps and ``snapshots`` snapshots.

    Columns: step evaluations (passive + taped), the recomputation factor (evaluations / steps),
    the ratio to the optimum, the most checkpoints and taped steps held at once, and the peak
    memory in states (checkpoints plus taped states held at the same moment). Below it, the
    optimum: binomial checkpointing's ``P(T, s) + T`` (Griewank & Walther, ACM TOMS 26(1), 2000,
    https://doi.org/10.1145/347837.347846).

    Parameters
    ----------
    steps
        T >= 1.
    snapshots
        s >= 1, the loop's input state included.

    Returns
    -------
    str
        The table, lines joined by newlines, with no trailing newline.
    """
    rows = compare_schemes(steps, snapshots)
    optimum = revolve_evaluations(steps, snapshots)
    header = (
        "scheme",
        "passive",
        "taped",
        "evaluations",
        "recomputation",
        "vs optimum",
        "snapshots",
        "taped held",
        "peak memory (states)",
    )
    body = [
        (
            r.scheme,
            str(r.counts.forward_steps),
            str(r.counts.recorded_steps),
            str(r.evaluations),
            f"{r.recomputation:.2f}",
            f"{r.evaluations / optimum:.3f}",
            str(r.counts.max_snapshots),
            str(r.counts.max_taped_steps),
            str(r.peak_states),
        )
        for r in rows
    ]
    widths = [max(len(line[k]) for line in [header, *body]) for k in range(len(header))]

    def fmt(line: tuple[str, ...]) -> str:
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(line[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    out = [f"{steps} steps, {snapshots} snapshots (the loop's input state counts as one)", ""]
    out += [fmt(header), fmt(tuple("-" * w for w in widths))]
    out += [fmt(line) for line in body]
    out += [
        "",
        f"optimum: {optimum} evaluations ({optimum / steps:.2f} per step) with {snapshots} "
        f"snapshots and one taped step held at a time:",
        "  binomial checkpointing's proven minimum P(T, s) + T (Griewank & Walther 2000).",
        "passive: steps run without a tape; taped: steps run with one (each step once);",
        "recomputation: evaluations / steps; snapshots, taped held: the most held at once;",
        "peak memory (states): checkpoints plus taped states held at the same moment (plain",
        f"  autograd holds {steps}); a scheme under 1.000 vs optimum pays for it here.",
    ]
    online = [r for r in rows if r.online_bound is not None]
    for r in online:
        out.append(
            f"{r.scheme} plans without knowing T: the least any such plan can do here is "
            f"{r.online_bound}."
        )
    return "\n".join(out)


def _check_steps(steps: int) -> None:
    check_int("steps", steps, 0)
    if steps > MAX_STEPS:
        raise ValueError(
            f"steps must be at most {MAX_STEPS} (the schedule is replayed action by action), "
            f"got {steps}"
        )
