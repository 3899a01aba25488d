"""What of a file the teacher rates (paper §2.1): files without substance are dropped by a rule, and
of the rest the teacher sees the most informative window that fits its prompt budget.

The paper's motivation for filtering is that much of The Stack is "not self-contained" or
"boilerplate". Showing a rater the first N characters of a file shows it exactly that: licence text,
imports and a module docstring. Here:

* `no_substance(path, text)` names why a file has nothing to rate (empty, a `_version.py`, an
  `__init__.py`-style re-export stub holding only imports, `__all__` and dunder assignments), or
  returns None. Such files are counted and never rated or kept by the filter.
* `informative_window(text, max_chars)` is the character range `[start, end)` of whole lines, at
  most `max_chars` long, holding the most "substance" characters: non-blank code outside the
  module docstring, comment-only lines and import statements. Windows start at a `def`/`class`
  (or its decorator) when the file has any, so the teacher sees a unit from its first line. A file
  that fits is shown whole.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

_DEF_RE = re.compile(r"^\s*(@|def\s|async\s+def\s|class\s)")
_IMPORT_RE = re.compile(r"^\s*(import\s|from\s+\S+\s+import\s)")
_VERSION_FILES = {"_version.py", "version.py", "__version__.py", "_version_info.py"}


@dataclass(frozen=True)
class Window:
    """The part of a file shown to the teacher."""

    start: int
    """First character shown."""
    end: int
    """One past the last character shown."""
    n_chars: int
    """Length of the whole file."""
    substance: int
    """Substance characters inside the window (see the module docstring)."""

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end >= self.n_chars


def _is_stub_statement(node: ast.stmt) -> bool:
    """Imports, `__all__`/dunder assignments, `pass`, constants and `try: import ... except ImportError`."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.Pass)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # docstring or a bare string
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return all(isinstance(t, ast.Name) and t.id.startswith("__") and t.id.endswith("__") for t in targets)
    if isinstance(node, ast.Try):
        return all(_is_stub_statement(s) for s in node.body + node.orelse + node.finalbody) and \
            all(_is_stub_statement(s) for h in node.handlers for s in h.body)
    if isinstance(node, ast.If):  # `if TYPE_CHECKING: from x import y`
        return all(_is_stub_statement(s) for s in node.body + node.orelse)
    return False


def no_substance(path: str | None, text: str) -> str | None:
    """Why the file has nothing to rate (`empty`, `version_file`, `reexport_stub`), or None."""
    name = PurePosixPath(path or "").name.lower()
    code_lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not code_lines:
        return "empty"
    if name in _VERSION_FILES:
        return "version_file"
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None  # unparseable files are left to the teacher (and the rubric)
    if tree.body and all(_is_stub_statement(s) for s in tree.body):
        return "reexport_stub" if any(isinstance(s, (ast.Import, ast.ImportFrom, ast.Try, ast.If)) for s in tree.body) \
            else "empty"
    return None


def _line_weights(lines: list[str], text: str) -> tuple[list[int], list[bool]]:
    """Per line: substance characters, and whether a window may start there (a def/class/decorator)."""
    zero: set[int] = set()
    starts: set[int] = set()
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        tree = None
    if tree is not None:
        body = tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            zero.update(range(body[0].lineno - 1, (body[0].end_lineno or body[0].lineno)))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                zero.update(range(node.lineno - 1, (node.end_lineno or node.lineno)))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                starts.add(first - 1)
    else:
        for i, ln in enumerate(lines):
            if _IMPORT_RE.match(ln):
                zero.add(i)
            if _DEF_RE.match(ln) and not (i > 0 and lines[i - 1].lstrip().startswith("@")):
                starts.add(i)
    weights = []
    for i, ln in enumerate(lines):
        s = ln.strip()
        weights.append(0 if (i in zero or not s or s.startswith("#")) else len(s.replace(" ", "")))
    return weights, [i in starts for i in range(len(lines))]


def informative_window(text: str, max_chars: int) -> Window:
    """The densest window of whole lines within `max_chars` (see the module docstring)."""
    n = len(text)
    lines = text.splitlines(keepends=True)
    weights, can_start = _line_weights([ln.rstrip("\n") for ln in lines], text)
    if n <= max_chars:
        return Window(0, n, n, sum(weights))
    offsets = [0]
    for ln in lines:
        offsets.append(offsets[-1] + len(ln))
    candidates = [i for i, ok in enumerate(can_start) if ok] or [i for i, w in enumerate(weights) if w > 0] or [0]
    best: tuple[int, int, int] | None = None  # (substance, -start_line, end_line)
    for a in candidates:
        b, total = a, 0
        while b < len(lines) and offsets[b + 1] - offsets[a] <= max_chars:
            total += weights[b]
            b += 1
        if b == a:  # a single line longer than the budget: shown cut
            total = weights[a]
        key = (total, -a, b)
        if best is None or key > best:
            best = key
    total, neg_a, b = best  # type: ignore[misc]
    a = -neg_a
    start = offsets[a]
    end = offsets[b] if b > a else min(n, start + max_chars)
    return Window(start, end, n, total)
