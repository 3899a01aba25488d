"""The main job: run the numbered notebooks in order with papermill, resumably.

`python -m phi_utils run --profile tiny` takes the run directory's lock, records the resolved
configuration (profile + `--config` files + `--set`s + `--seed`) in `run.json`, prints the plan
(which steps are redone and why, from their fingerprints over `steps.step_graph(cfg)`), executes every
notebook with a step to redo in a real kernel, injecting `profile`, `run_dir`, `seed` and `force`
into its `parameters` cell (the notebook loads the rest from run.json), writes the executed copy
into the run directory, stops at the first failure naming the notebook and cell, and ends with a
summary table. It never edits tracked files: `python -m phi_utils publish` makes a finished run the
repository's figures, results and published notebooks.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .config import REPO_ROOT, ProfileConfig, environ_restored, flatten, get_profile
from .progress import HEADLESS_ENV
from .readiness import NOTEBOOK_ENV
from .rundir import RunDir, RunLock, StepGraph, field_changes, read_json, strict, write_json_atomic
from .steps import GraphOf, step_graph

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"


class PipelineError(RuntimeError):
    """A stage cannot run, or ran and failed; the message names the notebook (and cell)."""


@dataclass(frozen=True)
class Stage:
    id: str
    """Two-digit stage number, e.g. `03`."""
    notebook: str
    """Notebook file name without `.ipynb`."""
    paper: str
    """The paper step it reproduces."""
    needs_teacher: bool = False
    """Whether it calls the teacher LLM (the runner then starts one shared local server)."""
    section: str = ""
    """The paper's section, table or figure (the README's notebooks table)."""
    summary: str = ""
    """What the notebook shows, in a line (the README's notebooks table)."""


STAGES: tuple[Stage, ...] = (
    Stage("00", "00_overview", "the paper in one page; environment check; the profile and its plan", True, "-",
          "the paper in one page, environment check, the profile's plan, the teacher card"),
    Stage("01", "01_data_quality_annotation", "§2.1 teacher-LLM labels of educational value", True, "§2.1",
          "the rating prompt, teacher-LLM ratings of \"educational value\" (logprob-weighted), label reliability"),
    Stage("02", "02_classifier_filtering", "§2.1 embedding + random forest filter", False, "§2.1",
          "embeddings + random forest, held-out AUC vs a shuffled-label control, the decision rule, the filtered corpus"),
    Stage("03", "03_synthetic_textbooks", "§2.2 synthetic textbooks", True, "§2.2",
          "a textbook prompt from randomised topic/audience/style draws and its passage, execution checks, diversity"),
    Stage("04", "04_synthetic_exercises", "§2.2 CodeExercises", True, "§2.2, Fig. 3.1",
          "an exercise prompt and an exercise with its test outcome, imports histogram, decontamination"),
    Stage("05", "05_model_definition", "§2.3 phi-1 / phi-1-small architecture", False, "§2.3",
          "phi-1 / phi-1-small / tiny: the block's forward pass, partial rotary, logits parity with transformers"),
    Stage("06", "06_pretraining", "§2.3 pretraining on CodeTextbook", False, "§2.3, Fig. 2.1",
          "pretraining on the raw corpus, the filtered code alone and CodeTextbook, same size and token budget, several seeds"),
    Stage("07", "07_finetuning", "§2.3 finetuning on CodeExercises", False, "§2.3, Fig. 2.1", "finetuning on CodeExercises"),
    Stage("08", "08_evaluation", "Table 1, Figure 2.1: HumanEval and MBPP pass@1", True, "Table 1, Fig. 2.1",
          "HumanEval / MBPP pass@k in a bubblewrap sandbox, a loss proxy that still moves at CPU scale"),
    Stage("09", "09_qualitative_comparisons", "§3: PyGame, Tkinter, pyplot prompts", False, "§3",
          "the paper's PyGame / Tkinter / pyplot prompts, run headlessly, API-existence check"),
    Stage("10", "10_unconventional_problems", "§4, Table 2: LLM-graded new problems", True, "§4, Table 2",
          "new problems, tests + LLM grades, grader reliability"),
    Stage("11", "11_contamination_analysis", "§5, Table 3: n-gram, embedding, AST; pruning", False, "§5, Table 3",
          "the contamination criteria; 13-gram, embedding and AST similarity, pruning and retraining"),
)


@dataclass
class StageResult:
    stage: Stage
    status: str = "not run"
    """`done`, `skipped` (complete from an earlier run), `failed` or `not run`."""
    wall_s: float | None = None
    metric: tuple[str, Any] | None = None
    error: str | None = None
    executed: Path | None = None


# ------------------------------------------------------------------------------ stage selection
def select_stages(spec: str | None, stages: Sequence[Stage] = STAGES) -> list[Stage]:
    """`None`/`all` -> every stage; `03-05` a range; `01,04,08` a list; ids or notebook names."""
    if spec is None or spec.strip() in ("", "all"):
        return list(stages)
    by_id = {s.id: i for i, s in enumerate(stages)}
    by_name = {s.notebook: i for i, s in enumerate(stages)}

    def index(token: str) -> int:
        token = token.strip()
        if token in by_name:
            return by_name[token]
        if token.isdigit() and token.zfill(2) in by_id:
            return by_id[token.zfill(2)]
        valid = ", ".join(s.id for s in stages)
        raise PipelineError(f"unknown stage {token!r}; stages are {valid} (or their notebook names)")

    chosen: set[int] = set()
    for part in spec.split(","):
        if "-" in part:
            lo, hi = (index(t) for t in part.split("-", 1))
            if lo > hi:
                raise PipelineError(f"empty stage range {part!r}: {stages[lo].id} comes after {stages[hi].id}")
            chosen.update(range(lo, hi + 1))
        else:
            chosen.add(index(part))
    return [stages[i] for i in sorted(chosen)]


# ------------------------------------------------------------------------------ notebooks
def check_notebook(path: Path) -> None:
    """One clear error for a missing notebook, invalid JSON, or no cell tagged `parameters`."""
    if not path.exists():
        raise PipelineError(f"notebook {path} does not exist")
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PipelineError(f"notebook {path} is not valid notebook JSON ({e})") from e
    tagged = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        raise PipelineError(f"notebook {path} has no cell tagged 'parameters'; the runner cannot inject "
                            f"profile/run_dir/seed/force (tag its first code cell 'parameters')")


def stage_marker(rd: RunDir, stage: Stage) -> Path:
    return rd.path / "stages" / f"{stage.notebook}.json"


@contextlib.contextmanager
def _headless_kernel_env() -> Iterator[None]:
    """The environment a kernel inherits: our bars print a few lines (`phi_utils.progress`), Hugging
    Face's stay quiet, others redraw at most every 5 s; this process's environment is restored after."""
    with environ_restored((HEADLESS_ENV, "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_MININTERVAL", "PYTHONWARNINGS",
                           NOTEBOOK_ENV)):
        warnings_before = os.environ.get("PYTHONWARNINGS")
        os.environ[HEADLESS_ENV] = "1"
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_MININTERVAL", "5")  # other libraries' bars (tqdm >= 4.66 reads TQDM_*)
        # tqdm.auto, imported by other libraries in a kernel without ipywidgets, warns that it draws text bars
        quiet = "ignore:IProgress not found"
        os.environ["PYTHONWARNINGS"] = ",".join(x for x in (warnings_before, quiet) if x)
        yield


def execute_notebook(src: Path, dst: Path, parameters: dict[str, Any], cwd: Path) -> None:
    """Run one notebook in a fresh kernel with papermill; re-raise failures with the cell named."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _headless_kernel_env():
            os.environ[NOTEBOOK_ENV] = src.stem  # the kernel knows which stage it runs (`readiness.current_stage`)
            pm.execute_notebook(str(src), str(dst), parameters=parameters, kernel_name="python3",
                                cwd=str(cwd), progress_bar=True, log_output=False, request_save_on_cell_execute=True)
    except PapermillExecutionError as e:
        evalue = str(e.evalue).strip().splitlines()
        short = evalue[-1] if evalue else ""
        number, first_line = _source_cell(src, dst, e.exec_count)
        raise PipelineError(
            f"notebook {src.name} failed in cell #{number} (counting from 1 in the notebook), which starts "
            f"`{first_line}`: {e.ename}: {short}\n  executed copy with the traceback: {dst}") from None


def _source_cell(src: Path, executed: Path, exec_count: int | None) -> tuple[int | None, str]:
    """Find the failing cell (by execution count in the executed copy) back in the source notebook;
    papermill inserts cells (parameters, error banner), so indices differ between the two."""
    try:
        ran = json.loads(executed.read_text(encoding="utf-8"))["cells"]
        source_cells = json.loads(src.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return None, "?"
    text = lambda c: "".join(c.get("source", "")) if isinstance(c.get("source"), list) else c.get("source", "")
    failing = next((text(c) for c in ran if c.get("cell_type") == "code" and c.get("execution_count") == exec_count), None)
    if failing is None:
        return None, "?"
    number = next((k + 1 for k, c in enumerate(source_cells) if text(c) == failing), None)
    return number, (failing.strip().splitlines() or [""])[0][:80]


# ------------------------------------------------------------------------------ the run
@contextlib.contextmanager
def _teacher_for(cfg: ProfileConfig, rd: RunDir, stages: Sequence[Stage]) -> Iterator[None]:
    """One local teacher server for the whole pipeline (kernels attach via the environment)."""
    if not any(s.needs_teacher for s in stages) or os.environ.get("PHI_TEACHER_BASE_URL"):
        yield
        return
    from .teacher import pipeline_server

    with pipeline_server(cfg.teacher, rd):
        yield


@dataclass
class StepPlan:
    """What a run will do to each step of the graph."""

    graph: StepGraph
    """The steps the plan covers."""

    redo: dict[str, list[str]] = field(default_factory=dict)
    """Step -> why it is (re)done; steps not listed are kept."""
    stale_unselected: dict[str, list[str]] = field(default_factory=dict)
    """Stale steps of stages outside the selection that a selected stage reads."""
    stage_reasons: dict[str, list[str]] = field(default_factory=dict)
    """Stage notebook -> why it is executed (absent: skipped)."""

    def lines(self, stages: Sequence[Stage]) -> list[str]:
        out = []
        for st in stages:
            steps = self.graph.of_stage(st.id)
            if st.notebook not in self.stage_reasons:
                out.append(f"  {st.notebook}: kept" + (f" ({', '.join(steps)})" if steps else ""))
                continue
            redo = [s for s in steps if s in self.redo]
            if not redo:
                out.append(f"  {st.notebook}: {'; '.join(self.stage_reasons[st.notebook])}")
            for s in redo:
                out.append(f"  {st.notebook}: {s}: {'; '.join(self.redo[s])}")
            kept = [s for s in steps if s not in self.redo]
            if redo and kept:
                out.append(f"  {st.notebook}: kept {', '.join(kept)}")
        for s, why in self.stale_unselected.items():
            out.append(f"  not selected, stale afterwards: {s} ({'; '.join(why)}); a run without --stages redoes it")
        return out


def plan_steps(rd: RunDir, selected: Sequence[Stage], forced: bool) -> StepPlan:
    """Which steps the run redoes and why: a missing or stale fingerprint, `--force` on its stage, or
    an upstream step that is redone; and which selected notebooks execute."""
    plan = StepPlan(graph=rd.graph)
    chosen = {st.id for st in selected}
    for name, spec in rd.graph.items():
        reasons = ["--force"] if forced and spec.stage in chosen else rd.redo_reasons(name)
        upstream = [d for d in spec.deps if d in plan.redo or d in plan.stale_unselected]
        if upstream and not any(r.startswith("upstream") or r == "not done yet" for r in reasons):
            reasons = reasons + [f"upstream {', '.join(upstream)} {'is' if len(upstream) == 1 else 'are'} redone"]
        if not reasons:
            continue
        if spec.stage in chosen:
            plan.redo[name] = reasons
        else:
            plan.stale_unselected[name] = reasons
    for st in selected:
        steps = rd.graph.of_stage(st.id)
        marker = stage_marker(rd, st)
        if any(s in plan.redo for s in steps):
            plan.stage_reasons[st.notebook] = ["its steps are redone"]
        elif forced:
            plan.stage_reasons[st.notebook] = ["--force"]
        elif not marker.exists():
            plan.stage_reasons[st.notebook] = ["its notebook has not finished"]
        elif not steps:  # a notebook without steps (the overview) follows the whole configuration
            old = read_json(marker).get("config")
            changes = field_changes(flatten(old), flatten(strict(rd.cfg.to_dict()))) if old is not None else []
            if old is None or changes:
                plan.stage_reasons[st.notebook] = (changes[:3] + ["..."] * (len(changes) > 3)) or ["not recorded"]
    return plan


def check_selection(plan: StepPlan, selected: Sequence[Stage]) -> None:
    """A selected stage must not read a stale step of a stage left out of the selection."""
    chosen = {st.id for st in selected}
    for name, spec in plan.graph.items():
        if spec.stage not in chosen or name not in plan.redo:
            continue
        for d in spec.deps:
            if d in plan.stale_unselected and (rd_stage := plan.graph[d].stage) not in chosen:
                raise PipelineError(f"{name} (stage {spec.stage}) reads {d}, which is stale "
                                    f"({'; '.join(plan.stale_unselected[d])}); add stage {rd_stage} to --stages "
                                    f"(e.g. --stages {rd_stage}-{spec.stage})")


def run_pipeline(profile: str | ProfileConfig, run_dir: str | Path | None = None, stages: str | None = None,
                 force: bool = False, seed: int | None = None, notebooks_dir: Path = NOTEBOOKS_DIR,
                 stage_table: Sequence[Stage] = STAGES, echo: Callable[[str], None] = print,
                 graph: GraphOf = step_graph) -> list[StageResult]:
    """Run the selected stages of `profile` (a name, or a resolved configuration from
    `config.resolve_config`) over its steps (`graph(cfg)`); raise `PipelineError` (after printing the
    summary) on the first failure."""
    cfg = get_profile(profile) if isinstance(profile, str) else profile
    if seed is not None:
        cfg.seed = seed
    selected = select_stages(stages, stage_table)
    for st in selected:  # fail before any work when a notebook is unusable
        check_notebook(notebooks_dir / f"{st.notebook}.ipynb")
    path = Path(run_dir) if run_dir else cfg.default_run_dir()
    with RunLock(path):
        return _run_locked(cfg, RunDir.open(cfg, path, graph=graph(cfg)), selected, force, notebooks_dir, echo)


def _run_locked(cfg: ProfileConfig, rd: RunDir, selected: list[Stage], force: bool, notebooks_dir: Path,
                echo: Callable[[str], None]) -> list[StageResult]:
    rd.record_config()  # the notebooks load it from run.json
    results = [StageResult(st) for st in selected]
    echo(f"profile {cfg.name} -> run directory {rd.path}")
    plan = plan_steps(rd, selected, force)
    check_selection(plan, selected)
    echo("plan:\n" + "\n".join(plan.lines(selected)))
    failure: PipelineError | None = None
    started_all = time.time()
    with _teacher_for(cfg, rd, [r.stage for r in results if r.stage.notebook in plan.stage_reasons]):
        for i, res in enumerate(results, 1):
            st = res.stage
            marker = stage_marker(rd, st)
            if st.notebook not in plan.stage_reasons:
                info = read_json(marker)
                res.status, res.wall_s, res.metric = "skipped", info.get("wall_s"), rd.key_metric(st.notebook)
                echo(f"[{i}/{len(results)}] {st.notebook}: complete and current, skipped (--force re-runs it)")
                continue
            echo(f"[{i}/{len(results)}] {st.notebook}: {st.paper}")
            marker.unlink(missing_ok=True)
            res.executed = rd.path / "notebooks" / f"{st.notebook}.ipynb"
            params = {"profile": cfg.name, "run_dir": str(rd.path), "seed": cfg.seed, "force": bool(force)}
            t0 = time.time()
            try:
                execute_notebook(notebooks_dir / f"{st.notebook}.ipynb", res.executed, params, notebooks_dir)
            except PipelineError as e:
                res.status, res.wall_s, res.error = "failed", time.time() - t0, str(e)
                failure = e
                break
            res.status, res.wall_s = "done", time.time() - t0
            res.metric = rd.key_metric(st.notebook)
            write_json_atomic(marker, {"notebook": st.notebook, "wall_s": round(res.wall_s, 2),
                                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "parameters": params,
                                       "config": cfg.to_dict()})
    echo(format_summary(results, time.time() - started_all, cfg))
    write_json_atomic(rd.path / "stages" / "summary.json", [
        {"stage": r.stage.notebook, "status": r.status, "wall_s": r.wall_s,
         "metric": None if r.metric is None else {"name": r.metric[0], "value": r.metric[1]}} for r in results])
    if failure is not None:
        raise failure
    from .report import results_markdown

    (rd.path / "RESULTS.md").write_text(results_markdown(rd) + "\n", encoding="utf-8")
    return results


def dry_run_steps(cfg: ProfileConfig, run_dir: str | Path | None = None, stages: str | None = None,
                  force: bool = False, stage_table: Sequence[Stage] = STAGES, graph: GraphOf = step_graph) -> str:
    """What `run` would redo in the run directory and why, without touching it."""
    path = Path(run_dir) if run_dir else cfg.default_run_dir()
    selected = select_stages(stages, stage_table)
    rd = RunDir(path, cfg.name, cfg, graph(cfg))
    if (path / "run.json").exists():
        info = read_json(path / "run.json")
        if info.get("profile") != cfg.name:
            return f"run directory {path} belongs to profile {info.get('profile')!r}; nothing to compare"
    plan = plan_steps(rd, selected, force)
    lines = [f"steps in {path}:"] + plan.lines(selected)
    try:
        check_selection(plan, selected)
    except PipelineError as e:
        lines.append(f"  refused: {e}")
    return "\n".join(lines)


def _fmt_metric(metric: tuple[str, Any] | None) -> str:
    if metric is None:
        return ""
    name, value = metric
    if isinstance(value, float):
        value = f"{value:.4g}"
    return f"{name} = {value}"


def format_summary(results: Sequence[StageResult], total_s: float, cfg: ProfileConfig) -> str:
    rows = [("stage", "status", "wall time", "key metric")]
    for r in results:
        wall = "" if r.wall_s is None else f"{r.wall_s:7.1f} s"
        rows.append((r.stage.notebook, r.status, wall, _fmt_metric(r.metric)))
    widths = [max(len(row[c]) for row in rows) for c in range(4)]
    lines = ["", "summary:"]
    for j, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if j == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    ran = sum(r.wall_s or 0 for r in results if r.status == "done")
    lines.append(f"  wall time this invocation: {total_s / 60:.1f} min (stages run: {ran / 60:.1f} min; "
                 f"profile target {cfg.time_budget_min:g} min for the whole pipeline)")
    for r in results:
        if r.error:
            lines.append(f"  FAILED: {r.error}")
    return "\n".join(lines)
