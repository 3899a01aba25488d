"""The data steps' engine: datatrove pipelines over sharded files, the same on a laptop and a cluster.

* `executor`: a pipeline job (a list of datatrove steps and a task count) runs on the executor
  `DataConfig` names (`local` processes, a `slurm` job array, `ray` tasks); per-task completion
  markers let a killed job resume where it stopped; `plan` prints the task plan (`--dry-run`).
* `dedup`: exact (content hash) and MinHash near-duplicate removal as six datatrove jobs, with
  code shingles and a tie-break that follows the documents' global order, so the kept set does not
  depend on how many tasks ran; `read_shards` reads a finished job's JSONL shards back in that order.

It imports nothing from the stage packages: the stages (`phi_utils.corpus`, ...) put their own
readers and filters in front of these pieces.
"""
