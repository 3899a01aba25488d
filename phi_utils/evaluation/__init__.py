"""Evaluation (notebook 08): HumanEval/MBPP problems, a sandbox that holds, pass@k, Table 1, Figure 2.1.

Light on import: `phi_utils.evaluation.sandbox` is used by other stages without torch.
"""

from .passk import estimate_pass_at_k, pass_at_k
from .sandbox import ExecResult, SandboxLimits, isolation, run_program, run_programs

__all__ = ["ExecResult", "SandboxLimits", "isolation", "run_program", "run_programs", "estimate_pass_at_k", "pass_at_k"]
