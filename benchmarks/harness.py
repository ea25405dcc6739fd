"""Measuring tools shared by the benchmarks: interleaved timing, memory peaks, machine facts.

Rules these helpers follow (see ARCHITECTURE.md, "Pitfalls"):

* Time is only ever reported as a ratio to a baseline measured in the same process and the same
  run. Each repetition times the baseline and every candidate once, in an order that rotates
  from one repetition to the next, and the ratio of a repetition is taken against the baseline
  of that same repetition; the figure reported is the median of those ratios. Load from other
  processes then slows both sides of a ratio alike.
* Traced memory is the `tracemalloc` peak of one call made after a warm-up call, above the
  memory in use just before it (lazy imports and caches of the first call are not counted).
* Resident memory is measured in a child process (`rss_in_child`): after a warm-up call the
  peak-RSS counter is reset (``/proc/self/clear_refs``), and the figure is the peak RSS of one
  call above the RSS just before it.
"""

from __future__ import annotations

import datetime as _dt
import gc
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

__all__ = [
    "Timing",
    "compare",
    "fmt_bytes",
    "fmt_ratio",
    "machine",
    "machine_markdown",
    "rss_in_child",
    "table",
    "traced_peak",
]


# -- time -------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Times of one candidate and the ratios to the baseline, one of each per repetition."""

    name: str
    seconds: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median time in seconds."""
        return statistics.median(self.seconds)

    @property
    def ratio(self) -> float:
        """Median of the per-repetition ratios to the baseline."""
        return statistics.median(self.ratios)

    @property
    def spread(self) -> tuple[float, float]:
        """The lower and upper quartile of the ratios (the whole range below 4 repetitions)."""
        r = sorted(self.ratios)
        if len(r) < 4:
            return r[0], r[-1]
        q = statistics.quantiles(r, n=4)
        return q[0], q[2]


def _time_one(fn: Callable[[], Any]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(
    baseline: Callable[[], Any],
    candidates: dict[str, Callable[[], Any]],
    reps: int,
    *,
    warmup: int = 1,
    budget: float | None = None,
) -> tuple[Timing, dict[str, Timing]]:
    """Time ``baseline`` and each candidate ``reps`` times, interleaved; return their `Timing`.

    Every repetition runs the baseline and all candidates once each, in an order rotated by one
    place per repetition. ``budget`` (seconds) stops early, after at least 3 repetitions, once
    the time spent exceeds it.
    """
    names = ["__baseline__", *candidates]
    fns = {"__baseline__": baseline, **candidates}
    for _ in range(warmup):
        for name in names:
            fns[name]()
    base = Timing("baseline")
    out = {name: Timing(name) for name in candidates}
    start = time.perf_counter()
    for r in range(reps):
        order = names[r % len(names) :] + names[: r % len(names)]
        times = {name: _time_one(fns[name]) for name in order}
        base.seconds.append(times["__baseline__"])
        base.ratios.append(1.0)
        for name in candidates:
            out[name].seconds.append(times[name])
            out[name].ratios.append(times[name] / times["__baseline__"])
        if budget is not None and r >= 2 and time.perf_counter() - start > budget:
            break
    return base, out


# -- memory -----------------------------------------------------------------------------------


def traced_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes `tracemalloc` sees during one call of ``fn``, above the memory in use before.

    ``fn`` is called once first as a warm-up (imports, caches), outside the measurement.
    """
    fn()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak - before


def _status(key: str) -> int:
    """A ``kB`` field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def child_measure(fn: Callable[[], Any]) -> dict[str, int]:
    """In the child: warm up, reset the peak-RSS counter, and measure one call."""
    fn()
    gc.collect()
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        reset = False
    before = _status("VmRSS")
    fn()
    peak = _status("VmHWM")
    return {"rss_peak_above_start": peak - before, "rss_before": before, "hwm_reset": reset}


def rss_in_child(module: str, builder: str, kwargs: dict[str, Any], *, timeout: float = 900):
    """Peak RSS (bytes) of one call in a fresh process, above the RSS just before that call.

    The child imports ``module`` (a file of this folder), calls ``builder(**kwargs)`` to get a
    zero-argument function, and measures it with `child_measure`. Returns the child's dict, or
    ``{"error": ...}`` when it failed.
    """
    code = (
        f"import json, sys; sys.path.insert(0, {str(HERE)!r});"
        f"import harness; from {module} import {builder} as b;"
        f"print('@@' + json.dumps(harness.child_measure(b(**json.loads({json.dumps(kwargs)!r})))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )
    for line in proc.stdout.splitlines():
        if line.startswith("@@"):
            return json.loads(line[2:])
    return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


# -- the machine ------------------------------------------------------------------------------


def _version(name: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["(threadpoolctl not installed)"]
    importlib.import_module("numpy")
    out = []
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        out.append(
            "{internal_api} {version}, {num_threads} threads, kernel {arch}".format(
                internal_api=info.get("internal_api"),
                version=info.get("version"),
                num_threads=info.get("num_threads"),
                arch=info.get("architecture", "?"),
            )
        )
    return out or ["(none found)"]


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%h %cs"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except Exception:
        return "unknown"


PEERS = ("checkpoint-schedules", "pyrevolve", "jax", "jaxlib", "equinox")


def machine() -> dict[str, Any]:
    """Facts about the machine and the software versions of this run."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "autograd": _version("autograd"),
        "h5py": _version("h5py"),
        "ckpt_transform": f"{_version('ckpt_transform')} (commit {_git_commit()})",
        "peers": {p: _version(p) for p in PEERS},
        "blas": _blas(),
        "env": {
            k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ
        },
        "load": load,
    }


def machine_markdown(info: dict[str, Any], command: str, load_end: Sequence[float] | None) -> str:
    """The machine block of docs/benchmarks.md."""
    peers = ", ".join(f"{k} {v}" for k, v in info["peers"].items() if v) or "none installed"
    missing = ", ".join(k for k, v in info["peers"].items() if not v)
    load = info["load"]
    lines = [
        f"- command: `{command}`",
        f"- date: {info['date']}",
        f"- machine: {info['nproc']} cores, {info['cpu']}",
        f"- python {info['python']}, numpy {info['numpy']}, autograd {info['autograd']}, "
        f"h5py {info['h5py']}, ckpt_transform {info['ckpt_transform']}",
        f"- BLAS: {'; '.join(info['blas'])}",
        f"- peers: {peers}" + (f" (not installed: {missing})" if missing else ""),
    ]
    if info["env"]:
        lines.append("- environment: " + ", ".join(f"{k}={v}" for k, v in info["env"].items()))
    if load is not None:
        end = f"; at the end {load_end[0]:.1f}" if load_end else ""
        lines.append(
            f"- load average (1 min) at the start {load[0]:.1f}{end}: the machine was shared "
            "with other work, which is why every time figure is a median of ratios taken "
            "against a baseline timed in the same repetition"
        )
    return "\n".join(lines)


# -- formatting -------------------------------------------------------------------------------


def fmt_ratio(t: Timing) -> str:
    lo, hi = t.spread
    return f"{t.ratio:.2f}x ({lo:.2f}-{hi:.2f})"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f} ms" if ms < 1 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
