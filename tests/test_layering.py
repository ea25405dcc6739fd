"""The house rules of ckpt_transform, read from its source with ast (nothing here imports it).

* Layering: which part of the package may import which (the map is docs/contributing.md).
  Schemes plan and import nothing of runtime, storage or backends; storage and backends import
  nothing of schemes; transform nothing of the run time; only the runtime brings them together.
* Framework rooms: jax (and jaxlib, equinox) is imported only in ``backends/jax`` (a module or a
  package), mpi4py only in ``ckpt_transform/mpi`` (a module or a package); schemes import no
  third-party package but numpy (for planning tables, never for states), transform no numerics.
* No import cycle among the package's modules (an import inside a function counts; one under
  ``if TYPE_CHECKING:`` does not, as it never runs).
* Every module opens with a docstring; no function is over 80 lines.

The rules name parts of the package (the first name under ``ckpt_transform``), not files, so a
module that moves into a package (``stages.py`` -> ``stages/``, ``storage/hdf5.py`` ->
``storage/hdf5/``) or a new one (``schemes/multilevel.py``, ``runtime/guard.py``) is covered as
it lands.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ckpt_transform"
ROOT = "ckpt_transform"  # the part name of ckpt_transform/__init__.py (the public API)
# What a scheme may import: the standard library, and numpy for its own planning tables (the
# two-level planner's dynamic programme); never an AD framework, storage or a state.
SCHEME_IMPORTS = set(sys.stdlib_module_names) | {"numpy"}

# part -> the parts of the package it may import (itself always). A part not listed here may
# import any part but those FORBIDDEN to everyone below.
ALLOWED: dict[str, set[str]] = {
    "_checks": {"errors"},
    "errors": {"_checks"},
    "schemes": {"errors", "_checks"},
    "storage": {"errors", "_checks"},
    "backends": {"errors", "_checks"},
    "transform": {"errors", "_checks"},
    "mpi": {ROOT, "errors", "_checks", "backends"},  # the public API and the AD backends
}
# Modules with more than their part allows, and why.
MODULE_ALLOWED: dict[str, set[str]] = {
    # The JAX backend is the executor that compiles a whole plan into one XLA program: it reads
    # the plan (schemes) and the run's shared records (runtime.stats, runtime.tree), never the
    # autograd driver.
    "ckpt_transform.backends.jax": {"schemes", "runtime"},
}
MODULE_FORBIDDEN: dict[str, set[str]] = {"ckpt_transform.backends.jax": {"runtime.driver"}}
# part -> parts it may not import (for the parts that are not allow-listed above)
FORBIDDEN: dict[str, set[str]] = {
    "runtime": {ROOT, "transform", "api", "viz", "cli"},
    "stages": {ROOT, "transform", "api", "viz", "cli"},
    "api": {ROOT, "viz", "cli"},
    "viz": {ROOT, "backends", "storage", "cli"},
}
# parts only the named parts may import (besides themselves)
ONLY_IMPORTED_BY: dict[str, set[str]] = {
    "mpi": set(),  # a room of its own: users import it, the package does not
    "cli": {"__main__"},
}

# third-party packages -> the modules (dotted prefixes) that alone may import them
FRAMEWORK_ROOMS: dict[str, tuple[str, ...]] = {
    "jax": ("ckpt_transform.backends.jax",),
    "jaxlib": ("ckpt_transform.backends.jax",),
    "equinox": ("ckpt_transform.backends.jax",),
    "mpi4py": ("ckpt_transform.mpi",),
}
NUMERICS = {"numpy", "scipy", "autograd", "jax", "jaxlib", "equinox", "h5py", "mpi4py", "torch"}
MAX_FUNCTION_LINES = 80

# Functions over MAX_FUNCTION_LINES that other changes in flight split up: each entry is to be
# removed when its split lands (the test fails on an entry that is no longer over the limit).
ALLOWED_LONG: dict[str, str] = {}


@dataclass
class Module:
    name: str  # dotted: ckpt_transform.schemes.revolve (a package: its own name)
    path: Path
    tree: ast.Module
    is_package: bool
    where: str  # the file, from the package's parent folder: ckpt_transform/schemes/revolve.py
    imports: list[tuple[str, int, bool]] = field(default_factory=list)  # name, line, runs

    @property
    def part(self) -> str:
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else ROOT


def read_package(root: Path, package: str = "ckpt_transform") -> dict[str, Module]:
    """Every module under ``root`` (the package's folder), with the imports it makes."""
    modules: dict[str, Module] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = rel.with_suffix(".py").as_posix()
        modules[".".join(parts)] = Module(".".join(parts), path, tree, is_package, where)
    for module in modules.values():
        module.imports = list(_imports(module, modules))
    return modules


def _imports(module: Module, modules: dict[str, Module]):
    """(imported module name, line, runs) for every import statement in the module."""
    base = module.name if module.is_package else module.name.rpartition(".")[0]
    skipped = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    for node in ast.walk(module.tree):
        runs = id(node) not in skipped
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, runs
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base.split(".")[: len(base.split(".")) - node.level + 1]
                name = ".".join(anchor + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            yield name, node.lineno, runs
            for alias in node.names:  # `from pkg import submodule`
                if f"{name}.{alias.name}" in modules:
                    yield f"{name}.{alias.name}", node.lineno, runs


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _internal(name: str, modules: dict[str, Module]) -> str | None:
    """The package module an import names (``a.b.c`` may name the module ``a.b`` plus a name)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def layering_violations(modules: dict[str, Module]) -> list[str]:
    """One line per import that breaks the layering or the framework rooms."""
    found = []
    for module in modules.values():
        where = module.where
        for name, line, _ in module.imports:
            target = _internal(name, modules)
            top = name.split(".")[0]
            if target is None:
                rooms = FRAMEWORK_ROOMS.get(top)
                if rooms and not module.name.startswith(rooms):
                    found.append(f"{where}:{line}: imports {top}, which only {rooms} may")
                if module.part == "schemes" and top not in SCHEME_IMPORTS:
                    found.append(f"{where}:{line}: a scheme imports {top} (schemes are pure)")
                if module.part == "transform" and top in NUMERICS:
                    found.append(f"{where}:{line}: transform imports {top} (no numerics there)")
                continue
            other = modules[target].part
            if other == module.part:
                continue
            allowed = ALLOWED.get(module.part)
            if allowed is not None:
                allowed = allowed | MODULE_ALLOWED.get(module.name, set())
            if any(target.startswith(f"{ROOT}.{p}") for p in MODULE_FORBIDDEN.get(module.name, ())):
                found.append(f"{where}:{line}: {module.name} may not import {target}")
            elif allowed is not None and other not in allowed:
                found.append(
                    f"{where}:{line}: {module.part} imports {target}; "
                    f"{module.part} may import only {sorted(allowed)}"
                )
            elif other in FORBIDDEN.get(module.part, ()):
                found.append(f"{where}:{line}: {module.part} may not import {target}")
            if other in ONLY_IMPORTED_BY and module.part not in ONLY_IMPORTED_BY[other]:
                found.append(f"{where}:{line}: {module.part} imports {target}, a room of its own")
    return found


def import_cycles(modules: dict[str, Module]) -> list[list[str]]:
    """The import cycles among the modules (strongly connected components, Tarjan's algorithm)."""
    graph = {
        m.name: sorted(
            {
                t
                for n, _, runs in m.imports
                if runs and (t := _internal(n, modules)) not in (None, m.name)
            }
        )
        for m in modules.values()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def long_functions(modules: dict[str, Module], limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``module:qualname`` -> lines, for every function (``def`` line to its end) over ``limit``."""
    found: dict[str, int] = {}

    def walk(node: ast.AST, module: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = child.end_lineno - child.lineno + 1
                if lines > limit:
                    found[f"{module}:{prefix}{child.name}"] = lines
                walk(child, module, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, module, f"{prefix}{child.name}.")
            else:
                walk(child, module, prefix)

    for m in modules.values():
        walk(m.tree, m.name, "")
    return found


# -- the package ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package() -> dict[str, Module]:
    return read_package(PACKAGE)


def test_layering(package):
    assert layering_violations(package) == []


def test_no_import_cycle(package):
    assert import_cycles(package) == []


def test_every_module_opens_with_a_docstring(package):
    missing = [m.where for m in package.values() if not ast.get_docstring(m.tree)]
    assert missing == []


def test_no_function_over_80_lines(package):
    found = long_functions(package)
    offenders = {name: lines for name, lines in found.items() if name not in ALLOWED_LONG}
    assert offenders == {}, f"functions over {MAX_FUNCTION_LINES} lines: {offenders}"
    stale = sorted(set(ALLOWED_LONG) - set(found))
    assert stale == [], f"no longer over {MAX_FUNCTION_LINES} lines: remove from ALLOWED_LONG"


# -- the checks themselves, on small made-up packages ------------------------------------------


def make_package(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    root = tmp_path / "ckpt_transform"
    for rel, text in {"__init__.py": '"""Top."""\n', **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return read_package(root)


DOC = '"""Doc."""\n'


def test_the_checks_find_what_breaks_the_rules(tmp_path):
    modules = make_package(
        tmp_path,
        {
            "schemes/__init__.py": DOC,
            "schemes/multilevel.py": DOC
            + "import h5py\nfrom ckpt_transform.storage import memory\n",
            "storage/__init__.py": DOC,
            "storage/memory.py": DOC + "from ..schemes import multilevel\n",
            "storage/hdf5/__init__.py": DOC + "from ckpt_transform.schemes.multilevel import X\n",
            "runtime/__init__.py": DOC,
            "runtime/guard.py": DOC + "import jax.numpy as jnp\n",
            "runtime/driver.py": DOC,
            "runtime/higher_order.py": DOC + "def f():\n    import mpi4py\n",
            "backends/__init__.py": DOC,
            "backends/jax.py": DOC + "import jax\nfrom ckpt_transform.runtime import driver\n",
            "backends/autograd.py": DOC + "from ckpt_transform.schemes import base\n",
            "mpi/__init__.py": DOC + "import mpi4py\nfrom ckpt_transform import checkpointed_for\n",
            "stages/__init__.py": DOC + "from ckpt_transform.mpi import allreduce\n",
            "transform/__init__.py": DOC + "import numpy as np\n",
        },
    )
    found = "\n".join(layering_violations(modules))
    for expected in [
        "schemes/multilevel.py:2: a scheme imports h5py",
        "schemes/multilevel.py:3: schemes imports ckpt_transform.storage.memory",
        "storage/memory.py:2: storage imports ckpt_transform.schemes.multilevel",
        "storage/hdf5/__init__.py:2: storage imports ckpt_transform.schemes.multilevel",
        "runtime/guard.py:2: imports jax, which only",
        "runtime/higher_order.py:3: imports mpi4py, which only",
        "backends/jax.py:3: ckpt_transform.backends.jax may not import ckpt_transform.runtime.dr",
        "backends/autograd.py:2: backends imports ckpt_transform.schemes",
        "stages/__init__.py:2: stages imports ckpt_transform.mpi, a room of its own",
        "transform/__init__.py:2: transform imports numpy",
    ]:
        assert expected in found, f"{expected!r} not in:\n{found}"
    assert "backends/jax.py:2" not in found  # jax in its own room
    assert "mpi/__init__.py" not in found  # mpi4py and the public API in the mpi room


def test_a_cycle_is_found_even_through_a_function_level_import(tmp_path):
    modules = make_package(
        tmp_path,
        {
            "transform/__init__.py": DOC,
            "transform/analysis.py": DOC + "def _text():\n    from . import codegen\n",
            "transform/codegen.py": DOC + "from ckpt_transform.transform.rewrite import R\n",
            "transform/rewrite.py": DOC + "from ckpt_transform.transform import analysis\n",
            "transform/text.py": DOC,
            "transform/typed.py": DOC
            + "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import hinted\n",
            "transform/hinted.py": DOC + "from . import typed\n",
        },
    )
    assert import_cycles(modules) == [
        [
            "ckpt_transform.transform.analysis",
            "ckpt_transform.transform.codegen",
            "ckpt_transform.transform.rewrite",
        ]
    ]


def test_long_functions_are_found_with_their_qualified_names(tmp_path):
    body = "".join(f"        x{i} = {i}\n" for i in range(80))
    text = DOC + "def short():\n    return 1\n\n\nclass A:\n    def long(self):\n" + body
    modules = make_package(tmp_path, {"cli.py": text})
    assert long_functions(modules) == {"ckpt_transform.cli:A.long": 81}
