"""The package's layering, read from the source (lazy imports inside functions included): no module
imports one that imports it back, and the bottom layers never reach up into a stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "phi_utils"
BOTTOM = ("phi_utils.sandbox", "phi_utils.model", "phi_utils.teacher", "phi_utils.datapipe")
STAGES = ("phi_utils.evaluation", "phi_utils.filtering", "phi_utils.synth", "phi_utils.train", "phi_utils.qualitative",
          "phi_utils.contamination", "phi_utils.pipeline", "phi_utils.corpus")


def _modules() -> dict[str, Path]:
    mods = {}
    for f in PKG.rglob("*.py"):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def _graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    """Module -> the phi_utils modules it imports (a `from pkg import sub` counts as importing `sub`)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else [])) \
                    if node.level else (node.module or "")
                targets = [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("phi_utils"):
                    deps.add(t)
        graph[name] = deps
    return graph, mods


def _cycles(graph: dict[str, set[str]], nodes: set[str]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v] & nodes):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph, mods = _graph()
    # package __init__ files only re-export their own submodules; the modules are what must not cycle
    modules = {m for m, p in mods.items() if p.name != "__init__.py"}
    assert _cycles(graph, modules) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, {"a", "b", "c", "d"}) == [["a", "b", "c"]]


@pytest.mark.parametrize("bottom", BOTTOM)
def test_bottom_layers_never_import_a_stage(bottom: str) -> None:
    graph, _ = _graph()
    up = sorted((m, d) for m, deps in graph.items() if m == bottom or m.startswith(bottom + ".")
                for d in deps if any(d == s or d.startswith(s + ".") for s in STAGES))
    assert up == []


def test_the_sandbox_imports_only_the_progress_bar() -> None:
    graph, _ = _graph()
    outside = sorted({d for m, deps in graph.items() if m.startswith("phi_utils.sandbox") for d in deps
                      if not d.startswith("phi_utils.sandbox")})
    assert outside == ["phi_utils.progress"]


def _calls(path: Path, names: set[str]) -> set[str]:
    """The names in `names` that the module calls (as `Name(...)` or `x.Name(...)`)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if called in names:
                out.add(called)
    return out


def test_one_step_graph_and_one_arm_registry() -> None:
    """Steps are declared in one policy module above the stages, arms in one registry; no module below the
    stages holds a graph or an arm list, and no stage module reaches up into the policy."""
    graph, mods = _graph()
    declares_steps = sorted(m for m, p in mods.items() if _calls(p, {"StepSpec", "StepGraph"}))
    declares_arms = sorted(m for m, p in mods.items() if _calls(p, {"Arm"}))
    assert declares_steps == ["phi_utils.steps"]
    assert declares_arms == ["phi_utils.arms"]
    below = BOTTOM + ("phi_utils.rundir", "phi_utils.config", "phi_utils.readiness", "phi_utils.sizing")
    for m, deps in graph.items():
        if any(m == b or m.startswith(b + ".") for b in below):
            assert not deps & {"phi_utils.steps", "phi_utils.arms"}, m
        if any(m == s or m.startswith(s + ".") for s in STAGES) and m not in ("phi_utils.pipeline", "phi_utils.train.__main__"):
            assert "phi_utils.steps" not in deps, f"{m} imports the step policy; a stage gets its graph from its RunDir"
