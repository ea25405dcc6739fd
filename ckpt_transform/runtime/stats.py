"""What a run of a checkpointed loop did: counts for users, tests, verbose output and pictures."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RunStats"]


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
    reverse_sweeps
        How many times the reverse sweep ran (``jacobian`` runs it once per output).
    differentiated
        False when the loop ran without tracing (a plain loop: no checkpoints, no tape).
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
    reverse_sweeps: int = 0
    differentiated: bool = False
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

    def _stored(self, nbytes: int, level: str = "memory") -> None:
        self.snapshots_now += 1
        self.bytes_now += nbytes
        self.max_snapshots = max(self.max_snapshots, self.snapshots_now)
        self.checkpoint_bytes_peak = max(self.checkpoint_bytes_peak, self.bytes_now)
        now = self.level_now.setdefault(level, [0, 0])
        now[0] += 1
        now[1] += nbytes
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
        setattr(self, f"{level}_reads", getattr(self, f"{level}_reads") + 1)

    def _taped(self, n: int) -> None:
        self.taped_now += n
        self.recorded_steps += n
        self.max_taped_steps = max(self.max_taped_steps, self.taped_now)

    def __str__(self) -> str:
        rows = [
            ("scheme", self.scheme),
            ("storage", self.storage),
            ("steps", self.steps),
            ("forward (passive) evaluations", self.forward_steps),
            ("recorded (taped) evaluations", self.recorded_steps),
            ("total evaluations", self.evaluations),
            ("snapshots held at most", self.max_snapshots),
            ("checkpoint bytes at most", self.checkpoint_bytes_peak),
            ("taped steps held at most", self.max_taped_steps),
            ("reverse sweeps", self.reverse_sweeps),
        ]
        if self.costs is not None:  # a two-level run: what each level did
            rows += [
                (f"{level} {what}", getattr(self, f"{level}_{attr}"))
                for level in ("memory", "disk")
                for what, attr in (
                    ("writes", "writes"),
                    ("reads", "reads"),
                    ("bytes at most", "bytes_peak"),
                    ("snapshots at most", "max_snapshots"),
                )
            ]
            rows.append(("I/O costs (in steps)", self.costs))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
