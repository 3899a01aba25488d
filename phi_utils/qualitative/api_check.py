"""Does generated code call library functions that do not exist? Checked statically.

The paper judges §3's completions by eye and notes that weaker models "invent" Tkinter calls;
phi-1's own chat answer calls `ax.set_dpi`/`ax.rotate`, which matplotlib's `Axes` lacks. This
module makes that judgement objective without running the code: it parses the snippet, binds
the names introduced by imports (and a few well-known constructors such as `plt.subplots()` or
`tk.Tk()`), and resolves every attribute chain rooted at such a name against the *installed*
libraries (the libraries are imported; the snippet is not executed).

It is deliberately conservative - a name is only checked when its value is known for sure:
- a name bound anywhere else in the snippet (function parameter, loop variable, a second
  assignment of another value) is dropped, so shadowing never yields a false alarm;
- attributes the snippet itself assigns (`root.title_text = ...`) count as existing;
- instances of classes with a custom `__getattr__` (e.g. `torch.nn.Module`, `tkinter.Tk`) are not
  checked past the instance, and an instance attribute counts as existing when the class's
  source mentions `self.<name>`.
Unresolvable things are counted (`unresolved`), never reported as missing.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import inspect
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

NEVER_IMPORT = frozenset({"antigravity", "this", "__hello__", "__phello__", "idlelib", "turtledemo"})
"""Modules with side effects on import (open a browser, print); treated as unresolved."""


@dataclass(frozen=True)
class ApiIssue:
    line: int
    """1-based line in the checked snippet."""
    expr: str
    """The attribute chain or import as written, e.g. `ax.rotate`."""
    reason: str
    """Why it does not exist, e.g. `'Axes' object has no attribute 'rotate'`."""


@dataclass
class ApiReport:
    parsed: bool
    """False when no prefix of the snippet is valid Python (nothing could be checked)."""
    checked: int = 0
    """Attribute chains / imports resolved successfully."""
    unresolved: int = 0
    """Chains whose root or an intermediate value could not be determined (not judged)."""
    issues: list[ApiIssue] = field(default_factory=list)
    """Calls to attributes/modules that do not exist in the installed libraries."""

    @property
    def ok(self) -> bool:
        return not self.issues

    def summary(self) -> str:
        if not self.parsed:
            return "not parseable"
        if self.issues:
            return "; ".join(f"L{i.line} {i.expr}: {i.reason}" for i in self.issues)
        return f"ok ({self.checked} checked, {self.unresolved} unresolved)"


# ----------------------------------------------------------------------------- values
@dataclass(frozen=True)
class _Obj:
    """A known Python object (module, class, function, constant)."""
    obj: Any


@dataclass(frozen=True)
class _Inst:
    """An instance of a known class (the value of `tk.Tk()`, `plt.subplots()[1]`, ...)."""
    cls: type


_Value = _Obj | _Inst | tuple


def _import(name: str) -> Any:
    """Import a module of the installed environment; raises ImportError when it does not exist."""
    top = name.split(".")[0]
    if top in NEVER_IMPORT:
        raise LookupError(f"{top} is never imported by the checker")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame prints a banner on import
    return importlib.import_module(name)


@lru_cache(maxsize=None)
def _return_rules() -> dict[Any, tuple[str, ...]]:
    """Return types of a few constructors whose results are used as objects in §3's prompts.

    Keyed by the function object itself (so `plt.subplots` and `matplotlib.pyplot.subplots` match);
    a value of several names means the call returns a tuple of instances.
    """
    rules = {
        ("matplotlib.pyplot", "subplots"): ("matplotlib.figure:Figure", "matplotlib.axes:Axes"),
        ("matplotlib.pyplot", "figure"): ("matplotlib.figure:Figure",),
        ("matplotlib.pyplot", "gcf"): ("matplotlib.figure:Figure",),
        ("matplotlib.pyplot", "gca"): ("matplotlib.axes:Axes",),
        ("matplotlib.pyplot", "subplot"): ("matplotlib.axes:Axes",),
        ("matplotlib.pyplot", "axes"): ("matplotlib.axes:Axes",),
        ("matplotlib.figure:Figure", "add_subplot"): ("matplotlib.axes:Axes",),
        ("matplotlib.figure:Figure", "gca"): ("matplotlib.axes:Axes",),
        ("matplotlib.figure:Figure", "add_axes"): ("matplotlib.axes:Axes",),
        ("pygame.display", "set_mode"): ("pygame:Surface",),
        ("pygame.display", "get_surface"): ("pygame:Surface",),
    }
    out: dict[Any, tuple[str, ...]] = {}
    for (owner, attr), returns in rules.items():
        try:
            fn = getattr(_resolve_dotted(owner), attr)
        except Exception:  # library not installed: the rule simply does not apply
            continue
        out[fn] = returns
    return out


def _resolve_dotted(spec: str) -> Any:
    """`pkg.mod` (a module) or `pkg.mod:Class` (an attribute of it)."""
    mod_name, _, attr = spec.partition(":")
    mod = _import(mod_name)
    return getattr(mod, attr) if attr else mod


def _has_custom_getattr(cls: type) -> bool:
    for klass in cls.__mro__:
        if klass is object:
            continue
        if "__getattr__" in vars(klass):
            return True
    return False


@lru_cache(maxsize=4096)
def _instance_attr_in_source(cls: type, name: str) -> bool:
    """Whether some class of the MRO assigns `self.<name>` (instance attributes are not on the class)."""
    pattern = re.compile(rf"self\.{re.escape(name)}\b|['\"]{re.escape(name)}['\"]")
    for klass in cls.__mro__:
        if klass is object:
            continue
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        if pattern.search(src):
            return True
    return False


class _Missing(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _get_attr(value: _Value, name: str) -> _Value | None:
    """The attribute `name` of a known value; None when it exists but its value is unknown;
    raises `_Missing` when it certainly does not exist."""
    if isinstance(value, tuple):
        if hasattr(tuple, name):
            return None
        raise _Missing(f"'tuple' object has no attribute '{name}'")
    if isinstance(value, _Obj):
        obj = value.obj
        try:
            return _Obj(getattr(obj, name))
        except AttributeError:
            pass
        except Exception:  # a lazy attribute that fails to load: not our judgement
            return None
        if inspect.ismodule(obj):
            sub = f"{obj.__name__}.{name}"
            if hasattr(obj, "__path__"):  # a package: the name may be a not-yet-imported submodule
                try:
                    if importlib.util.find_spec(sub) is not None:
                        return _Obj(_import(sub))
                except ImportError:
                    pass
                except Exception:
                    return None
            raise _Missing(f"module '{obj.__name__}' has no attribute '{name}'")
        if inspect.isclass(obj) and _instance_attr_in_source(obj, name):
            return None  # e.g. a dataclass field without default
        if inspect.isclass(obj) and _has_custom_getattr(type(obj)):
            return None
        kind = type(obj).__name__ if not inspect.isclass(obj) else "type object"
        label = obj.__name__ if inspect.isclass(obj) else kind
        raise _Missing(f"{kind} '{label}' has no attribute '{name}'" if inspect.isclass(obj)
                       else f"'{kind}' object has no attribute '{name}'")
    cls = value.cls
    if hasattr(cls, name):
        attr = inspect.getattr_static(cls, name, None)
        # methods are fine; other class attributes (properties, descriptors) have unknown values
        if inspect.isfunction(attr) or inspect.ismethoddescriptor(attr) or inspect.isbuiltin(attr):
            return _Obj(getattr(cls, name))
        return None
    if _has_custom_getattr(cls) or _instance_attr_in_source(cls, name):
        return None
    raise _Missing(f"'{cls.__name__}' object has no attribute '{name}'")


# ----------------------------------------------------------------------------- the checker
def trim_to_parseable(code: str) -> tuple[str, bool]:
    """The longest line prefix of `code` that parses (generations are often cut mid-statement).

    Returns (code, trimmed). An unparseable snippet returns ("", True).
    """
    lines = code.splitlines()
    for end in range(len(lines), 0, -1):
        candidate = "\n".join(lines[:end]) + "\n"
        try:
            ast.parse(candidate)
        except (SyntaxError, ValueError):
            continue
        return candidate, end != len(lines)
    return "", bool(code.strip())


def _bound_elsewhere(tree: ast.AST) -> set[str]:
    """Names bound by anything but a top-level-style import/assignment we understand."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            a = node.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
                if arg is not None:
                    names.add(arg.arg)
            if not isinstance(node, ast.Lambda):
                names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
            names |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    names |= {n.id for n in ast.walk(item.optional_vars) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names |= set(node.names)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.NamedExpr):
            names.add(node.target.id)
    return names


def _chain_text(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:
        return "<expr>"


class _Checker:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.report = ApiReport(parsed=True)
        self.env: dict[str, _Value] = {}
        self.stored: set[str] = set()  # attribute chains the snippet assigns itself, e.g. "root.x"

    # ---- binding
    def bind_imports(self) -> None:
        conflicted: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self._bind_import(node, alias.name, alias.asname, conflicted)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside a snippet: nothing to resolve against
                    continue
                mod_name = node.module or ""
                try:
                    mod = _import(mod_name)
                except ImportError as e:
                    self._issue(node, f"from {mod_name} import ...", f"no module named '{getattr(e, 'name', mod_name)}'")
                    continue
                except Exception:
                    self.report.unresolved += 1
                    continue
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    local = alias.asname or alias.name
                    try:
                        value = _get_attr(_Obj(mod), alias.name)
                    except _Missing:
                        self._issue(node, f"from {mod_name} import {alias.name}",
                                    f"cannot import name '{alias.name}' from '{mod_name}'")
                        continue
                    self.report.checked += 1
                    self._set(local, value, conflicted)
        for name in conflicted:
            self.env.pop(name, None)

    def _bind_import(self, node: ast.AST, name: str, asname: str | None, conflicted: set[str]) -> None:
        try:
            mod = _import(name)
        except ImportError as e:
            self._issue(node, f"import {name}", f"no module named '{getattr(e, 'name', None) or name}'")
            return
        except Exception:
            self.report.unresolved += 1
            return
        self.report.checked += 1
        if asname:
            self._set(asname, _Obj(mod), conflicted)
        else:
            top = name.split(".")[0]
            self._set(top, _Obj(importlib.import_module(top)), conflicted)

    def _set(self, name: str, value: _Value | None, conflicted: set[str]) -> None:
        if value is None:
            conflicted.add(name)
        elif name in self.env and self.env[name] != value:
            conflicted.add(name)
        else:
            self.env[name] = value

    def bind_assignments(self) -> None:
        """`x = <known call>` / `fig, ax = plt.subplots()`; any other binding makes a name unknown."""
        conflicted = _bound_elsewhere(self.tree)
        assigned: dict[str, list[_Value | None]] = {}
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(self._value(node.value))
                elif isinstance(target, (ast.Tuple, ast.List)):
                    value = self._value(node.value)
                    elts = target.elts
                    values = list(value) if isinstance(value, tuple) and len(value) == len(elts) else [None] * len(elts)
                    for elt, v in zip(elts, values):
                        for n in ast.walk(elt):
                            if isinstance(n, ast.Name):
                                assigned.setdefault(n.id, []).append(v if isinstance(elt, ast.Name) else None)
                else:
                    # attribute / subscript stores: remember the chain so later loads count as existing
                    if isinstance(target, ast.Attribute):
                        self.stored.add(_chain_text(target))
        for node in ast.walk(self.tree):  # augmented/annotated attribute stores too
            if isinstance(node, (ast.AugAssign, ast.AnnAssign)) and isinstance(node.target, ast.Attribute):
                self.stored.add(_chain_text(node.target))
        for name, values in assigned.items():
            if name in self.env or any(v is None for v in values) or len(set(map(repr, values))) > 1:
                self.env.pop(name, None)
                conflicted.add(name)
            else:
                self.env[name] = values[0]  # type: ignore[assignment]
        for name in conflicted:
            self.env.pop(name, None)

    # ---- evaluation of expressions to known values (no issues recorded here)
    def _value(self, node: ast.AST) -> _Value | None:
        try:
            return self._eval(node, record=False)
        except _Missing:
            return None

    def _eval(self, node: ast.AST, record: bool) -> _Value | None:
        if isinstance(node, ast.Name):
            return self.env.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self._eval(node.value, record)
            if base is None:
                return None
            if _chain_text(node) in self.stored:
                return None
            try:
                value = _get_attr(base, node.attr)
            except _Missing as m:
                if not m.reason:
                    return None
                if record:
                    self._issue(node, _chain_text(node), m.reason)
                raise
            if record:
                self.report.checked += 1
            return value
        if isinstance(node, ast.Call):
            func = self._eval(node.func, record)
            if not isinstance(func, _Obj):
                return None
            return self._call_result(func.obj, node)
        return None

    def _call_result(self, fn: Any, call: ast.Call) -> _Value | None:
        if inspect.isclass(fn):
            return _Inst(fn)
        try:
            returns = _return_rules().get(fn)
        except TypeError:  # unhashable callable
            returns = None
        if not returns:
            return None
        try:
            classes = [_resolve_dotted(r) for r in returns]
        except Exception:
            return None
        if len(classes) == 1:
            return _Inst(classes[0])
        # plt.subplots(2, 2) returns an array of Axes: only the 1x1 form is a single Axes
        grid = call.args or [k for k in call.keywords if k.arg in ("nrows", "ncols")]
        return (_Inst(classes[0]), None if grid else _Inst(classes[1]))  # type: ignore[return-value]

    # ---- checking
    def check_loads(self) -> None:
        seen: set[int] = set()
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Attribute) or id(node) in seen or not isinstance(node.ctx, ast.Load):
                continue
            # check outermost chains only: mark inner attributes as seen
            for inner in ast.walk(node):
                if inner is not node and isinstance(inner, ast.Attribute):
                    seen.add(id(inner))
            root = node
            while isinstance(root, (ast.Attribute, ast.Call)):
                root = root.value if isinstance(root, ast.Attribute) else root.func
            if not isinstance(root, ast.Name) or root.id not in self.env:
                if isinstance(root, ast.Name) and not hasattr(builtins, root.id):
                    self.report.unresolved += 1
                continue
            try:
                self._eval(node, record=True)
            except _Missing:
                pass

    def _issue(self, node: ast.AST, expr: str, reason: str) -> None:
        issue = ApiIssue(getattr(node, "lineno", 0), expr, reason)
        if issue not in self.report.issues:
            self.report.issues.append(issue)


def check_api(code: str) -> ApiReport:
    """Resolve the imports and attribute chains of `code` against the installed libraries.

    The snippet is trimmed to its longest parseable prefix first (generations stop mid-line).
    Only imported modules and values derived from them are checked; see the module docstring.
    """
    code, _ = trim_to_parseable(code)
    if not code.strip():
        return ApiReport(parsed=False)
    tree = ast.parse(code)
    checker = _Checker(tree)
    checker.bind_imports()
    checker.bind_assignments()
    checker.check_loads()
    return checker.report


def extract_code(text: str) -> str:
    """Code inside a prose answer: fenced blocks if any, else lines that look like Python.

    Used for the chat prompt, whose answer is prose with an embedded example.
    """
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.S)
    if blocks:
        return "\n".join(blocks)
    keep: list[str] = []
    for line in text.splitlines():
        try:
            ast.parse(line.strip())
        except SyntaxError:
            continue
        stripped = line.strip()
        # a prose sentence can parse as an expression (`Yes`); keep only code-looking lines
        if stripped and (re.search(r"[=()\[\]]|^(import|from|for|if|def|class|while|return)\b", stripped)):
            keep.append(stripped)
    return "\n".join(keep)
