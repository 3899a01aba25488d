"""Synthetic data (paper §2.2): textbooks + CodeTextbook (notebook 03) and CodeExercises (notebook 04).

    from phi_utils.synth import run_textbooks, run_exercises
    run_textbooks(cfg, rd, force)   # -> metrics dict; writes textbooks/{textbooks,code_textbook}
    run_exercises(cfg, rd, force)   # -> metrics dict; writes exercises/code_exercises

Modules: `topics` (recorded random draws + vocabularies in `data/`), `parsing` (teacher output),
`textbooks`, `exercises`, `diversity` (distinct-n, MiniLM spread, topic coverage, MinHash),
`decontaminate` (13-gram + embedding vs HumanEval/MBPP), `opendata` (open synthetic sets),
`figures` (plots for the notebooks).
"""

from .exercises import run_exercises
from .textbooks import run_textbooks

__all__ = ["run_exercises", "run_textbooks"]
