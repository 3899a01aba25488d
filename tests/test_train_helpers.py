"""A small, real run directory for the training tests, built from Python standard-library sources.

Not part of the pipeline: notebooks read the datasets the upstream stages wrote. Here the
"raw corpus" is stdlib modules, "CodeTextbook" is docstring + code passages cut from them and
"CodeExercises" are stdlib functions split into signature+docstring (prompt) and body (solution).
"""

from __future__ import annotations

import ast
import inspect
import os
from pathlib import Path

from phi_utils.config import get_profile
from phi_utils.rundir import RunDir
from phi_utils.steps import open_run


def _stdlib_files(limit: int) -> list[Path]:
    root = Path(inspect.getfile(os)).parent
    return sorted(root.glob("*.py"))[:limit]


def _functions(src: str) -> list[tuple[str, str, str]]:
    """(name, prompt = signature + docstring, solution = rest of the body) of documented functions."""
    out = []
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return out
    lines = src.splitlines(keepends=True)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.col_offset == 0 and ast.get_docstring(node) and len(node.body) > 1:
            doc = node.body[0]
            prompt = "".join(lines[node.lineno - 1:doc.end_lineno])
            solution = "".join(lines[doc.end_lineno:node.end_lineno])
            if 20 < len(solution) < 1500:
                out.append((node.name, prompt, solution))
    return out


def make_fake_run(path: Path, profile: str = "smoke", n_files: int = 60, vocab_size: int = 512,
                  **overrides) -> tuple[object, RunDir]:
    """Run directory with corpus/dataset, textbooks/code_textbook, exercises/code_exercises, tokenizer/."""
    import datasets

    from phi_utils.model.tokenizer import train_tokenizer

    cfg = get_profile(profile, **overrides)
    rd = open_run(cfg, path)
    files = _stdlib_files(n_files)
    texts = [p.read_text(encoding="utf-8", errors="replace")[:12_000] for p in files]
    datasets.Dataset.from_dict({"path": [p.name for p in files], "text": texts}).save_to_disk(
        str(rd.path / "corpus" / "dataset"))
    rd.mark_complete("corpus", counts={"files": len(files)})
    fns = [f for t in texts for f in _functions(t)]
    book = [f"## {name}\n\n{prompt}{sol}" for name, prompt, sol in fns[::2]]
    datasets.Dataset.from_dict({"text": book, "source": ["textbook"] * len(book)}).save_to_disk(
        str(rd.path / "textbooks" / "code_textbook"))
    rd.mark_complete("textbooks")
    ex = fns[1::2]
    datasets.Dataset.from_dict({
        "task_id": [f"ex/{i}" for i in range(len(ex))], "prompt": [p for _, p, _ in ex],
        "solution": [s for _, _, s in ex], "text": [p + s for _, p, s in ex]}).save_to_disk(
        str(rd.path / "exercises" / "code_exercises"))
    rd.mark_complete("exercises")
    train_tokenizer(texts + book, vocab_size, rd.path / "tokenizer", show_progress=False)
    rd.mark_complete("tokenizer")
    return cfg, rd
