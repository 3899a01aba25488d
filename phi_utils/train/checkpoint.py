"""Training checkpoints that survive SIGKILL at any moment.

A checkpoint `checkpoints/step_000120/` holds
  - `hf/`                   the model in Hugging Face format (config.json, model.safetensors, tokenizer)
  - `model_state.safetensors` the exact training-precision weights (what resume loads)
  - `trainer_state.pt`      the rest of `Trainer.state_dict()`: optimizer (full, parameters by name as
                            `get_optimizer_state_dict` writes them), LR scheduler, loss scaler, RNG
                            states (torch, CUDA, numpy, python) per rank, data position (step, samples
                            and epochs seen)
  - `_COMPLETE.json`        written last: step + size and SHA-256 of every file above.

Everything is written into `step_000120.tmp-<pid>/` and renamed into place in one `os.replace`, so
a killed writer leaves only a `.tmp-*` directory (ignored and cleaned up). On resume the newest
checkpoint whose marker exists and whose files all match their recorded hashes is used; a
corrupt or partial one is reported and skipped in favour of the previous good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..rundir import write_json_atomic

MARKER = "_COMPLETE.json"
_STEP_RE = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint directory is incomplete or corrupt (the message names it)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def write_checkpoint(ckpt_root: Path, step: int, model_state: dict[str, torch.Tensor], trainer_state: dict[str, Any],
                     write_hf: Callable[[Path], None] | None = None, keep: int = 2) -> Path:
    """Atomically write checkpoint `step` under `ckpt_root` and prune all but the newest `keep`."""
    from safetensors.torch import save_file

    ckpt_root = Path(ckpt_root)
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:06d}"
    tmp = ckpt_root / f"step_{step:06d}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().contiguous().cpu() for k, v in model_state.items()}, str(tmp / "model_state.safetensors"))
    torch.save(trainer_state, tmp / "trainer_state.pt")
    if write_hf is not None:
        write_hf(tmp / "hf")
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    for p in files:
        with open(p, "rb+") as f:
            os.fsync(f.fileno())
    manifest = {"step": step, "files": {str(p.relative_to(tmp)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                                        for p in files}}
    write_json_atomic(tmp / MARKER, manifest)
    if final.exists():  # a re-run of the same step (e.g. after resume); replace it whole
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(ckpt_root)
    prune(ckpt_root, keep)
    return final


def verify(ckpt: Path) -> dict[str, Any]:
    """The checkpoint's manifest, or CheckpointError if any file is missing, resized or altered."""
    marker = ckpt / MARKER
    if not marker.exists():
        raise CheckpointError(f"{ckpt}: no {MARKER} (partial checkpoint)")
    try:
        manifest = json.loads(marker.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{marker}: unreadable manifest ({e})") from e
    for rel, info in manifest.get("files", {}).items():
        p = ckpt / rel
        if not p.exists():
            raise CheckpointError(f"{p}: missing")
        if p.stat().st_size != info["bytes"]:
            raise CheckpointError(f"{p}: {p.stat().st_size} bytes, expected {info['bytes']} (truncated?)")
        if _sha256(p) != info["sha256"]:
            raise CheckpointError(f"{p}: SHA-256 mismatch (corrupt)")
    return manifest


def list_checkpoints(ckpt_root: Path) -> list[tuple[int, Path]]:
    """(step, dir) of finished-looking checkpoints, newest first (not yet verified)."""
    if not Path(ckpt_root).exists():
        return []
    out = []
    for p in Path(ckpt_root).iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out, reverse=True)


def latest_good(ckpt_root: Path) -> Path | None:
    """Newest checkpoint that verifies; corrupt ones are reported (warning) and skipped."""
    for _, p in list_checkpoints(ckpt_root):
        try:
            verify(p)
            return p
        except CheckpointError as e:
            warnings.warn(f"skipping bad checkpoint: {e}", stacklevel=2)
    return None


def load_checkpoint_state(ckpt: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors.torch import load_file

    model_state = load_file(str(ckpt / "model_state.safetensors"))
    trainer_state = torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=False)
    return model_state, trainer_state


def prune(ckpt_root: Path, keep: int) -> None:
    """Delete old checkpoints beyond the newest `keep`, and stale `.tmp-*` directories."""
    for p in Path(ckpt_root).iterdir():
        if ".tmp-" in p.name and p.is_dir():
            pid = p.name.rsplit("-", 1)[-1]
            if pid != str(os.getpid()):
                shutil.rmtree(p, ignore_errors=True)
    if keep > 0:
        for _, p in list_checkpoints(ckpt_root)[keep:]:
            shutil.rmtree(p, ignore_errors=True)


def write_final(model_state_writer: Callable[[Path], None], final_dir: Path) -> Path:
    """Write the HF export to `final_dir` atomically (temp dir + rename)."""
    final_dir = Path(final_dir)
    tmp = final_dir.with_name(f"{final_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model_state_writer(tmp)
    if final_dir.exists():
        shutil.rmtree(final_dir)
    os.replace(tmp, final_dir)
    return final_dir
