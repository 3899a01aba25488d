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
    lines = text.splitlines()
    if not any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines):
        return "empty"
    if name in _VERSION_FILES:
        return "version_file"
    if any(_DEF_RE.match(ln) for ln in lines):
        return None  # defines something: not a stub (and no parse needed, which is the slow part)
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None  # unparseable files are left to the teacher (and the rubric)
    if tree.body and all(_is_stub_statement(s) for s in tree.body):
        return "reexport_stub" if any(isinstance(s, (ast.Import, ast.ImportFrom, ast.Try, ast.If)) for s in tree.body) \
            else "empty"
    return None


_DOCSTRING_OPEN = re.compile(r"""^[rRuUbB]{0,2}(\"\"\"|\'\'\')""")


def _module_docstring_lines(lines: list[str]) -> range:
    """Line indices of the module docstring (after leading comments and blank lines), if any."""
    i = 0
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip().startswith("#")):
        i += 1
    m = _DOCSTRING_OPEN.match(lines[i]) if i < len(lines) else None
    if not m:
        return range(0)
    quote, rest = m.group(1), lines[i][m.end():]
    if quote in rest:
        return range(i, i + 1)
    for j in range(i + 1, len(lines)):
        if quote in lines[j]:
            return range(i, j + 1)
    return range(i, len(lines))


def _line_weights(lines: list[str]) -> tuple[list[int], list[bool]]:
    """Per line: substance characters, and whether a window may start there (a def/class or its
    first decorator). A line scan, not a parse: it must stay cheap over a whole corpus."""
    zero = set(_module_docstring_lines(lines))
    starts = []
    in_import = paren = False
    prev_decorator = False
    for i, ln in enumerate(lines):
        s = ln.strip()
        if in_import:  # continuation of a parenthesised or backslashed import
            zero.add(i)
            if (paren and ")" in s) or (not paren and not s.endswith("\\")):
                in_import = False
        elif _IMPORT_RE.match(ln):
            zero.add(i)
            paren = "(" in s and ")" not in s
            in_import = paren or s.endswith("\\")
        is_def = bool(_DEF_RE.match(ln))
        starts.append(is_def and not prev_decorator)
        if s:
            prev_decorator = s.startswith("@")
    weights = [0 if (i in zero or not ln.strip() or ln.lstrip().startswith("#")) else len(ln.strip().replace(" ", ""))
               for i, ln in enumerate(lines)]
    return weights, starts


def informative_window(text: str, max_chars: int) -> Window:
    """The densest window of whole lines within `max_chars` (see the module docstring)."""
    from bisect import bisect_right
    from itertools import accumulate

    n = len(text)
    lines = text.splitlines(keepends=True)
    weights, can_start = _line_weights([ln.rstrip("\r\n") for ln in lines])
    if n <= max_chars:
        return Window(0, n, n, sum(weights))
    offsets = [0, *accumulate(len(ln) for ln in lines)]
    cum = [0, *accumulate(weights)]
    candidates = [i for i, ok in enumerate(can_start) if ok] or [i for i, w in enumerate(weights) if w > 0] or [0]
    best: tuple[int, int, int] | None = None  # (substance, -start_line, end_line)
    for a in candidates:
        b = max(a, bisect_right(offsets, offsets[a] + max_chars) - 1)  # lines a..b-1 fit
        total = cum[b] - cum[a] if b > a else weights[a]  # b == a: one line longer than the budget, shown cut
        key = (total, -a, b)
        if best is None or key > best:
            best = key
    total, neg_a, b = best  # type: ignore[misc]
    a = -neg_a
    start = offsets[a]
    end = offsets[b] if b > a else min(n, start + max_chars)
    return Window(start, end, n, total)
