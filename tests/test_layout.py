"""The layout keeps its dependency rule, read from every module's imports with ``ast``
(imports inside functions included):

- the core (``workbench`` outside ``cli/`` and ``app/``) imports neither ``cli``, ``app``,
  ``probes`` nor ``editing``;
- ``probes`` and ``editing`` import only the core and themselves, never each other;
- ``cli/`` and ``app/`` compose whatever they need, with plain imports: no module is loaded by a
  name written as a string (``importlib.import_module``, ``__import__``);
- there is no import cycle anywhere.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "probes", "editing")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the three packages and ``app.py``."""
    out = {"app": ROOT / "app.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = module_files()


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports (``from pkg import sub`` counts as ``pkg.sub`` when
    ``sub`` is a module), wherever the import statement stands."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node, path.name == "__init__.py")
            found |= {f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names}
    return {name for name in found if name.split(".")[0] in PACKAGES + ("app",) and name in MODULES}


def layer(module: str) -> str:
    if module == "app":
        return "entry"
    for part in ("cli", "app"):
        if module == f"workbench.{part}" or module.startswith(f"workbench.{part}."):
            return part
    return "core" if module.split(".")[0] == "workbench" else module.split(".")[0]


ALLOWED = {"core": {"core"}, "probes": {"core", "probes"}, "editing": {"core", "editing"},
           "cli": {"core", "probes", "editing", "cli", "app"}, "app": {"core", "probes", "editing", "cli", "app"},
           "entry": {"app"}}

GRAPH = {module: imports_of(module) for module in MODULES}


def test_the_tree_is_read():
    """The reader sees the modules and their imports (a reader that saw nothing would pass the rule)."""
    assert {"workbench.cli.main", "workbench.app.backends", "editing.rome", "probes.sweep"} <= set(MODULES)
    assert "editing.rome" in GRAPH["workbench.app.backends"] or "editing.editor" in GRAPH["workbench.app.backends"]
    assert "workbench.tokens" in GRAPH["probes.store"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dependency_rule(module):
    bad = sorted(name for name in GRAPH[module] if layer(name) not in ALLOWED[layer(module)])
    assert not bad, f"{module} ({layer(module)}) must not import {bad}"


def test_no_import_cycles():
    """Tarjan's strongly connected components over the whole import graph: every one is a single
    module that does not import itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the number of modules (~150)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in GRAPH[node]:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_loaded_by_a_name_in_a_string(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
    names = {ast.unparse(call.func) for call in calls}
    assert not names & {"importlib.import_module", "import_module", "__import__"}, module


def test_the_cli_parser_imports_no_model_library():
    """``workbench --help`` and argument errors answer at once: building the parser and parsing
    import neither torch, transformer_lens, gradio, editing nor probes."""
    code = ("import sys; from workbench.cli.main import build_parser; build_parser().parse_args(['info']); "
            "print(sorted(m for m in ('torch', 'transformer_lens', 'gradio', 'editing', 'probes', 'numpy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_cli_offers_the_libraries_choices():
    """The parser's choice lists are its own (no library import); they must equal the libraries'."""
    from editing.forensics import explain, spectral
    from workbench.cli import forensics

    assert forensics.SCORES == explain.SCORES
    assert forensics.STATISTICS == spectral.STATISTICS
    assert (forensics.DEFAULT_STATISTIC, forensics.DEFAULT_THRESHOLD) == (spectral.DEFAULT_STATISTIC,
                                                                         spectral.DEFAULT_THRESHOLD)
