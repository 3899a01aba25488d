"""The unconventional problems of notebook 10 (the paper's §4), in HumanEval format.

The problems live in `data/unconventional_problems.txt` (a readable, diff-friendly format
described at the top of that file). Each has a prompt (signature + docstring), a reference
body, one or more deliberately broken bodies and a hidden `check(candidate)` test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

PROBLEMS_FILE = Path(__file__).resolve().parent / "data" / "unconventional_problems.txt"
"""The problem set shipped with the package."""


class ProblemFormatError(ValueError):
    """The problems file is malformed; the message names the file, line and problem."""


@dataclass(frozen=True)
class BrokenVariant:
    description: str
    """What is deliberately wrong."""
    body: str
    """The broken function body (continues the prompt)."""


@dataclass(frozen=True)
class UnconventionalProblem:
    task_id: str
    """`Unconventional/<n>`."""
    entry_point: str
    """Function name."""
    prompt: str
    """Signature + docstring (what a model sees)."""
    canonical_solution: str
    """Reference body."""
    test: str
    """HumanEval-style `def check(candidate): ...`."""
    broken: tuple[BrokenVariant, ...] = field(default_factory=tuple)
    """Deliberately wrong bodies; every one must fail `test`."""

    def program(self, completion: str) -> str:
        """The program that tests `completion` (a body continuing the prompt), as HumanEval does."""
        return f"{self.prompt}{completion}\n\n{self.test}\n\ncheck({self.entry_point})\n"

    def as_humaneval(self) -> dict[str, str]:
        return {"task_id": self.task_id, "prompt": self.prompt, "canonical_solution": self.canonical_solution,
                "test": self.test, "entry_point": self.entry_point}


_SECTION = re.compile(r"^--- (prompt|solution|test|broken:\s*(?P<desc>.+))\s*$")


def parse_problems(text: str, source: str = "<text>") -> list[UnconventionalProblem]:
    """Parse the problems format; malformed input raises `ProblemFormatError` naming the line."""
    problems: list[UnconventionalProblem] = []
    current: dict | None = None
    section: str | None = None
    lines: list[str] = []

    def flush_section() -> None:
        nonlocal lines
        if current is None or section is None:
            lines = []
            return
        body = "\n".join(lines).rstrip() + "\n"
        if section.startswith("broken:"):
            current["broken"].append(BrokenVariant(section[len("broken:"):].strip(), body))
        else:
            current[section] = body
        lines = []

    def flush_problem(lineno: int) -> None:
        if current is None:
            return
        name = current["entry_point"]
        for key in ("prompt", "solution", "test"):
            if key not in current:
                raise ProblemFormatError(f"{source}: problem {name!r} (before line {lineno}) has no '--- {key}' section")
        if f"def {name}(" not in current["prompt"]:
            raise ProblemFormatError(f"{source}: problem {name!r}: the prompt does not define {name}()")
        if "def check(candidate)" not in current["test"]:
            raise ProblemFormatError(f"{source}: problem {name!r}: the test must define check(candidate)")
        problems.append(UnconventionalProblem(
            task_id=f"Unconventional/{len(problems)}", entry_point=name, prompt=current["prompt"],
            canonical_solution=current["solution"], test=current["test"], broken=tuple(current["broken"])))

    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("=== "):
            flush_section()
            flush_problem(lineno)
            name = line[4:].strip()
            if not name.isidentifier():
                raise ProblemFormatError(f"{source}:{lineno}: {name!r} is not a Python identifier")
            current, section = {"entry_point": name, "broken": []}, None
            continue
        m = _SECTION.match(line)
        if m:
            if current is None:
                raise ProblemFormatError(f"{source}:{lineno}: section before the first '=== name' line")
            flush_section()
            section = m.group(1) if not m.group("desc") else f"broken: {m.group('desc')}"
            continue
        if section is None:
            if line.strip() and not line.startswith("#"):
                raise ProblemFormatError(f"{source}:{lineno}: text outside a section: {line[:60]!r}")
            continue
        lines.append(line)
    flush_section()
    flush_problem(len(text.splitlines()) + 1)
    names = [p.entry_point for p in problems]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ProblemFormatError(f"{source}: duplicate problems {sorted(dupes)}")
    return problems


def load_problems(path: str | Path | None = None, limit: int = 0) -> list[UnconventionalProblem]:
    """The problem set (the packaged file by default); `limit` > 0 keeps the first `limit`."""
    path = Path(path) if path else PROBLEMS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProblemFormatError(f"problems file {path} does not exist") from None
    except UnicodeDecodeError as e:
        raise ProblemFormatError(f"problems file {path} is not UTF-8 ({e})") from None
    problems = parse_problems(text, str(path))
    return problems[:limit] if limit > 0 else problems
