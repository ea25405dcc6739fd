"""What cannot be checkpointed is rejected at decoration time, at the right line of this file.

Each rejected function marks the line the error must point at with the comment ``# <- error``;
every test asserts the line number (in this file), the file name, the kind of construct named in
the message, and that the message says what to write instead.
"""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

import functools
import inspect

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, hessian

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.errors import TransformError
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll


def marked_line(fn, marker="# <- error"):
    """The line of this file, inside ``fn``'s source, that carries ``marker``."""
    lines, start = inspect.getsourcelines(fn)
    (index,) = [k for k, line in enumerate(lines) if marker in line]
    return start + index


def reject(fn, **options):
    with pytest.raises(TransformError) as info:
        checkpoint_struct(Revolve(2), **options)(fn)
    err = info.value
    assert isinstance(err, SyntaxError)
    assert err.filename == __file__
    return err


def check(fn, *words, **options):
    err = reject(fn, **options)
    assert err.lineno == marked_line(fn), (err.lineno, err.msg)
    assert err.text is not None and "# <- error" in err.text
    for word in words:
        assert word in err.msg, (word, err.msg)
    assert "instead" in err.msg.lower(), err.msg
    return err


# -- leaving the loop early -----------------------------------------------------------------------


def with_break(x, n):
    for i in range(n):
        if x > 1.0:
            break  # <- error
        x = x * 2.0
    return x


def test_break_is_rejected():
    err = check(with_break, "`break`", "while")
    assert err.offset == 13  # 1-based column of the `break`


def with_inner_break(x, n):
    for i in range(n):
        for j in range(10):
            if j > i:
                break
            x = x + 0.5
    return x


def test_break_in_an_inner_loop_is_fine():
    f = checkpoint_struct(Revolve(2))(with_inner_break)
    assert f(1.0, 4) == with_inner_break(1.0, 4)


def with_break_in_inner_else(x, n):
    for i in range(n):
        for j in range(2):
            x = x + 1.0
        else:
            break  # <- error
    return x


def test_break_in_the_else_of_an_inner_loop_leaves_the_outer_loop():
    check(with_break_in_inner_else, "`break`")


def with_continue(x, n):
    for i in range(n):
        if i % 2:
            continue  # <- error
        x = x + 1.0
    return x


def test_continue_is_rejected():
    check(with_continue, "`continue`", "if not")


def with_return(x, n):
    for i in range(n):
        x = x * 0.5
        if x < 1e-3:
            return x  # <- error
    return x


def test_return_is_rejected():
    check(with_return, "`return`")


def with_nested_def_return(x, n):
    for i in range(n):

        def half(y):
            return 0.5 * y

        x = half(x)
    return x


def test_return_inside_a_function_defined_in_the_body_is_fine():
    f = checkpoint_struct(Revolve(2))(with_nested_def_return)
    assert f(8.0, 3) == 1.0


def with_yield(x, n):
    for i in range(n):
        x = x + 1.0
        yield x  # <- error


def test_yield_is_rejected():
    check(with_yield, "`yield`")


async def with_await(x, n, source):
    for i in range(n):
        x = x + await source(x)  # <- error
    return x


def test_await_is_rejected():
    check(with_await, "`await`")


# -- the loop header ----------------------------------------------------------------------------


def with_else(x, n):
    for i in range(n):
        x = x + 1.0
    else:
        x = -x  # <- error
    return x


def test_loop_else_is_rejected():
    check(with_else, "`else:`", "after the loop")


def over_a_list(xs):
    total = 0.0
    for x in xs:  # <- error
        total = total + x
    return total


def test_for_over_something_else_than_range_is_rejected():
    check(over_a_list, "range(len(xs))", "while loop")


def over_pairs(n):
    total = 0.0
    for a, b in range(n):  # <- error
        total = total + a
    return total


def test_for_that_unpacks_its_index_is_rejected():
    check(over_pairs, "one name")


def over_a_starred_range(bounds):
    total = 0.0
    for i in range(*bounds):  # <- error
        total = total + i
    return total


def test_range_with_starred_arguments_is_rejected():
    check(over_a_starred_range, "range(start, stop)")


def while_with_walrus(x, xs):
    k = 0
    while (y := xs[k]) > 0.0:  # <- error
        x = x + y
        k = k + 1
    return x


def test_assignment_in_a_while_condition_is_rejected():
    check(while_with_walrus, "`:=`", "y")


# -- names outside the step ------------------------------------------------------------------------

counter = 0


def with_global(x, n):
    for i in range(n):
        global counter  # <- error
        counter = counter + 1
        x = x + 1.0
    return x


def test_global_is_rejected():
    check(with_global, "`global`")


def with_declared_global(x, n):
    global counter
    for i in range(n):
        counter = i  # <- error
        x = x + 1.0
    return x


def test_assigning_a_name_declared_global_is_rejected():
    check(with_declared_global, "declared global", "counter")


def make_with_nonlocal():
    total = 0.0

    def with_nonlocal(x, n):
        for i in range(n):
            nonlocal total  # <- error
            total = total + x
            x = x + 1.0
        return x

    return with_nonlocal


def test_nonlocal_is_rejected():
    check(make_with_nonlocal(), "`nonlocal`")


def with_del(x, n):
    for i in range(n):
        y = x + 1.0
        x = y
        del y  # <- error
    return x


def test_del_is_rejected():
    check(with_del, "`del`")


def with_reserved_name(x, n):
    _ckpt_tmp = 2.0  # <- error
    for i in range(n):
        x = x * _ckpt_tmp
    return x


def test_reserved_prefix_is_rejected():
    check(with_reserved_name, "_ckpt_tmp", "rename")


# -- finding the loop ---------------------------------------------------------------------------


def without_loop(x):  # <- error
    return x * 2.0


def test_no_loop_is_rejected():
    check(without_loop, "no for or while loop")


def loop_inside_if(x, n):
    if n > 0:
        for i in range(n):  # <- error
            x = x + 1.0
    return x


def test_loop_nested_in_an_if_is_pointed_at():
    check(loop_inside_if, "`if`", "top level")


def two_loops(x, n):
    for i in range(n):
        x = x + 1.0
    for j in range(n):  # <- error
        x = x * 2.0
    return x


def test_several_loops_without_choice_are_rejected():
    err = check(two_loops, "2 top-level loops", "loop=0", "loop='i'")
    assert "line" in err.msg


def test_loop_choice_by_index_and_by_name():
    for choice in (1, "j"):
        f = checkpoint_struct(Revolve(2), loop=choice)(two_loops)
        assert "for j in range(n)" in f.generated_source.split("# the loop,")[1].splitlines()[0]
        assert f(1.0, 3) == two_loops(1.0, 3)


def test_loop_choice_out_of_range_is_rejected():
    err = reject(two_loops, loop=2)
    assert "loop=2" in err.msg and "0 to 1" in err.msg


def test_loop_choice_by_unknown_name_is_rejected():
    err = reject(two_loops, loop="k")
    assert "'k'" in err.msg and "'i', 'j'" in err.msg


async def async_for_loop(xs):
    total = 0.0
    async for x in xs:  # <- error
        total = total + x
    return total


def test_async_for_is_rejected():
    check(async_for_loop, "`async for`")


# -- what the analysis rejects --------------------------------------------------------------------


def assigns_its_index(x, n):
    for i in range(n):
        i = i + 1  # <- error
        x = x + i
    return x


def test_assigning_the_loop_index_is_rejected():
    check(assigns_its_index, "loop variable i", "another name")


def alias_then_element_update(x0, lam, n):
    nxt = np.array(x0)
    for t in range(n):
        last = nxt  # <- error
        for i in range(1, len(nxt) - 1):
            nxt[i] = last[i] + lam * (last[i - 1] - 2 * last[i] + last[i + 1])
    return nxt


def test_element_update_through_an_alias_is_rejected():
    check(alias_then_element_update, "last = nxt", "np.array(nxt)")


def view_then_element_update(grid, n):
    row = grid[0]  # <- error
    for t in range(n):
        row[1] = row[1] + 1.0
    return grid


def test_element_update_of_a_view_is_rejected():
    check(view_then_element_update, "a view of grid", "np.array(grid[0])")


def swap_buffers(x0, lam, n):
    nxt = np.array(x0)
    last = np.array(x0)
    for t in range(n):
        for i in range(1, len(nxt) - 1):
            nxt[i] = last[i] + lam * (last[i - 1] - 2 * last[i] + last[i + 1])
        last, nxt = nxt, last
    return last


def test_swapping_two_buffers_is_not_an_alias():
    x0 = np.array([1.0, 0.0, 0.0, 0.0, 2.0])
    f = checkpoint_struct(Revolve(2))(swap_buffers)
    onp.testing.assert_array_equal(f(x0, 0.25, 5), swap_buffers(x0, 0.25, 5))


def stale_closure(y, k, dt, n):
    rhs = lambda: -k * y  # <- error  # noqa: E731
    for i in range(n):
        y = y + dt * rhs()
    return y


def test_function_defined_before_the_loop_reading_a_carried_variable_is_rejected():
    check(stale_closure, "rhs", "reads y", "pass it as an argument")


def stale_struct_closure(rod, n):
    def flux():  # <- error
        return rod.c * (rod.T[:-2] - 2 * rod.T[1:-1] + rod.T[2:])

    for i in range(n):
        rod.T = np.concatenate([rod.T[:1], rod.T[1:-1] + flux(), rod.T[-1:]])
    return rod.T


def test_function_defined_before_the_loop_reading_a_struct_is_rejected():
    check(stale_struct_closure, "flux", "reads rod")


def fresh_closure(y, k, dt, n):
    def rhs(y):
        return -k * y

    for i in range(n):
        y = y + dt * rhs(y)
    return y


def test_function_defined_before_the_loop_taking_the_state_as_argument_is_fine():
    f = checkpoint_struct(Revolve(2))(fresh_closure)
    assert f(1.0, 0.5, 0.1, 4) == fresh_closure(1.0, 0.5, 0.1, 4)


def carried_but_unset(x, n):
    for i in range(n):
        y = 2.0 * x  # <- error
        x = x + 1.0
    return y


def test_carried_variable_without_a_value_before_the_loop_is_rejected():
    check(carried_but_unset, "y", "read after the loop", "give it a value")


def carries_nothing(x, n):
    for i in range(n):  # <- error
        y = 2.0 * x  # noqa: F841
    return x


def test_loop_that_carries_nothing_is_rejected():
    check(carries_nothing, "no state")


def rebinds_and_mutates(obj, n):
    for i in range(n):
        obj.value = obj.value + 1.0  # <- error
        obj = type(obj)(obj.value)
    return obj


def test_struct_both_rebound_and_mutated_is_rejected():
    check(rebinds_and_mutates, "both rebound", "obj")


def nested_attribute(sim, n):
    for i in range(n):
        sim.grid.T = sim.grid.T * 0.5  # <- error
    return sim


def test_nested_attribute_write_is_rejected():
    check(nested_attribute, "sim.grid.T", "inner = sim.grid")


def element_in_tuple_assignment(x, y, n):
    for i in range(n):
        x[0], y = y, x[0]  # <- error
    return x, y


def test_element_update_inside_a_tuple_assignment_is_rejected():
    check(element_in_tuple_assignment, "x[0] = ...", "statement of its own")


# -- source that cannot be read, decorators -------------------------------------------------------


def test_lambda_is_rejected():
    with pytest.raises(TransformError, match="lambda") as info:
        checkpoint_struct(Revolve(2))(lambda x: x)
    assert "Instead" in info.value.msg


def test_code_without_source_is_rejected():
    namespace: dict = {}
    exec(compile("def f(x, n):\n    for i in range(n):\n        x = x + 1\n    return x\n",
                 "<interactive>", "exec"), namespace)  # fmt: skip
    with pytest.raises(TransformError, match="cannot be read") as info:
        checkpoint_struct(Revolve(2))(namespace["f"])
    assert "instead" in info.value.msg
    assert info.value.lineno == 1


def test_not_a_function_is_rejected():
    with pytest.raises(TransformError, match="def"):
        checkpoint_struct(Revolve(2))(np.sin)


def other_decorator(fn):
    @functools.wraps(fn)
    def wrapper(*args):
        return fn(*args)

    return wrapper


def test_wrapped_function_is_rejected():
    wrapped = other_decorator(with_inner_break)
    with pytest.raises(TransformError, match="innermost"):
        checkpoint_struct(Revolve(2))(wrapped)


def keep(fn):
    return fn


def test_decorator_below_ours_is_rejected():
    with pytest.raises(TransformError, match="innermost") as info:

        @checkpoint_struct(Revolve(2))  # <- decorator
        @keep
        def f(x, n):
            for i in range(n):
                x = x + 1.0
            return x

    lines, start = inspect.getsourcelines(test_decorator_below_ours_is_rejected)
    (index,) = [k for k, line in enumerate(lines) if line.endswith("# <- decorator\n")]
    assert info.value.lineno == start + index


def test_scheme_class_instead_of_instance_is_rejected():
    with pytest.raises(TypeError, match=r"Revolve\(\.\.\.\)"):
        checkpoint_struct(Revolve)
    with pytest.raises(TypeError, match="checkpointing scheme"):
        checkpoint_struct(4)
    with pytest.raises(TypeError, match="give the scheme first"):
        checkpoint_struct(with_inner_break)


def test_options_are_type_checked():
    with pytest.raises(TypeError, match="progress"):
        checkpoint_struct(StoreAll(), progress="yes")
    with pytest.raises(TypeError, match="loop"):
        checkpoint_struct(StoreAll(), loop=1.5)
    with pytest.raises(TypeError, match="position of a top-level loop"):
        checkpoint_struct(StoreAll(), loop=True)


def alias_then_augmented_update(s0, s1, n):
    for t in range(n):
        tmp = s1  # <- error
        s0 = 0.5 * s0 + 0.5 * np.tanh(s0 + tmp)
        s1 += 0.3 * np.tanh(s0) - 0.3 * s1
        s0 = s0 + np.tanh(tmp)
    return np.sum(s0**2) + np.sum(s1**2)


def test_augmented_update_through_an_alias_is_rejected():
    # the plain loop's `s1 += ...` changes tmp too; the rewritten `s1 = s1 + ...` would not
    check(alias_then_augmented_update, "tmp = s1", "in place", "np.array(s1)")


def view_then_augmented_update(x, n):
    for t in range(n):
        tail = x[1:]  # <- error
        x += 0.1 * np.sin(x)
        x = x * (1.0 + 0.0 * np.sum(tail))
    return x


def test_augmented_update_of_a_viewed_array_is_rejected():
    check(view_then_augmented_update, "a view of x", "in place")


def start_from_input_then_augmented(u0, n):
    u = u0
    for i in range(n):
        u += 0.1 * np.sin(u)
    return np.sum(u**2)


def test_augmented_update_of_a_name_bound_to_the_input_is_accepted():
    # u0 is not read again: the alias cannot change what the function computes
    f = checkpoint_struct(Revolve(2))(start_from_input_then_augmented)
    x = np.array([0.3, -1.2, 2.0])
    assert abs(f(np.array(x), 5) - start_from_input_then_augmented(np.array(x), 5)) < 1e-12
    g, g_ref = grad(f)(x, 5), grad(start_from_input_then_augmented)(x, 5)
    onp.testing.assert_allclose(g, g_ref, rtol=1e-12)
    h = hessian(f)(x, 5)
    onp.testing.assert_allclose(h, hessian(start_from_input_then_augmented)(x, 5), rtol=1e-10)


def alias_before_loop_read_inside(u0, n):
    u = np.array(u0)
    seen = u  # <- error
    for i in range(n):
        u += 0.1 * np.sin(seen)
    return np.sum(u**2)


def test_alias_made_before_the_loop_and_read_inside_is_rejected():
    check(alias_before_loop_read_inside, "seen = u", "in place")


def slice_then_element_update(x, n):
    for i in range(n):
        tail = x[1:]  # <- error
        x[2] = x[2] * 0.5 + 1.0
        x = x + 0.1 * np.sum(tail)
    return np.sum(x**2)


def test_element_update_of_a_sliced_array_is_rejected():
    # the plain loop's tail, a view of x, sees the write to x[2]; the rewritten update would not
    check(slice_then_element_update, "a view of x", "np.array(x[1:])")


def row_then_element_update(g, n):
    for k in range(n):
        row = g[0]  # <- error
        g[0, 1] = g[0, 1] * 0.5 + 1.0
        g = g + 0.1 * np.sum(row)
    return np.sum(g**2)


def test_element_update_of_an_array_whose_row_is_held_is_rejected():
    # g[0, 1] = ... indexes two axes, so g[0] is a row (a view), not a number
    check(row_then_element_update, "a view of g", "np.array(g[0])")


def number_then_element_update(x, n):
    for k in range(n):
        old = x[1]
        x[1] = 0.5 * x[1] + 0.25 * x[0]
        x = x + 0.1 * old
    return np.sum(x**2)


def number_then_element_update_functional(x, n):  # the oracle: autograd cannot assign items
    for k in range(n):
        old = x[1]
        x = np.concatenate([x[:1], (0.5 * x[1] + 0.25 * x[0])[None], x[2:]])
        x = x + 0.1 * old
    return np.sum(x**2)


def test_reading_one_element_before_updating_it_is_accepted():
    f = checkpoint_struct(Revolve(2))(number_then_element_update)
    ref = number_then_element_update_functional
    x = np.array([0.3, -1.2, 2.0])
    assert abs(f(np.array(x), 4) - number_then_element_update(np.array(x), 4)) < 1e-12
    assert abs(f(np.array(x), 4) - ref(x, 4)) < 1e-12
    onp.testing.assert_allclose(grad(f)(x, 4), grad(ref)(x, 4), rtol=1e-12)
    onp.testing.assert_allclose(hessian(f)(x, 4), hessian(ref)(x, 4), rtol=1e-10, atol=1e-14)


def alias_before_loop_read_by_the_condition(u0):
    u = np.array(u0)
    seen = u  # <- error
    while np.sum(seen) < 3.0:
        u += 0.5
    return np.sum(u**2)


def test_alias_made_before_a_while_loop_and_read_by_its_condition_is_rejected():
    # the plain loop's `u += ...` moves seen too and the loop ends; rewritten, it would not end
    check(alias_before_loop_read_by_the_condition, "seen = u", "in place")
