"""Loading a decorated function from a file and showing its generated source."""

from __future__ import annotations

import io
import re
import sys
import textwrap

import pytest

from ckpt_transform.viz import (
    SourceError,
    SourceImportError,
    highlight,
    load_function,
    side_by_side,
    unified_diff,
)
from ckpt_transform.viz.source import color_default

HEAT = """\
import autograd.numpy as np

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.revolve import Revolve


def plain(T):
    return T


@checkpoint_struct(Revolve(4))
def heat(T, lam, n):
    for i in range(n):
        T = T + lam * (np.roll(T, 1) - 2 * T + np.roll(T, -1))
    return np.sum(T)


class Model:
    @staticmethod
    @checkpoint_struct(Revolve(2))
    def run(x, n):
        for i in range(n):
            x = x * 0.5
        return x


if __name__ == "__main__":
    raise SystemExit("the main block must not run")
"""


@pytest.fixture
def heat_file(tmp_path):
    path = tmp_path / "heat_model.py"
    path.write_text(HEAT)
    return path


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_loads_the_decorated_function(heat_file):
    path_before, modules_before = list(sys.path), set(sys.modules)
    heat = load_function(f"{heat_file}:heat")
    assert heat.__name__ == "heat"
    assert "checkpointed_for" in heat.generated_source
    assert heat.original.__name__ == "heat"
    # It computes what the loop computes.
    import numpy as np

    T = np.linspace(0.0, 1.0, 8)
    assert heat(T, 0.25, 5) == pytest.approx(heat.original(T, 0.25, 5))
    # The file's folder and module do not stay behind.
    assert sys.path == path_before
    assert {m for m in sys.modules if m.startswith("_ckpt_show_")} <= modules_before


def test_dotted_names_and_neighbour_imports(tmp_path):
    _write(tmp_path, "neighbour_steps.py", "HALF = 0.5\n")
    path = _write(
        tmp_path,
        "uses_neighbour.py",
        """\
        from neighbour_steps import HALF

        from ckpt_transform.api import checkpoint_struct
        from ckpt_transform.schemes.revolve import Revolve


        class Model:
            @staticmethod
            @checkpoint_struct(Revolve(2))
            def run(x, n):
                for i in range(n):
                    x = x * HALF
                return x
        """,
    )
    run = load_function(f"{path}:Model.run")
    assert run(8.0, 3) == 1.0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{file}", r"expected FILE\.py:FUNCTION .*got '.*heat_model\.py'"),
        ("{file}:", r"expected FILE\.py:FUNCTION"),
        ("{dir}/missing.py:heat", r"file '.*missing\.py' does not exist"),
        ("{dir}:heat", r"is a directory"),
        (
            "{file}:nothing",
            r"'nothing' is not defined in .*heat_model\.py \(decorated with checkpoint_struct: "
            r"heat; other functions: plain\)$",
        ),
        (
            "{file}:Model.walk",
            r"'walk' is not defined in Model \(decorated with checkpoint_struct: run\)$",
        ),
        (
            "{file}:plain",
            r"plain in .* is a function not decorated with checkpoint_struct.*"
            r"@checkpoint_struct\(Revolve\(4\)\)` on the line above `def plain",
        ),
        ("{file}:np", r"np in .* is a module not decorated with checkpoint_struct"),
    ],
)
def test_errors_say_what_and_what_to_do(heat_file, spec, message):
    with pytest.raises(SourceError, match=message) as info:
        load_function(spec.format(file=heat_file, dir=heat_file.parent))
    assert not isinstance(info.value, SourceImportError)


def test_a_file_that_fails_to_import(tmp_path):
    broken = _write(tmp_path, "broken.py", "import a_module_that_is_not_there\n")
    with pytest.raises(SourceImportError, match=r"ModuleNotFoundError: No module named"):
        load_function(f"{broken}:f")
    loopless = _write(
        tmp_path,
        "loopless.py",
        """\
        from ckpt_transform.api import checkpoint_struct
        from ckpt_transform.schemes.revolve import Revolve


        @checkpoint_struct(Revolve(2))
        def f(x):
            return x
        """,
    )
    with pytest.raises(SourceImportError, match=r"TransformError: .*loopless\.py, line"):
        load_function(f"{loopless}:f")
    exits = _write(tmp_path, "exits.py", "raise SystemExit(3)\n")
    with pytest.raises(SourceImportError, match="SystemExit"):
        load_function(f"{exits}:f")


def test_unified_diff_holds_both_sources(heat_file):
    heat = load_function(f"{heat_file}:heat")
    text = unified_diff(heat, context=10**6)
    lines = text.splitlines()
    assert lines[0] == f"--- {heat_file.name}:11-15 (original)"
    assert lines[1] == "+++ heat.generated_source"
    body = [x for x in lines[2:] if not x.startswith("@@")]
    original = [x[1:] for x in body if x[:1] in (" ", "-")]
    generated = [x[1:] for x in body if x[:1] in (" ", "+")]
    assert original == textwrap.dedent("".join(HEAT.splitlines(True)[10:15])).splitlines()
    assert generated == heat.generated_source.splitlines()


def test_side_by_side_pairs_each_statement_with_its_copy(heat_file):
    heat = load_function(f"{heat_file}:heat")
    text = side_by_side(heat, width=300)  # wide: no line wraps
    rows = text.splitlines()[2:]
    generated = heat.generated_source.splitlines()
    lines = HEAT.splitlines()
    column = (300 - 2 - 2 - 5) // 2
    right, left = [], []
    for row in rows:
        mark = row[2 + 1 + column + 1]
        m = re.match(r"\s*(\d+) (.*)", row[: 2 + 1 + column])
        number = int(m[1]) if m else None
        r = re.match(r"\s*(\d+)(?: (.*))?$", row[2 + 1 + column + 3 :])
        if number is not None:
            left.append(number)
            assert (
                m[2].rstrip() == lines[number - 1][4:].rstrip()
                or m[2].rstrip() == lines[number - 1].rstrip()
            )
        if r:
            right.append(int(r[1]))
            assert (r[2] or "") == generated[int(r[1]) - 1]
        if mark == " ":
            assert lines[number - 1].strip() == generated[int(r[1]) - 1].strip()
        elif mark == "~":
            assert generated[int(r[1]) - 1].strip().endswith(lines[number - 1].strip())
        elif mark == ">":
            assert number is None and r
        else:
            assert mark == "<" and number is not None and not r
    # The generated source complete and in order; each original line once.
    assert right == list(range(1, len(generated) + 1))
    assert sorted(left) == list(range(11, 16))
    # The loop body sits beside its copy in the step function.
    body = next(row for row in rows if "np.roll" in row)
    assert body.lstrip().startswith("14 ") and body.count("np.roll(T, 1)") == 2


def test_side_by_side_wraps_long_lines(heat_file):
    heat = load_function(f"{heat_file}:heat")
    text = side_by_side(heat, width=60)
    assert all(len(line) <= 60 for line in text.splitlines())
    with pytest.raises(ValueError, match="at least 40"):
        side_by_side(heat, width=39)


def test_highlight():
    source = "def f(x):\n    return x + 1\n"
    assert highlight(source, color=False) == source
    coloured = highlight(source)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == source
    diff = "--- a\n+++ b\n-x\n+y"
    assert re.sub(r"\x1b\[[0-9;]*m", "", highlight(diff, language="diff")) == diff
    with pytest.raises(ValueError, match="'python' or 'diff'"):
        highlight(source, language="c")


def test_highlight_without_pygments_is_plain(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygments", None)  # import pygments now fails
    source = "def f(x):\n    return x + 1\n"
    assert highlight(source, color=True) == source


def test_color_only_on_a_terminal(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert color_default(Tty()) is True
    assert color_default(io.StringIO()) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert color_default(Tty()) is False
