"""docs/how-it-works.md shows real output: its generated code is what the decorator generates."""

from __future__ import annotations

import importlib.util
import linecache
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "how-it-works.md"


def blocks(kind: str) -> dict[str, str]:
    """The fenced code blocks that follow ``<!-- kind: name -->`` markers, by name."""
    pattern = rf"<!-- {kind}: (\S+) -->\n(?:<!-- no-run -->\n)?```python\n(.*?)```"
    return dict(re.findall(pattern, DOC.read_text(), flags=re.S))


def test_the_doc_has_both_examples():
    assert set(blocks("original")) == set(blocks("generated")) == {"heat", "ode.py"}


def test_heat_example_matches_examples_heat_py():
    spec = importlib.util.spec_from_file_location("how_it_works_heat", ROOT / "examples/heat.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    assert blocks("original")["heat"] in (ROOT / "examples/heat.py").read_text()
    assert module.sumheat.generated_source == blocks("generated")["heat"]


def test_while_loop_example_generates_what_the_doc_shows():
    source = blocks("original")["ode.py"]
    filename = "/nonexistent/ode.py"  # its base name is what the generated comments show
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "how_it_works_ode"}
    exec(compile(source, filename, "exec"), namespace)
    assert namespace["cool_down"].generated_source == blocks("generated")["ode.py"]


@pytest.mark.parametrize("name", ["heat", "ode.py"])
def test_generated_blocks_compile(name):
    compile(blocks("generated")[name], name, "exec")
