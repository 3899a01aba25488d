"""Run datatrove pipeline jobs on the executor a profile names, one job after another.

A step of the run (`corpus`, the `filtering` step's scoring, a training step's tokenization) runs its
data work as a list of `PipelineJob`s: each is one datatrove pipeline (its steps) plus a task
count, run by one executor call. Each job has its own folder under the step's work directory
(`<name>/logs`: datatrove's per-task logs, stats and `completions/` markers), so a job killed
halfway resumes with the tasks it had not finished, on any executor.

Executors (`DataConfig.executor`):
* `local`: datatrove's `LocalPipelineExecutor`, `workers` processes on this machine. Its per-task
  log lines go to `<name>/logs/console.log`, not to the notebook, which shows one line per job.
* `slurm`: `SlurmPipelineExecutor`; each job is one sbatch job array (`slurm_*` settings); this
  process submits a job, waits for its completion markers, then submits the next.
* `ray`: `RayPipelineExecutor` on the cluster at `ray_address` (empty: a local Ray instance).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..config import DataConfig
from ..progress import tqdm


class DataPipelineError(RuntimeError):
    """A pipeline job failed; the message names the job and where its logs are."""


@dataclass
class PipelineJob:
    """One datatrove pipeline: its steps run in order, in `tasks` independent shards."""

    name: str
    """Folder name under the work directory, and the label in progress lines and plans."""
    steps: Sequence[Any]
    """datatrove `PipelineStep`s (or callables `(data, rank, world_size) -> data`)."""
    tasks: int
    """Shards; a job that must see everything at once (a merge, MinHash clustering) has 1."""
    what: str = ""
    """One line for the plan: what the job does."""


def job_logging_dir(work_dir: Path, job: PipelineJob) -> Path:
    return Path(work_dir) / job.name / "logs"


def completed_tasks(work_dir: Path, job: PipelineJob) -> int:
    """How many of the job's tasks left a completion marker (datatrove's `completions/<rank>`)."""
    d = job_logging_dir(work_dir, job) / "completions"
    return sum(1 for p in d.iterdir() if p.name.isdigit() and int(p.name) < job.tasks) if d.is_dir() else 0


def plan(jobs: Sequence[PipelineJob], dcfg: DataConfig, work_dir: Path | None = None) -> list[str]:
    """The task plan (`--dry-run`): one line per job with its tasks, steps and, when `work_dir` is
    given, how many tasks are already complete."""
    out = [f"executor {dcfg.executor}: " + {
        "local": f"{dcfg.workers if dcfg.workers != -1 else 'all'} worker process(es) on this machine",
        "slurm": f"sbatch job arrays on partition {dcfg.slurm_partition or '(unset)'}, {dcfg.slurm_cpus_per_task} CPU(s) "
                 f"and {dcfg.slurm_mem_per_cpu_gb} GB/CPU per task, time {dcfg.slurm_time}",
        "ray": f"Ray at {dcfg.ray_address or 'a local instance'}, {dcfg.ray_cpus_per_task} CPU(s) per task",
    }[dcfg.executor]]
    for i, job in enumerate(jobs, 1):
        steps = " -> ".join(getattr(s, "name", None) or type(s).__name__ for s in job.steps)
        done = f", {completed_tasks(work_dir, job)}/{job.tasks} done" if work_dir is not None else ""
        out.append(f"  {i}. {job.name}: {job.tasks} task(s){done}: {steps}" + (f"  ({job.what})" if job.what else ""))
    return out


@contextlib.contextmanager
def _console_to(path: Path) -> Iterator[None]:
    """Send datatrove's logging to `path` for the block: this process's stderr (the Python object
    and file descriptor 2, which worker processes inherit) and loguru's sinks, which hold the stream
    they were given (in a notebook, the cell's output). Afterwards loguru writes warnings only."""
    from loguru import logger

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as log:
        sys.stderr.flush()
        saved_fd = os.dup(2)
        logger.remove()
        sink = logger.add(log, level="INFO", colorize=False)
        try:
            os.dup2(log.fileno(), 2)
            with contextlib.redirect_stderr(log):
                yield
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            logger.remove()  # the sinks a task added in this process, ours included
            logger.add(sys.stderr, level="WARNING")
            del sink


FORKSERVER_PRELOAD = ["datatrove.pipeline.dedup.minhash", "datatrove.pipeline.dedup.exact_dedup",
                      "datatrove.pipeline.writers", "phi_utils.datapipe.dedup", "phi_utils.datapipe.steps",
                      "phi_utils.corpus"]
"""Imported once by the fork server that local workers start from, not again by every task."""


def _executor(job: PipelineJob, dcfg: DataConfig, logging_dir: Path) -> Any:
    workers = job.tasks if dcfg.workers == -1 else min(dcfg.workers, job.tasks)
    if dcfg.executor == "local":
        import multiprocess
        from datatrove.executor import LocalPipelineExecutor

        multiprocess.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)

        return LocalPipelineExecutor(pipeline=list(job.steps), tasks=job.tasks, workers=workers,
                                     logging_dir=str(logging_dir), skip_completed=True)
    if dcfg.executor == "slurm":
        from datatrove.executor import SlurmPipelineExecutor

        if not dcfg.slurm_partition:
            raise DataPipelineError("data.executor='slurm' needs data.slurm_partition (e.g. --set data.slurm_partition=cpu)")
        return SlurmPipelineExecutor(pipeline=list(job.steps), tasks=job.tasks, workers=dcfg.workers,
                                     time=dcfg.slurm_time, partition=dcfg.slurm_partition,
                                     cpus_per_task=dcfg.slurm_cpus_per_task, mem_per_cpu_gb=dcfg.slurm_mem_per_cpu_gb,
                                     qos=dcfg.slurm_qos, job_name=f"phi-{job.name}",
                                     venv_path=dcfg.slurm_venv or None, logging_dir=str(logging_dir),
                                     skip_completed=True)
    from datatrove.executor.ray import RayPipelineExecutor

    return RayPipelineExecutor(pipeline=list(job.steps), tasks=job.tasks, workers=workers,
                               logging_dir=str(logging_dir), cpus_per_task=dcfg.ray_cpus_per_task, skip_completed=True)


@contextlib.contextmanager
def _ray_session(dcfg: DataConfig) -> Iterator[None]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=dcfg.ray_address or None, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _wait_for_slurm(work_dir: Path, job: PipelineJob, poll_s: float = 30.0) -> None:
    """sbatch returns at once: wait for the job array's completion markers (a failed task leaves none;
    `squeue`/the job's logs say why, and re-running resubmits only the unfinished tasks)."""
    while completed_tasks(work_dir, job) < job.tasks:
        time.sleep(poll_s)


def run_jobs(jobs: Sequence[PipelineJob], dcfg: DataConfig, work_dir: Path, desc: str,
             on_job: Callable[[PipelineJob, float], None] | None = None) -> dict[str, float]:
    """Run `jobs` in order on `dcfg`'s executor under `work_dir`; returns seconds per job (0 for a
    job whose tasks had all completed before). A job whose tasks do not all complete raises one
    `DataPipelineError` naming it and its log folder; finished tasks keep their markers."""
    work_dir = Path(work_dir)
    seconds: dict[str, float] = {}
    with _ray_session(dcfg) if dcfg.executor == "ray" else contextlib.nullcontext():
        bar = tqdm(total=len(jobs), desc=desc, unit="job")
        for job in jobs:
            logging_dir = job_logging_dir(work_dir, job)
            bar.set_postfix_str(f"{job.name} ({job.tasks} task{'s' if job.tasks > 1 else ''})")
            t0 = time.time()
            if completed_tasks(work_dir, job) < job.tasks:
                executor = _executor(job, dcfg, logging_dir)
                try:
                    with _console_to(logging_dir / "console.log") if dcfg.executor == "local" else contextlib.nullcontext():
                        executor.run()
                    if dcfg.executor == "slurm":
                        _wait_for_slurm(work_dir, job)
                except Exception as e:  # noqa: BLE001 - one message naming the job, the cause kept
                    raise DataPipelineError(f"data pipeline job {job.name!r} failed ({type(e).__name__}: {e}); "
                                            f"logs in {logging_dir}; re-running resumes its unfinished tasks") from e
                if (done := completed_tasks(work_dir, job)) < job.tasks:
                    raise DataPipelineError(f"data pipeline job {job.name!r}: {job.tasks - done} of {job.tasks} "
                                            f"task(s) did not complete; logs in {logging_dir / 'logs'}; "
                                            f"re-running resumes them")
            seconds[job.name] = round(time.time() - t0, 3)
            if on_job is not None:
                on_job(job, seconds[job.name])
            bar.update(1)
        bar.close()
    return seconds
