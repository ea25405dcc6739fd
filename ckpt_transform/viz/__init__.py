"""Read-only views for people: schedules as text and pictures, generated source and its diff.

* `timeline` -- a scheme's actions as a table with an ASCII timeline, and the totals against the
  optimum.
* `plot_schedule` -- the same schedule as a matplotlib picture (states across, time down).
* `schedule_totals`, `compare_schemes`, `cost_table` -- what schedules cost, replayed through the
  mock executor, beside binomial checkpointing's proven minimum.
* `load_function`, `highlight`, `unified_diff`, `side_by_side` -- what `checkpoint_struct` made of
  a function.

The ``ckpt-transform`` command (`ckpt_transform.cli`) prints these.
"""

from ckpt_transform.viz.ascii import LEGEND, format_totals, timeline
from ckpt_transform.viz.plot import plot_schedule
from ckpt_transform.viz.source import (
    SourceError,
    SourceImportError,
    highlight,
    load_function,
    side_by_side,
    unified_diff,
)
from ckpt_transform.viz.summary import (
    ScheduleTotals,
    compare_schemes,
    cost_table,
    schedule_totals,
)

__all__ = [
    "LEGEND",
    "ScheduleTotals",
    "SourceError",
    "SourceImportError",
    "compare_schemes",
    "cost_table",
    "format_totals",
    "highlight",
    "load_function",
    "plot_schedule",
    "schedule_totals",
    "side_by_side",
    "timeline",
    "unified_diff",
]
