"""Parsing teacher output: Python blocks and their claimed outputs in a passage, exercises in a reply.

Small teachers write fluent passages whose stated outputs are wrong, cut replies mid-block at
`max_tokens`, and ignore format requests. Every parser here returns a reason instead of raising,
so the stages can count each failure kind.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any

# ``` fence with optional language; the body runs to the closing fence or the end of the text.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(^[ \t]*```[ \t]*$|\Z)", re.S | re.M)
_PY_LANGS = ("python", "py", "python3", "pycon", "")
_OUTPUT_LANGS = ("", "text", "output", "console", "txt", "plaintext", "shell-session")
# A comment on a code line claiming what it prints: `print(x)  # Output: 6`, `# prints 6`, `# -> 6`.
_INLINE_CLAIM = re.compile(r"#\s*(?:(?:expected\s+)?output\s*:|prints?\s*:?|=>|->)\s*(.+?)\s*$", re.I)
# Prose after a block: "prints `6`", "will output: `[1, 2]`", "Output: 6" at the start of a line.
_PROSE_CLAIM = re.compile(r"(?:\b(?:prints?|outputs?|will (?:print|output|display))\b\s*:?\s*`([^`\n]+)`)"
                          r"|(?:^\s*\**output\**\s*:\s*`?([^`\n]+?)`?\s*$)", re.I | re.M)
_OUTPUT_INTRO = re.compile(r"(?:output|prints?|print out|displays?|result)\s*(?:is|will be|would be|:)?[^\n]*:?\s*$", re.I)


@dataclass
class CodeBlock:
    """One fenced Python block of a passage and what the passage claims it prints."""

    code: str
    """The block's source (REPL prompts removed)."""
    closed: bool
    """False when the reply ended inside the block (cut by `max_tokens`)."""
    claims: list[str] = field(default_factory=list)
    """Claimed printed outputs (inline `# Output:` comments, prose after the block, REPL outputs)."""


def parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError):
        return False


def _from_repl(body: str) -> tuple[str, list[str]]:
    """A `>>>` session -> (code that prints each expression's repr, the shown outputs as claims)."""
    code_lines: list[str] = []
    claims: list[str] = []
    for line in body.splitlines():
        if line.startswith(">>> ") or line.strip() == ">>>":
            stmt = line[4:]
            try:
                node = ast.parse(stmt)
                if len(node.body) == 1 and isinstance(node.body[0], ast.Expr) and not _is_print_call(node.body[0].value):
                    stmt = f"__r = ({stmt})\nif __r is not None: print(repr(__r))"
            except SyntaxError:
                pass
            code_lines.append(stmt)
        elif line.startswith("... "):
            code_lines.append(line[4:])
        elif line.strip():
            claims.append(line.strip())
    return "\n".join(code_lines), claims


def _is_print_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"


def _inline_claims(code: str) -> list[str]:
    claims = []
    for line in code.splitlines():
        # only comments on lines that print: `x = 3  # -> int` is not an output claim
        if "print(" in line:
            m = _INLINE_CLAIM.search(line)
            if m and m.group(1).strip():
                claims.append(m.group(1).strip())
    return claims


def split_passage(text: str) -> tuple[list[CodeBlock], list[str]]:
    """Python blocks of a Markdown passage with their claims, and the languages of other blocks.

    A non-Python fence right after a Python block whose intro line mentions output/prints holds the
    claimed output of that block; inline `# Output:` comments and prose like "prints `6`" between a
    block and the next one are claims too."""
    blocks: list[CodeBlock] = []
    other_langs: list[str] = []
    matches = list(_FENCE.finditer(text))
    for i, m in enumerate(matches):
        lang = m.group(1).lower()
        body = m.group(2)
        closed = bool(m.group(3)) and m.group(3).strip().startswith("```")
        prose_before = text[matches[i - 1].end():m.start()] if i else text[:m.start()]
        if lang in _PY_LANGS and (lang != "" or _looks_like_python(body)):
            body = textwrap.dedent(body).strip("\n")
            if body.lstrip().startswith(">>>"):
                code, claims = _from_repl(body)
            else:
                code, claims = body, _inline_claims(body)
            blocks.append(CodeBlock(code=code, closed=closed, claims=claims))
            continue
        # a plain/text fence introduced as the output of the previous Python block
        last_line = prose_before.strip().splitlines()[-1] if prose_before.strip() else ""
        if blocks and lang in _OUTPUT_LANGS and _OUTPUT_INTRO.search(last_line):
            blocks[-1].claims.append(body.strip())
        else:
            other_langs.append(lang or "plain")
    # prose claims: attach to the block just before the prose
    for i, m in enumerate(matches):
        nxt = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        prose = text[m.end():nxt]
        owner = _owner_block(blocks, matches, i, text)
        if owner is None:
            continue
        for pm in _PROSE_CLAIM.finditer(prose):
            claim = (pm.group(1) or pm.group(2) or "").strip()
            if claim and not _looks_like_code_ref(claim):
                owner.claims.append(claim)
    return blocks, other_langs


def _owner_block(blocks: list[CodeBlock], matches: list[re.Match], i: int, text: str) -> CodeBlock | None:
    """The Python block that fence `i` is (or the last Python block before it)."""
    n_py = 0
    for j in range(i + 1):
        lang = matches[j].group(1).lower()
        if lang in _PY_LANGS and (lang != "" or _looks_like_python(matches[j].group(2))):
            n_py += 1
    return blocks[n_py - 1] if n_py else None


def _looks_like_python(body: str) -> bool:
    """A bare ``` fence counts as Python when it parses and has a statement beyond one bare name/number."""
    body = textwrap.dedent(body).strip()
    if body.startswith(">>>"):
        return True
    if not body or not parses(body):
        return False
    tree = ast.parse(body)
    return any(not isinstance(n, ast.Expr) or isinstance(n.value, ast.Call) for n in tree.body)


def _looks_like_code_ref(claim: str) -> bool:
    """`print(x)` or `result` in backticks names code; it is not a claimed value."""
    return bool(re.fullmatch(r"[A-Za-z_][\w.]*(\(.*\))?", claim)) and not claim in ("True", "False", "None")


# --------------------------------------------------------------------------- output comparison
def _norm(s: str) -> str:
    s = s.strip().strip("`").strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        s = s[1:-1]
    return re.sub(r"\s+", " ", s)


def _num(s: str) -> float | None:
    try:
        return float(s.replace(",", "")) if re.fullmatch(r"-?[\d,]*\.?\d+(e-?\d+)?", s.strip()) else None
    except ValueError:
        return None


def _num_agrees(claim: str, printed: str) -> bool:
    c, p = _num(claim), _num(printed)
    if c is None or p is None:
        return False
    decimals = len(claim.split(".")[1]) if "." in claim else 0
    return abs(round(p, decimals) - c) <= 10 ** (-decimals) / 2 + 1e-12 or abs(p - c) <= 1e-9 * max(1.0, abs(c))


def claim_agrees(claim: str, stdout: str) -> bool:
    """Whether a claimed output is consistent with what the code printed.

    Lenient on purpose (a false drop loses a good passage): the claim agrees when, after trimming
    quotes/backticks and collapsing whitespace, it equals a printed line, is contained in the output,
    is a number equal to a printed number at the claim's precision, or is a multi-line claim whose
    lines each agree."""
    c = _norm(claim)
    if not c:
        return True
    out = _norm(stdout)
    lines = [_norm(l) for l in stdout.splitlines() if l.strip()]
    if c in lines or (c and c in out):
        return True
    if "\n" in claim.strip():
        return all(claim_agrees(part, stdout) for part in claim.strip().splitlines() if part.strip())
    tokens = re.findall(r"-?[\d,]*\.?\d+(?:e-?\d+)?", out)
    if _num(c) is not None and any(_num_agrees(c, t) for t in tokens):
        return True
    # "The sum is 6" printed vs claim "6": the claim's value appears at the end of a printed line
    return any(l.endswith(c) or c.endswith(l) and len(l) > 3 for l in lines)


# --------------------------------------------------------------------------- passages -> a program
BLOCK_SENTINEL = "@@PHI_BLOCK_END@@"


def passage_program(blocks: list[CodeBlock]) -> str:
    """All blocks in order as one program (later blocks see earlier definitions, as a reader would
    run them), printing a sentinel after each so the output can be split per block."""
    parts = []
    for i, b in enumerate(blocks):
        parts.append(b.code)
        parts.append(f"print({BLOCK_SENTINEL!r} + ' {i}', flush=True)")
    return "\n".join(parts) + "\n"


def split_stdout(stdout: str, n_blocks: int) -> list[str]:
    """Per-block stdout from a `passage_program` run (missing blocks get '')."""
    outs = [""] * n_blocks
    cur: list[str] = []
    for line in stdout.splitlines():
        if line.startswith(BLOCK_SENTINEL):
            try:
                idx = int(line.split()[-1])
            except ValueError:
                continue
            if 0 <= idx < n_blocks:
                outs[idx] = "\n".join(cur)
            cur = []
        else:
            cur.append(line)
    return outs


# --------------------------------------------------------------------------- exercises
@dataclass
class ParsedExercise:
    """A function exercise split into the parts CodeExercises stores."""

    entry_point: str
    """The function's name."""
    prompt: str
    """Imports + signature + docstring (what the student model sees)."""
    solution: str
    """The function body after the docstring."""
    tests: list[str]
    """Assert statements (one per item)."""
    docstring: str
    """The docstring text (for decontamination)."""


def _json_exercise(text: str) -> dict[str, Any] | None:
    cands = [text.strip()] + [m.group(2) for m in _FENCE.finditer(text) if m.group(1).lower() in ("json", "")]
    i, j = text.find("{"), text.rfind("}")
    if 0 <= i < j:
        cands.append(text[i:j + 1])
    for c in cands:
        try:
            obj = json.loads(c)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _code_from_json(obj: dict[str, Any]) -> str | None:
    """Join the usual JSON layouts ({"code"} or {"function"/"prompt", "solution", "tests"}) into code."""
    keys = {k.lower(): v for k, v in obj.items()}
    code = keys.get("code") or keys.get("function")
    if not isinstance(code, str):
        prompt = keys.get("prompt") or keys.get("signature") or keys.get("signature_docstring")
        sol = keys.get("solution") or keys.get("body") or ""
        if not isinstance(prompt, str):
            return None
        code = prompt.rstrip("\n") + "\n" + (sol if isinstance(sol, str) else "")
    tests = keys.get("tests") or keys.get("asserts") or []
    if isinstance(tests, str):
        tests = [tests]
    tests = [t for t in tests if isinstance(t, str)]
    return code.rstrip("\n") + "\n\n" + "\n".join(t.strip() for t in tests) + "\n"


def exercise_code_candidates(text: str | None) -> list[str]:
    """Code candidates from a reply, best first: JSON layout, fenced Python blocks (joined, then each), raw text."""
    if not text:
        return []
    cands: list[str] = []
    obj = _json_exercise(text)
    if obj is not None:
        code = _code_from_json(obj)
        if code:
            cands.append(code)
    py = [textwrap.dedent(m.group(2)).strip("\n") for m in _FENCE.finditer(text)
          if m.group(1).lower() in ("python", "py", "python3", "")]
    if len(py) > 1:
        cands.append("\n\n".join(py))
    cands += py
    if "```" not in text:
        cands.append(text.strip("\n"))
    return cands


def _repair_truncated(code: str) -> str | None:
    """Drop trailing lines until the code parses (a reply cut by max_tokens mid-test)."""
    lines = code.rstrip().splitlines()
    for cut in range(len(lines), max(len(lines) - 6, 0), -1):
        cand = "\n".join(lines[:cut])
        if parses(cand):
            return cand
    return None


def parse_exercise(text: str | None, entry_point: str | None = None) -> tuple[ParsedExercise | None, str]:
    """Split a teacher reply into an exercise, or None and why: `no_code`, `syntax_error`,
    `no_function`, `no_docstring`, `empty_solution`, `no_tests`; reason `ok` on success.

    Prefers the function named `entry_point`; falls back to the first top-level function."""
    cands = exercise_code_candidates(text)
    if not cands:
        return None, "no_code"
    worst = "syntax_error"
    order = {"syntax_error": 0, "no_function": 1, "no_docstring": 2, "empty_solution": 3, "no_tests": 4}
    for raw in cands:
        code = raw if parses(raw) else _repair_truncated(raw)
        if code is None:
            continue
        ex, why = _split_exercise(code, entry_point)
        if ex is not None:
            return ex, "ok"
        if order.get(why, 0) > order.get(worst, 0):
            worst = why
    return None, worst


def _split_exercise(code: str, entry_point: str | None) -> tuple[ParsedExercise | None, str]:
    tree = ast.parse(code)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not funcs:
        return None, "no_function"
    fn = next((f for f in funcs if f.name == entry_point), funcs[0])
    doc = ast.get_docstring(fn)
    if not doc:
        return None, "no_docstring"
    body = fn.body[1:]
    if not body or all(isinstance(s, ast.Pass) or (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)) for s in body):
        return None, "empty_solution"
    lines = code.splitlines()
    imports = [ast.get_source_segment(code, n) or "" for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    # helpers defined before the function belong to the prompt (the solution may call them)
    helpers = [ast.get_source_segment(code, n) or "" for n in tree.body
               if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n is not fn and n.lineno < fn.lineno]
    doc_node = fn.body[0]
    head = "\n".join(lines[fn.lineno - 1 - len(fn.decorator_list):doc_node.end_lineno])
    solution = "\n".join(lines[doc_node.end_lineno:fn.end_lineno]).rstrip() + "\n"
    prompt = "\n".join([*imports, *([""] if imports else []), *[h + "\n" for h in helpers], head]).strip("\n") + "\n"
    tests = []
    for n in tree.body:
        if isinstance(n, ast.Assert):
            seg = ast.get_source_segment(code, n)
            if seg and fn.name in seg:
                tests.append(seg.strip())
    if not tests:
        tests = _wrapped_tests(code, tree, fn)
    if not tests:
        return None, "no_tests"
    return ParsedExercise(entry_point=fn.name, prompt=prompt, solution=solution, tests=tests, docstring=doc), "ok"


def _wrapped_tests(code: str, tree: ast.Module, fn: ast.FunctionDef) -> list[str]:
    """Asserts the teacher wrapped in `def check_x(): assert ...` (+ its call) or `if __name__ == "__main__":`."""
    def has_assert(node: ast.AST) -> bool:
        return any(isinstance(n, ast.Assert) and fn.name in (ast.get_source_segment(code, n) or "") for n in ast.walk(node))

    tests: list[str] = []
    for n in tree.body:
        if isinstance(n, ast.FunctionDef) and n is not fn and not n.args.args and has_assert(n):
            tests += [(ast.get_source_segment(code, n) or "").strip(), f"{n.name}()"]
        elif isinstance(n, ast.If) and "__main__" in (ast.get_source_segment(code, n.test) or ""):
            tests += [(ast.get_source_segment(code, a) or "").strip() for a in n.body
                      if isinstance(a, ast.Assert) and fn.name in (ast.get_source_segment(code, a) or "")]
    return [t for t in tests if t]


def join_problem_solution(problem: str, solution: str) -> str | None:
    """Open datasets (jinaai/code_exercises) store signature+docstring and body separately, sometimes
    with broken indentation; returns code that parses, trying the body as is, then re-indented."""
    problem = problem.rstrip("\n") + "\n"
    for body in (solution, textwrap.indent(textwrap.dedent(solution), "    ")):
        code = problem + body.rstrip("\n") + "\n"
        if parses(code):
            return code
    return None
