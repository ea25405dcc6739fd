"""The documentation runs: every ```python block of README.md and docs/*.md, and the site builds.

README.md is read by people who paste one block into a file: each of its python blocks runs on
its own, in a fresh module (a block that needs a name defines it). Its first block holds exactly
the two set-up commands that CI (.ci/run) reads and runs.

Conventions for writing pages (docs/extending.md repeats them for contributors):

* Every fenced ```python block is executed, in the order of the page, all blocks of a page in one
  fresh namespace (a later block sees what an earlier one defined), from a temporary directory
  (files the examples write land there).
* A block preceded by the line ``<!-- no-run -->`` is not executed. Keep these rare: they are
  for text that is deliberately not a program (an outline with ``...`` bodies that would mislead
  if run, a sketch of a user's own code).
* A fenced block preceded by ``<!-- output -->`` is the printed output of the python block
  before it: the test runs that block, captures what it prints and compares, line by line with
  trailing spaces ignored. So output shown on a page is real output.
* Functions defined in a block have readable source: the page's python blocks are registered with
  `linecache` under the name ``docs/PAGE.md`` at their own line numbers (as notebooks register
  their cells), so ``@checkpoint_struct`` works on them and tracebacks show the page's lines.

The site is built with ``mkdocs build --strict``: a broken link, a page missing from the
navigation or a nav entry without a page fails the build.
"""

from __future__ import annotations

import contextlib
import io
import linecache
import os
import re
import subprocess
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*(no-run|output)\s*-->\s*$")


@dataclass
class Block:
    info: str  # the info string: "python", "text", ...
    code: str  # the content, dedented by the fence's indentation
    line: int  # 1-based line of the first content line
    marker: str | None  # "no-run", "output" or None


def read_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, with the marker comment before each."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        marker = None
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (m := _MARKER.match(lines[j])):
            marker = m.group(1)
        body: list[str] = []
        k = i + 1
        while k < len(lines):
            stripped = lines[k].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) == {fence[0]}:
                break
            body.append(lines[k][len(indent) :] if lines[k].startswith(indent) else lines[k])
            k += 1
        else:
            raise AssertionError(f"unclosed code fence at line {i + 1}")
        blocks.append(Block(match["info"].strip(), "\n".join(body) + "\n", i + 2, marker))
        i = k + 1
    return blocks


def _is_python(block: Block) -> bool:
    return block.info.split()[0:1] == ["python"] if block.info else False


def _normalise(text: str) -> list[str]:
    out = [line.rstrip() for line in text.splitlines()]
    while out and not out[-1]:
        out.pop()
    return out


def run_page(name: str) -> int:
    """Execute the python blocks of docs/NAME; return how many ran. Raises on any failure."""
    path = DOCS / name
    text = path.read_text(encoding="utf-8")
    blocks = read_blocks(text)
    # One fresh module for the whole page: a block sees what the blocks before it defined.
    return _in_fresh_module(f"docs/{name}", text, blocks)


def run_standalone(path: Path) -> int:
    """Execute each python block of the file at ``path`` on its own, in a fresh module.

    A block's ``<!-- output -->`` block (if any) is checked with it. Returns how many ran;
    raises on any failure (a name the block does not define is a NameError).
    """
    text = path.read_text(encoding="utf-8")
    groups: list[list[Block]] = []
    for block in read_blocks(text):
        if _is_python(block) or not groups:
            groups.append([block])
        else:
            groups[-1].append(block)
    return sum(_in_fresh_module(path.name, text, group) for group in groups)


def _in_fresh_module(filename: str, text: str, blocks: list[Block]) -> int:
    # A fresh module, registered while its blocks run (dataclasses and pickle look the defining
    # module up in sys.modules).
    stem = Path(filename).stem.replace("-", "_").replace(".", "_")
    module = types.ModuleType(f"docs_{stem}")
    sys.modules[module.__name__] = module
    try:
        return _run_blocks(filename, text, blocks, module.__dict__)
    finally:
        del sys.modules[module.__name__]


def _run_blocks(filename: str, text: str, blocks: list[Block], namespace: dict) -> int:
    page_lines = ["\n"] * (text.count("\n") + 1)
    last_output: str | None = None
    last_python: Block | None = None
    ran = 0
    for block in blocks:
        where = f"{filename}, block at line {block.line}"
        if block.marker == "output":
            assert last_python is not None and last_output is not None, (
                f"{where}: an <!-- output --> block must follow a python block that runs"
            )
            expected, got = _normalise(block.code), _normalise(last_output)
            assert got == expected, (
                f"{where}: the printed output of the python block at line {last_python.line} "
                f"differs from the page.\n--- on the page ---\n{block.code}--- printed ---\n"
                f"{last_output}"
            )
            last_output = None
            continue
        if not _is_python(block):
            continue
        if block.marker == "no-run":
            last_python, last_output = None, None
            continue
        # The page's python blocks so far, at their own line numbers, registered under the
        # page's name: tracebacks, inspect.getsource and checkpoint_struct read them there.
        for k, text in enumerate(block.code.splitlines(keepends=True)):
            page_lines[block.line - 1 + k] = text
        linecache.cache[filename] = (sum(map(len, page_lines)), None, page_lines, filename)
        # dont_inherit: the page is compiled without this file's `from __future__` imports.
        code = compile("\n" * (block.line - 1) + block.code, filename, "exec", dont_inherit=True)
        buffer = io.StringIO()
        try:
            with contextlib.redirect_stdout(buffer):
                exec(code, namespace)
        except Exception:
            raise AssertionError(
                f"{where} raised:\n{traceback.format_exc()}\n--- printed before ---\n"
                f"{buffer.getvalue()}"
            ) from None
        last_python, last_output = block, buffer.getvalue()
        ran += 1
    return ran


@pytest.fixture
def in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.use("Agg")
    return tmp_path


@pytest.mark.parametrize("name", PAGES)
def test_page_runs(name, in_tmp_dir):
    blocks = read_blocks((DOCS / name).read_text(encoding="utf-8"))
    run_page(name)
    for block in blocks:
        if block.marker == "no-run":
            assert _is_python(block), f"docs/{name}:{block.line}: no-run marks a python block"


def test_readme_blocks_run_each_on_its_own(in_tmp_dir):
    assert run_standalone(README) >= 2


def test_readme_opens_with_the_two_setup_commands():
    # .ci/run reads the first fenced block of README.md and runs each of its lines.
    first = read_blocks(README.read_text(encoding="utf-8"))[0]
    commands = first.code.splitlines()
    assert first.info in ("sh", "bash", "console", "shell"), first.info
    assert len(commands) == 2, commands
    assert all(c.startswith('pip install -e ".[') for c in commands), commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "README.md" in ci and "mkdocs build --strict" in ci


def test_readme_links_exist():
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_a_standalone_block_does_not_see_the_one_before(tmp_path):
    page = tmp_path / "README.md"
    page.write_text("```python\nx = 1\n```\ntext\n```python\nprint(x)\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="NameError: name 'x' is not defined"):
        run_standalone(page)
    page.write_text(
        "```sh\nls\n```\n```python\nprint(6 * 7)\n```\n<!-- output -->\n```text\n41\n```\n",
        encoding="utf-8",
    )
    with pytest.raises(
        AssertionError,
        match=r"README\.md, block at line 9: the printed output of the python block at line 5",
    ):
        run_standalone(page)
    page.write_text("```python\nx = 1\n```\n```python\nx = 2\nprint(x)\n```\n", encoding="utf-8")
    assert run_standalone(page) == 2


def test_pictures_exist():
    for name in PAGES:
        text = (DOCS / name).read_text(encoding="utf-8")
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
            if "://" in target:
                continue
            path = DOCS / target
            assert path.is_file(), f"docs/{name} shows {target}, which is not in docs/"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" or target.endswith(".svg")


def test_pages_exist():
    assert len(PAGES) >= 5, PAGES


def test_reader_finds_blocks_and_markers():
    text = (
        "intro\n```python\nx = 1\nprint(x)\n```\n<!-- output -->\n```text\n1\n```\n"
        "- item\n  ```python\n  y = 2\n  ```\n<!-- no-run -->\n```python\nraise SystemExit\n```\n"
        "````markdown\n```python\nnot code\n```\n````\n"
    )
    blocks = read_blocks(text)
    assert [(b.info, b.marker, b.line) for b in blocks] == [
        ("python", None, 3),
        ("text", "output", 8),
        ("python", None, 12),
        ("python", "no-run", 16),
        ("markdown", None, 19),
    ]
    assert blocks[2].code == "y = 2\n"
    assert blocks[4].code == "```python\nnot code\n```\n"


def test_a_wrong_output_block_fails(tmp_path, monkeypatch):
    page = "intro\n```python\nprint(6 * 7)\n```\n<!-- output -->\n```text\n41\n```\n"
    monkeypatch.setattr(sys.modules[__name__], "DOCS", tmp_path)
    (tmp_path / "bad.md").write_text(page, encoding="utf-8")
    with pytest.raises(AssertionError, match="differs from the page"):
        run_page("bad.md")
    (tmp_path / "good.md").write_text(page.replace("41", "42"), encoding="utf-8")
    assert run_page("good.md") == 1
    (tmp_path / "raises.md").write_text("```python\n1 / 0\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        run_page("raises.md")


def test_site_builds_strict(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "mkdocs", "build", "--strict"),
            *("--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    for name in PAGES:
        stem = Path(name).stem
        built = tmp_path / "site" / ("index.html" if stem == "index" else f"{stem}/index.html")
        assert built.is_file(), f"{name} was not built into {built}"
