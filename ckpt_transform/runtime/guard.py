"""The runtime guard: a step changing what it should only read is an error, not a wrong gradient.

The transform reads the loop body and the helpers it calls (`ckpt_transform.transform.effects`)
and carries every write it finds. What it cannot see (a method of an object whose class is not
known when decorating, a function passed in as an argument) is caught here, on the first forward
pass of each run:

* before the run, `start` takes a fingerprint of every object the step can reach that is not part
  of its carried state: the contents of its closure cells, the globals its code names, its
  parameters, followed through lists, dicts, sets, object attributes and the user functions they
  hold; an array is fingerprinted by shape, type and a CRC of its bytes, a container by the
  identity of its items;
* while the primal run goes, every struct view the step builds (`note_view`, called by
  ``struct_view``) is compared after the step with the read-only fields it was built from: a
  field assigned on it would be dropped when the step returns;
* after the primal run, before any result is returned, `finish` compares the fingerprints.

A change is a `CheckpointError` naming the object and what changed. The reverse sweep runs the
same steps again and is not watched: the first pass has seen every step once.

A step asks to be guarded by carrying a `Guard` as its ``_ckpt_guard`` attribute
(`ckpt_transform.runtime.support` does this for the code `checkpoint_struct` generates); a step
given to `checkpointed_for` directly is the user's own pure function and is left alone. Setting
``enabled = False`` turns the guard off (to measure what it costs).
"""

from __future__ import annotations

import inspect
import threading
import types
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ckpt_transform.backends.autograd import getval, isbox
from ckpt_transform.errors import CheckpointError

__all__ = ["Guard", "enabled", "finish", "note_view", "roots", "start"]

#: Set to False to run without the guard.
enabled = True

_MAX_OBJECTS = 4096  # objects fingerprinted per run, at most
_MAX_DEPTH = 6  # containers followed below a root, at most
_SKIPPED_MODULES = ("ckpt_transform", "numpy", "autograd", "builtins", "scipy", "jax")

_local = threading.local()  # per thread: `running`, the guards of the steps running now


def _running() -> list[Guard]:
    running = getattr(_local, "running", None)
    if running is None:
        running = _local.running = []
    return running


class Guard:
    """The guard of one checkpointed loop's run: wraps the step, holds the fingerprints.

    Parameters
    ----------
    name
        The step's name, for messages.
    param_names
        The names of the step's parameters, for messages (``params[k]`` when not given).
    """

    def __init__(self, name: str, param_names: tuple[str, ...] = ()) -> None:
        self.name = name
        self.param_names = param_names
        self.active = False
        self.calls = 0
        self.views: list[tuple[Any, dict[str, Any], frozenset[str]]] = []
        self.prints: list[tuple[str, Any, Any]] = []

    def call(self, step: Callable[..., Any], args: tuple) -> Any:
        """Run ``step(*args)``; during the primal run, check the struct views it built."""
        if not self.active:
            return step(*args)
        running = _running()
        running.append(self)
        try:
            out = step(*args)
        finally:
            running.pop()
        if self.views:
            for view, values, carried in self.views:
                self._check_view(view, values, carried)
            self.views.clear()
        self.calls += 1
        return out

    def _check_view(self, view: Any, values: dict[str, Any], carried: frozenset[str]) -> None:
        attrs = getattr(view, "__dict__", None)
        if attrs is not None and len(attrs) == len(values) + len(carried):
            for k, v in values.items():  # the common case, checked fast
                if attrs.get(k, _MISSING) is not v:
                    break
            else:
                return  # nothing but carried fields assigned
        names = list(attrs) if attrs is not None else list(values)
        for name in names:
            if name in carried:
                continue
            now = getattr(view, name, _MISSING)
            if name not in values or now is not values[name]:
                cls = type(view).__name__
                raise CheckpointError(
                    f"step {self.calls} of the checkpointed loop {self.name} assigned the field "
                    f"{name} of a {cls} the loop reads, but the loop does not carry that field: "
                    "the write would be lost when the step returns. It was made where the "
                    "transform could not see it (a method of an object whose class was not "
                    "known when decorating, a function passed in, or a function defined inside "
                    "the decorated function). Instead, assign the field "
                    f"in the loop body (`obj.{name} = ...`), or annotate the argument with its "
                    "class (`def f(obj: Model, ...)`) so the method is read."
                )


_MISSING = object()


def note_view(view: Any, values: dict[str, Any], carried: frozenset[str]) -> None:
    """Record a struct view built inside a guarded step, to check it when the step returns."""
    running = _running()
    if running:
        running[-1].views.append((view, values, carried))


def start(step: Callable[..., Any], params: Any) -> Guard | None:
    """Fingerprint what ``step`` can reach and turn its guard on; None when it has none."""
    guard = getattr(step, "_ckpt_guard", None)
    if not enabled or not isinstance(guard, Guard):
        return None
    guard.prints = _fingerprints(_roots(step, params, guard.param_names))
    guard.active = True
    guard.calls = 0
    return guard


def finish(guard: Guard | None) -> None:
    """Turn the guard off; raise `CheckpointError` when a watched object was changed."""
    if guard is None:
        return
    guard.active = False
    prints, guard.prints = guard.prints, []
    for path, obj, before in prints:
        change = _changed(obj, before)
        if change is not None:
            raise CheckpointError(
                f"the checkpointed loop {guard.name} changed {path} ({change}) during its "
                "forward pass, but it is not part of the loop's carried state: the driver runs "
                "steps again from stored states, so the change would be repeated on every "
                "recomputation, and autograd does not see it. Instead, assign the new value in "
                "the loop body to a variable or to a field of an object the loop carries "
                "(preallocate an array before the loop and assign `a[i] = v` in the body, "
                "rather than appending to a list)."
            )


# -- what the step reaches ------------------------------------------------------------------------


def roots(step: Callable[..., Any], params: Any) -> Iterator[tuple[str, Any]]:
    """What ``step`` reads outside its state, as ``(how it is named, value)``: the contents of its
    closure cells, the globals its code names (and those of the user functions among them) and
    its parameters (a struct's read-only fields one by one)."""
    watch = getattr(step, "_ckpt_guard", None)
    names = watch.param_names if isinstance(watch, Guard) else ()
    return _roots(step, params, names)


def _roots(step: Any, params: Any, names: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    fn = inspect.unwrap(step)
    yield from _function_roots(fn, set())
    for k, value in enumerate(params):
        name = names[k] if k < len(names) else f"params[{k}]"
        if _is_fields(value):  # a struct's read-only fields: (class, {name: value})
            for field, item in value[1].items():
                yield f"the field {field} of the {value[0].__name__} the loop reads", item
        elif isinstance(value, types.FunctionType):
            yield from _function_roots(value, set())
        else:
            yield f"the parameter {name}", value


def _is_fields(value: Any) -> bool:
    return (
        type(value) is tuple
        and len(value) == 2
        and isinstance(value[0], type)
        and isinstance(value[1], dict)
    )


def _function_roots(fn: Any, seen: set[int]) -> Iterator[tuple[str, Any]]:
    """Closure cells and named globals of a user function, and of the user functions in them."""
    if not isinstance(fn, types.FunctionType) or id(fn.__code__) in seen or _skipped(fn):
        return
    seen.add(id(fn.__code__))
    code = fn.__code__
    for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, types.FunctionType):
            yield from _function_roots(value, seen)
        elif not name.startswith("_ckpt"):
            yield f"the closure variable {name}", value
    for name in _names(code):
        if name in fn.__globals__:
            value = fn.__globals__[name]
            if isinstance(value, types.FunctionType):
                yield from _function_roots(value, seen)
            else:
                yield f"the global {name}", value


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _skipped(value: Any) -> bool:
    module = getattr(value, "__module__", None) or type(value).__module__ or ""
    return module.split(".")[0] in _SKIPPED_MODULES


# -- fingerprints ---------------------------------------------------------------------------------


def _fingerprints(roots: Iterator[tuple[str, Any]]) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    seen: set[int] = set()
    todo = [(path, obj, 0) for path, obj in roots]
    while todo and len(out) < _MAX_OBJECTS:
        path, obj, depth = todo.pop(0)
        obj = getval(obj) if isbox(obj) else obj
        if isinstance(obj, (types.MethodType, types.BuiltinMethodType)):
            obj = obj.__self__  # `log.append` passed as a callback watches `log`
        if id(obj) in seen or not _watched(obj):
            continue
        seen.add(id(obj))
        before = _print(obj)
        out.append((path, obj, before))
        if depth < _MAX_DEPTH:
            todo += [(p, child, depth + 1) for p, child in _children(path, obj)]
    return out


def _watched(obj: Any) -> bool:
    if isinstance(obj, (list, dict, set, bytearray, np.ndarray)):
        return True
    if isinstance(obj, (type, types.ModuleType, types.FunctionType, types.MethodType)):
        return False
    return hasattr(obj, "__dict__") and not _skipped(obj) and not callable(obj)


def _print(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return (obj.shape, obj.dtype.str, _crc(obj))
    if isinstance(obj, list):
        return list(obj)
    if isinstance(obj, dict):
        return dict(obj)
    if isinstance(obj, set):
        return set(obj)
    if isinstance(obj, bytearray):
        return bytes(obj)
    return dict(vars(obj))


def _crc(a: np.ndarray) -> int:
    if a.dtype.hasobject:
        return hash(tuple(id(x) for x in a.ravel()))
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"))


def _children(path: str, obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, list):
        yield from ((f"{path}[{k}]", v) for k, v in enumerate(obj))
    elif isinstance(obj, dict):
        yield from ((f"{path}[{k!r}]", v) for k, v in obj.items())
    elif hasattr(obj, "__dict__") and not isinstance(obj, np.ndarray):
        yield from ((f"{path}.{k}", v) for k, v in vars(obj).items())


def _changed(obj: Any, before: Any) -> str | None:
    """What changed in ``obj`` since its fingerprint ``before``, or None."""
    now = _print(obj)
    if isinstance(obj, np.ndarray):
        return None if now == before else "its elements were written in place"
    if isinstance(obj, (set, bytearray)):
        return None if now == before else "items were added or removed"
    if isinstance(obj, list):
        if len(now) != len(before):
            return f"its length went from {len(before)} to {len(now)}"
        same = all(a is b for a, b in zip(now, before))
        return None if same else "an item was replaced"
    if now.keys() != before.keys():
        added = sorted(map(str, now.keys() - before.keys()))
        removed = sorted(map(str, before.keys() - now.keys()))
        what = "attribute" if not isinstance(obj, dict) else "key"
        return f"{what}s added: {added}, removed: {removed}"
    for key, value in now.items():
        if value is not before[key]:
            what = f"the attribute {key}" if not isinstance(obj, dict) else f"the key {key!r}"
            return f"{what} was assigned"
    return None
