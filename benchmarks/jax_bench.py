"""The JAX backend against equinox's checkpointed while loop and a jitted lax.scan, in one run.

Every case is ``jax.jit(jax.grad(loss))`` compiled once (compile time reported on its own), then
run ``--repeats`` times (the median is reported). Ratios are against equinox's
``eqx.internal.while_loop(..., kind="checkpointed", checkpoints=s)`` in the same process.

* heat: ``x <- x + c(x)·mask·(roll(x, 1) - 2x + roll(x, -1))`` with a conductivity
  ``c(x) = 0.5·(1 - x²/2)`` that depends on the state, loss ``sum(x_T)``. (With the constant
  0.5 of the autograd benchmarks the step is linear: its VJP never reads the states, and XLA
  removes every recomputation, for us as for a scan, which would measure nothing.) Ours is
  ``checkpointed_for(step, x, T, Revolve(s))``; the scan stores every state.
* host: the heat loop at n = 10^5, T = 200, Revolve(4), its checkpoints in the device buffer
  (the baseline of this table), in host memory (``storage=ArrayStorage()``) and in an HDF5 file
  (``storage=HDF5Storage()``, a temporary file written behind in a thread), moved through
  ``io_callback``; the three programs' runs interleaved, round by round.
* ode: an adaptive explicit Euler loop that ends at t = 1 (a while loop, length found as it runs);
  ours is ``checkpointed_while(..., OnlineR2(s), max_steps=...)``.

Evaluations (passive + taped step evaluations, the backward pass's recomputations included) are
counted by a host callback in the step for equinox and by our run statistics for ours. Device
memory is ``compiled.memory_analysis()``: temporaries plus output, in states of the loop.

    PYTHONPATH=. python benchmarks/jax_bench.py            # the table of docs/benchmarks.md
    PYTHONPATH=. python benchmarks/jax_bench.py --quick    # a small smoke run
    PYTHONPATH=. python benchmarks/jax_bench.py --only host --repeats 20   # device, host, HDF5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ckpt_transform import (
    ArrayStorage,
    HDF5Storage,
    OnlineR2,
    Revolve,
    checkpointed_for,
    checkpointed_while,
)

jax.config.update("jax_enable_x64", True)

LAMBDA = 0.5


def heat_step(n: int) -> Callable[[Any], Any]:
    mask = np.ones(n)
    mask[0] = mask[-1] = 0.0
    mask = jnp.asarray(mask)

    def step(x: Any) -> Any:
        c = LAMBDA * (1.0 - 0.5 * x**2)
        return x + c * mask * (jnp.roll(x, 1) - 2 * x + jnp.roll(x, -1))

    return step


def stats_to(counter: list | None) -> Callable[[Any], None] | None:
    """Our runs append their `RunStats` to ``counter`` (their evaluations are read from it)."""
    return None if counter is None else counter.append


def heat_losses(n: int, steps: int, s: int, counter: list[int] | None = None) -> dict:
    """loss(x) for each contender; with ``counter`` the step bumps it (for evaluation counts)."""
    import equinox as eqx

    plain = heat_step(n)

    def step(x: Any) -> Any:
        if counter is not None:
            jax.debug.callback(lambda: counter.__setitem__(0, counter[0] + 1))
        return plain(x)

    def ours(x: Any) -> Any:
        report = stats_to(counter)
        return checkpointed_for(lambda x, i: plain(x), x, steps, Revolve(s), report=report).sum()

    def equinox(x: Any) -> Any:
        out = eqx.internal.while_loop(
            lambda c: c[0] < steps,
            lambda c: (c[0] + 1, step(c[1])),
            (0, x),
            max_steps=steps,
            kind="checkpointed",
            checkpoints=s,
        )
        return out[1].sum()

    def scan(x: Any) -> Any:
        out, _ = jax.lax.scan(lambda c, _: (step(c), None), x, None, length=steps)
        return out.sum()

    return {"ours Revolve": ours, "equinox": equinox, "lax.scan store-all": scan}


def host_losses(n: int, steps: int, s: int, counter: list[int] | None = None) -> dict:
    """loss(x) of our Revolve(s) with its checkpoints on the device, in host memory, in HDF5."""
    plain = heat_step(n)
    where = {
        "device buffer": None,
        "host memory": ArrayStorage(),
        "HDF5 file": HDF5Storage(),
    }

    def loss(storage: Any) -> Callable[[Any], Any]:
        def run(x: Any) -> Any:
            scheme = Revolve(s, storage=storage)
            report = stats_to(counter)
            return checkpointed_for(lambda x, i: plain(x), x, steps, scheme, report=report).sum()

        return run

    return {name: loss(storage) for name, storage in where.items()}


def ode_losses(n: int, s: int, max_steps: int, counter: list[int] | None = None) -> dict:
    """An adaptive Euler loop on dx/dt = -k·x + sin(x), stepping until t = 1."""
    import equinox as eqx

    k = jnp.linspace(0.5, 3.0, n)

    def plain(c: Any) -> Any:
        t, x = c
        f = -k * x + jnp.sin(x)
        h = jnp.minimum(0.02 / (1.0 + jnp.max(jnp.abs(f))), 1.0 - t)
        return t + h, x + h * f

    def step(c: Any) -> Any:
        if counter is not None:
            jax.debug.callback(lambda: counter.__setitem__(0, counter[0] + 1))
        return plain(c)

    def cond(c: Any) -> Any:
        return c[0] < 1.0 - 1e-12

    def ours(x: Any) -> Any:
        out = checkpointed_while(
            cond,
            lambda c, i: plain(c),
            (jnp.asarray(0.0), x),
            OnlineR2(s),
            max_steps=max_steps,
            report=stats_to(counter),
        )
        return out[1].sum()

    def equinox(x: Any) -> Any:
        out = eqx.internal.while_loop(
            cond, step, (jnp.asarray(0.0), x), kind="checkpointed", checkpoints=s
        )
        return out[1].sum()

    return {"ours OnlineR2": ours, "equinox": equinox}


def measure(loss: Callable[[Any], Any], x0: Any, repeats: int) -> dict:
    t0 = time.perf_counter()
    compiled = jax.jit(jax.grad(loss)).lower(x0).compile()
    compile_s = time.perf_counter() - t0
    compiled(x0).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compiled(x0).block_until_ready()
        times.append(time.perf_counter() - t0)
    mem = compiled.memory_analysis()
    device = None
    if mem is not None:
        device = mem.temp_size_in_bytes + mem.output_size_in_bytes
    return {"run": statistics.median(times), "compile": compile_s, "device": device}


def measure_interleaved(losses: dict, x0: Any, repeats: int) -> dict:
    """`measure` for several losses, their runs interleaved (one of each in turn, ``repeats``
    rounds), so that a machine whose load drifts slows them alike."""
    rows, compiled = {}, {}
    for name, loss in losses.items():
        t0 = time.perf_counter()
        compiled[name] = jax.jit(jax.grad(loss)).lower(x0).compile()
        mem = compiled[name].memory_analysis()
        device = None if mem is None else mem.temp_size_in_bytes + mem.output_size_in_bytes
        rows[name] = {"compile": time.perf_counter() - t0, "device": device, "times": []}
        compiled[name](x0).block_until_ready()
    for _ in range(repeats):
        for name, f in compiled.items():
            t0 = time.perf_counter()
            f(x0).block_until_ready()
            rows[name]["times"].append(time.perf_counter() - t0)
    for row in rows.values():
        row["run"] = statistics.median(row.pop("times"))
    return rows


def evaluations(loss: Callable[[Any], Any], x0: Any, counter: list) -> int:
    """Step evaluations of one ``jax.grad(loss)``: equinox's counted by a callback in its step,
    ours by our run statistics (a callback in our step would also see the taped forward pass of
    a segment whose result XLA discards when nothing observes it: the reverse sweep takes the
    VJP of a rematerialised segment)."""
    counter[:] = [0]
    jax.grad(loss)(x0).block_until_ready()
    jax.effects_barrier()
    return counter[0] if len(counter) == 1 else counter[-1].evaluations


def table(title: str, rows: dict, state_bytes: int, evals: dict, base: str = "equinox") -> None:
    base_s = rows[base]["run"]
    vs = f"vs {base.split()[0]}"
    print(f"\n{title}")
    print(
        f"| {'method':<20} | evaluations | run (ms) | {vs:<10} | compile (s) | device memory "
        "(states) |"
    )
    print(
        f"|{'-' * 22}|-------------|----------|------------|-------------|------------------------|"
    )
    for name, r in rows.items():
        states = "n/a" if r["device"] is None else f"{r['device'] / state_bytes:.1f}"
        print(
            f"| {name:<20} | {evals[name]:>11} | {1e3 * r['run']:>8.2f} | "
            f"{r['run'] / base_s:>9.2f}x | {r['compile']:>11.2f} | {states:>22} |"
        )


def host_table(n: int, steps: int, s: int, repeats: int) -> None:
    """Revolve(s) with its checkpoints on the device, in host memory and in an HDF5 file."""
    x0 = jnp.asarray(np.sin(np.linspace(0.0, np.pi, n)) ** 2)
    counter = [0]
    evals = {
        name: evaluations(f, x0, counter) for name, f in host_losses(n, steps, s, counter).items()
    }
    rows = measure_interleaved(host_losses(n, steps, s), x0, repeats)
    title = f"heat n = {n}, T = {steps}, Revolve({s}): where the checkpoints are"
    table(title, rows, 8 * n, evals, base="device buffer")
    calls, cost = host_calls(steps, s), callback_cost(repeats)
    print(
        f"\nhost callbacks per gradient: {calls}; one empty io_callback in a compiled loop, "
        f"this run: {1e6 * cost:.0f} us (x {calls} = {1e3 * calls * cost:.0f} ms)"
    )


def host_calls(steps: int, s: int) -> int:
    """Stores and restores the host serves: those of the plan but the input's (kept on the
    device), plus the session's open and close."""
    from ckpt_transform.schemes.actions import Restore, Store

    actions = list(Revolve(s).schedule(steps))
    return 2 + sum(isinstance(a, (Store, Restore)) and a.n != 0 for a in actions)


def callback_cost(repeats: int, calls: int = 200) -> float:
    """Seconds per empty ``io_callback`` (a token in, a token out) in a compiled loop."""
    from jax.experimental import io_callback

    token = jax.ShapeDtypeStruct((), jnp.int32)

    def run(t: Any) -> Any:
        def body(i: Any, t: Any) -> Any:
            return io_callback(lambda t: np.int32(t + 1), token, t)

        return jax.lax.fori_loop(0, calls, body, t)

    f = jax.jit(run)
    f(jnp.int32(0)).block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(jnp.int32(0)).block_until_ready()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--only",
        choices=["heat", "ode", "host"],
        help="run one case: the heat loops, the while loop, or checkpoints on the host",
    )
    args = parser.parse_args()
    repeats = 3 if args.quick else args.repeats
    cases = [(100, 500, 4), (10**5, 200, 4)] if not args.quick else [(100, 50, 4)]
    if args.only in ("ode", "host"):
        cases = []
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, float64")
    if args.only == "host":
        n, steps, s = (10**5, 200, 4) if not args.quick else (1000, 50, 4)
        host_table(n, steps, s, repeats)
        return
    for n, steps, s in cases:
        x0 = jnp.asarray(np.sin(np.linspace(0.0, np.pi, n)) ** 2)
        counter = [0]
        evals = {
            name: evaluations(f, x0, counter)
            for name, f in heat_losses(n, steps, s, counter).items()
            if "scan" not in name
        }
        evals["lax.scan store-all"] = steps  # each step once; its residuals are kept
        rows = {name: measure(f, x0, repeats) for name, f in heat_losses(n, steps, s).items()}
        table(f"heat n = {n}, T = {steps}, {s} snapshots", rows, 8 * n, evals)
    if args.only == "heat":
        return
    n, s = (1000, 8) if not args.quick else (10, 4)
    x0 = jnp.linspace(0.1, 2.0, n)
    counter = [0]
    evals = {
        name: evaluations(f, x0, counter) for name, f in ode_losses(n, s, 20000, counter).items()
    }
    rows = {name: measure(f, x0, repeats) for name, f in ode_losses(n, s, 20000).items()}
    table(f"adaptive ODE while loop, n = {n}, {s} snapshots", rows, 8 * n + 8, evals)


if __name__ == "__main__":
    main()
