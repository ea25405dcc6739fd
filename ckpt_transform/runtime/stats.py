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
    sweep
        Which sweeps this run made: ``"forward"`` (and ``"forward, reverse"``) for the loop
        itself; ``"tangent"`` (and ``"tangent, second-order adjoint"``) for a run of the lifted
        loop over (state, tangent) pairs that a second-order derivative makes.
    second_order
        The `RunStats` of every lifted-loop run made for a derivative of this loop's derivative
        (``hessian``, ``make_jvp(grad(f))``, ...), in the order they ran.
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
    sweep: str = "forward"
    second_order: list[RunStats] = field(default_factory=list, repr=False)
    # live bookkeeping, not part of the report
    snapshots_now: int = field(default=0, repr=False)
    bytes_now: int = field(default=0, repr=False)
    taped_now: int = field(default=0, repr=False)

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

    def _stored(self, nbytes: int) -> None:
        self.snapshots_now += 1
        self.bytes_now += nbytes
        self.max_snapshots = max(self.max_snapshots, self.snapshots_now)
        self.checkpoint_bytes_peak = max(self.checkpoint_bytes_peak, self.bytes_now)

    def _freed(self, nbytes: int) -> None:
        self.snapshots_now -= 1
        self.bytes_now -= nbytes

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
        if self.second_order:
            rows.append(("second-order runs", len(self.second_order)))
            rows.append(("second-order evaluations", self.second_order_evaluations))
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
