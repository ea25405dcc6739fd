"""The generated source of canonical functions, compared exactly with tests/golden/*.py.

A golden file is a product a person reads: when the generator changes on purpose, regenerate them
with ``CKPT_REGENERATE_GOLDEN=1 pytest tests/transform/test_golden.py`` and read every diff.
The other tests here check properties of the generated text that do not depend on a golden file:
it is deterministic (across processes and hash seeds), it is exactly what runs, it keeps the
user's statements as written, and tracebacks and inspect show it.
"""

from __future__ import annotations

import inspect
import io
import linecache
import os
import pdb
import re
import subprocess
import sys
import traceback
from pathlib import Path

import autograd.numpy as np
import golden_cases
import pytest

from ckpt_transform.api import checkpoint_struct
from ckpt_transform.schemes.revolve import Revolve

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"
CASES = sorted(golden_cases.GOLDEN)


@pytest.mark.parametrize("name", CASES)
def test_generated_source_matches_golden_file(name):
    generated = golden_cases.GOLDEN[name].generated_source
    path = GOLDEN_DIR / f"{name}.py"
    if os.environ.get("CKPT_REGENERATE_GOLDEN") == "1":
        path.write_text(generated)
    assert generated == path.read_text()


def test_there_are_golden_files_for_the_canonical_cases_only():
    on_disk = sorted(p.stem for p in GOLDEN_DIR.glob("*.py"))
    assert on_disk == CASES
    assert len(CASES) >= 6


@pytest.mark.parametrize("name", CASES)
def test_generated_source_is_what_runs(name):
    fn = golden_cases.GOLDEN[name]
    filename = fn.__code__.co_filename
    assert filename.startswith("<ckpt_transform generated: ")
    assert "".join(linecache.getlines(filename)) == fn.generated_source
    # the decorated function's own code is the def of that name in the generated text
    lines = fn.generated_source.splitlines()
    assert lines[fn.__code__.co_firstlineno - 1].lstrip().startswith(f"def {fn.__name__}(")
    assert inspect.getsource(fn) in fn.generated_source


@pytest.mark.parametrize("name", CASES)
def test_users_statements_appear_as_written(name):
    """Every line of the loop body and of the code around it, apart from the element updates and
    augmented assignments that are rewritten, appears unchanged in the generated source."""
    original = golden_cases.GOLDEN[name].original
    generated = golden_cases.GOLDEN[name].generated_source
    lines, _ = inspect.getsourcelines(original)
    body = [line.strip() for line in lines[2:] if line.strip()]  # after the decorator and def
    rewritten = [
        line for line in body if "] = " in line.split("#")[0] or " += " in line or " -= " in line
    ]
    for line in body:
        if line not in rewritten:
            assert line in generated, line
    for line in rewritten:
        target = line.split("[")[0].split(" ")[0]
        n = _line_of(original, line)
        assert re.search(rf"rewritten from golden_cases\.py:{n}(-\d+)?: {target}\b", generated)
        assert f"{target} = " in generated


def _line_of(fn, text):
    lines, start = inspect.getsourcelines(fn)
    (index,) = [k for k, line in enumerate(lines) if line.strip() == text]
    return start + index


def test_same_text_every_time():
    fn = golden_cases.sumheat
    again = checkpoint_struct(Revolve(4))(fn.original)
    assert again.generated_source == fn.generated_source


def test_same_text_in_another_process_with_another_hash_seed():
    here = Path(__file__).resolve().parent
    code = (
        "import golden_cases, hashlib; "
        "print({n: hashlib.sha256(f.generated_source.encode()).hexdigest() "
        "for n, f in sorted(golden_cases.GOLDEN.items())})"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(here))
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1


def test_traceback_shows_the_generated_step_line():
    other = np.array([1.0, 2.0, 3.0])
    heat = golden_cases.Heat("not an array", other, 3, 0.5, 1)
    with pytest.raises(TypeError) as info:  # advance cannot step a string
        golden_cases.sumheat(heat, 1)
    frames = traceback.extract_tb(info.value.__traceback__)
    step_frames = [f for f in frames if f.name == "sumheat_step"]
    assert step_frames, [f.name for f in frames]
    assert step_frames[0].filename == golden_cases.sumheat.__code__.co_filename
    assert step_frames[0].line == "heat.Tnext = advance(heat)"


def test_decorated_function_keeps_the_original_metadata():
    fn = golden_cases.oscillator
    assert fn.__name__ == "oscillator"
    assert fn.__qualname__ == "oscillator"
    assert fn.__doc__ == "Symplectic Euler for x'' = -k x."
    assert fn.__module__ == "golden_cases"
    assert inspect.signature(fn) == inspect.signature(fn.original)
    assert fn.stats is None or fn.stats.steps >= 0
    assert not hasattr(fn, "__wrapped__")


def test_pdb_lists_the_generated_code():
    out = io.StringIO()
    debugger = pdb.Pdb(stdin=io.StringIO("list\ncontinue\n"), stdout=out, nosigint=True)
    debugger.use_rawinput = False
    result = debugger.runcall(golden_cases.oscillator, 1.0, 0.0, 1.0, 0.1, 3)
    shown = out.getvalue()
    assert "<ckpt_transform generated: oscillator at golden_cases.py:" in shown
    assert "->\t        t = 0.0" in shown
    assert "_ckpt.checkpointed_for(" in shown
    assert result == golden_cases.oscillator.original(1.0, 0.0, 1.0, 0.1, 3)
