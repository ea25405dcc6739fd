"""The passes one by one: what the analysis classifies, how names are chosen, how the result is
bound (globals, closure cells, defaults), and the verbose display."""

# ruff: noqa: B007  (time-stepping loops often do not read their index, as users write them)

from __future__ import annotations

import io
import linecache

import autograd.numpy as np
import pytest
from autograd import grad

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.revolve import Revolve
from ckpt_transform.schemes.store_all import StoreAll
from ckpt_transform.transform import analysis, parse
from ckpt_transform.transform.naming import Namer


def analyse(fn, loop=None):
    source = parse.read_function(fn)
    return analysis.analyse(source, parse.find_loop(source, loop))


def names(locations):
    return [str(loc) for loc in locations]


# -- analysis ------------------------------------------------------------------------------------


def branches(x, y, flag, n):
    late = z = 0.0
    for i in range(n):
        if flag:
            tmp = x * 2.0
        else:
            tmp = x * 3.0
        x = tmp + y
        if i > 2:
            late = x  # read below only on some paths: carried
        z = late
    return x, z


def test_definite_assignment_through_both_branches():
    info = analyse(branches)
    # tmp is assigned on both paths before it is read: a temporary; late may not be: carried
    assert names(info.state) == ["x", "late", "z"]
    assert [p.name for p in info.params] == ["flag", "y"]


def late_unset(x, n):
    for i in range(n):
        if i > 2:
            late = x
        x = late + 1.0
    return x


def test_possibly_unset_upward_exposed_variable_needs_a_value():
    with pytest.raises(Exception, match="late is carried"):
        checkpoint_struct(Revolve(2))(late_unset)


def scopes(x, ys, n):
    total = 0.0
    for i in range(n):
        squares = [y * y for y in ys]  # y is the comprehension's own name
        f = lambda v: v + x  # noqa: E731  (the lambda reads x where it is defined)
        total = total + f(sum(squares))
        if (k := len(squares)) > 2:
            total = total + k
    return total


def test_comprehension_lambda_and_walrus_scopes():
    info = analyse(scopes)
    assert names(info.state) == ["total"]
    assert [p.name for p in info.params] == ["ys", "x"]
    assert "sum" in info.by_name and "len" in info.by_name
    assert "y" not in [p.name for p in info.params]


def inner_loop_first_iteration(u, n, m):
    acc = 0.0
    for i in range(n):
        for j in range(m):
            acc = acc + u  # acc read before written in the body: carried
        u = u * 0.5
    return u


def test_inner_loop_reads_are_upward_exposed():
    info = analyse(inner_loop_first_iteration)
    assert names(info.state) == ["acc", "u"]


def read_after(x, n):
    for i in range(n):
        y = x + 1.0
        x = y * 0.5
    return x, y, i


def test_variable_read_only_after_the_loop_is_carried_and_needs_a_value():
    with pytest.raises(Exception, match="y is carried"):
        analyse(read_after)


def read_after_with_value(x, n):
    y = 0.0
    for i in range(n):
        y = x + 1.0
        x = y * 0.5
    return x, y, i


def test_index_and_outputs_read_after_the_loop():
    info = analyse(read_after_with_value)
    assert names(info.state) == ["y", "x"]
    assert info.index_read_after
    f = checkpoint_struct(Revolve(2))(read_after_with_value)
    assert f(1.0, 5) == read_after_with_value(1.0, 5)


def test_index_stays_unbound_after_an_empty_loop_like_python():
    f = checkpoint_struct(Revolve(2))(read_after_with_value)
    with pytest.raises(UnboundLocalError):
        read_after_with_value(1.0, 0)
    with pytest.raises(UnboundLocalError):
        f(1.0, 0)


LIMIT = 3.0


def classify_globals(x, n):
    for i in range(n):
        x = np.minimum(x * 1.5, LIMIT) + later_helper(x)
    return x


def later_helper(x):
    return 0.0 * x


def test_globals_numbers_are_parameters_and_callables_are_by_name():
    info = analyse(classify_globals)
    assert [(p.name, p.origin) for p in info.params] == [("LIMIT", "global")]
    assert info.by_name == ("np", "later_helper")


def test_global_defined_after_decoration_is_found_at_call_time():
    namespace = {"np": np, "__name__": "late_globals"}
    text = "def run(x, n):\n    for i in range(n):\n        x = helper(x)\n    return x\n"
    filename = "<late globals>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), namespace)
    f = checkpoint_struct(Revolve(2))(namespace["run"])
    namespace["helper"] = lambda x: x + 1.0  # defined after the decoration
    assert f(0.0, 4) == 4.0


def test_struct_fields_and_rebinding():
    def body(heat, other, n):
        for i in range(n):
            heat.T = heat.T * other.scale
            heat.count = heat.count + 1
        return heat.T

    info = analyse(body)
    assert names(info.state) == ["heat.T", "heat.count"]
    assert [(s.name, s.fields, s.rebindable) for s in info.structs] == [
        ("heat", ("T", "count"), True)
    ]
    assert [(p.name, p.origin) for p in info.params] == [("heat", "struct"), ("other", "argument")]


# -- names ---------------------------------------------------------------------------------------


def test_namer_avoids_every_existing_name():
    namer = Namer({"sumheat_step", "heat_T", "heat_T_2"})
    assert namer.step("sumheat") == "sumheat_step_2"
    assert namer.field("heat", "T") == "heat_T_3"
    assert namer.fields("heat") == "heat_fields"
    assert namer.derived("lambda") == "lambda_2"  # a keyword is never a name


def clashing(heat, n):
    heat_T = 1.0
    clashing_step = 2.0
    for i in range(n):
        heat.T = heat.T * heat_T + clashing_step
    return heat.T


class Box:
    def __init__(self, T):
        self.T = T


def test_generated_names_never_shadow_the_users():
    f = checkpoint_struct(Revolve(2))(clashing)
    assert "def clashing_step_2(" in f.generated_source
    assert "heat_T_2" in f.generated_source
    assert f(Box(1.0), 3) == clashing(Box(1.0), 3)


# -- binding ---------------------------------------------------------------------------------------


def test_closure_cells_are_shared_live():
    scale = 2.0

    @checkpoint_struct(Revolve(2))
    def grow(x, n):
        for i in range(n):
            x = x * scale
        return x + offset

    offset = 1.0  # assigned after the decoration: the cell is filled later
    assert grow(1.0, 3) == 9.0
    scale = 3.0  # read through the shared cell
    assert grow(1.0, 2) == 10.0


def defaults(x, n=3, *, rate: UndefinedAnnotation = 0.5):  # noqa: F821
    for i in range(n):
        x = x * rate
    return x


def test_defaults_and_annotations_are_the_originals():
    f = checkpoint_struct(Revolve(2))(defaults)
    assert f.__defaults__ == (3,)
    assert f.__kwdefaults__ == {"rate": 0.5}
    assert f.__annotations__ == defaults.__annotations__
    assert f(8.0) == 1.0
    assert f(8.0, 1, rate=0.25) == 2.0


def test_the_same_function_decorated_with_two_schemes_gets_two_file_names():
    def run(x, n):
        for i in range(n):
            x = np.sin(x)
        return x

    a = checkpoint_struct(Revolve(2))(run)
    b = checkpoint_struct(StoreAll())(run)
    c = checkpoint_struct(Revolve(2))(run)
    assert a.__code__.co_filename != b.__code__.co_filename
    assert a.__code__.co_filename == c.__code__.co_filename  # same text, same name
    assert "".join(linecache.getlines(b.__code__.co_filename)) == b.generated_source
    assert grad(a)(0.3, 4) == pytest.approx(grad(run)(0.3, 4), rel=1e-14)


def test_verbose_prints_every_pass():
    out = io.StringIO()
    from ckpt_transform.transform.pipeline import transform_function

    def run(x, n):
        for i in range(n):
            x = np.sin(x)
        return x

    result = transform_function(
        run, scheme=Revolve(2), machinery={"_ckpt": None, "_ckpt_scheme": None,
                                            "_ckpt_report": None}, verbose=True, out=out
    )  # fmt: skip
    text = out.getvalue()
    for name in ("parse", "fence", "analyse", "rewrite", "codegen", "compile"):
        assert f"---- after {name} " in text
    assert "state:      x" in text
    assert result.source in text
    assert result.filename in text


def test_verbose_option_of_the_decorator(capsys):
    def run(x, n):
        for i in range(n):
            x = np.sin(x)
        return x

    checkpoint_struct(Revolve(2), verbose=True)(run)
    assert "---- after codegen " in capsys.readouterr().out
