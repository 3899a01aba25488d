"""Evaluation (notebook 08): HumanEval/MBPP problems, pass@k, Table 1, Figure 2.1.

Programs run in `phi_utils.sandbox` (the bottom-layer package every stage that executes code uses).
"""

from .passk import estimate_pass_at_k, pass_at_k

__all__ = ["estimate_pass_at_k", "pass_at_k"]
