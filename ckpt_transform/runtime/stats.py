"""What a run of a checkpointed loop did: counts for users, tests, verbose output and pictures."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields

from ckpt_transform.schemes.actions import Action, Advance, Free, Record, Reverse, Store

__all__ = ["RunStats", "replay_counts"]


@dataclass
class RunStats:
    """Counts of one run of one checkpointed loop (updated live, the reverse sweep included).

    Attributes
    ----------
    steps
        Iterations of the loop (the length T).
    forward_steps
        Step evaluations without a tape (the primal run's and every recomputation's).
    recorded_steps
        Step evaluations taped for a VJP.
    max_snapshots
        Most checkpoints held at once (the loop's input counts when the scheme stores it).
    checkpoint_bytes_peak
        Most bytes held in checkpoints at once.
    max_taped_steps
        Most steps whose tape was held at once.
    peak_states
        Most states held in memory at once: checkpoints plus the states held by tapes (a taped
        step keeps its input state), at the same moment. This is what the scheme actually holds:
        `Periodic` holds few checkpoints but a whole period of taped steps.
    reverse_sweeps
        How many times the reverse sweep ran (``jacobian`` runs it once per output).
    differentiated
        False when the loop ran without tracing (a plain loop: no checkpoints, no tape).
    sweep
        Which sweeps this run made: ``"forward"`` (and ``"forward, reverse"``) for the loop
        itself; ``"tangent"`` (and ``"tangent, second-order adjoint"``) for a run of the lifted
        loop over (state, tangent) pairs that a second-order derivative makes.
    second_order
        The `RunStats` of every lifted-loop run made for a derivative of this loop's derivative
        (``hessian``, ``make_jvp(grad(f))``, ...), in the order they ran.
    memory_writes, memory_reads, disk_writes, disk_reads
        Checkpoints stored and restored in each storage level (every single-level scheme uses
        the memory level, whatever its storage).
    memory_bytes_peak, disk_bytes_peak, memory_max_snapshots, disk_max_snapshots
        Most bytes and most checkpoints held at once in each level.
    costs
        The I/O costs a `Multilevel` plan used, in units of one passive step (``"measured":
        True`` when the driver timed them on this run); None for other schemes.
    """

    scheme: str = ""
    storage: str = ""
    steps: int = 0
    forward_steps: int = 0
    recorded_steps: int = 0
    max_snapshots: int = 0
    checkpoint_bytes_peak: int = 0
    max_taped_steps: int = 0
    peak_states: int = 0
    reverse_sweeps: int = 0
    differentiated: bool = False
    sweep: str = "forward"
    second_order: list[RunStats] = field(default_factory=list, repr=False)
    memory_writes: int = 0
    memory_reads: int = 0
    memory_bytes_peak: int = 0
    memory_max_snapshots: int = 0
    disk_writes: int = 0
    disk_reads: int = 0
    disk_bytes_peak: int = 0
    disk_max_snapshots: int = 0
    costs: dict | None = None
    # live bookkeeping, not part of the report
    snapshots_now: int = field(default=0, repr=False)
    bytes_now: int = field(default=0, repr=False)
    taped_now: int = field(default=0, repr=False)
    level_now: dict = field(default_factory=dict, repr=False)  # level -> [snapshots, bytes]

    @property
    def evaluations(self) -> int:
        """Total primal step evaluations, passive plus taped."""
        return self.forward_steps + self.recorded_steps

    @property
    def second_order_evaluations(self) -> int:
        """Lifted step evaluations of every second-order run (and of theirs, recursively)."""
        return sum(s.evaluations + s.second_order_evaluations for s in self.second_order)

    def _swept(self, name: str) -> None:
        if name not in self.sweep.split(", "):
            self.sweep = f"{self.sweep}, {name}"

    def _stored(self, nbytes: int, level: str = "memory") -> None:
        self.snapshots_now += 1
        self.bytes_now += nbytes
        if self.snapshots_now > self.max_snapshots:
            self.max_snapshots = self.snapshots_now
        if self.bytes_now > self.checkpoint_bytes_peak:
            self.checkpoint_bytes_peak = self.bytes_now
        self._held()
        now = self.level_now.get(level)
        if now is None:
            now = self.level_now[level] = [0, 0]
        now[0] += 1
        now[1] += nbytes
        if level == "memory":  # once per checkpoint: the common level without name lookups
            self.memory_writes += 1
            if now[1] > self.memory_bytes_peak:
                self.memory_bytes_peak = now[1]
            if now[0] > self.memory_max_snapshots:
                self.memory_max_snapshots = now[0]
            return
        setattr(self, f"{level}_writes", getattr(self, f"{level}_writes") + 1)
        peak, most = f"{level}_bytes_peak", f"{level}_max_snapshots"
        setattr(self, peak, max(getattr(self, peak), now[1]))
        setattr(self, most, max(getattr(self, most), now[0]))

    def _freed(self, nbytes: int, level: str = "memory") -> None:
        self.snapshots_now -= 1
        self.bytes_now -= nbytes
        now = self.level_now[level]
        now[0] -= 1
        now[1] -= nbytes

    def _read(self, level: str = "memory") -> None:
        if level == "memory":
            self.memory_reads += 1
        else:
            setattr(self, f"{level}_reads", getattr(self, f"{level}_reads") + 1)

    def _taped(self, n: int) -> None:
        self.taped_now += n
        self.recorded_steps += n
        self.max_taped_steps = max(self.max_taped_steps, self.taped_now)
        self._held()

    def _untaped(self, n: int) -> None:
        self.taped_now -= n

    def _held(self) -> None:
        # Checkpoints and tapes only grow in _stored and _taped, so the peak is reached there.
        self.peak_states = max(self.peak_states, self.snapshots_now + self.taped_now)

    def __str__(self) -> str:
        """One line per reported field, labelled with its attribute name (what you type to read it).

        ``evaluations`` (a property) follows ``recorded_steps``; fields added later print too.
        """
        rows: list[tuple[str, object]] = []
        for f in fields(self):
            if not f.repr or (self.costs is None and f.name in _LEVEL_FIELDS):
                continue  # per-level figures are printed for a two-level run only
            rows.append((f.name, getattr(self, f.name)))
            if f.name == "recorded_steps":
                rows.append(("evaluations", self.evaluations))
        if self.second_order:  # a derivative of this loop's derivative ran: its lifted loops
            rows.append(("second_order_evaluations", self.second_order_evaluations))
            for k, run in enumerate(self.second_order):  # which sweeps each lifted run made
                rows.append(
                    (
                        f"second_order[{k}]",
                        f"{run.sweep}: {run.evaluations} lifted evaluations, "
                        f"{run.max_snapshots} (state, tangent) checkpoints",
                    )
                )
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# Per-level fields (`Multilevel`), printed when a run had levels.
_LEVEL_FIELDS = frozenset(
    f"{level}_{what}"
    for level in ("memory", "disk")
    for what in ("writes", "reads", "bytes_peak", "max_snapshots")
) | {"costs"}


def replay_counts(actions: Iterable[Action], steps: int = 0) -> RunStats:
    """The counts a run of ``actions`` reports, without running a step (bytes are not known: 0).

    The driver's own bookkeeping (the same `RunStats` methods at the same actions), so the
    ``peak_states``, ``max_snapshots`` and evaluations of a schedule here are those a run of it
    reports. The actions are taken as valid (`ckpt_transform.schemes.validate.validate_schedule`
    checks them).

    Parameters
    ----------
    actions
        A schedule of known length, as ``scheme.schedule(steps)`` yields it.
    steps
        The loop's length, reported as ``steps``.

    Returns
    -------
    RunStats

    Raises
    ------
    ValueError
        For an open-ended span (``n1`` None), which has no step count.
    """
    stats = RunStats(steps=steps)
    for action in actions:
        if isinstance(action, Store):
            stats._stored(0)
        elif isinstance(action, Free):
            stats._freed(0)
        elif isinstance(action, (Advance, Record, Reverse)):
            if action.n1 is None:
                raise ValueError(f"{action}: an open-ended span cannot be replayed")
            n = action.n1 - action.n0
            if isinstance(action, Advance):
                stats.forward_steps += n
            elif isinstance(action, Record):
                stats._taped(n)
            else:
                stats._untaped(n)
    return stats
