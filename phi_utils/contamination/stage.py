"""Stage 11 (paper §5): contamination analysis of CodeExercises (and CodeTextbook) against HumanEval/MBPP,
pruning by similarity and retraining on the pruned sets (Table 3).

`run_contamination(cfg, rd, force)` writes under `rd.path/"contamination"`:

* `ngram_exercises.jsonl`  HumanEval + MBPP docstrings sharing a word n-gram with an exercise docstring
* `ngram_textbook.jsonl`   the same against every CodeTextbook document (beyond the paper)
* `neighbours.jsonl`       per HumanEval problem: top-k exercises by AST match rate and by embedding distance
* `exercise_scores.jsonl`  per exercise: best AST match rate / smallest embedding distance to HumanEval
* `textbook_ast.jsonl`     per HumanEval problem: top-k CodeTextbook functions by AST match rate
* `prune_counts.csv`       removed exercises and similar problems per τ
* `splits.json`            the "similar" HumanEval task ids per τ
* `pruned/tau_<τ>/`        the pruned CodeExercises (HF dataset), `retrain/tau_<τ>/` the models retrained on them
* `eval/*.jsonl`           per-problem HumanEval results of the finetuned and retrained models
* `table3.csv`             this run's Table 3 rows beside the paper-reported rows
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..config import SHARED_DATA, ProfileConfig
from ..hub import hub_reachable
from ..rundir import RunDir, RunDirError, read_result, save_dataset, write_json_atomic, write_jsonl_atomic
from . import ast_match, embedding, ngram
from .prune import PruneAccumulator
from .tables import combined_table3, run_table3, table3_conclusions

STEP = "contamination"
UPSTREAM = {"exercises": "notebook 04 (synthetic exercises)", "textbooks": "notebook 03 (synthetic textbooks)",
            "tokenizer": "notebook 05 (tokenizer)", "pretrain_textbook": "notebook 06 (pretraining)",
            "finetune": "notebook 07 (finetuning)"}
"""Upstream steps (training steps by their arm prefix, e.g. `pretrain_textbook_s0` -> `pretrain_textbook`)."""


def textbook_step(cfg: ProfileConfig) -> str:
    """The pretrained model (B) that retraining starts from: that of the first finetuning seed."""
    from ..arms import step_name

    return step_name("textbook", cfg.finetune.seeds[0])


def finetune_step(cfg: ProfileConfig) -> str:
    """The finetuned model (C) that is the un-pruned reference: of the same seed as `textbook_step`."""
    from ..arms import step_name

    return step_name("finetune", cfg.finetune.seeds[0])


class ContaminationError(RuntimeError):
    """An input of the contamination stage is missing or unusable; the message names it."""


# --------------------------------------------------------------------------- inputs
def require_upstream(rd: RunDir, step: str) -> Path:
    """The upstream step's directory, or one error naming the step and the notebook that makes it."""
    try:
        return rd.require(step)
    except RunDirError as e:
        where = UPSTREAM.get(step) or UPSTREAM.get(step.rsplit("_s", 1)[0], "an earlier stage")
        raise ContaminationError(f"contamination needs '{step}' from {where}: {e}") from e


def _load_upstream_dataset(rd: RunDir, step: str, name: str, what: str):
    import datasets

    path = require_upstream(rd, step) / name
    try:
        return datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as e:
        raise ContaminationError(f"{path}: cannot load the {what} dataset ({e})") from e


def load_exercises(rd: RunDir):
    """CodeExercises (`exercises/code_exercises`) as a `datasets.Dataset`."""
    return _load_upstream_dataset(rd, "exercises", "code_exercises", "CodeExercises")


def load_code_textbook(rd: RunDir):
    """CodeTextbook (`textbooks/code_textbook`) as a `datasets.Dataset`."""
    return _load_upstream_dataset(rd, "textbooks", "code_textbook", "CodeTextbook")


@dataclass
class Problem:
    task_id: str
    prompt: str
    """The text the model completes (signature + docstring)."""
    docstring: str
    """Natural-language description used by the n-gram check."""
    code: str
    """Reference solution as one snippet (prompt + solution), for AST and embedding similarity."""
    entry_point: str | None = None
    """Name of the function under test."""


def humaneval_problems() -> list[Problem]:
    """The 164 HumanEval problems (`phi_utils.evaluation.problems.load_humaneval`)."""
    from ..evaluation.problems import load_humaneval

    out = []
    for p in map(vars, load_humaneval()):
        out.append(Problem(p["task_id"], p["prompt"], docstring_of(p["prompt"], p.get("entry_point")),
                           p["prompt"] + p.get("canonical_solution", ""), p.get("entry_point")))
    return out


def mbpp_problems() -> list[Problem]:
    """All 974 MBPP problems (every split; text = the NL description) from the shared offline copy, else
    the hub's `mbpp` (config `full`, all splits); [] with a message when neither can be had. (The
    evaluation loader serves only the 500-problem test split; contamination checks all of them.)"""
    path = SHARED_DATA / "mbpp" / "mbpp.jsonl"
    if not path.exists():
        if hub_reachable():
            try:
                import datasets

                full = datasets.load_dataset("mbpp", "full")
                rows = sorted((r for split in full.values() for r in split), key=lambda r: int(r["task_id"]))
                return [Problem(f"MBPP/{r['task_id']}", r["text"], r["text"], r["code"]) for r in rows]
            except Exception as e:  # noqa: BLE001 - fall through to the skip message
                print(f"MBPP from the hub failed ({type(e).__name__}: {e})")
        print(f"MBPP not found at {path} nor on the hub; skipping MBPP in the n-gram and decontamination checks")
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise ContaminationError(f"{path}:{i}: malformed JSON ({e})") from e
            out.append(Problem(f"MBPP/{r['task_id']}", r["text"], r["text"], r["code"]))
    return out


def docstring_of(code: str, entry_point: str | None = None) -> str:
    """The docstring of `entry_point` (or the first function) in `code`; the code itself if none parses."""
    tree = ast_match.parse_snippet(code) or ast_match.parse_snippet(code + "\n    pass\n")
    if tree is None:
        return code
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (entry_point is None or node.name == entry_point):
            doc = ast.get_docstring(node)
            if doc:
                return doc
    return ast.get_docstring(tree) or code


def function_source(code: str, name: str | None) -> str:
    """The source of function `name` in `code` (imports and helpers dropped); `code` itself if not found."""
    tree = ast_match.parse_snippet(code)
    if tree is None or name is None:
        return code
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return ast.get_source_segment(code, node) or code
    return code


_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def extract_functions(text: str, max_functions: int = 50) -> list[str]:
    """Function definitions (source) in a file, or in the fenced code blocks of a textbook passage."""
    blocks = _FENCE.findall(text) or [text]
    out: list[str] = []
    for block in blocks:
        tree = ast_match.parse_snippet(block)
        if tree is None:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                seg = ast.get_source_segment(block, node)
                if seg:
                    out.append(seg)
                    if len(out) >= max_functions:
                        return out
    return out


# --------------------------------------------------------------------------- analysis
def _topk_merge(best_idx: np.ndarray, best_val: np.ndarray, idx: np.ndarray, val: np.ndarray, k: int,
                larger_is_better: bool) -> tuple[np.ndarray, np.ndarray]:
    ai = np.concatenate([best_idx, idx], axis=1)
    av = np.concatenate([best_val, val], axis=1)
    order = np.argsort(-av if larger_is_better else av, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ai, order, axis=1), np.take_along_axis(av, order, axis=1)


def similarity_scan(problems: Sequence[Problem], corpus_codes: Sequence[str], q_emb: np.ndarray | None,
                    c_emb: np.ndarray | None, taus: list[float], emb_threshold: float, combine: str,
                    top_k: int = 5, chunk: int = 20_000, workers: int = 2) -> dict[str, Any]:
    """All pairs problems × corpus by AST match rate (and embedding distance when embeddings are given),
    in chunks: pruning masks per τ, top-k neighbours per problem, best scores per corpus item."""
    q_str = [ast_match.canonical_string(p.code) for p in problems]
    c_str = ast_match.canonical_strings(corpus_codes, workers=workers, desc="parsing exercises")
    acc = PruneAccumulator(taus, emb_threshold, combine if q_emb is not None else "ast", len(problems), len(corpus_codes))
    nq = len(problems)
    a_idx = np.zeros((nq, 0), dtype=np.int64); a_val = np.zeros((nq, 0), dtype=np.float32)
    e_idx = np.zeros((nq, 0), dtype=np.int64); e_val = np.zeros((nq, 0), dtype=np.float32)
    a_arg = np.zeros(len(corpus_codes), dtype=np.int64); e_arg = np.zeros(len(corpus_codes), dtype=np.int64)
    for s in range(0, len(corpus_codes), chunk):
        sim = ast_match.match_matrix(q_str, c_str[s:s + chunk], workers=workers, progress=False)
        dist = embedding.l2_matrix(q_emb, c_emb[s:s + chunk]) if q_emb is not None else None
        acc.update(s, sim, dist)
        if sim.shape[1]:
            a_arg[s:s + sim.shape[1]] = sim.argmax(axis=0)
            i, v = embedding.top_similar(sim, top_k)
            a_idx, a_val = _topk_merge(a_idx, a_val, i + s, v, top_k, True)
            if dist is not None:
                e_arg[s:s + sim.shape[1]] = dist.argmin(axis=0)
                i, v = embedding.nearest(dist, top_k)
                e_idx, e_val = _topk_merge(e_idx, e_val, i + s, v, top_k, False)
    return {"acc": acc, "ast_idx": a_idx, "ast_val": a_val, "emb_idx": e_idx, "emb_val": e_val,
            "ast_arg": a_arg, "emb_arg": e_arg, "unparsable": sum(x is None for x in c_str),
            "parsed": [x is not None for x in c_str]}


def analyse(cfg: ProfileConfig, rd: RunDir, out: Path) -> dict[str, Any]:
    """n-gram, embedding and AST checks; pruning counts and similar/non-similar splits (no training)."""
    cc = cfg.contamination
    ex = load_exercises(rd)
    tb = load_code_textbook(rd) if cc.textbook_check else None
    he = humaneval_problems()
    mbpp = mbpp_problems() if cc.include_mbpp else []
    ids = [str(x) for x in (ex["task_id"] if "task_id" in ex.column_names else range(len(ex)))]
    ex_prompt = list(ex["prompt"]) if "prompt" in ex.column_names else list(ex["text"])
    ex_code = list(ex["text"])

    # n-grams: benchmark docstrings vs exercise docstrings, and vs every CodeTextbook document
    bench = {p.task_id: p.docstring for p in he + mbpp}
    index = ngram.build_index(bench, cc.ngram)
    ng_ex = ngram.find_overlaps(index, ((i, docstring_of(t)) for i, t in zip(ids, ex_prompt)), total=len(ids),
                                desc=f"{cc.ngram}-gram vs exercises")
    write_jsonl_atomic(out / "ngram_exercises.jsonl", [o.to_dict() for o in ng_ex])
    ng_tb = []
    if tb is not None:
        ng_tb = ngram.find_overlaps(index, ((f"textbook/{i}", t) for i, t in enumerate(tb["text"])), total=len(tb),
                                    desc=f"{cc.ngram}-gram vs CodeTextbook")
        write_jsonl_atomic(out / "ngram_textbook.jsonl", [o.to_dict() for o in ng_tb])

    # embeddings (HumanEval vs exercises)
    q_emb = c_emb = None
    identity = None
    if cc.combine != "ast":
        emb = embedding.load(cc.embedder, rd, cc.max_seq_length)
        identity = emb.identity
        # HumanEval never changes: its embeddings are cached per user (not for `own`, which changes per run)
        q_cache = embedding.user_cache_dir() if cc.embedder != "own" else out / "embeddings"
        q_emb = embedding.encode_cached(emb, [p.code for p in he], q_cache, desc="embedding HumanEval")
        c_emb = embedding.encode_cached(emb, ex_code, out / "embeddings", desc="embedding exercises")
    scan = similarity_scan(he, ex_code, q_emb, c_emb, list(cc.taus), cc.embedding_threshold, cc.combine, cc.top_k)
    acc: PruneAccumulator = scan["acc"]

    neigh = []
    n_reranked = 0
    for qi, p in enumerate(he):
        ast_nb = [{"exercise": ids[j], "index": int(j), "match_rate": float(v)}
                  for j, v in zip(scan["ast_idx"][qi], scan["ast_val"][qi])]
        if cc.rerank_exact and ast_nb and ast_nb[0]["match_rate"] >= min(cc.taus) - cc.rerank_margin:
            # shortlist re-ranked by the exact tree edit distance (APTED): slow per pair, so only near the thresholds
            for nb in ast_nb:
                nb["exact_match_rate"] = ast_match.exact_match_rate(p.code, ex_code[nb["index"]])
            ast_nb.sort(key=lambda nb: -nb["exact_match_rate"])
            n_reranked += 1
        row = {"task_id": p.task_id, "ast": ast_nb,
               "embedding": [{"exercise": ids[j], "index": int(j), "l2": float(v)}
                             for j, v in zip(scan["emb_idx"][qi], scan["emb_val"][qi])]}
        neigh.append(row)
    write_jsonl_atomic(out / "neighbours.jsonl", neigh)
    write_jsonl_atomic(out / "exercise_scores.jsonl", [
        {"exercise": ids[j], "index": j, "parsed": scan["parsed"][j], "ast_best": float(acc.ast_best[j]), "ast_best_problem": he[scan["ast_arg"][j]].task_id,
         "emb_best": None if q_emb is None else float(acc.emb_best[j]),
         "emb_best_problem": None if q_emb is None else he[scan["emb_arg"][j]].task_id} for j in range(len(ids))])
    counts = acc.counts()
    pd.DataFrame(counts).to_csv(out / "prune_counts.csv", index=False)
    splits = {str(t): [he[i].task_id for i in np.flatnonzero(acc.similar[t])] for t in cc.taus}
    write_json_atomic(out / "splits.json", splits)
    np.save(out / "removed_masks.npy", np.stack([acc.removed[t] for t in cc.taus]) if cc.taus else np.zeros((0, len(ids))))

    # beyond the paper: AST neighbours of HumanEval among CodeTextbook functions
    tb_rows: list[dict] = []
    n_tb_funcs, n_tb_docs = 0, 0
    if tb is not None:
        funcs, src = [], []
        docs = np.arange(len(tb))
        if cc.textbook_ast_docs and len(tb) > cc.textbook_ast_docs:
            docs = np.sort(np.random.default_rng(cfg.seed).choice(len(tb), cc.textbook_ast_docs, replace=False))
        n_tb_docs = len(docs)
        for i, t in zip(docs.tolist(), tb.select(docs)["text"] if len(docs) < len(tb) else tb["text"]):
            for f in extract_functions(t):
                funcs.append(f)
                src.append(i)
        n_tb_funcs = len(funcs)
        if funcs:
            # function against function: HumanEval's entry point alone (its imports/helpers dropped)
            he_funcs = [dataclasses.replace(p, code=function_source(p.code, p.entry_point)) for p in he]
            ts = similarity_scan(he_funcs, funcs, None, None, list(cc.taus), 0.0, "ast", cc.top_k)
            for qi, p in enumerate(he):
                tb_rows.append({"task_id": p.task_id, "ast": [
                    {"doc": f"textbook/{src[j]}", "function": funcs[j][:2000], "match_rate": float(v)}
                    for j, v in zip(ts["ast_idx"][qi], ts["ast_val"][qi])]})
            tb_counts = ts["acc"].counts()
        write_jsonl_atomic(out / "textbook_ast.jsonl", tb_rows)
    summary = {
        "n_exercises": len(ids), "n_humaneval": len(he), "n_mbpp": len(mbpp), "ngram": cc.ngram,
        "ngram_exercise_pairs": len(ng_ex),
        "ngram_exercise_humaneval_problems": len({o.problem_id for o in ng_ex if o.problem_id.startswith("HumanEval")}),
        "ngram_exercise_mbpp_problems": len({o.problem_id for o in ng_ex if o.problem_id.startswith("MBPP")}),
        "ngram_textbook_pairs": len(ng_tb),
        "ngram_textbook_humaneval_problems": len({o.problem_id for o in ng_tb if o.problem_id.startswith("HumanEval")}),
        "embedder": identity, "combine": cc.combine, "embedding_threshold": cc.embedding_threshold,
        "unparsable_exercises": scan["unparsable"], "prune_counts": counts, "problems_reranked_exact": n_reranked,
        "textbook_documents": 0 if tb is None else len(tb), "textbook_functions": n_tb_funcs,
        "textbook_ast_documents": n_tb_docs,
        "textbook_ast_counts": tb_counts if tb_rows else [],
        "exercises_teacher": sorted(set(ex["teacher"])) if "teacher" in ex.column_names else None,
    }
    write_json_atomic(out / "analysis.json", summary)
    return summary


# --------------------------------------------------------------------------- pruning + retraining
def pruned_dataset(rd: RunDir, tau: float, out: Path):
    """The exercises kept at τ (saved to `pruned/tau_<τ>`)."""
    taus = [float(t) for t in json.loads((out / "splits.json").read_text())]
    masks = np.load(out / "removed_masks.npy")
    ex = load_exercises(rd)
    keep = np.flatnonzero(~masks[taus.index(float(tau))])
    ds = ex.select(keep.tolist())
    path = out / "pruned" / f"tau_{tau}"
    save_dataset(ds, path)
    return ds, path


def retrain_and_evaluate(cfg: ProfileConfig, rd: RunDir, out: Path, force: bool = False) -> pd.DataFrame:
    """Finetune again on each pruned set and evaluate both the original finetuned model and the
    retrained ones on the same HumanEval problems; returns this run's Table 3 rows."""
    from . import retrain

    cc = cfg.contamination
    splits = {float(t): ids for t, ids in json.loads((out / "splits.json").read_text()).items()}
    masks = np.load(out / "removed_masks.npy")
    taus = [float(t) for t in cc.taus]
    problems = humaneval_problems()
    evaluated = retrain.eval_subset(problems, splits, cc.eval_limit)
    steps = cc.retrain_steps or cfg.finetune.max_steps
    if steps == cfg.finetune.max_steps:
        # same recipe and budget as the finetune stage: its model is the un-pruned reference ("phi-1")
        base_ckpt = require_upstream(rd, finetune_step(cfg)) / "final"
        baseline = f"{finetune_step(cfg)}/final ({steps} steps on all exercises)"
    else:
        # a cut budget (CPU profiles): compare like with like, a control finetuned on *all* exercises
        # with the same number of steps, not the longer-trained finetune stage model
        base_ckpt = retrain.finetune_on(cfg, rd, require_upstream(rd, "exercises") / "code_exercises",
                                        out / "retrain" / "control_all", steps, force, init_step=textbook_step(cfg))
        baseline = f"control: {steps} steps on all exercises ({finetune_step(cfg)}/final has {cfg.finetune.max_steps})"
    base_passed = retrain.evaluate_checkpoint(cfg, rd, base_ckpt, evaluated, out / "eval" / "finetuned.jsonl", force)
    retrained: dict[float, dict[str, bool]] = {}
    info = []
    want = taus if cc.retrain_taus is None else [float(t) for t in cc.retrain_taus]
    done: dict[bytes, float] = {}
    for t in want:
        mask = masks[taus.index(t)]
        removed = int(mask.sum())
        if removed == 0:
            # Nothing pruned: the "retrained" model would be trained on exactly the same data.
            retrained[t] = base_passed
            info.append({"tau": t, "removed": 0, "retrained": False, "note": "nothing pruned: same data as the finetuned model"})
            continue
        key = np.packbits(mask).tobytes()
        if key in done:  # the same pruned set as another τ: same training data, same model
            retrained[t] = retrained[done[key]]
            info.append({"tau": t, "removed": removed, "retrained": False, "note": f"same pruned set as tau {done[key]}"})
            continue
        done[key] = t
        _, data_path = pruned_dataset(rd, t, out)
        ckpt = retrain.finetune_on(cfg, rd, data_path, out / "retrain" / f"tau_{t}", cc.retrain_steps, force,
                                   init_step=textbook_step(cfg))
        retrained[t] = retrain.evaluate_checkpoint(cfg, rd, ckpt, evaluated, out / "eval" / f"retrained_tau_{t}.jsonl", force)
        info.append({"tau": t, "removed": removed, "retrained": True, "checkpoint": str(ckpt)})
    run_df = run_table3(taus, splits, evaluated, base_passed, retrained)
    write_json_atomic(out / "retrain.json", {"evaluated": evaluated, "steps": steps, "baseline": baseline,
                                             "baseline_checkpoint": str(base_ckpt), "runs": info,
                                             "conclusions": table3_conclusions(run_df, base_passed, retrained,
                                                                               splits, evaluated)})
    return run_df


@dataclass
class ContaminationResult:
    """The `contamination` step's `summary.json`, typed (what `run_contamination` returns)."""

    n_exercises: int
    """CodeExercises rows checked."""
    n_humaneval: int
    """HumanEval problems."""
    n_mbpp: int
    """MBPP problems (0 unless `include_mbpp`)."""
    ngram: int
    """Word n-gram length of the overlap check."""
    ngram_exercise_pairs: int
    """(benchmark problem, exercise) pairs sharing an n-gram."""
    ngram_exercise_humaneval_problems: int
    """HumanEval problems sharing an n-gram with an exercise."""
    ngram_exercise_mbpp_problems: int
    """MBPP problems sharing an n-gram with an exercise."""
    ngram_textbook_pairs: int
    """(benchmark problem, CodeTextbook document) pairs sharing an n-gram."""
    ngram_textbook_humaneval_problems: int
    """HumanEval problems sharing an n-gram with a CodeTextbook document."""
    embedder: str | None
    """Identity of the embedding model (None when `combine` is `ast`)."""
    combine: str
    """How AST and embedding similarity are combined for pruning."""
    embedding_threshold: float
    """Embedding distance below which an exercise counts as similar."""
    unparsable_exercises: int
    """Exercises whose code does not parse (no AST score)."""
    prune_counts: list[dict[str, Any]]
    """One row per τ: removed/kept exercises and similar/non-similar problems (`PruneAccumulator.counts`)."""
    problems_reranked_exact: int
    """HumanEval problems whose AST shortlist was re-ranked by the exact tree edit distance."""
    textbook_documents: int
    """CodeTextbook documents (0 without the textbook check)."""
    textbook_functions: int
    """Functions parsed from the sampled CodeTextbook documents."""
    textbook_ast_documents: int
    """CodeTextbook documents sampled for the AST check."""
    textbook_ast_counts: list[dict[str, Any]]
    """Prune counts of CodeTextbook functions against HumanEval, one row per τ (empty without functions)."""
    exercises_teacher: list[str] | None
    """Teachers that wrote the exercises (None when the dataset has no `teacher` column)."""
    analysis_s: float
    """Seconds spent on the analysis."""
    wall_s: float
    """Seconds of the whole step (analysis, retraining, Table 3)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ContaminationResult":
        """From `summary.json`'s dict (its keys are the fields)."""
        return cls(**d)


def run_contamination(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> ContaminationResult:
    """The stage: analysis, pruning counts, retraining (if `cfg.contamination.retrain`) and Table 3."""
    cfg = rd.view(STEP, cfg)
    out_dir = rd.path / STEP
    if force or not rd.is_complete(STEP):
        # fail fast, before the analysis, when an input of a later part is missing
        needed = ["exercises"] + (["textbooks"] if cfg.contamination.textbook_check else [])
        if cfg.contamination.retrain:
            needed += ["tokenizer", textbook_step(cfg)]
            if cfg.contamination.retrain_steps in (0, cfg.finetune.max_steps):
                needed.append(finetune_step(cfg))  # its model is the reference; with a cut budget a control is trained
        for step in needed:
            require_upstream(rd, step)
    with rd.step(STEP, force=force, config=cfg.contamination) as rec:
        if rec is None:
            return read_result(ContaminationResult, out_dir / "summary.json")
        t0 = time.time()
        summary = analyse(cfg, rd, rec.path)
        summary["analysis_s"] = round(time.time() - t0, 2)
        if cfg.contamination.retrain:
            run_df = retrain_and_evaluate(cfg, rd, rec.path, force)
        else:
            run_df = run_table3([float(t) for t in cfg.contamination.taus],
                                {float(t): v for t, v in json.loads((rec.path / "splits.json").read_text()).items()},
                                [p.task_id for p in humaneval_problems()], None, {})
        table = combined_table3(run_df)
        table.to_csv(rec.path / "table3.csv", index=False)
        summary["wall_s"] = round(time.time() - t0, 2)
        write_json_atomic(rec.path / "summary.json", summary)
        rec.counts.update({"exercises": summary["n_exercises"], "ngram_pairs": summary["ngram_exercise_pairs"],
                           **{f"removed_tau_{r['tau']}": r["removed"] for r in summary["prune_counts"]}})
    return ContaminationResult.from_dict(summary)
