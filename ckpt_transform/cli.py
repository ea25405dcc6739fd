"""The ``ckpt-transform`` command (also ``python -m ckpt_transform``).

Subcommands:

* ``schedule SCHEME --steps N [--snapshots S] [--period P] [--plot FILE] [--second-order]``: a
  scheme's actions with an ASCII timeline and the totals against the optimum; ``--plot`` draws
  them; ``--second-order`` labels them as the tangent and second-order adjoint sweeps.
* ``cost --steps N --snapshots S``: every scheme's cost for one loop and one memory budget.
* ``show FILE.py:FUNCTION [--diff | --side-by-side]``: the source `checkpoint_struct` generated.

Each prints through the Python API of `ckpt_transform.viz`. Bad arguments end with exit code 2 and
one line saying what was given and what is allowed; a file that fails to import ends with 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ckpt_transform.schemes.base import Scheme
from ckpt_transform.schemes.online_r2 import OnlineR2
from ckpt_transform.schemes.periodic import Periodic
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll

__all__ = ["build_parser", "main"]

PROG = "ckpt-transform"
SCHEMES = ("revolve", "periodic", "online", "storeall", "multilevel")
DEFAULT_MAX_ROWS = 150


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover - Python >= 3.8 always has it
        return "unknown"
    try:
        return version("ckpt_transform")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _int_in(what: str, least: int, most: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in [least, most], with a message naming ``what``."""
    allowed = f"an integer >= {least}" + (f" and <= {most}" if most is not None else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}, got {text!r}") from None
        if value < least or (most is not None and value > most):
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}, got {value}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ckpt-transform`` (every subcommand has ``--help``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Look at checkpointing schedules and at the code checkpoint_struct generates. "
            "Snapshots count the loop's input state, as Revolve does."
        ),
        epilog=f"Run '{PROG} COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_schedule(commands)
    _add_cost(commands)
    _add_show(commands)
    return parser


def _steps() -> Callable[[str], int]:
    from ckpt_transform.viz.summary import MAX_STEPS

    return _int_in("the number of steps", 1, MAX_STEPS)


def _add_schedule(commands: Any) -> None:
    from ckpt_transform.viz.plot import SUFFIXES

    sched = commands.add_parser(
        "schedule",
        help="a scheme's actions with an ASCII timeline, and its totals against the optimum",
        description=(
            "Print one row per action of a scheme's plan for a loop of N steps, with a "
            "timeline over the steps 0..N (passive, taped and reversed steps, checkpoints "
            "stored, restored and freed), then the totals against binomial checkpointing's "
            "proven optimum for the same snapshots. Long loops are compressed: one column "
            "then holds several steps, and the header says how many."
        ),
    )
    sched.add_argument("scheme", choices=SCHEMES, metavar="SCHEME", help=" | ".join(SCHEMES))
    sched.add_argument("--steps", type=_steps(), required=True, metavar="N", help="loop length")
    sched.add_argument(
        "--snapshots",
        type=_int_in("the number of snapshots", 1),
        metavar="S",
        help="states held at once, the input's included (needed for revolve and online; "
        "for periodic give it or --period; for storeall, the budget to compare with)",
    )
    sched.add_argument(
        "--period",
        type=_int_in("the period", 1),
        metavar="P",
        help="periodic only: a checkpoint every P steps (instead of --snapshots)",
    )
    sched.add_argument(
        "--plot",
        metavar="FILE",
        help=f"also draw the schedule with matplotlib into FILE ({', '.join(SUFFIXES)})",
    )
    sched.add_argument(
        "--max-rows",
        type=_int_in("the number of rows", 0),
        default=DEFAULT_MAX_ROWS,
        metavar="R",
        help=f"show at most R action rows, the first and the last (default {DEFAULT_MAX_ROWS}; "
        f"0: all)",
    )
    sched.add_argument(
        "--width",
        type=_int_in("the timeline width", 8),
        default=64,
        metavar="W",
        help="columns of the timeline (default 64); longer loops share columns",
    )
    sched.add_argument(
        "--second-order",
        action="store_true",
        help="label the plan as a second-order derivative runs it over (state, tangent) pairs: "
        "the tangent sweep, then the second-order adjoint sweep",
    )
    _add_multilevel_options(sched)
    sched.set_defaults(run=_run_schedule, parser=sched)


def _add_cost(commands: Any) -> None:
    cost = commands.add_parser(
        "cost",
        help="compare the schemes: evaluations, recomputation, peak memory, the optimum",
        description=(
            "Replay Revolve, Periodic, OnlineR2 and StoreAll over a loop of N steps with S "
            "snapshots and compare their step evaluations, the recomputation factor "
            "(evaluations / N), the checkpoints and taped steps they hold, their peak memory "
            "in states (checkpoints plus taped states held at once), and the optimum."
        ),
    )
    cost.add_argument("--steps", type=_steps(), required=True, metavar="N", help="loop length")
    cost.add_argument(
        "--snapshots",
        type=_int_in("the number of snapshots", 1),
        required=True,
        metavar="S",
        help="states held at once, the input's included",
    )
    cost.set_defaults(run=_run_cost, parser=cost)


def _add_show(commands: Any) -> None:
    show = commands.add_parser(
        "show",
        help="print the source checkpoint_struct generated for a function, or its diff",
        description=(
            "Import FILE.py as a module (its __main__ block does not run), take FUNCTION "
            "(decorated with checkpoint_struct) and print its generated source, highlighted on "
            "a terminal when pygments is installed; or set it against the original source."
        ),
    )
    show.add_argument("target", metavar="FILE.py:FUNCTION", help="e.g. examples/heat.py:sumheat")
    how = show.add_mutually_exclusive_group()
    how.add_argument("--diff", action="store_true", help="a unified diff from the original source")
    how.add_argument(
        "--side-by-side",
        action="store_true",
        help="the original and the generated source in two columns, statements aligned",
    )
    show.add_argument("--no-color", action="store_true", help="never highlight")
    show.add_argument(
        "--width",
        type=_int_in("the width", 40),
        metavar="W",
        help="total width for --side-by-side (default: the terminal's)",
    )
    show.set_defaults(run=_run_show, parser=show)


def _add_multilevel_options(sched: argparse.ArgumentParser) -> None:
    """``--memory``, ``--disk``, ``--write``, ``--read``: the budgets and costs of multilevel."""
    group = sched.add_argument_group("multilevel (two levels: memory + disk)")
    group.add_argument(
        "--memory",
        type=_int_in("the memory budget", 0),
        metavar="M",
        help="states held in memory at once (the input's included)",
    )
    group.add_argument(
        "--disk",
        type=_int_in("the disk budget", 0),
        metavar="D",
        help="states held on disk at once",
    )
    for name in ("write", "read"):
        group.add_argument(
            f"--{name}",
            type=float,
            default=2.0,
            metavar="C",
            help=f"cost of a disk {name}, in passive steps (default 2)",
        )


def _multilevel(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Scheme:
    from ckpt_transform.schemes.multilevel import Multilevel

    if args.memory is None or args.disk is None:
        parser.error("multilevel needs --memory M and --disk D (states held in each level)")
    if args.memory + args.disk < 1:
        parser.error(f"multilevel needs --memory + --disk >= 1, got {args.memory} + {args.disk}")
    for name in ("write", "read"):
        if not getattr(args, name) >= 0:
            parser.error(f"--{name} must be a number >= 0, got {getattr(args, name)}")
    return Multilevel(args.memory, args.disk, costs={"write": args.write, "read": args.read})


def _scheme(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Scheme:
    if getattr(args, "scheme", None) == "multilevel":
        return _multilevel(args, parser)
    name, s, p = args.scheme, args.snapshots, args.period
    if p is not None and name != "periodic":
        parser.error(f"--period is for the periodic scheme only, got --period {p} with {name}")
    if name in ("revolve", "online") and s is None:
        parser.error(f"{name} needs --snapshots S (an integer >= 1: states held at once)")
    if name == "periodic":
        if (s is None) == (p is None):
            given = "neither" if s is None else f"both (--snapshots {s}, --period {p})"
            parser.error(f"periodic takes exactly one of --snapshots S and --period P, got {given}")
        return Periodic(s) if p is None else Periodic(period=p)
    if name == "revolve":
        return Revolve(s)
    if name == "online":
        return OnlineR2(s)
    return StoreAll()


def _run_schedule(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ckpt_transform.viz.ascii import timeline
    from ckpt_transform.viz.plot import SUFFIXES

    scheme = _scheme(args, parser)
    if args.plot is not None:
        suffix = os.path.splitext(args.plot)[1].lower()
        if suffix not in SUFFIXES:
            parser.error(
                f"--plot FILE must end in {', '.join(SUFFIXES)} (the picture's format), "
                f"got {args.plot!r}"
            )
        folder = os.path.dirname(args.plot) or "."
        if not os.path.isdir(folder):
            parser.error(f"--plot {args.plot!r}: the folder {folder!r} does not exist")
    budget = args.snapshots if args.scheme == "storeall" else None
    if args.second_order:  # the lifted loop's plan, which the actions below must be
        scheme = scheme.second_order()
    actions = list(scheme.schedule(args.steps))
    print(
        timeline(
            scheme,
            args.steps,
            width=args.width,
            max_rows=args.max_rows,
            snapshots=budget,
            actions=actions,
            second_order=args.second_order,
        )
    )
    if args.max_rows and args.max_rows < len(actions):
        print(f"\n(--max-rows {args.max_rows}: pass --max-rows 0 to see every action)")
    if args.plot is not None:
        try:
            from ckpt_transform.viz.plot import plot_schedule

            plot_schedule(
                scheme,
                args.steps,
                path=args.plot,
                snapshots=budget,
                actions=actions,
                second_order=args.second_order,
            )
        except ImportError as error:
            print(f"{PROG} schedule: error: {error}", file=sys.stderr)
            return 1
        print(f"\npicture written to {args.plot}")
    return 0


def _run_cost(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ckpt_transform.viz.summary import cost_table

    print(cost_table(args.steps, args.snapshots))
    return 0


def _run_show(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ckpt_transform.viz.source import (
        SourceError,
        SourceImportError,
        color_default,
        highlight,
        load_function,
        side_by_side,
        unified_diff,
    )

    if args.width is not None and not args.side_by_side:
        parser.error(f"--width is for --side-by-side only, got --width {args.width}")
    try:
        function = load_function(args.target)
    except SourceImportError as error:
        print(f"{PROG} show: error: {error}", file=sys.stderr)
        return 1
    except SourceError as error:
        parser.error(str(error))
    color = not args.no_color and color_default(sys.stdout)
    if args.diff:
        print(unified_diff(function, color=color))
    elif args.side_by_side:
        print(side_by_side(function, width=args.width))
    else:
        print(highlight(function.generated_source.rstrip("\n"), color=color))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ckpt-transform`` with ``argv`` (``sys.argv[1:]`` when None); return the exit code.

    Parameters
    ----------
    argv
        The arguments, without the program name.

    Returns
    -------
    int
        0 on success, 2 for bad arguments (after a one-line message on stderr), 1 when a file
        given to ``show`` fails to import or matplotlib is missing for ``--plot``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return _code(exit_)
    try:
        return args.run(args, args.parser)
    except SystemExit as exit_:  # parser.error inside a command
        return _code(exit_)
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _code(exit_: SystemExit) -> int:
    code = exit_.code
    if code is None:
        return 0
    return code if isinstance(code, int) else 1
