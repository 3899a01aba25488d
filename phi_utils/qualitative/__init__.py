"""§3 qualitative comparisons and §4 unconventional problems (notebooks 09 and 10).

- `prompts`: the paper's §3 / App. A / App. B prompts, rewritten from its descriptions.
- `headless`: run pygame / Tkinter / matplotlib programs in the sandbox without a screen.
- `api_check`: static check that the library attributes a snippet uses exist.
- `problems`: the unconventional problem set (HumanEval format, with broken variants).
- `grading`: teacher grades 0-10 with a rubric, grade parsing, grader reliability.
- `stages`: `run_qualitative` (09) and `run_unconventional` (10).
"""

from .api_check import ApiIssue, ApiReport, check_api, extract_code, trim_to_parseable
from .grading import Grade, grade_solutions, parse_grade, reliability_summary, roc_auc
from .headless import HeadlessError, HeadlessResult, run_headless, verdict_of, virtual_display
from .problems import BrokenVariant, UnconventionalProblem, load_problems, parse_problems
from .prompts import PROMPTS, QualitativePrompt, get_prompts
from .report import PAPER_TABLE2, markdown_table, qualitative_html, table2_rows
from .stages import (compared_models, QualitativeResult, UnconventionalResult, available_models,
                     check_problem_set, evaluate_completions, run_qualitative, run_unconventional)

__all__ = [
    "ApiIssue", "ApiReport", "check_api", "extract_code", "trim_to_parseable",
    "Grade", "grade_solutions", "parse_grade", "reliability_summary", "roc_auc",
    "HeadlessError", "HeadlessResult", "run_headless", "verdict_of", "virtual_display",
    "BrokenVariant", "UnconventionalProblem", "load_problems", "parse_problems",
    "PROMPTS", "QualitativePrompt", "get_prompts",
    "PAPER_TABLE2", "markdown_table", "qualitative_html", "table2_rows",
    "compared_models", "QualitativeResult", "UnconventionalResult", "available_models",
    "check_problem_set", "evaluate_completions", "run_qualitative", "run_unconventional",
]
