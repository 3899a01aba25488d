"""Training (§2.3; notebooks 06 and 07): data packing, the loop, schedule, checkpoints, distributed.

Public API::

    from phi_utils.train import run_pretraining, run_finetuning      # the Figure 2.1 models A, B', B, C per seed
    from phi_utils.arms import ARMS, step_name, training_steps         # the arm/seed step registry
    from phi_utils.train import Trainer, build_model, FitResult, PackedData, pack_documents, prepare_packed
    from phi_utils.train import lr_at, estimate_wall_time, torchrun_command, paper_commands, read_metrics

Launch under torchrun: `torchrun --nproc_per_node=N -m phi_utils.train --run-dir R --step S`.
"""

from .data import BatchSampler, PackedData, pack_documents
from .prepare import prepare_packed
from .loop import FitResult, Trainer, build_model, read_metrics
from .schedule import lr_at, make_scheduler
from .steps import (estimate_wall_time, paper_commands, run_finetuning, run_pretraining, run_step,
                     throughput_at_mfu, torchrun_command)

__all__ = ["BatchSampler", "PackedData", "pack_documents", "prepare_packed", "FitResult", "Trainer", "build_model",
           "read_metrics", "lr_at", "make_scheduler", "estimate_wall_time", "paper_commands",
           "run_finetuning", "run_pretraining", "run_step", "throughput_at_mfu", "torchrun_command"]
