"""Synthetic textbooks and CodeTextbook (paper §2.2, notebook 03).

The paper had GPT-3.5 write <1B tokens of Python "textbook" passages made diverse "by providing
constraints on topics and target audience" (its prompts are withheld). Here each prompt is composed
from a recorded draw (topic from a ~270-topic taxonomy, audience, style, random words; see
`topics.py`) with a per-sample seed, so every passage can be regenerated and audited.

Validation (beyond the paper): each passage's ```python blocks are run, in order, as one program in
the sandbox; a passage is dropped, with its reason counted, when it has no valid code, a block does
not parse, the code fails or times out, or an output the passage states (`# Output: 6`, "prints
`6`", an output block after the code, a `>>>` session) contradicts what the code printed.
Near-duplicates (MinHash) are removed, and diversity is measured with and without the
randomisation (a small ablation: a fixed prompt, only the sampling seed varies).

Outputs under `rd.path/"textbooks"`: `textbooks` (kept passages + their draws), `code_textbook`
(filtered code from notebook 02, subsampled so the passages hold `synthetic_share` of the tokens,
+ the passages; columns `source`, `origin`, `n_tokens`), `filtered_code` (the filtered code alone
with CodeTextbook's token count: the ablation arm B'), `passages.jsonl` (every passage with its
verdict), `metrics.json` (`tokens_by_origin` covers the whole CodeTextbook).
"""

from __future__ import annotations

import re

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ..config import ProfileConfig, TextbookConfig
from ..rundir import RunDir, read_jsonl, save_dataset, write_json_atomic, write_jsonl_atomic
from .common import funnel, open_teacher, run_sandboxed, tokens_by_origin
from .diversity import (ablation_interval, approx_tokens, assign_topics, diversity_report, embed,
                        near_duplicate_mask)
from .parsing import claim_agrees, parses, passage_program, split_passage, split_stdout
from .topics import TextbookDraw, draw_textbook, sample_seed, vocab_sizes

STEP = "textbooks"
SYSTEM = "You are an expert Python teacher who writes clear, correct and engaging textbook passages."
FIXED_PROMPT_TOPIC = "a Python programming concept"
FILTERED_CODE = "filtered_code"
"""Origin label of CodeTextbook rows that come from notebook 02's filtered code."""
STATUSES = ("kept", "teacher_error", "no_code", "syntax_error", "code_failed", "timeout", "wrong_output", "near_duplicate")
FILTERS = (("reply", ("teacher_error",)), ("valid_code", ("no_code", "syntax_error")),
           ("code_runs", ("code_failed", "timeout")), ("outputs_consistent", ("wrong_output",)),
           ("not_near_duplicate", ("near_duplicate",)))
"""The checks in order, each with the verdicts it drops (the funnel of `TextbooksResult`)."""


def textbook_messages(draw: TextbookDraw, max_words: int = 300) -> list[dict[str, str]]:
    """The chat prompt for one passage; without randomisation a single fixed prompt (the ablation)."""
    rules = ("Use Markdown. Interleave short explanations with small Python code blocks (```python). "
             "The code blocks, run in order, must work with only the standard library and print their "
             "results; whenever you say what the code prints, state it exactly. "
             f"Keep it under {max_words} words.")
    if not draw.randomised:
        return [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Write a textbook section that teaches {FIXED_PROMPT_TOPIC} "
                                            f"to a student. {rules}"}]
    words = ", ".join(draw.words)
    user = (f"Write {draw.style} about **{draw.topic}** (from the area '{draw.category}'), "
            f"for {draw.audience}. {rules}")
    if words:
        user += f" Somewhere in the text, naturally use these words: {words}."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


# --------------------------------------------------------------------------- validation
@dataclass
class PassageCheck:
    """The verdict on one passage."""

    status: str
    """One of STATUSES (before dedup: never `near_duplicate`)."""
    text: str
    """The passage, with a code block left open by `max_tokens` cut off."""
    detail: str = ""
    """Why it was dropped (error line, or the contradicted claim and what was printed)."""
    n_blocks: int = 0
    n_claims: int = 0
    """Stated outputs found."""
    n_claims_checked: int = 0
    """Stated outputs compared with printed output."""
    n_claims_wrong: int = 0
    truncated_block: bool = False
    """The reply ended inside a code block (that block was removed)."""
    other_langs: list[str] = field(default_factory=list)


def _trim_open_block(text: str) -> str:
    return text[:text.rfind("```")].rstrip()


def prepare_passage(text: str) -> tuple[PassageCheck, str, list[Any]]:
    """Static checks: (verdict, program to run, blocks). Status `pending` means: run the program."""
    blocks, other = split_passage(text)
    truncated = False
    if blocks and not blocks[-1].closed:
        blocks = blocks[:-1]
        text = _trim_open_block(text)
        truncated = True
    chk = PassageCheck("pending", text, n_blocks=len(blocks), n_claims=sum(len(b.claims) for b in blocks),
                       truncated_block=truncated, other_langs=other)
    if not any(b.code.strip() for b in blocks):
        chk.status, chk.detail = "no_code", "no ```python block" + (" (the only one was cut by max_tokens)" if truncated else "")
        return chk, "", blocks
    bad = next((i for i, b in enumerate(blocks) if not parses(b.code)), None)
    if bad is not None:
        chk.status, chk.detail = "syntax_error", f"block {bad} does not parse"
        return chk, "", blocks
    return chk, passage_program(blocks), blocks


def judge_run(chk: PassageCheck, blocks: list[Any], res: Any) -> PassageCheck:
    """Apply a sandbox result: failures, then each stated output against its block's printed output."""
    if res.status == "timed out":
        chk.status, chk.detail = "timeout", res.detail or "timed out"
        return chk
    if not res.passed:
        chk.status, chk.detail = "code_failed", (res.detail or res.stderr[-300:]).strip()
        return chk
    outs = split_stdout(res.stdout, len(blocks))
    for i, b in enumerate(blocks):
        later = "\n".join(outs[i:])
        for claim in b.claims:
            target = outs[i] if outs[i].strip() else later  # a definition-only block: its claim may be printed later
            if not target.strip():
                continue  # nothing printed at all: the claim cannot be checked
            chk.n_claims_checked += 1
            if not claim_agrees(claim, target):
                chk.n_claims_wrong += 1
                if chk.status == "kept":
                    chk.status = "wrong_output"
                    chk.detail = f"block {i} claims {claim[:80]!r} but printed {outs[i][:120]!r}"
    return chk


def validate_passages(texts: Sequence[str], timeout_s: float = 10.0, desc: str = "running passages") -> list[PassageCheck]:
    """Validate passages by execution (see the module docstring); order kept."""
    prepared = [prepare_passage(t) for t in texts]
    todo = [i for i, (chk, _, _) in enumerate(prepared) if chk.status == "pending"]
    results = run_sandboxed([prepared[i][1] for i in todo], timeout_s, desc)
    for i, res in zip(todo, results):
        chk, _, blocks = prepared[i]
        chk.status = "kept"
        judge_run(chk, blocks, res)
    return [chk for chk, _, _ in prepared]


# --------------------------------------------------------------------------- generation
def generate_passages(teacher: Any, n: int, base_seed: int, n_words: int, max_tokens: int,
                      randomised: bool = True, desc: str = "textbook passages") -> list[dict[str, Any]]:
    """`n` passages from recorded draws; each row keeps its draw, seed, prompt and the teacher."""
    kind = "textbook" if randomised else "textbook-fixed"
    draws = [draw_textbook(sample_seed(base_seed, kind, i), n_words, randomised) for i in range(n)]
    reqs = [{"messages": textbook_messages(d), "max_tokens": max_tokens, "seed": d.seed, "sample_index": i}
            for i, d in enumerate(draws)]
    t0 = time.time()
    results = teacher.chat_many(reqs, desc=desc) if reqs else []
    wall = time.time() - t0
    rows = []
    for d, req, r in zip(draws, reqs, results):
        rows.append({**d.to_dict(), "prompt": req["messages"][-1]["content"], "text": r.text or "",
                     "teacher": teacher.label, "completion_tokens": r.completion_tokens, "cached": r.cached,
                     "finish_reason": r.finish_reason, "error": r.error,
                     "origin": "generated" if randomised else "generated-fixed-prompt"})
    for row in rows:
        row["gen_wall_s"] = wall / max(len(rows), 1)
    return rows


def regenerate_prompt(row: dict[str, Any], n_words: int) -> str:
    """The prompt of a stored row rebuilt from its seed alone (the audit the stored draw allows)."""
    d = draw_textbook(int(row["seed"]), n_words, bool(row.get("randomised", True)))
    return textbook_messages(d)[-1]["content"]


def _open_rows(source: str, limit: int, max_chars: int, require_code: bool = True) -> list[dict[str, Any]]:
    from .opendata import textbook_rows

    rows = textbook_rows(source, limit, max_chars, require_code=require_code)
    return [{"seed": None, "randomised": None, "category": None, "topic": None, "audience": None, "style": None,
             "words": [], "prompt": None, "completion_tokens": approx_tokens(r["text"]), "cached": None,
             "finish_reason": None, "error": None, **r} for r in rows]


def topup_rows(tc: TextbookConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """The open top-up passages of `tc.topup_source` (sources in order, `:python` ones only with Python
    code, until `tc.topup_max`), and a note per source; a missing source is skipped with its note."""
    from .opendata import OpenDataError, missing_local, split_sources

    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    if not (tc.topup_source and tc.topup_max):
        return rows, notes
    for source, python_only in split_sources(tc.topup_source):
        left = tc.topup_max - len(rows)
        if left <= 0:
            break
        if missing_local(source):
            notes.append(f"top-up source {source} not found (SHARED_DATA absent?); skipped")
            continue
        try:
            got = _open_rows(source, left, tc.max_passage_chars, python_only or tc.topup_require_code)
        except OpenDataError as e:
            notes.append(f"top-up source unavailable ({e}); skipped")
            continue
        rows += got
        notes.append(f"top-up: {len(got)} passages from {source}")
    return rows, notes


def _check_rows(rows: list[dict[str, Any]], timeout_s: float, desc: str, prose_ok: bool = False) -> None:
    """Validate in place; with `prose_ok`, a passage without any code block is kept (nothing to run)."""
    ok = [i for i, r in enumerate(rows) if not r.get("error") and r["text"].strip()]
    checks = validate_passages([rows[i]["text"] for i in ok], timeout_s, desc)
    for r in rows:
        r.update(status="teacher_error", detail=str(r.get("error") or "empty reply"))
    for i, c in zip(ok, checks):
        d = asdict(c)
        rows[i].update(status=d.pop("status"), detail=d.pop("detail"), text=d.pop("text"), **d)
        if prose_ok and rows[i]["status"] == "no_code" and not rows[i].get("n_blocks"):
            rows[i].update(status="kept", detail="prose: no code block to run")


# --------------------------------------------------------------------------- stage
@dataclass
class TextbooksResult:
    """The `textbooks` step's `metrics.json`, typed (what `run_textbooks` returns)."""

    funnel_generated: dict[str, int]
    """Generated passages surviving each check in order (generated, reply, valid_code, ..., not_near_duplicate)."""
    funnel_topup: dict[str, int]
    """The same for the open top-up passages."""
    funnel_ablation: dict[str, int]
    """The same for the fixed-prompt ablation replies."""
    status_generated: dict[str, int]
    """Verdict (`STATUSES`) -> generated passages."""
    status_topup: dict[str, int]
    """Verdict -> top-up passages."""
    keep_rate_generated: float | None
    """Share of generated passages kept (None without any)."""
    keep_rate_topup: float | None
    """Share of top-up passages kept."""
    claims: dict[str, int]
    """Outputs the generated passages state: stated, checked (against the printed output), wrong."""
    truncated_blocks: int
    """Replies cut inside a code block by `max_tokens` (the block is removed)."""
    generation: dict[str, Any]
    """Generation throughput: passages, wall_s, completion_tokens_sent, cached, passages_per_min."""
    drawn_topics: dict[str, Any]
    """Prompt draws of the generated passages: distinct_topics, distinct_categories, category_counts."""
    ablation: dict[str, Any] | None
    """Diversity of randomised vs fixed-prompt replies (n_each, randomised, fixed_prompt, interval); None under 2 each."""
    final: dict[str, Any] | None
    """`diversity_report` of the kept passages (None when none is kept)."""
    final_assigned_categories: dict[str, int]
    """Taxonomy category (nearest by embedding) -> kept passages."""
    passage_tokens_by_origin: dict[str, int]
    """Approximate tokens of the kept passages per origin."""
    teacher: str | None
    """Label of the teacher that wrote the passages (None when none was used)."""
    notes: list[str]
    """Notes on the run (sources, top-ups, shortfalls)."""
    vocab: dict[str, int]
    """Sizes of the prompt vocabularies (`topics.vocab_sizes`)."""
    wall_s: float
    """Seconds from the step's start until the passages were measured (before the datasets were written)."""
    code_textbook: dict[str, Any]
    """CodeTextbook's accounting (`build_code_textbook`)."""
    tokens_by_origin: dict[str, int]
    """Approximate tokens of the whole CodeTextbook per origin."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TextbooksResult":
        """From `metrics.json`'s dict (its keys are the fields)."""
        return cls(**d)


def run_textbooks(cfg: ProfileConfig, rd: RunDir, force: bool = False) -> TextbooksResult:
    """Notebook 03: generate (or load) passages, validate by execution, dedup, measure diversity,
    and write `textbooks/textbooks` and `textbooks/code_textbook`. Returns the metrics, typed."""
    cfg = rd.view(STEP, cfg)
    tc = cfg.textbooks
    with rd.step(STEP, force, config=tc) as rec:
        if rec is None:
            return load_metrics(rd)
        out_dir = Path(rd.path) / STEP
        t_start = time.time()
        teacher_label = None
        rows: list[dict[str, Any]] = []
        fixed: list[dict[str, Any]] = []
        notes: list[str] = []
        gen_wall = 0.0
        if tc.source == "generate":
            if tc.n_passages or tc.ablation_passages:
                teacher = open_teacher(cfg, rd)
                try:
                    teacher_label = teacher.label
                    t0 = time.time()
                    rows = generate_passages(teacher, tc.n_passages, cfg.seed, tc.n_random_words, tc.max_tokens, True)
                    gen_wall = time.time() - t0
                    fixed = generate_passages(teacher, tc.ablation_passages, cfg.seed, tc.n_random_words,
                                              tc.max_tokens, False, desc="ablation: fixed prompt")
                finally:
                    teacher.close()
        else:
            rows = _open_rows(tc.source, tc.n_passages, tc.max_passage_chars)
            notes.append(f"source: open dataset {tc.source} instead of generation")
        topup, topup_notes = topup_rows(tc)
        notes += topup_notes

        _check_rows(rows, tc.run_timeout_s, "running passages")
        _check_rows(topup, tc.run_timeout_s, "running top-up passages", prose_ok=not tc.topup_require_code)
        _check_rows(fixed, tc.run_timeout_s, "running ablation passages")

        # near-duplicate removal over the kept passages (generated first, so they win ties)
        pool = [r for r in rows + topup if r["status"] == "kept"]
        for r, dup in zip(pool, near_duplicate_mask([r["text"] for r in pool], tc.near_dup_threshold)):
            if dup:
                r["status"], r["detail"] = "near_duplicate", "MinHash Jaccard >= threshold with an earlier passage"
        kept = [r for r in rows + topup if r["status"] == "kept"]

        diversity = _diversity(rows, fixed, kept, tc.near_dup_threshold)
        wall_s = time.time() - t_start
        write_jsonl_atomic(out_dir / "passages.jsonl", rows + topup)
        write_jsonl_atomic(out_dir / "ablation_passages.jsonl", fixed)
        _save_textbooks(kept, out_dir / "textbooks")
        code_textbook = build_code_textbook(rd, kept, out_dir, tc, cfg.seed)
        if code_textbook["filtered_code_missing"]:
            notes.append("filtering/filtered is missing: CodeTextbook is textbook passages only")
        notes.extend(code_textbook["notes"])
        result = _result(rows, fixed, topup, kept, gen_wall, diversity, teacher=teacher_label, notes=notes,
                         wall_s=wall_s, code_textbook=code_textbook)
        write_json_atomic(out_dir / "metrics.json", result)
        rec.counts = {"generated": len(rows), "topup": len(topup), "ablation": len(fixed), "kept": len(kept),
                      **{f"dropped_{s}": sum(r["status"] == s for r in rows + topup) for s in STATUSES if s != "kept"},
                      "code_textbook_rows": code_textbook["rows"], "code_textbook_tokens": code_textbook["tokens"],
                      "filtered_code_alone_tokens": code_textbook["filtered_code_alone"]["tokens"]}
        rec.extra = {"teacher": teacher_label, "notes": notes}
        return result


class _Diversity(NamedTuple):
    """The diversity measurements of one run (the slow part of measuring it: embeddings)."""

    ablation: dict[str, Any] | None
    """Randomised vs fixed-prompt replies (`TextbooksResult.ablation`)."""
    final: dict[str, Any] | None
    """`diversity_report` of the kept passages."""
    assigned_categories: dict[str, int]
    """Taxonomy category (nearest by embedding) -> kept passages."""


def _diversity(rows: list[dict[str, Any]], fixed: list[dict[str, Any]], kept: list[dict[str, Any]],
               near_dup_threshold: float) -> _Diversity:
    ablation = None
    k = min(len(fixed), len(rows))  # equal-size sets of raw replies, randomised vs fixed prompt
    if k >= 2:
        rand_txt = [r["text"] for r in rows[:k] if r["text"]]
        fix_txt = [r["text"] for r in fixed[:k] if r["text"]]
        e_rand, e_fix = embed(rand_txt), embed(fix_txt)
        ablation = {"n_each": k, "randomised": diversity_report(rand_txt, near_dup_threshold, emb=e_rand),
                    "fixed_prompt": diversity_report(fix_txt, near_dup_threshold, emb=e_fix),
                    "interval": ablation_interval(e_rand, e_fix)}
    texts = [r["text"] for r in kept]
    emb = embed(texts)
    return _Diversity(ablation, diversity_report(texts, near_dup_threshold, emb=emb) if texts else None,
                      dict(Counter(c for c, _ in assign_topics(emb))))


def _keep_rate(rows: list[dict[str, Any]]) -> float | None:
    return sum(r["status"] == "kept" for r in rows) / len(rows) if rows else None


def _result(rows: list[dict[str, Any]], fixed: list[dict[str, Any]], topup: list[dict[str, Any]],
            kept: list[dict[str, Any]], gen_wall: float, diversity: _Diversity, *, teacher: str | None,
            notes: list[str], wall_s: float, code_textbook: dict[str, Any]) -> TextbooksResult:
    gen_tokens = sum(r.get("completion_tokens") or 0 for r in rows if not r.get("cached"))
    categories = [r["category"] for r in rows if r.get("category")]
    return TextbooksResult(
        funnel_generated=funnel(rows, FILTERS), funnel_topup=funnel(topup, FILTERS),
        funnel_ablation=funnel(fixed, FILTERS),
        status_generated=dict(Counter(r["status"] for r in rows)),
        status_topup=dict(Counter(r["status"] for r in topup)),
        keep_rate_generated=_keep_rate(rows), keep_rate_topup=_keep_rate(topup),
        claims={"stated": sum(r.get("n_claims", 0) for r in rows),
                "checked": sum(r.get("n_claims_checked", 0) for r in rows),
                "wrong": sum(r.get("n_claims_wrong", 0) for r in rows)},
        truncated_blocks=sum(bool(r.get("truncated_block")) for r in rows),
        generation={"passages": len(rows), "wall_s": gen_wall, "completion_tokens_sent": gen_tokens,
                    "cached": sum(bool(r.get("cached")) for r in rows),
                    "passages_per_min": (60 * len(rows) / gen_wall) if gen_wall > 0 else None},
        drawn_topics={"distinct_topics": len({r["topic"] for r in rows if r.get("topic")}),
                      "distinct_categories": len(set(categories)), "category_counts": dict(Counter(categories))},
        ablation=diversity.ablation, final=diversity.final, final_assigned_categories=diversity.assigned_categories,
        passage_tokens_by_origin=tokens_by_origin([r["origin"] for r in kept], [approx_tokens(r["text"]) for r in kept]),
        teacher=teacher, notes=notes, vocab=vocab_sizes(), wall_s=wall_s,
        code_textbook=code_textbook, tokens_by_origin=code_textbook["tokens_by_origin"])


def _save_textbooks(kept: list[dict[str, Any]], path: Path) -> None:
    from datasets import Dataset

    cols = ["text", "topic", "category", "audience", "style", "words", "seed", "teacher", "origin", "prompt"]
    data = {c: [r.get(c) for r in kept] for c in cols}
    data["words"] = [list(w or []) for w in data["words"]]
    data["seed"] = [(-1 if s is None else int(s)) for s in data["seed"]]
    data["n_tokens"] = [approx_tokens(t) for t in data["text"]]
    save_dataset(Dataset.from_dict(data), path)


_PY_FENCE = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.S)


def python_code_tokens(text: str) -> int:
    """Tokens (the same approximate unit as `n_tokens`) inside ```python blocks of a passage."""
    return sum(approx_tokens(m.group(1)) for m in _PY_FENCE.finditer(text))


def synthetic_share(by_origin: dict[str, int]) -> float | None:
    """Share of tokens not from `filtered_code` (None for an empty dataset)."""
    total = sum(by_origin.values())
    return None if total == 0 else 1.0 - by_origin.get(FILTERED_CODE, 0) / total


def code_token_budget(synthetic_tokens: int, share: float, min_tokens: int) -> int | None:
    """Filtered-code tokens that keep the synthetic share at `share`, never below `min_tokens`;
    None = no limit (`share` 0)."""
    if share <= 0:
        return None
    return max(int(min_tokens), int(synthetic_tokens * (1.0 - share) / share))


def sample_to_budget(n_tokens: Sequence[int], budget: int | None, seed: int) -> list[int]:
    """Indices of a seeded random subset whose tokens sum to at most `budget` (rows visited in a
    seeded order; a row that would overflow is skipped), in the original order; all for None."""
    import random

    if budget is None:
        return list(range(len(n_tokens)))
    order = list(range(len(n_tokens)))
    random.Random(seed).shuffle(order)
    picked, total = [], 0
    for i in order:
        if total + n_tokens[i] <= budget:
            picked.append(i)
            total += n_tokens[i]
    return sorted(picked)


def build_code_textbook(rd: RunDir, kept: list[dict[str, Any]], out_dir: Path, tc: TextbookConfig, seed: int = 0) -> dict[str, Any]:
    """CodeTextbook = filtered code (notebook 02's `filtering/filtered`), subsampled so the textbook
    passages hold at least `tc.synthetic_share` of the tokens, + the passages -> `code_textbook`.
    Also `filtered_code`: the filtered code alone with the same token count (the B' arm), or all of
    it when it has fewer. Every row carries its `origin`; returns the accounting."""
    from datasets import Dataset, load_from_disk

    fpath = Path(rd.path) / "filtering" / "filtered"
    code_texts: list[str] = []
    missing = not fpath.exists()
    if not missing:
        code_texts = [t for t in load_from_disk(str(fpath))["text"] if t]
    code_tok = [approx_tokens(t) for t in code_texts]
    syn_tok = [approx_tokens(r["text"]) for r in kept]
    budget = code_token_budget(sum(syn_tok), tc.synthetic_share, tc.min_filtered_tokens)
    pick = sample_to_budget(code_tok, budget, seed)
    texts = [code_texts[i] for i in pick] + [r["text"] for r in kept]
    origins = [FILTERED_CODE] * len(pick) + [r["origin"] for r in kept]
    ntok = [code_tok[i] for i in pick] + syn_tok
    sources = ["filtered_code" if o == FILTERED_CODE else "textbook" for o in origins]
    save_dataset(Dataset.from_dict({"text": texts, "source": sources, "origin": origins, "n_tokens": ntok}),
                 out_dir / "code_textbook")
    # B': the same token count of filtered code alone (the code already in CodeTextbook first, then more).
    target = sum(ntok)
    used = set(pick)
    rest = [i for i in range(len(code_tok)) if i not in used]
    extra = sample_to_budget([code_tok[i] for i in rest], max(0, target - sum(code_tok[i] for i in pick)), seed + 1)
    alone = sorted(pick + [rest[j] for j in extra])
    save_dataset(Dataset.from_dict({"text": [code_texts[i] for i in alone], "origin": [FILTERED_CODE] * len(alone),
                                    "n_tokens": [code_tok[i] for i in alone]}), out_dir / "filtered_code")
    by_origin = tokens_by_origin(origins, ntok)
    share = synthetic_share(by_origin)
    syn_code = sum(python_code_tokens(r["text"]) for r in kept)
    notes = []
    if tc.synthetic_share > 0 and share is not None and share + 1e-9 < tc.synthetic_share:
        notes.append(f"synthetic share {share:.2%} is below the target {tc.synthetic_share:.2%}: only {sum(syn_tok)} "
                     f"synthetic tokens (open top-ups absent or few) and the filtered code is kept at >= "
                     f"{tc.min_filtered_tokens} tokens (textbooks.min_filtered_tokens)")
    alone_tokens = sum(code_tok[i] for i in alone)
    if alone_tokens < target and len(alone) == len(code_texts) and code_texts:
        notes.append(f"filtered code alone has {alone_tokens} tokens, fewer than CodeTextbook's {target}")
    return {"rows": len(texts), "filtered_code_missing": missing, "filtered_code_path": str(fpath),
            "tokens": target, "tokens_by_origin": by_origin, "synthetic_share": share,
            "target_synthetic_share": tc.synthetic_share, "filtered_code_budget": budget,
            "filtered_code_available_tokens": sum(code_tok), "filtered_code_rows_used": len(pick),
            "filtered_code_rows_available": len(code_texts),
            "rows_by_origin": {o: origins.count(o) for o in by_origin},
            "tokens_by_source": tokens_by_origin(sources, ntok),
            "filtered_code_alone": {"rows": len(alone), "tokens": alone_tokens},
            "synthetic_python_code_share": (syn_code / sum(syn_tok)) if sum(syn_tok) else None,
            "token_unit": "approx (word-and-symbol pieces)", "notes": notes}


def load_code_textbook(rd: RunDir) -> Any:
    """CodeTextbook (arm B's pretraining data): `textbooks/code_textbook` (text, source, origin, n_tokens)."""
    from datasets import load_from_disk

    return load_from_disk(str(Path(rd.require(STEP)) / "code_textbook"))


def load_filtered_code(rd: RunDir) -> Any:
    """The filtered code alone with CodeTextbook's token count (arm B'): `textbooks/filtered_code`."""
    from datasets import load_from_disk

    return load_from_disk(str(Path(rd.require(STEP)) / "filtered_code"))


def load_metrics(rd: RunDir) -> TextbooksResult:
    """The complete step's `metrics.json`, typed."""
    from ..rundir import read_result

    return read_result(TextbooksResult, Path(rd.require(STEP)) / "metrics.json")


def load_passages(rd: RunDir) -> list[dict[str, Any]]:
    """Every passage of the run with its verdict (`status`, `detail`)."""
    return read_jsonl(Path(rd.require(STEP)) / "passages.jsonl")


def conclusions(metrics: TextbooksResult) -> list[str]:
    """Sentences on the passages, the ablation and CodeTextbook's proportions, from the metrics."""
    from ..stats import wilson_interval

    out = []
    for name, f in (("generated", metrics.funnel_generated), ("open top-up", metrics.funnel_topup)):
        if f["generated"]:
            k, n = f["not_near_duplicate"], f["generated"]
            lo, hi = wilson_interval(k, n)
            out.append(f"{name}: {k} of {n} passages kept after the execution, output and dedup checks "
                       f"({k / n:.0%}, 95% CI {lo:.0%}-{hi:.0%}).")
    ab = metrics.ablation or {}
    if ab.get("interval"):
        out.append("Prompt ablation: " + ab["interval"]["conclusion"])
    ct = metrics.code_textbook
    share, target = ct.get("synthetic_share"), ct.get("target_synthetic_share")
    if share is not None:
        by = ", ".join(f"{o} {t:,}" for o, t in ct["tokens_by_origin"].items())
        met = "meets" if target is None or share + 1e-9 >= target else "falls short of"
        out.append(f"CodeTextbook: {ct['tokens']:,} tokens ({by}); synthetic share {share:.1%}, which {met} the "
                   f"target {target:.1%} (paper-reported: <1B of ~7B, ~14%).")
    py = ct.get("synthetic_python_code_share")
    if py is not None:
        out.append(f"{py:.1%} of the synthetic tokens sit in ```python blocks (the paper's textbooks interleave "
                   "prose with Python code; the rest here is prose).")
    return out
