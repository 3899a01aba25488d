"""Repository invariants: configs documented and checked, environment files agree, notebooks clean."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from phi_utils import config
from phi_utils.config import PROFILE_NAMES, REPO_ROOT, ConfigError, field_docs, get_profile

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def _sections(cfg):
    return [getattr(cfg, f.name) for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_load_and_every_field_has_a_docstring(name):
    cfg = get_profile(name)
    for obj in [cfg, *_sections(cfg)]:
        docs = field_docs(type(obj))
        missing = [f.name for f in dataclasses.fields(obj) if not docs.get(f.name)]
        assert not missing, f"{type(obj).__name__} fields without a docstring: {missing}"


def test_profiles_differ_only_in_values_not_structure():
    shapes = {n: json.dumps({k: sorted(v) if isinstance(v, dict) else None
                             for k, v in get_profile(n).to_dict().items()}, sort_keys=True) for n in PROFILE_NAMES}
    assert len(set(shapes.values())) == 1


def test_bad_values_are_refused_naming_the_field():
    with pytest.raises(ConfigError, match="teacher.backend"):
        config.TeacherConfig(backend="carrier-pigeon")
    with pytest.raises(ConfigError, match="micro_batch_size"):
        config.TrainConfig(global_batch_size=10, micro_batch_size=4)
    with pytest.raises(ConfigError, match="unknown config field 'pretrain.nope'"):
        get_profile("smoke", **{"pretrain.nope": 1})
    with pytest.raises(ConfigError, match="train.max_steps"):
        get_profile("smoke", **{"pretrain.max_steps": 0})
    assert get_profile("smoke", **{"pretrain.max_steps": 6}).pretrain.max_steps == 6


def _norm(req: str) -> str:
    return re.sub(r"\s+", "", req).lower()


def test_environment_yml_matches_pyproject():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    wanted = {_norm(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_norm(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert py.split("=")[-1] in ("3.11",)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_stored_clean_with_a_parameters_cell(path: Path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "stored with outputs"
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and params[0] is code[0], "the first code cell must be the only one tagged parameters"
    src = "".join(params[0]["source"])
    assert {line.split("=")[0].strip() for line in src.strip().splitlines()} == {"profile", "run_dir", "seed", "force"}


def test_every_stage_has_its_notebook():
    from phi_utils.pipeline import STAGES

    names = {p.stem for p in NOTEBOOKS}
    missing = [s.notebook for s in STAGES if s.notebook not in names]
    assert not missing, f"stages without a notebook: {missing}"


def test_empty_datasets_round_trip(tmp_path):
    from datasets import Dataset, load_from_disk

    from phi_utils.rundir import save_dataset

    save_dataset(Dataset.from_dict({"text": []}), tmp_path / "empty")
    assert len(load_from_disk(str(tmp_path / "empty"))) == 0


def test_committed_figures_are_exactly_the_manifest():
    """figures/ holds the published tiny run's figures, each listed with its hash, nothing else."""
    import hashlib
    import json

    from phi_utils.config import REPO_ROOT

    fig = REPO_ROOT / "figures"
    manifest = fig / "MANIFEST.json"
    if not manifest.exists():
        pytest.skip("no published tiny run yet")
    listed = json.loads(manifest.read_text())["figures"]
    assert sorted(listed) == sorted(p.name for p in fig.glob("*.png"))
    for name, digest in listed.items():
        assert hashlib.sha256((fig / name).read_bytes()).hexdigest()[:16] == digest, f"{name} changed since the run"
        assert (fig / name).with_suffix(".json").exists(), f"{name} has no data file beside it"
    results = (REPO_ROOT / "docs" / "results.md").read_text()
    for name in listed:
        assert f"figures/{name}" in results, f"docs/results.md's results block does not list {name}"


def test_publishing_figures_replaces_stale_ones(tmp_path):
    from phi_utils.config import get_profile
    from phi_utils.publish import publish_figures
    from phi_utils.steps import open_run

    committed = tmp_path / "figures"
    committed.mkdir()
    (committed / "README.md").write_text("kept")
    (committed / "99_stale.png").write_bytes(b"old")
    rd = open_run(get_profile("tiny"), tmp_path / "run")
    (rd.path / "figures").mkdir(exist_ok=True)
    for stem in ("01_a", "08_b"):
        (rd.path / "figures" / f"{stem}.png").write_bytes(stem.encode())
        (rd.path / "figures" / f"{stem}.json").write_text("{}")
    publish_figures(rd, tmp_path)
    assert sorted(p.name for p in committed.iterdir()) == ["01_a.json", "01_a.png", "08_b.json", "08_b.png",
                                                          "MANIFEST.json", "README.md"]


# ------------------------------------------------------------------ the README
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_RESULTS = re.compile(r"<!-- results:start -->.*?<!-- results:end -->", re.S)


def test_every_relative_link_in_the_readme_resolves_to_a_file():
    text = (REPO_ROOT / "README.md").read_text()
    relative = [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t) and not t.startswith("#")]
    assert relative, "the README links no file"
    missing = [t for t in relative if not (REPO_ROOT / t.split("#")[0]).is_file()]
    assert not missing, f"README links to files that do not exist: {missing}"


def test_readme_has_no_commit_hashes_outside_the_results_block():
    text = _RESULTS.sub("", (REPO_ROOT / "README.md").read_text())
    hashes = [h for h in re.findall(r"(?<![\w/.-])[0-9a-f]{7,40}(?![\w-])", text) if re.search(r"[a-f]", h)
              and re.search(r"\d", h)]
    assert not hashes, f"commit hashes in the README outside the results block: {hashes}"


def test_readme_notebooks_table_is_the_generated_one():
    from phi_utils.publish import NOTEBOOKS_END, NOTEBOOKS_START, notebooks_table

    text = (REPO_ROOT / "README.md").read_text()
    table = text.split(NOTEBOOKS_START, 1)[1].split(NOTEBOOKS_END, 1)[0].strip()
    assert table == notebooks_table(), "README's notebooks table differs from `publish`'s (re-run publish)"
