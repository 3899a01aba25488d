"""Preparing a run-directory dataset for training (§2.3): reused when an identical packing is
already there (or hard-linked from another seed of the same arm), else tokenized, on the run's
data executor (`train.tokenize`) or in this process (`train.data.pack_documents`)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from .data import DATA_FORMAT_VERSION, pack_documents, tokenizer_fingerprint
from .tokenize import pack_with_pipeline
from ..rundir import write_json_atomic


def _fingerprint(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _dataset_fingerprint(ds: Any) -> str:
    fp = getattr(ds, "_fingerprint", None)
    return str(fp) if fp else str(len(ds))


def _iter_text(ds: Any) -> Iterator[tuple[str, None]]:
    for batch in ds.iter(batch_size=1000):
        for t in batch["text"]:
            yield str(t), None


def _iter_exercises(ds: Any) -> Iterator[tuple[str, str]]:
    for batch in ds.iter(batch_size=1000):
        for p, s in zip(batch["prompt"], batch["solution"]):
            yield str(p), str(s)


def load_dataset_dir(path: Path, what: str) -> Any:
    """A `datasets` dataset saved with `save_to_disk`, or one clear error naming it (and, when it is
    empty, the stage's own account of why: its `metrics.json` notes, e.g. "no generated exercise
    passed its tests; CodeExercises is empty")."""
    import datasets

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} dataset {path} is missing; run the notebook that writes it first "
                                f"(this stage never invents training data)")
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises several types for a damaged directory
        raise ValueError(f"{what} dataset {path} cannot be loaded: {e}") from e
    if "text" not in ds.column_names:
        raise ValueError(f"{what} dataset {path} has no 'text' column (columns: {ds.column_names})")
    if len(ds) == 0:
        raise ValueError(f"{what} dataset {path} is empty{_stage_notes(path.parent)}")
    return ds


def _stage_notes(step_dir: Path) -> str:
    """The notes a data stage left in its metrics.json, as a suffix for an error message."""
    try:
        notes = json.loads((step_dir / "metrics.json").read_text()).get("notes") or []
    except (OSError, ValueError, AttributeError):
        return ""
    return ("; the stage that wrote it says: " + "; ".join(map(str, notes)) +
            " (README, 'Shared data': what each stage uses when the open datasets are absent)") if notes else ""


def _link_packing(src: Path, dst: Path) -> dict[str, Any]:
    """Hard-link (copy where links fail) a finished packing `src` into `dst`; meta.json last."""
    import shutil

    dst.mkdir(parents=True, exist_ok=True)
    (dst / "meta.json").unlink(missing_ok=True)
    for f in sorted(src.glob("*.bin")):
        target = dst / f.name
        target.unlink(missing_ok=True)
        try:
            os.link(f, target)
        except OSError:
            shutil.copyfile(f, target)
    meta = json.loads((src / "meta.json").read_text())
    write_json_atomic(dst / "meta.json", meta)
    return meta


def prepare_packed(dataset_path: Path, tokenizer: Any, out_dir: Path, seq_len: int, val_fraction: float,
                   seed: int, exercises: bool = False, loss_on_solution_only: bool = False,
                   what: str = "training", reuse_from: Iterable[Path] = (), data: Any = None) -> dict[str, Any]:
    """Pack a run-directory dataset into `out_dir` unless an identical packing is already there, or
    in one of `reuse_from` (other seeds of the same arm: then its files are hard-linked, not re-tokenized).
    With `data` (a `DataConfig`) the tokenization is a datatrove pipeline of `data.tasks` tasks
    (`train.tokenize`), byte-identical to the one-process packing."""
    ds = load_dataset_dir(dataset_path, what)
    if exercises and not {"prompt", "solution"} <= set(ds.column_names):
        raise ValueError(f"{what} dataset {dataset_path} needs 'prompt' and 'solution' columns "
                         f"(has {ds.column_names})")
    fp = _fingerprint({"ds": _dataset_fingerprint(ds), "n": len(ds), "tok": tokenizer_fingerprint(tokenizer),
                       "seq_len": seq_len, "val": val_fraction, "seed": seed, "ex": exercises,
                       "mask": loss_on_solution_only, "v": DATA_FORMAT_VERSION})
    meta_path = Path(out_dir) / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == fp:
            return meta
    for other in reuse_from:
        try:
            if json.loads((Path(other) / "meta.json").read_text()).get("fingerprint") == fp:
                return _link_packing(Path(other), Path(out_dir))
        except (OSError, ValueError):
            continue  # absent or half-written: not reusable
    if data is not None:
        return pack_with_pipeline(Path(dataset_path), len(ds), tokenizer, Path(out_dir), seq_len, val_fraction, seed,
                                  exercises, exercises and loss_on_solution_only, fp, data)
    docs = _iter_exercises(ds) if exercises else _iter_text(ds)
    return pack_documents(docs, len(ds), tokenizer, out_dir, seq_len, val_fraction, seed,
                          loss_on_solution_only=exercises and loss_on_solution_only, source=str(dataset_path),
                          fingerprint=fp, desc=f"packing {Path(dataset_path).name}")
